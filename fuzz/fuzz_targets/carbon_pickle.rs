//! Any bytes as a carbon pickle message, and as plaintext lines: decoded
//! or refused, never a panic, never a deep recursion, never more memory
//! than the budget. The seeds (fuzz/seeds/carbon_pickle) hold
//! Python's pickles of carbon messages, 60 000 nested lists and memo
//! entries at huge indices.
#![no_main]

use carbyne::server::carbon::{parse_line, pickle};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = pickle::loads(data, pickle::budget(data.len())) {
        let _ = pickle::datapoints(v);
    }
    for line in String::from_utf8_lossy(data).lines() {
        if let Ok((name, ts, _)) = parse_line(line, 1.7e9, 4000) {
            assert!(!name.is_empty() && (0.0..4_294_967_296.0).contains(&ts));
        }
    }
});
