//! Any bytes as a whisper file: opened, or refused as not whisper's, never
//! a panic; an opened file's archives can be read.
#![no_main]

use carbyne::whisper::Whisper;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("carbyne-fuzz-{}.wsp", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(w) = Whisper::open(&path, false) {
        let now = 1_700_000_000i64;
        let _ = w.fetch(now - 86_400, Some(now), None, None);
        for a in &w.header.archives {
            let _ = w.archive_fetch(a, now - a.retention() as i64, now);
        }
    }
});
