//! The statsd server beside etsy statsd 0.9.0 in the same run: lines per
//! second accepted with no loss (what the flushes counted against what was
//! sent), CPU per million lines, and memory with many distinct keys.
//!
//! Run: `cargo bench --bench statsd` (needs node and the statsd peer that
//! `tests/run.sh` installs under target/peers).

mod common;

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Payload a statsd client packs lines into (etsy statsd's own default MTU).
const DATAGRAM_BYTES: usize = 1432;
const SENDERS: usize = 2;
const SOCKETS_PER_SENDER: usize = 8;
/// Lines per datagram when filling the server with distinct keys.
const KEYS_PER_DATAGRAM: usize = 25;

/// A Graphite listener adding up every `stats_counts.bench.*` value it gets.
fn sink() -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut c = c;
                let mut s = String::new();
                let _ = c.read_to_string(&mut s);
                for line in s.lines() {
                    if let Some(rest) = line.strip_prefix("stats_counts.bench.") {
                        if let Some(v) = rest.split(' ').nth(1).and_then(|v| v.parse::<f64>().ok())
                        {
                            t.fetch_add(v as u64, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (port, total)
}

struct Server {
    child: Child,
    udp: u16,
    counted: Arc<AtomicU64>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(which: &str, dir: &std::path::Path) -> Server {
    let (gport, counted) = sink();
    let udp = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port();
    let child = if which == "carbyne" {
        let cfg = dir.join("carbyne.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{}\"\ngraphite = \"127.0.0.1:{gport}\"\nflush_interval = 1\n",
                common::free_port()
            ),
        )
        .expect("config");
        Command::new(env!("CARGO_BIN_EXE_carbyne"))
            .args(["server", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne")
    } else {
        let js = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/peers/node_modules/statsd/stats.js");
        let cfg = dir.join("statsd.js");
        std::fs::write(
            &cfg,
            format!(
                "{{ port: {udp}, address: \"127.0.0.1\", mgmt_port: {}, mgmt_address: \"127.0.0.1\", graphitePort: {gport}, graphiteHost: \"127.0.0.1\", flushInterval: 1000 }}",
                common::free_port()
            ),
        )
        .expect("config");
        Command::new("node")
            .arg(js)
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node")
    };
    std::thread::sleep(Duration::from_millis(1500));
    Server {
        child,
        udp,
        counted,
    }
}

/// Datagrams as statsd clients send them: lines over 1000 counter keys,
/// packed up to the usual 1432-byte payload. Returns them and their line counts.
fn datagrams() -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let (mut buf, mut n) = (String::new(), 0u64);
    for i in 0..100_000 {
        let line = format!("bench.k{}:1|c", i % 1000);
        if buf.len() + 1 + line.len() > DATAGRAM_BYTES {
            out.push((std::mem::take(&mut buf).into_bytes(), n));
            n = 0;
        }
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(&line);
        n += 1;
    }
    out
}

/// Sends `rate` lines/s for `secs` from SENDERS threads, each spreading its
/// datagrams over several sockets as many clients would; returns (sent,
/// counted in the flushes, server CPU seconds).
fn load(s: &Server, rate: u64, secs: f64) -> (u64, u64, f64) {
    let before = s.counted.load(Ordering::Relaxed);
    let cpu0 = common::cpu_ticks(s.child.id());
    let grams = Arc::new(datagrams());
    let port = s.udp;
    let senders: Vec<_> = (0..SENDERS)
        .map(|t| {
            let grams = grams.clone();
            std::thread::spawn(move || {
                let socks: Vec<UdpSocket> = (0..SOCKETS_PER_SENDER)
                    .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
                    .collect();
                let per_sec = rate as f64 / SENDERS as f64;
                let start = Instant::now();
                let (mut sent, mut n) = (0u64, t * 7);
                while start.elapsed().as_secs_f64() < secs {
                    let due = (start.elapsed().as_secs_f64() * per_sec) as u64;
                    while sent < due {
                        let (g, lines) = &grams[n % grams.len()];
                        if socks[n % socks.len()]
                            .send_to(g, ("127.0.0.1", port))
                            .is_ok()
                        {
                            sent += lines;
                        }
                        n += 1;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                sent
            })
        })
        .collect();
    let sent = senders.into_iter().map(|h| h.join().expect("sender")).sum();
    std::thread::sleep(Duration::from_millis(2600));
    let cpu = (common::cpu_ticks(s.child.id()) - cpu0) as f64 / 100.0;
    (sent, s.counted.load(Ordering::Relaxed) - before, cpu)
}

/// RSS after `keys` distinct counter keys were each sent once.
fn rss_with_keys(s: &Server, keys: usize) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut buf = String::new();
    for k in 0..keys {
        buf.push_str(&format!("keys.k{k}:1|c\n"));
        if (k + 1) % KEYS_PER_DATAGRAM == 0 {
            let _ = sock.send_to(buf.trim_end().as_bytes(), ("127.0.0.1", s.udp));
            buf.clear();
            if k % 5000 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    common::status_kib(s.child.id(), "VmRSS:")
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/node_modules/statsd/stats.js");
    let rates: Vec<u64> = if common::full() {
        vec![
            50_000, 100_000, 200_000, 300_000, 500_000, 600_000, 700_000, 800_000, 1_000_000,
            2_000_000, 4_000_000, 6_000_000, 8_000_000, 10_000_000, 12_000_000,
        ]
    } else {
        vec![20_000]
    };
    let (secs, runs) = if common::full() { (3.0, 3) } else { (1.0, 1) };
    let mut rows = Vec::new();
    let mut best = Vec::new();
    for which in ["carbyne", "etsy statsd 0.9.0"] {
        if which != "carbyne" && !node.exists() {
            continue;
        }
        let s = start(which, dir.path());
        let mut lossless = 0;
        for &rate in &rates {
            // Median of `runs` runs: the machine is shared and noisy.
            let mut r: Vec<(u64, u64, f64)> = (0..runs).map(|_| load(&s, rate, secs)).collect();
            r.sort_by(|a, b| {
                (a.1 as f64 / a.0.max(1) as f64).total_cmp(&(b.1 as f64 / b.0.max(1) as f64))
            });
            let (sent, got, cpu) = r[r.len() / 2];
            if got == sent {
                lossless = lossless.max(rate);
            }
            rows.push(format!(
                "| {which} | {rate} | {:.0} | {:.2}% | {:.2} s |",
                sent as f64 / secs,
                got as f64 * 100.0 / sent.max(1) as f64,
                cpu / (got.max(1) as f64 / 1e6)
            ));
            if !common::full() {
                assert!(got > 0, "{which} counted nothing");
            }
        }
        best.push((which, lossless));
        drop(s);
        if common::full() {
            for keys in [100_000, 1_000_000] {
                let s = start(which, dir.path());
                let base = common::status_kib(s.child.id(), "VmRSS:");
                let rss = rss_with_keys(&s, keys);
                rows.push(format!(
                    "| {which} | {keys} distinct keys | | RSS {:.1} MiB | {:.0} bytes/key |",
                    rss as f64 / 1024.0,
                    (rss.saturating_sub(base)) as f64 * 1024.0 / keys as f64
                ));
            }
        }
    }
    println!(
        "| server | target lines/s | sent lines/s | counted in flushes (median of {runs}) | CPU per million lines |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    for (which, rate) in &best {
        println!("highest rate counted in full by {which}: {rate} lines/s");
    }
    if let [(_, ours), (_, theirs)] = best[..] {
        println!("ratio: {:.1}x", ours as f64 / theirs.max(1) as f64);
    }
}
