//! The web server beside graphite-web 1.1.10 (gunicorn, 2 sync workers,
//! 600 s worker timeout) in
//! the same run, over the same whisper files, asked in turn in five
//! slices of 2 s each: requests per second and
//! p50/p99 latency, 4 clients, one connection per request (and carbyne
//! alone at 2 clients, one per core, for latency without queueing), for
//!   (a) sumSeries(servers.*.cpu.total.user), 1 000 files, one day at 60 s
//!   (b) the same with maxDataPoints=800
//!   (c) /metrics/find of one level (1 000 nodes) among 100 000 metrics
//!   (d) groupByNode(servers.*.diskspace.*.byte_used, 1, "sum"), 10 000 files
//!   (e) a PNG of 800x400, 10 series of 1 000 points
//! and the built-in page's first load in Chromium (10 series of a day).
//!
//! Run: `cargo bench --bench web` (graphite-web from `tests/run.sh`, and
//! `pip install gunicorn`). Without `--bench` (as `cargo test` runs it) a
//! small smoke run of carbyne only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use carbyne::whisper::{self, Aggregation, Allocation};

/// A server started in a process group of its own (`process_group(0)`),
/// killed with the whole group: gunicorn's workers as well as its master,
/// so that none goes on answering queued requests into the next run.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whisper files for `names`, 60 s for a day, full of points (sparse files
/// when `empty`).
fn make(root: &Path, names: impl Iterator<Item = String>, now: i64, empty: bool) {
    for (n, name) in names.enumerate() {
        let path = root.join(name.replace('.', "/") + ".wsp");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        whisper::create(
            &path,
            &[(60, 1440)],
            0.5,
            Aggregation::Average,
            Allocation::Sparse,
        )
        .expect("create");
        if !empty {
            let w = whisper::Whisper::open(&path, true).expect("open");
            let points: Vec<(i64, f64)> = (0..1440)
                .map(|i| (now - 60 * i, ((n as i64 * 7 + i) % 100) as f64))
                .collect();
            w.update_many(&points, Some(now)).expect("update");
        }
    }
}

fn carbyne(dir: &Path, root: &Path) -> (Server, u16) {
    let port = common::free_port();
    let cfg = dir.join("carbyne.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[server.web]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = {root:?}\n\
             max_series_per_request = 20000\nmax_points_per_request = 50000000\n",
            dir.join("state")
        ),
    )
    .expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_carbyne"))
        .args(["server", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("carbyne");
    common::wait_for_port(port);
    (Server(child), port)
}

/// graphite-web 1.1.10 under gunicorn with two sync workers.
fn graphite_web(dir: &Path, root: &Path) -> Option<(Server, u16)> {
    let ok = Command::new("python3")
        .args(["-c", "import graphite, gunicorn"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "graphite-web or gunicorn missing: `bash tests/run.sh` and `pip install gunicorn`"
        );
        return None;
    }
    let conf = dir.join("gw");
    std::fs::create_dir_all(conf.join("log")).expect("mkdir");
    std::fs::write(
        conf.join("local_settings.py"),
        format!(
            "SECRET_KEY = 'bench'\nSTORAGE_DIR = {d:?}\nWHISPER_DIR = {w:?}\nSTANDARD_DIRS = [{w:?}]\n\
             LOG_DIR = {l:?}\nCARBONLINK_HOSTS = []\nUSE_WORKER_POOL = False\n\
             STORAGE_FINDERS = ('graphite.finders.standard.StandardFinder',)\nDEFAULT_CACHE_DURATION = 0\n\
             LOG_RENDERING_PERFORMANCE = False\nLOG_CACHE_PERFORMANCE = False\nLOG_INFO_PERFORMANCE = False\n\
             DATABASES = {{'default': {{'NAME': {db:?}, 'ENGINE': 'django.db.backends.sqlite3'}}}}\n",
            d = conf.display().to_string(),
            w = format!("{}/", root.display()),
            l = conf.join("log").display().to_string(),
            db = conf.join("graphite.db").display().to_string(),
        ),
    )
    .expect("settings");
    let migrate = Command::new("python3")
        .args(["-c", "import django; django.setup(); from django.core.management import call_command; call_command('migrate', verbosity=0)"])
        .env("PYTHONPATH", &conf)
        .env("GRAPHITE_SETTINGS_MODULE", "local_settings")
        .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(migrate, "graphite-web's database");
    let port = common::free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "gunicorn",
            "-w",
            "2",
            // Its (d) requests take about a minute under load: gunicorn's
            // default 30 s timeout would kill the worker mid-request.
            "--timeout",
            "600",
            "-b",
            &format!("127.0.0.1:{port}"),
            "graphite.wsgi:application",
        ])
        .env("PYTHONPATH", &conf)
        .env("GRAPHITE_SETTINGS_MODULE", "local_settings")
        .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("gunicorn");
    common::wait_for_port(port);
    Some((Server(child), port))
}

