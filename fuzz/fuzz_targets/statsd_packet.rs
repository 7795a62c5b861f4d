//! Any bytes as a statsd packet: read or counted as bad, never a panic; the
//! flush stays well-formed (three fields a line) and the key count bounded.
#![no_main]

use carbyne::server::statsd::{Aggregator, StatsdServerConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let a = Aggregator::new(
        StatsdServerConfig {
            max_keys: 64,
            ..Default::default()
        },
        2,
    );
    a.packet(data);
    for line in a.flush(1000).lines() {
        assert_eq!(line.split(' ').count(), 3, "{line}");
    }
    assert!(a.keys() <= 64 + 4);
});
