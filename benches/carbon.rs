//! The carbon receiver beside carbon-cache 1.1.10 in the same run: points
//! per second from one TCP connection into existing whisper files, with
//! 10 000 and 100 000 distinct metrics; points per update operation; peak
//! RSS. Each server takes three runs; the median is reported. With 10 000
//! metrics, also carbyne with 50 aggregation rules and 20 rewrite rules
//! ([`RULES`]) beside carbon-aggregator relaying into carbon-cache with the
//! same files.
//!
//! Run: `cargo bench --bench carbon` (needs carbon 1.1.10 from PyPI, which
//! `tests/run.sh` installs). Without `--bench` (as `cargo test` runs it) a
//! small smoke run of carbyne only. `cargo bench --bench carbon -- carbyne`
//! runs only the servers whose name holds `carbyne`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    /// carbon-aggregator, in front of `child` (carbon-cache).
    front: Option<Child>,
    port: u16,
    storage: PathBuf,
    home: PathBuf,
}

impl Server {
    fn pids(&self) -> Vec<u32> {
        self.front
            .iter()
            .chain([&self.child])
            .map(Child::id)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in self.front.iter_mut().chain([&mut self.child]) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The rules of the "rules" servers: 50 aggregation rules, one per group
/// of 100 names for half the groups, every method in turn (each name
/// matches one rule or none); 20 rewrite rules, 18 that match none of the
/// bench's names and 2 that match every one and rewrite it to itself, so
/// the files stay the same.
fn rules() -> (String, String) {
    let methods = ["sum", "avg", "min", "max", "count", "p50", "p95", "p99"];
    let aggregation: String = (0..50)
        .map(|k| {
            format!(
                "bench.all.g{k}.{m} (60) = {m} bench.g{k}.*\n",
                m = methods[k % methods.len()]
            )
        })
        .collect();
    let mut rewrite = String::from("[pre]\n");
    for k in 0..9 {
        rewrite.push_str(&format!("^servers\\.web{k}\\.(\\w+)$ = hosts.web{k}.\\1\n"));
    }
    rewrite.push_str("\\.g(\\d+)\\. = .g\\1.\n[post]\n");
    for k in 0..9 {
        rewrite.push_str(&format!("\\.cpu{k}_total$ = .cpu{k}.total\n"));
    }
    rewrite.push_str("^bench\\.(g\\d+) = bench.\\1\n");
    (aggregation, rewrite)
}

/// Starts `which` in a folder of its own under `dir`.
fn start(which: &str, dir: &Path) -> Server {
    let home = tempfile::tempdir_in(dir).expect("home").keep();
    let storage = home.join("whisper");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 60:1d\n",
    )
    .expect("schemas");
    let (aggregation, rewrite) = rules();
    std::fs::write(home.join("aggregation-rules.conf"), aggregation).expect("rules");
    std::fs::write(home.join("rewrite-rules.conf"), rewrite).expect("rules");
    let port = common::free_port();
    let mut front = None;
    let child = if let Some(writers) = which.strip_prefix("carbyne, writers ") {
        let (writers, with_rules) = match writers.strip_suffix(", rules") {
            Some(w) => (w, true),
            None => (writers, false),
        };
        let rules = if with_rules {
            format!(
                "aggregation_rules = {:?}\nrewrite_rules = {:?}\n",
                home.join("aggregation-rules.conf"),
                home.join("rewrite-rules.conf")
            )
        } else {
            String::new()
        };
        std::fs::write(
            home.join("carbyne.toml"),
            format!(
                "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{port}\"\npickle_listen = \"\"\nudp = false\n\
                 storage_dir = {storage:?}\nschemas = {:?}\ncreate = \"sparse\"\ncarbon_metric_interval = 0\n\
                 writers = {writers}\n{rules}",
                home.join("storage-schemas.conf")
            ),
        )
        .expect("config");
        Command::new(env!("CARGO_BIN_EXE_carbyne"))
            .args(["server", "--config"])
            .arg(home.join("carbyne.toml"))
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(home.join("log")).expect("log"))
            .spawn()
            .expect("carbyne")
    } else {
        let scripts = Command::new("python3")
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_path('scripts'))",
            ])
            .output()
            .expect("python3");
        let scripts = PathBuf::from(String::from_utf8_lossy(&scripts.stdout).trim());
        let exe = scripts.join("carbon-cache.py");
        // With the aggregator in front, the cache takes its pickles.
        let (line, pickle) = (common::free_port(), common::free_port());
        let aggregated = which.starts_with("carbon-aggregator");
        let line = if aggregated { line } else { port };
        std::fs::write(
            home.join("carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {h}\nLOCAL_DATA_DIR = {s}\nLOG_DIR = {h}/logs\nPID_DIR = {h}\n\
                 LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line}\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\n\
                 CACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = {}\n\
                 MAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\nMAX_CACHE_SIZE = inf\n\
                 WHISPER_SPARSE_CREATE = True\nCARBON_METRIC_INTERVAL = 0\nENABLE_TAGS = False\n\
                 LOG_UPDATES = True\nLOG_CREATES = False\nLOG_CACHE_HITS = False\nLOG_CACHE_QUEUE_SORTS = False\n\
                 [aggregator]\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {port}\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {}\n\
                 DESTINATIONS = 127.0.0.1:{pickle}\nMAX_QUEUE_SIZE = 10000000\nFORWARD_ALL = True\n\
                 LOG_AGGREGATOR_MISSES = False\n",
                common::free_port(),
                common::free_port(),
                h = home.display(),
                s = storage.display(),
            ),
        )
        .expect("carbon.conf");
        if aggregated {
            front = Some(
                Command::new(scripts.join("carbon-aggregator.py"))
                    .arg(format!("--config={}", home.join("carbon.conf").display()))
                    .args(["--nodaemon", "start"])
                    .stdout(std::fs::File::create(home.join("aggregator-log")).expect("log"))
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("carbon-aggregator"),
            );
        }
        // Without a daemon, carbon-cache logs to stdout.
        Command::new(exe)
            .arg(format!("--config={}", home.join("carbon.conf").display()))
            .args(["--nodaemon", "start"])
            .stdout(std::fs::File::create(home.join("log")).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("carbon-cache")
    };
    common::wait_for_port(port);
    Server {
        child,
        front,
        port,
        storage,
        home,
    }
}

