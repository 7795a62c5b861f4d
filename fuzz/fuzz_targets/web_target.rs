//! Any bytes as a render request's `from` (the first line, through attime)
//! and target (the rest, through the grammar, then evaluated over a few
//! small series with gaps and two steps): parsed, evaluated or refused,
//! never a panic. The seeds (fuzz/seeds/web_target) hold the targets
//! Grafana and the differential tests send.
#![no_main]

use carbyne::server::web::functions::{evaluate_target, Context, Result, Source};
use carbyne::server::web::series::Series;
use carbyne::server::web::{attime, grammar};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

/// Three series whatever the pattern: 60 s with gaps, 10 s, and empty.
struct Fixed;

impl Source for Fixed {
    fn fetch(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>> {
        let start = ctx.start - ctx.start.rem_euclid(60);
        let a = (0..60).map(|i| (i % 7 != 3).then_some(i as f64 - 20.0)).collect();
        let b = (0..360).map(|i| Some((i * i) as f64 / 7.0)).collect();
        let mut out = vec![
            Series::new(format!("{pattern}.a"), start, start + 3600, 60, a, 0.0),
            Series::new("x.y;tag=v".into(), start, start + 3600, 10, b, 0.0),
            Series::new("empty".into(), start, start + 60, 60, vec![None], 0.0),
        ];
        for s in &mut out {
            s.path_expression = pattern.to_string();
        }
        Ok(out)
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (from, target) = text.split_once('\n').unwrap_or(("-1h", &text));
    let start = attime::parse(from, attime::zone(Some("Europe/Berlin")), NOW).unwrap_or(NOW - 3600);
    if start >= NOW || start < NOW - 86400 * 30 {
        return;
    }
    if let Ok(node) = grammar::parse(target) {
        let ctx = Context {
            start,
            end: NOW,
            now: NOW,
            xff: 0.0,
            source: &Fixed,
        };
        let _ = evaluate_target(&node, &ctx);
    }
});
