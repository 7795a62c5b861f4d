//! Any text as carbyne.toml: loaded and checked, or refused with a message
//! naming the file, line or key, never a panic.
#![no_main]

use carbyne::config::{load, Sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("carbyne-fuzz-{}.toml", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let sources = Sources {
        main: Some(path),
        dropins: Vec::new(),
    };
    if let Err(e) = load(&sources) {
        assert!(!e.to_string().is_empty());
    }
});
