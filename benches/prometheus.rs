//! What a Prometheus scrape costs carbyne: one run of every default
//! collector on this machine's real /proc, with node_exporter's series,
//! taken into the prometheus handler's cache, then rendered in the text
//! format, in OpenMetrics, and gzipped (a scrape after a run renders once;
//! a scrape between runs serves the rendering kept).
//!
//! Run: `cargo bench --bench prometheus` (the scrape over HTTP beside
//! node_exporter: `bash benches/scrape.sh`).

use carbyne::collectors::build_with_host;
use carbyne::config::Config;
use carbyne::handlers::prometheus::Cache;
use carbyne::prometheus::Format;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn scrape(c: &mut Criterion) {
    let cfg = Config::default();
    let mut all = build_with_host(&cfg, Some("bench")).expect("default config builds");
    let t = now();
    let mut samples = Vec::new();
    for inst in &mut all {
        inst.series = true;
        let (_, _, st) = inst.run(t as i64, t, None);
        samples.extend(inst.run(t as i64 + 10, t + 10.0, Some(st)).1);
    }
    let mut cache = Cache::new(64 << 20);
    cache.update(samples.clone());
    eprintln!(
        "{} samples, {} series, {} bytes of text",
        samples.len(),
        cache.len(),
        cache.render(Format::Text).len()
    );
    c.bench_function("scrape/update", |b| {
        b.iter(|| cache.update(black_box(samples.clone())))
    });
    c.bench_function("scrape/update_and_render_text", |b| {
        b.iter(|| {
            cache.update(black_box(samples.clone()));
            black_box(cache.render(Format::Text).len())
        })
    });
    c.bench_function("scrape/update_and_render_openmetrics", |b| {
        b.iter(|| {
            cache.update(black_box(samples.clone()));
            black_box(cache.render(Format::OpenMetrics).len())
        })
    });
    c.bench_function("scrape/update_and_render_text_gzip", |b| {
        b.iter(|| {
            cache.update(black_box(samples.clone()));
            black_box(cache.render_gzip(Format::Text).len())
        })
    });
    c.bench_function("scrape/kept_rendering", |b| {
        b.iter(|| black_box(cache.render_gzip(Format::Text).len()))
    });
}

criterion_group!(benches, scrape);
criterion_main!(benches);
