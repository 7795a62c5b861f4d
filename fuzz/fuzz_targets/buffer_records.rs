//! Any bytes as a disk buffer's segment file (and as its `ack` file):
//! opened with the damage cut off, read back, appended to and read again,
//! never a panic; every record read back encodes to the same record.
#![no_main]

use carbyne::buffer::disk::Disk;
use carbyne::buffer::{record, Fsync, Spec};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    // The records alone: each whole one encodes back to its own bytes.
    let (samples, _) = record::decode_all(data);
    let mut again = Vec::new();
    for s in &samples {
        record::encode(s, &mut again);
    }
    assert!(data.starts_with(&again), "a record that does not encode back");

    let dir = std::env::temp_dir().join(format!("carbyne-fuzz-buffer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let mut seg = b"CBYNBUF1".to_vec();
    seg.extend_from_slice(data);
    let split = data.first().map_or(0, |b| *b as usize % 4);
    let _ = std::fs::write(dir.join(format!("{:020}.seg", split)), &seg);
    if data.len() >= 12 {
        let _ = std::fs::write(dir.join("ack"), &data[..12]);
    }
    let spec = Spec {
        dir: dir.clone(),
        max_bytes: 64 << 10,
        fsync: Fsync::Never,
    };
    let Ok(mut d) = Disk::open(&spec, Duration::ZERO) else {
        return;
    };
    let first = d.take(usize::MAX, |_| true);
    d.put_back(first.clone()).expect("put back what was taken");
    let again = d.take(usize::MAX, |_| true);
    assert_eq!(first.len(), again.len());
    d.settle();
    let _ = d.push(samples);
    drop(d);
    if let Ok(mut d) = Disk::open(&spec, Duration::ZERO) {
        let _ = d.take(usize::MAX, |_| true);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
