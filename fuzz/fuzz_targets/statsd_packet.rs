//! Any bytes as a statsd packet: read or counted as bad, never a panic; the
//! flush stays well-formed (three fields a line), the key count and the
//! sets bounded.
#![no_main]

use carbyne::server::statsd::{Aggregator, StatsdServerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let a = Aggregator::new(
        StatsdServerConfig {
            max_keys: 64,
            max_set_members: 8,
            max_set_member_bytes: 16,
            ..Default::default()
        },
        2,
    );
    a.packet(data);
    for line in a.flush(1000).lines() {
        assert_eq!(line.split(' ').count(), 3, "{line}");
        if line.contains(".sets.") {
            let count: f64 = line.split(' ').nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            assert!(count <= 8.0, "{line}");
        }
    }
    // statsd's own: three counters, the lag gauge, two drop counters.
    assert!(a.keys() <= 64 + 6);
});