/// One GET; its status (and, when not 200, what it said on stderr). The
/// body is not decoded: the load's clients share the server's two cores.
fn get(port: u16, path_and_query: &str) -> u16 {
    let (status, raw) = fetch(port, path_and_query);
    if status != 200 {
        eprintln!(
            "{status} from port {port}: {}",
            String::from_utf8_lossy(&raw[..raw.len().min(300)])
        );
    }
    status
}

/// The status and the answer's first bytes (status line and headers, for
/// a failure's message). The whole answer is read, through one 64 KiB
/// buffer and dropped: the clients share the servers' two cores, and a
/// fresh buffer grown to each answer's size (a PNG is 380 KB) cost them
/// page faults and copies that the server measured beside them paid for.
fn fetch(port: u16, path_and_query: &str) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let req =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, Vec::new());
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let keep = n.min(300usize.saturating_sub(head.len()));
                head.extend_from_slice(&buf[..keep]);
            }
        }
    }
    // "HTTP/1.1 200 OK": the code is the status line's second word.
    let status = head
        .split(|b| *b == b'\r')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head)
}

/// `clients` threads asking `url` for `secs`: the latencies of the
/// answered requests (200), the other answers, and the seconds taken.
fn run(port: u16, url: &str, clients: usize, secs: f64) -> Run {
    // One request first: a server that cannot answer is a failed run.
    assert_eq!(get(port, url), 200, "{url}");
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.to_string();
            std::thread::spawn(move || {
                let (mut lat, mut failed) = (Vec::new(), 0);
                while Instant::now() < stop {
                    let t = Instant::now();
                    if get(port, &url) == 200 {
                        lat.push(t.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (lat, failed)
            })
        })
        .collect();
    let mut r = Run::default();
    for h in handles {
        let (lat, f) = h.join().expect("client");
        r.lat.extend(lat);
        r.failed += f;
    }
    r.secs = start.elapsed().as_secs_f64();
    r
}

#[derive(Default)]
struct Run {
    lat: Vec<Duration>,
    failed: usize,
    secs: f64,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.lat.extend(other.lat);
        self.failed += other.failed;
        self.secs += other.secs;
    }

    fn rate(&self) -> f64 {
        self.lat.len() as f64 / self.secs.max(1e-9)
    }

    /// (requests/s, p50, p99, answers other than 200).
    fn measured(mut self) -> Measured {
        self.lat.sort();
        if self.lat.is_empty() {
            return (0.0, Duration::ZERO, Duration::ZERO, self.failed);
        }
        let n = self.lat.len();
        let pick = |q: f64| self.lat[((n as f64 * q) as usize).min(n - 1)];
        (self.rate(), pick(0.5), pick(0.99), self.failed)
    }
}

/// (requests/s, p50, p99, answers other than 200) of `clients` threads
/// asking `url` for `secs`.
fn load(port: u16, url: &str, clients: usize, secs: f64) -> Measured {
    run(port, url, clients, secs).measured()
}

/// carbyne and the peer asked in turn, `rounds` slices of `secs` each, so
/// that both are measured through the same changes of the machine's
/// speed (which, shared, moves by half within minutes): the two totals,
/// and each round's ratio of their rates.
fn interleaved(
    ours: u16,
    theirs: u16,
    url: &str,
    rounds: usize,
    secs: f64,
) -> (Measured, Measured, Vec<f64>) {
    let (mut mine, mut other, mut ratios) = (Run::default(), Run::default(), Vec::new());
    for _ in 0..rounds {
        let a = run(ours, url, 4, secs);
        let b = run(theirs, url, 4, secs);
        ratios.push(a.rate() / b.rate().max(1e-9));
        mine.add(a);
        other.add(b);
    }
    (mine.measured(), other.measured(), ratios)
}

type Measured = (f64, Duration, Duration, usize);

