//! Whisper beside Graphite's Python whisper 1.1.10, same machine, same run,
//! on a 3-archive schema (10s:1d, 1m:7d, 10m:1y): single-point updates and
//! 100-point update_many (points/s), fetching a day (calls/s), creating
//! files (files/s), and system calls per single-point update (strace -c).
//!
//! Run: `cargo bench --bench whisper` (needs python3 with whisper==1.1.10,
//! and strace for the system-call count).

mod common;

use carbyne::whisper::{self, Aggregation, Allocation, Whisper};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const SCHEMA: [(u32, u32); 3] = [(10, 8640), (60, 10080), (600, 52560)];
const NOW: i64 = 1_795_000_000;

/// (single updates/s, update_many points/s, fetches/s, creates/s) with a
/// file opened per call, and single updates/s and points/s with one handle
/// kept open (a writer that keeps its files, as a carbon writer can).
fn ours(dir: &Path, n: usize) -> ((f64, f64, f64, f64), (f64, f64)) {
    let file = dir.join("rs.wsp");
    let t = Instant::now();
    for i in 0..n / 10 {
        whisper::create(
            &dir.join(format!("c{i}.wsp")),
            &SCHEMA,
            0.5,
            Aggregation::Average,
            Allocation::Sparse,
        )
        .expect("create");
    }
    let creates = (n / 10) as f64 / t.elapsed().as_secs_f64();
    whisper::create(
        &file,
        &SCHEMA,
        0.5,
        Aggregation::Average,
        Allocation::Zeroed,
    )
    .expect("create");
    let t = Instant::now();
    for i in 0..n {
        let ts = NOW - 86_000 + i as i64 * 10 % 86_000;
        Whisper::open(&file, true)
            .and_then(|w| w.update_many(&[(ts, i as f64)], Some(NOW)))
            .expect("update");
    }
    let singles = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let calls = n / 10;
    for c in 0..calls {
        let pts: Vec<(i64, f64)> = (0..100)
            .map(|k| {
                (
                    NOW - 86_000 + ((c * 100 + k) as i64 * 10) % 86_000,
                    k as f64,
                )
            })
            .collect();
        Whisper::open(&file, true)
            .and_then(|w| w.update_many(&pts, Some(NOW)))
            .expect("update_many");
    }
    let many = (calls * 100) as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n / 10 {
        let s = Whisper::open(&file, false)
            .and_then(|w| w.fetch(NOW - 86_400, Some(NOW), Some(NOW), None))
            .expect("fetch");
        std::hint::black_box(s);
    }
    let fetches = (n / 10) as f64 / t.elapsed().as_secs_f64();
    let w = Whisper::open(&file, true).expect("open");
    let t = Instant::now();
    for i in 0..n {
        let ts = NOW - 86_000 + i as i64 * 10 % 86_000;
        w.update_many(&[(ts, i as f64)], Some(NOW)).expect("update");
    }
    let kept_singles = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for c in 0..calls {
        let pts: Vec<(i64, f64)> = (0..100)
            .map(|k| {
                (
                    NOW - 86_000 + ((c * 100 + k) as i64 * 10) % 86_000,
                    k as f64,
                )
            })
            .collect();
        w.update_many(&pts, Some(NOW)).expect("update_many");
    }
    let kept_many = (calls * 100) as f64 / t.elapsed().as_secs_f64();
    ((singles, many, fetches, creates), (kept_singles, kept_many))
}

