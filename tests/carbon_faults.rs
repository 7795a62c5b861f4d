//! The carbon receiver under faults: its store on a small tmpfs that fills
//! up mid-run (whisper files cannot be created or written), then grows.
//! Nothing accepted may be lost: the points wait in the cache, the errors
//! are counted and logged, and the files are written once there is room.
//! Mounting needs root, as the test setup runs.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn wsp_files(root: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    usize::from(p.extension().is_some_and(|x| x == "wsp"))
                }
            })
            .sum()
    }
    walk(root)
}

#[test]
fn a_full_disk_keeps_the_points_until_there_is_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("whisper");
    // 256 KiB: room for about 14 files of 17 KB (60s:1d, fully allocated).
    let fs = Tmpfs::mount(&store, "256k");
    std::fs::write(
        dir.path().join("schemas.conf"),
        "[all]\npattern = .*\nretentions = 60s:1d\n",
    )
    .expect("schemas");
    let port = free_port();
    std::fs::write(
        dir.path().join("carbyne.toml"),
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{port}\"\n\
             storage_dir = {store:?}\nschemas = {:?}\ncreate = \"zeroed\"\n\
             carbon_metric_interval = 0\n",
            dir.path().join("schemas.conf")
        ),
    )
    .expect("config");
    let child = bin()
        .args(["server", "--config"])
        .arg(dir.path().join("carbyne.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("carbyne server");
    let child = Child(child);
    wait_for_port(port);

    let now = now() / 60 * 60;
    let mut sent = Vec::new();
    let mut text = String::new();
    for m in 0..40 {
        for k in 0..3i64 {
            let (name, ts, v) = (format!("disk.m{m}"), now - 60 * k, (m * 10 + k) as f64);
            text.push_str(&format!("{name} {v} {ts}\n"));
            sent.push((name, ts, v));
        }
    }
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(text.as_bytes()).expect("send");
    drop(c);

    // The disk fills: some files are made, the rest cannot be.
    std::thread::sleep(Duration::from_secs(2));
    let made = wsp_files(&store);
    assert!(made > 0 && made < 40, "{made} files on a full disk");

    // Room again: everything is written, without anything sent again.
    fs.resize("4m");
    let start = Instant::now();
    while wsp_files(&store) < 40 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Then SIGTERM writes what is cached.
    let mut child = child;
    signal(&child.0, "-TERM");
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_points_written(
        &store,
        sent.iter().map(|(name, ts, v)| (name.as_str(), *ts, *v)),
    );
    drop(fs);
}
