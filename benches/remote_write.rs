//! remote_write's throughput: samples named, grouped, encoded (protobuf
//! and snappy) in process, and then sent by the handler itself, on a
//! one-thread runtime, into a real VictoriaMetrics (Debian's, which
//! `bash tests/run.sh` installs) on this machine. The samples are 10 000
//! series of node_exporter's shape (a family, `cpu` and `mode` labels, two
//! external labels) at successive timestamps. Prints a markdown table; the
//! figure per core is samples over this process's CPU seconds (the
//! receiver's CPU is its own process's).
//!
//! Run: `cargo bench --bench remote_write`

use carbyne::handlers::remote_write::RemoteWriteConfig;
use carbyne::handlers::{spawn, HandlerConfig, HandlerSpec};
use carbyne::prometheus::naming::Namer;
use carbyne::prometheus::remote;
use carbyne::prometheus::Kind;
use carbyne::sample::{Sample, Series};
use std::borrow::Cow;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERIES: usize = 10_000;
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

fn samples(rounds: usize, t0: i64) -> Vec<Sample> {
    let mut out = Vec::with_capacity(rounds * SERIES);
    for r in 0..rounds {
        for i in 0..SERIES {
            out.push(Sample::series(
                Series {
                    name: Cow::Borrowed("node_bench_cpu_seconds_total"),
                    kind: Kind::Counter,
                    help: Cow::Borrowed("Seconds the CPUs spent in each mode."),
                    labels: vec![
                        (Cow::Borrowed("cpu"), (i / MODES.len()).to_string()),
                        (Cow::Borrowed("mode"), MODES[i % MODES.len()].to_string()),
                    ],
                },
                (r * 100 + i) as f64 * 0.01,
                t0 + r as i64,
            ));
        }
    }
    out
}

/// This process's CPU time (every thread's time on CPU), in seconds.
fn cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn external() -> Vec<(String, String)> {
    vec![
        ("instance".into(), "web01:9100".into()),
        ("job".into(), "node".into()),
    ]
}

/// Samples per second of naming, grouping and encoding 2000-sample requests.
fn encode_rate(reps: usize, rounds: usize) -> f64 {
    let batch = samples(rounds, 1_700_000_000);
    let ext = external();
    let mut rates = Vec::new();
    for _ in 0..reps {
        let input = batch.clone();
        let start = Instant::now();
        let mut namer = Namer::new(None);
        let mut bytes = 0;
        let mut raw = Vec::new();
        for chunk in input.chunks(2000) {
            let named = chunk
                .iter()
                .cloned()
                .filter_map(|s| namer.name(s))
                .collect();
            let series = remote::group(named);
            for (parts, _) in remote::plan(&series, 2000) {
                raw.clear();
                remote::encode_protobuf(&series, &parts, &ext, &mut raw);
                bytes += remote::compress(&raw).map(|b| b.len()).unwrap_or(0);
            }
        }
        std::hint::black_box(bytes);
        rates.push(batch.len() as f64 / start.elapsed().as_secs_f64());
    }
    median(rates)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `rounds` x 10 000 samples into VictoriaMetrics through the
/// handler: (samples per wall second, samples per CPU second).
fn into_victoria(port: u16, rounds: usize, t0: i64) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let input = samples(rounds, t0);
    let n = input.len() as u64;
    let cfg = RemoteWriteConfig {
        url: format!("http://127.0.0.1:{port}/api/v1/write"),
        max_queue: input.len() + 1,
        external_labels: external().into_iter().collect(),
        ..Default::default()
    };
    let spec = HandlerSpec {
        name: "bench".into(),
        enabled: true,
        config: HandlerConfig::RemoteWrite(cfg),
        buffer: Default::default(),
    };
    rt.block_on(async move {
        let running = spawn(&spec, "bench", std::path::Path::new("/nonexistent"));
        let (cpu0, start) = (cpu_seconds(), Instant::now());
        running.queue.push(input);
        while running.queue.snapshot().sent < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(start.elapsed() < Duration::from_secs(300), "not delivered");
        }
        let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        let snap = running.queue.snapshot();
        assert_eq!((snap.dropped, snap.errors), (0, 0), "{snap:?}");
        let _ = running
            .stop(tokio::time::Instant::now() + Duration::from_secs(5))
            .await;
        (n as f64 / wall, n as f64 / cpu)
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test` runs it once, small, as a
    // check that it works.
    let full = std::env::args().any(|a| a == "--bench");
    let (reps, rounds) = if full { (5, 100) } else { (1, 2) };
    let enc = encode_rate(if full { 7 } else { 1 }, if full { 10 } else { 1 });
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _vm = Kill(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.path().display()))
            .arg("-retentionPeriod=1")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics (bash tests/run.sh installs it)"),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "VictoriaMetrics did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        - 3600;
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        // Later timestamps each time: every sample is new to the receiver.
        let (w, c) = into_victoria(port, rounds, t0 + rep as i64 * 100);
        wall.push(w);
        cpu.push(c);
    }
    println!("| remote_write (10 000 series, 2 000 samples per request) | samples/s |");
    println!("|---|---|");
    println!(
        "| named, grouped and encoded, in process (median of 7) | {:.0} |",
        enc
    );
    println!(
        "| sent into VictoriaMetrics, per CPU second of the sender (median of 5, 1 000 000 each) | {:.0} |",
        median(cpu)
    );
    println!(
        "| sent into VictoriaMetrics, per wall second (both on this machine's 2 cores) | {:.0} |",
        median(wall)
    );
}
