//! Any bytes as statsd packets through the aggregator into the Prometheus
//! exposition (with typed rules, a histogram and a summary): never a
//! panic, and every sample line of the page ends in a number Prometheus
//! reads.
#![no_main]

use carbyne::prometheus::mapping::Mapper;
use carbyne::server::statsd::{Aggregator, Exporter, StatsdServerConfig};
use libfuzzer_sys::fuzz_target;

const RULES: &str = "mappings:\n- match: \"h.*\"\n  name: h_seconds\n  labels: {k: \"$1\"}\n  observer_type: histogram\n  buckets: [0.001, 1]\n- match: \"c.*\"\n  match_metric_type: counter\n  name: c\n  labels: {k: \"$1\"}\n  scale: 1e300\n- match: \"d.*\"\n  action: drop\n  name: d\n";

fuzz_target!(|data: &[u8]| {
    let a = Aggregator::new(
        StatsdServerConfig {
            max_keys: 64,
            ..Default::default()
        },
        2,
    );
    let mapper = Mapper::parse(RULES).expect("rules");
    let mut ex = Exporter::new(mapper, 64 << 10);
    let mut now = 1_700_000_000_000i64;
    for packet in data.split(|b| *b == 0) {
        a.packet(packet);
        now += 10_000;
        a.flush_into(now / 1000, Some(&mut |u| ex.apply(u, now)));
        ex.expire(now);
    }
    let page = ex.render(now);
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let v = line.rsplit(' ').next().unwrap_or_default();
        assert!(
            v.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&v),
            "{line}"
        );
    }
    assert!(ex.bytes() <= 64 << 10);
});