/// One line of the table; the peer's failed requests (answers other than
/// 200, such as a worker timing out) are counted beside its figures.
fn row(what: &str, (r, p50, p99, _): &Measured, other: Option<&Measured>) -> String {
    let ms = |d: &Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    match other {
        Some((gr, g50, g99, failed)) => {
            let failed = if *failed > 0 {
                format!(" ({failed} failed)")
            } else {
                String::new()
            };
            format!(
                "| {what} | {r:.0} | {} | {} | {gr:.1}{failed} | {} | {} | {:.1}x |",
                ms(p50),
                ms(p99),
                ms(g50),
                ms(g99),
                r / gr
            )
        }
        None => format!(
            "| {what} | {r:.0} | {} | {} | - | - | - | - |",
            ms(p50),
            ms(p99)
        ),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn main() {
    let full = common::full();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("whisper");
    let now = whisper::unix_now();
    let (hosts, groups, disks) = if full { (1000, 100, 10) } else { (20, 2, 2) };
    let t = Instant::now();
    make(
        &root,
        (0..hosts).map(|h| format!("servers.h{h}.cpu.total.user")),
        now,
        false,
    );
    make(
        &root,
        (0..hosts).flat_map(|h| {
            (0..disks).map(move |d| format!("servers.h{h}.diskspace.sd{d}.byte_used"))
        }),
        now,
        false,
    );
    make(
        &root,
        (0..groups).flat_map(|g| (0..1000).map(move |m| format!("find.g{g}.m{m}"))),
        now,
        true,
    );
    eprintln!("files made in {:.0} s", t.elapsed().as_secs_f64());
    let cases = [
        (
            "(a) sumSeries, 1 000 files, 1 day",
            format!(
                "/render?format=json&from=-1d&target={}",
                enc("sumSeries(servers.*.cpu.total.user)")
            ),
        ),
        (
            "(b) the same, maxDataPoints=800",
            format!(
                "/render?format=json&from=-1d&maxDataPoints=800&target={}",
                enc("sumSeries(servers.*.cpu.total.user)")
            ),
        ),
        (
            "(c) find one level among 100 000",
            "/metrics/find?query=find.g7.*".to_string(),
        ),
        (
            "(e) PNG 800x400, 10 series of 1 000 points",
            format!(
                "/render?from=-1000min&width=800&height=400&target={}",
                enc("servers.h[0-9].cpu.total.user")
            ),
        ),
        (
            "(d) groupByNode, 10 000 files",
            format!(
                "/render?format=json&from=-1d&target={}",
                enc("groupByNode(servers.*.diskspace.*.byte_used,1,\"sum\")")
            ),
        ),
    ];
    let secs = if full { 10.0 } else { 0.5 };
    let mut rows = Vec::new();
    let (ours, ours_port) = carbyne(dir.path(), &root);
    let theirs = if full {
        graphite_web(dir.path(), &root)
    } else {
        None
    };
    // `cargo bench --bench web -- d`: only the requests whose label holds "(d)".
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for (what, url) in &cases {
        if !only.is_empty() && !only.iter().any(|o| what.contains(&format!("({o})"))) {
            continue;
        }
        let url = if full {
            url.clone()
        } else {
            url.replace("find.g7", "find.g1")
        };
        let (mine, other) = match &theirs {
            Some((_, port)) => {
                let (mine, other, mut ratios) = interleaved(ours_port, *port, &url, 5, secs / 5.0);
                ratios.sort_by(f64::total_cmp);
                let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.1}")).collect();
                eprintln!("{what}: ratio per round, sorted: {}", shown.join(" "));
                (mine, Some(other))
            }
            None => (load(ours_port, &url, 4, secs), None),
        };
        assert_eq!(mine.3, 0, "carbyne failed requests of {url}");
        // Latency without queueing: a client per core.
        let two = load(ours_port, &url, 2, secs);
        assert_eq!(two.3, 0, "carbyne failed requests of {url}");
        let rss = common::status_kib(ours.0.id(), "VmHWM:");
        // Each row as soon as it is measured (a later failure keeps it).
        eprintln!("{}", row(what, &mine, other.as_ref()));
        eprintln!("{} at 2 clients", row(what, &two, None));
        rows.push((what.to_string(), mine, rss, other, two));
    }
    println!("| request | carbyne req/s | p50 | p99 | graphite-web req/s | p50 | p99 | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    for (what, mine, _, other, _) in &rows {
        println!("{}", row(what, mine, other.as_ref()));
    }
    println!("\ncarbyne at 2 clients (one per core):\n");
    println!("| request | req/s | p50 | p99 |");
    println!("|---|---|---|---|");
    for (what, _, _, _, (r, p50, p99, _)) in &rows {
        let ms = |d: &Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!("| {what} | {r:.0} | {} | {} |", ms(p50), ms(p99));
    }
    if let Some((_, _, rss, _, _)) = rows.last() {
        println!("carbyne peak RSS: {:.0} MiB", *rss as f64 / 1024.0);
    }
    if full && (only.is_empty() || only.iter().any(|o| o == "page")) {
        page_load(ours_port);
    }
}

/// The built-in page's first load in Chromium: 10 series of a day at 60 s.
fn page_load(port: u16) {
    let fragment = format!(
        "from=-1d&g=0&0.target={}",
        enc("servers.h[0-9].cpu.total.user")
    );
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/page_load.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&fragment)
        .arg("11")
        .output()
        .expect("python3");
    if !out.status.success() {
        eprintln!(
            "page load not measured (tests/run.sh installs chromium and playwright): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sorted = |key: &str| -> Vec<f64> {
        let mut ms: Vec<f64> = v[key]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        ms.sort_by(f64::total_cmp);
        ms
    };
    let spread = |ms: &[f64]| {
        format!(
            "{:.0} ms after navigation started (median; {:.0} to {:.0})",
            ms.get(ms.len() / 2).copied().unwrap_or(0.0),
            ms.first().copied().unwrap_or(0.0),
            ms.last().copied().unwrap_or(0.0),
        )
    };
    let (shown, drawn) = (sorted("shown_ms"), sorted("drawn_ms"));
    println!(
        "\nthe page, first load in Chromium (10 series of a day at 60 s, {} runs): \
         the first graph on screen (the server's PNG) {}, the interactive chart drawn {}, \
         page and assets {} bytes, data {} bytes",
        drawn.len(),
        spread(&shown),
        spread(&drawn),
        v["page_bytes"],
        v["data_bytes"]
    );
}
