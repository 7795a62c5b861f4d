//! Any text as a statsd_exporter / graphite_exporter mapping file: read or
//! refused with a message, never a panic; the rules read map names of each
//! type without one either.
#![no_main]

use carbyne::prometheus::mapping::{Mapped, Mapper, MetricType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(m) = Mapper::parse(&text) else {
        return;
    };
    for name in ["a.b.c", "servers.web01.nginx.2xx", "", "x", "a..b"] {
        for t in [MetricType::Counter, MetricType::Gauge, MetricType::Observer] {
            if let Mapped::To { name, rule, .. } = m.map_typed(name, t) {
                assert!(carbyne::prometheus::valid_metric_name(&name), "{name}");
                let _ = m.options(Some(rule));
            }
        }
    }
});