const PY: &str = r#"
import json, sys, time, whisper, os
d, n, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
schema = [(10, 8640), (60, 10080), (600, 52560)]
t = time.perf_counter()
for i in range(n // 10):
    whisper.create(os.path.join(d, "p%d.wsp" % i), schema, 0.5, "average", sparse=True)
creates = (n // 10) / (time.perf_counter() - t)
f = os.path.join(d, "py.wsp")
whisper.create(f, schema, 0.5, "average")
t = time.perf_counter()
for i in range(n):
    whisper.update_many(f, [(now - 86000 + i * 10 % 86000, float(i))], now=now)
singles = n / (time.perf_counter() - t)
t = time.perf_counter()
calls = n // 10
for c in range(calls):
    whisper.update_many(f, [(now - 86000 + ((c * 100 + k) * 10) % 86000, float(k)) for k in range(100)], now=now)
many = calls * 100 / (time.perf_counter() - t)
t = time.perf_counter()
for _ in range(n // 10):
    whisper.fetch(f, now - 86400, now, now=now)
fetches = (n // 10) / (time.perf_counter() - t)
print(json.dumps([singles, many, fetches, creates]))
"#;

fn python(dir: &Path, n: usize) -> Option<Vec<f64>> {
    let out = Command::new("python3")
        .args(["-c", PY])
        .arg(dir)
        .arg(n.to_string())
        .arg(NOW.to_string())
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

/// System calls per single-point update: strace -c over `count` updates
/// minus the same program doing none.
fn syscalls(cmd: &[&str], count: usize) -> Option<f64> {
    let run = |n: usize| -> Option<u64> {
        let tmp = tempfile::tempdir().ok()?;
        let out = tmp.path().join("strace.txt");
        let status = Command::new("strace")
            .args(["-f", "-c", "-o"])
            .arg(&out)
            .args(cmd)
            .arg(tmp.path())
            .arg(n.to_string())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        let text = std::fs::read_to_string(out).ok()?;
        let total = text.lines().find(|l| l.trim_end().ends_with("total"))?;
        // "100.00  seconds  usecs/call  calls  [errors]  total"
        total.split_whitespace().nth(3)?.parse().ok()
    };
    let (a, b) = (run(0)?, run(count)?);
    Some((b.saturating_sub(a)) as f64 / count as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Worker mode for the system-call count: N single-point updates.
    for (flag, kept) in [("--updates", false), ("--updates-kept", true)] {
        if let Some(i) = args.iter().position(|a| a == flag) {
            let dir = Path::new(&args[i + 1]);
            let n: usize = args[i + 2].parse().expect("count");
            let f = dir.join("s.wsp");
            whisper::create(&f, &SCHEMA, 0.5, Aggregation::Average, Allocation::Sparse)
                .expect("create");
            let held = Whisper::open(&f, true).expect("open");
            // Warm: the first update reads the bases once.
            held.update(0.0, Some(NOW - 1000), Some(NOW))
                .expect("update");
            for k in 0..n {
                let ts = Some(NOW - 1000 + (k as i64 * 10) % 900);
                if kept {
                    held.update(k as f64, ts, Some(NOW)).expect("update");
                } else {
                    let w = Whisper::open(&f, true).expect("open");
                    w.update(k as f64, ts, Some(NOW)).expect("update");
                }
            }
            return;
        }
    }
    let n = if common::full() { 20_000 } else { 200 };
    let dir = tempfile::tempdir().expect("tempdir");
    let ((s, m, f, c), (ks, km)) = ours(dir.path(), n);
    if !common::full() {
        assert!(s > 0.0 && m > 0.0 && f > 0.0 && c > 0.0);
        return;
    }
    let py = python(dir.path(), n / 4);
    let p = |i: usize| py.as_ref().map(|v| v[i]).unwrap_or(f64::NAN);
    println!("| operation | carbyne | Python whisper 1.1.10 | ratio |");
    println!("|---|---|---|---|");
    for (name, ours, theirs) in [
        ("single-point update (points/s)", s, p(0)),
        ("update_many of 100 points (points/s)", m, p(1)),
        ("fetch of a day (calls/s)", f, p(2)),
        ("create (files/s, sparse)", c, p(3)),
    ] {
        println!(
            "| {name} | {ours:.0} | {theirs:.0} | {:.1}x |",
            ours / theirs
        );
    }
    for (name, ours, theirs) in [
        ("single-point update, file kept open (points/s)", ks, p(0)),
        (
            "update_many of 100 points, file kept open (points/s)",
            km,
            p(1),
        ),
    ] {
        println!(
            "| {name} | {ours:.0} | {theirs:.0} (opens per call) | {:.1}x |",
            ours / theirs
        );
    }
    let exe = std::env::current_exe().expect("exe");
    let exe = exe.to_string_lossy().into_owned();
    let ours_sc = syscalls(&[&exe, "--updates"], 2000);
    let kept_sc = syscalls(&[&exe, "--updates-kept"], 2000);
    let py_script = "import sys, whisper, os\nd, n = sys.argv[1], int(sys.argv[2])\nf = os.path.join(d, 's.wsp')\nwhisper.create(f, [(10, 8640), (60, 10080), (600, 52560)], 0.5, 'average', sparse=True)\nfor k in range(n):\n    whisper.update(f, float(k), 1795000000 - 1000 + (k * 10) % 900, now=1795000000)\n";
    let py_sc = syscalls(&["python3", "-c", py_script], 2000);
    println!(
        "| system calls per single-point update (strace -c) | {:.1} | {:.1} | |",
        ours_sc.unwrap_or(f64::NAN),
        py_sc.unwrap_or(f64::NAN)
    );
    println!(
        "| system calls per single-point update, file kept open | {:.1} | {:.1} (opens per call) | |",
        kept_sc.unwrap_or(f64::NAN),
        py_sc.unwrap_or(f64::NAN)
    );
}