/// `rounds` points for each of `metrics` names, as one connection sends
/// them: every metric once per round, the rounds a minute apart.
fn payload(metrics: usize, rounds: usize, ts0: i64) -> Vec<u8> {
    let mut buf = String::new();
    for r in 0..rounds {
        for m in 0..metrics {
            buf.push_str(&format!(
                "bench.g{}.m{m} {r} {}\n",
                m % 100,
                ts0 + 60 * r as i64
            ));
        }
    }
    buf.into_bytes()
}

fn send(port: u16, payload: &[u8]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(payload).expect("send");
}

/// Waits until the server's processes have used no CPU for a second (its
/// writers are idle).
fn idle(pids: &[u32], limit: Duration) -> Instant {
    let ticks = || pids.iter().map(|p| common::cpu_ticks(*p)).sum::<u64>();
    let start = Instant::now();
    let mut last = ticks();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = ticks();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return since;
        }
        assert!(start.elapsed() < limit, "the server never went idle");
    }
}

/// Checks that every point of a run (`rounds` values 0, 1, ... a minute
/// apart from `t0`) is in a sample of the files.
fn check(storage: &Path, metrics: usize, t0: i64, rounds: usize) {
    let want: Vec<Option<f64>> = (0..rounds).map(|r| Some(r as f64)).collect();
    for m in (0..metrics).step_by((metrics / 50).max(1)) {
        let p = storage.join(format!("bench/g{}/m{m}.wsp", m % 100));
        let w = carbyne::whisper::Whisper::open(&p, false).expect("open");
        let a = &w.header.archives[0];
        let until = t0 + 60 * (rounds as i64 - 1);
        let s = w.archive_fetch(a, t0 - 1, until).expect("fetch");
        assert_eq!(s.values, want, "{}", p.display());
    }
}

