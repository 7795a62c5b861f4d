//! What a Prometheus scrape costs carbyne: one run of every default
//! collector on this machine's real /proc, with node_exporter's series,
//! taken into the prometheus handler's cache, then rendered in the text
//! format, in OpenMetrics, and gzipped (a scrape after a run renders once;
//! a scrape between runs serves the rendering kept).
//!
//! And what the statsd server's exposition adds to a flush: 10 000 keys
//! (counters with tags, gauges, timers of 10 timings into histograms and
//! summaries) flushed with and without it.
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

/// One flush's lines: 4 000 counters over 2 tags, 2 000 gauges, 4 000
/// timers of 10 timings each (half under a histogram rule).
fn statsd_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for i in 0..4000 {
        lines.push(format!(
            "app.requests.{i}:{}|c|#region:eu,code:2xx",
            i % 7 + 1
        ));
    }
    for i in 0..2000 {
        lines.push(format!("app.queue.{i}:{}|g", i * 3));
    }
    for i in 0..4000 {
        let kind = if i % 2 == 0 { "hist" } else { "sum" };
        for j in 0..10 {
            lines.push(format!("app.{kind}.{i}:{}|ms", (i * 7 + j * 13) % 900));
        }
    }
    lines
}

fn statsd_flush(c: &mut Criterion) {
    use carbyne::prometheus::mapping::Mapper;
    use carbyne::server::statsd::{Aggregator, Exporter, StatsdServerConfig};
    let mapper = || {
        Mapper::parse(
            "mappings:\n- match: \"app.hist.*\"\n  name: app_hist_seconds\n  labels: {n: \"$1\"}\n  observer_type: histogram\n",
        )
        .expect("rules")
    };
    let lines = statsd_lines();
    let packets: Vec<String> = lines.chunks(20).map(|c| c.join("\n")).collect();
    let agg = Aggregator::new(StatsdServerConfig::default(), 2);
    let fill = |agg: &Aggregator| {
        agg.packets(packets.iter().map(|p| p.as_bytes()));
    };
    c.bench_function("statsd_flush/graphite_only", |b| {
        b.iter(|| {
            fill(&agg);
            black_box(agg.flush(1_700_000_000).len())
        })
    });
    let mut ex = Exporter::new(mapper(), 256 << 20);
    let mut t = 1_700_000_000_000i64;
    c.bench_function("statsd_flush/graphite_and_prometheus", |b| {
        b.iter(|| {
            fill(&agg);
            t += 10_000;
            let lines = agg.flush_into(t / 1000, Some(&mut |u| ex.apply(u, t)));
            ex.expire(t);
            black_box((lines.len(), ex.render(t).len()))
        })
    });
    eprintln!("{} series, {} bytes held", ex.len(), ex.bytes());
}

criterion_group!(benches, scrape, statsd_flush);
criterion_main!(benches);