/// Measured runs per server, one after the other on the same files.
const REPEATS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(usize, usize)> = if common::full() {
        vec![(10_000, 400), (100_000, 40)]
    } else {
        vec![(500, 3)]
    };
    let have_carbon = Command::new("python3")
        .args(["-c", "import carbon"])
        .status()
        .is_ok_and(|s| s.success());
    let mut rows = Vec::new();
    for (metrics, rounds) in cases {
        for which in [
            "carbyne, writers 1",
            "carbyne, writers 2",
            "carbon-cache 1.1.10",
            "carbyne, writers 1, rules",
            "carbon-aggregator + carbon-cache 1.1.10, rules",
        ] {
            if which.ends_with("rules") && metrics != 10_000 && common::full() {
                continue;
            }
            let ours = which.starts_with("carbyne");
            // `cargo bench --bench carbon -- <text>`: only the servers named so.
            let only: Vec<String> = std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect();
            if !only.is_empty() && !only.iter().any(|o| which.contains(o.as_str())) {
                continue;
            }
            if (!ours && !have_carbon)
                || (!common::full() && !which.starts_with("carbyne, writers 1"))
            {
                continue;
            }
            let s = start(which, dir.path());
            let pids = s.pids();
            // The files first (not measured); then, REPEATS times, `rounds`
            // more points each, later ones each time (all within the day the
            // archive holds).
            let ts0 = carbyne::whisper::unix_now() / 60 * 60 - 60 * (REPEATS * rounds) as i64 - 120;
            send(s.port, &payload(metrics, 1, ts0 - 60));
            idle(&pids, Duration::from_secs(1800));
            let points = (metrics * rounds) as f64;
            let mut rates = Vec::new();
            for r in 0..REPEATS {
                let t0 = ts0 + (60 * r * rounds) as i64;
                let data = payload(metrics, rounds, t0);
                let start = Instant::now();
                send(s.port, &data);
                let done = idle(&pids, Duration::from_secs(1800));
                let secs = done.duration_since(start).as_secs_f64().max(1e-3);
                check(&s.storage, metrics, t0, rounds);
                rates.push(points / secs);
            }
            rates.sort_by(f64::total_cmp);
            let rss: u64 = pids.iter().map(|p| common::status_kib(*p, "VmHWM:")).sum();
            for p in &pids {
                let _ = Command::new("kill")
                    .args(["-TERM", &p.to_string()])
                    .status();
            }
            let mut s = s;
            for c in s.front.iter_mut().chain([&mut s.child]) {
                let _ = c.wait();
            }
            // The next server gets the disk space back.
            let _ = std::fs::remove_dir_all(&s.storage);
            let per_update = if ours {
                let log = std::fs::read_to_string(s.home.join("log")).unwrap_or_default();
                log.lines()
                    .find_map(|l| {
                        let rest = l.split("carbon: ").nth(1)?;
                        let mut w = rest.split_whitespace();
                        let p: f64 = w.next()?.parse().ok()?;
                        let u: f64 = w.nth(3)?.parse().ok()?;
                        Some(p / u)
                    })
                    .unwrap_or(f64::NAN)
            } else {
                let log = std::fs::read_to_string(s.home.join("log")).unwrap_or_default();
                let (mut p, mut u) = (0.0, 0.0);
                for l in log.lines().filter(|l| l.contains("[updates]")) {
                    if let Some(n) = l.split("wrote ").nth(1).and_then(|r| r.split(' ').next()) {
                        p += n.parse::<f64>().unwrap_or(0.0);
                        u += 1.0;
                    }
                }
                p / u
            };
            rows.push(format!(
                "| {which} | {metrics} | {:.0} | {:.0} | {:.0} - {:.0} | {:.1} | {:.1} MiB |",
                points,
                rates[rates.len() / 2],
                rates[0],
                rates[rates.len() - 1],
                per_update,
                rss as f64 / 1024.0
            ));
        }
    }
    println!(
        "| server | metrics | points per run | points/s to files, median | min - max | points per update | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
