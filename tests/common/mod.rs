//! Helpers shared by the integration tests: the built binary, fixture
//! paths, config folders in temp dirs, and real listeners on 127.0.0.1.
#![allow(dead_code)]

pub mod graphite_web;
pub mod prom;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_carbyne"));
    c.env_remove("RUST_LOG");
    c
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A config folder: `carbyne.toml` with `main` and fixed test settings.
pub fn config_dir(dir: &Path, proc: &str, main: &str) -> PathBuf {
    let text = format!(
        "hostname = \"testhost\"\nproc_root = {:?}\ndev_root = {:?}\nstate_dir = {:?}\n{main}",
        fixture(proc),
        fixture("dev"),
        dir.join("state"),
    );
    std::fs::write(dir.join("carbyne.toml"), text).expect("write config");
    dir.join("carbyne.toml")
}

/// Runs the binary to completion with a time bound (killed after 60 s).
pub fn run(args: &[&str]) -> Output {
    let child = bin()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn carbyne");
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    // Reading both pipes while waiting: a large output cannot block the child.
    let out = child.wait_with_output().expect("output");
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    out
}

/// A port free for both TCP and UDP on 127.0.0.1 (bound, then released),
/// below the kernel's ephemeral range (32768 and up). A port from `bind(0)`
/// comes from that range, so between its release and the server's bind the
/// kernel could hand it to any outgoing connection of a parallel test as
/// its local port, and the server would fail to listen. Ports below it are
/// only ever taken by explicit binds; a per-process counter from a
/// pid-derived start keeps tests of one binary apart, and each candidate
/// is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let tcp = TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

/// Waits (30 s at most) until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accepts connections on `listener` and collects everything received until
/// `until` returns true for the text so far or `limit` passes.
pub fn receive(listener: TcpListener, limit: Duration, until: impl Fn(&str) -> bool) -> String {
    listener.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    let mut text = String::new();
    let mut conns = Vec::new();
    while start.elapsed() < limit && !until(&text) {
        if let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true).expect("nonblocking");
            conns.push(s);
        }
        let mut buf = [0u8; 65536];
        for c in conns.iter_mut() {
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    text
}

/// `name -> (value, timestamp)` of Graphite plaintext lines; panics on a bad line.
pub fn parse_lines(text: &str) -> Vec<(String, f64, i64)> {
    text.lines()
        .map(|l| {
            let mut it = l.split(' ');
            let (Some(n), Some(v), Some(t), None) = (it.next(), it.next(), it.next(), it.next())
            else {
                panic!("not a plaintext line: {l:?}")
            };
            (
                n.to_string(),
                v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                t.parse()
                    .unwrap_or_else(|_| panic!("bad timestamp in {l:?}")),
            )
        })
        .collect()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Where `tests/run.sh` installs the real upstream peers (npm, pip).
pub fn peers() -> PathBuf {
    std::env::var_os("CARBYNE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/peers"))
}

/// A peer program or file that the test setup installs; a clear failure
/// when it is missing.
pub fn peer(rel: &str) -> PathBuf {
    let p = peers().join(rel);
    assert!(
        p.exists(),
        "{} is missing: `bash tests/run.sh` installs the upstream peers the tests run against",
        p.display()
    );
    p
}

/// A free UDP port on 127.0.0.1 (`free_port`: free for both).
pub fn free_udp_port() -> u16 {
    free_port()
}

/// A child process killed when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The folder where pip puts the scripts of PyPI packages (whisper's,
/// carbon's): the interpreter's scripts folder.
#[allow(dead_code)]
pub fn python_scripts() -> PathBuf {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Sends `signal` ("-HUP", "-TERM") to `child`.
#[allow(dead_code)]
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// carbon's consistent-hash ring over `host:port[:instance]` destinations.
pub fn ring(
    destinations: &[impl AsRef<str>],
    replication_factor: usize,
    diverse_replicas: bool,
) -> carbyne::server::carbon::ring::Ring {
    use carbyne::server::carbon::ring::{Destination, Ring};
    Ring::new(
        destinations
            .iter()
            .map(|d| Destination::parse(d.as_ref()).expect("destination"))
            .collect(),
        replication_factor,
        diverse_replicas,
    )
}

/// `agent --once --dry-run` on the config at `cfg`.
pub fn dry_run(cfg: &Path) -> Output {
    run(&[
        "agent",
        "--once",
        "--dry-run",
        "--config",
        cfg.to_str().expect("path"),
    ])
}

/// The names `agent --once --dry-run` prints for the config at `cfg`.
pub fn dry_run_names(cfg: &Path) -> std::collections::BTreeSet<String> {
    let out = dry_run(cfg);
    parse_lines(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .map(|(n, _, _)| n)
        .collect()
}

/// One command to a statsd management interface, and its whole answer.
pub fn statsd_admin(port: u16, cmd: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    s.write_all(format!("{cmd}\n").as_bytes()).expect("write");
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    out
}

/// carbon-cache.py where pip put it (the interpreter's scripts folder).
pub fn carbon_cache() -> PathBuf {
    let path = python_scripts().join("carbon-cache.py");
    assert!(
        path.exists(),
        "{} is missing: `bash tests/run.sh` installs carbon 1.1.10 from PyPI",
        path.display()
    );
    path
}

/// A real carbon-cache with the schemas in `conf`, storing under `storage`
/// (its config, log and pid beside it), `extra` appended to its carbon.conf
/// `[cache]`; returns it with its line, pickle and cache query ports, once
/// all listen. Ports picked free can be taken by
/// another test before carbon binds them (twisted then runs on without
/// that port), so a start that does not listen is retried on new ports.
pub fn start_carbon_cache(conf: &Path, storage: &Path, extra: &str) -> (Child, u16, u16, u16) {
    let home = storage.with_extension("home");
    std::fs::create_dir_all(&home).expect("carbon home");
    for f in ["storage-schemas.conf", "storage-aggregation.conf"] {
        if conf.join(f).exists() {
            std::fs::copy(conf.join(f), home.join(f)).expect("copy schemas");
        }
    }
    // carbon-cache does not start without a schemas file.
    if !home.join("storage-schemas.conf").exists() {
        std::fs::write(
            home.join("storage-schemas.conf"),
            "[default]\npattern = .*\nretentions = 60:1d\n",
        )
        .expect("schemas");
    }
    let mut failures = String::new();
    for attempt in 1..=3 {
        let (line, pickle, query) = (free_port(), free_port(), free_port());
        let base = format!(
            "STORAGE_DIR = {d}\nLOCAL_DATA_DIR = {t}\nLOG_DIR = {d}/log\nPID_DIR = {d}\n\
             LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line}\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\n\
             CACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = {query}\n\
             MAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
             CARBON_METRIC_INTERVAL = 0\nENABLE_TAGS = False\nLOG_UPDATES = False\n",
            d = home.display(),
            t = storage.display(),
        );
        // `extra`'s keys replace the ones above (carbon refuses a key twice).
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
        let overrides: Vec<&str> = extra.lines().filter(|l| l.contains('=')).collect();
        let mut conf = String::from("[cache]\n");
        for l in base.lines() {
            if !overrides.iter().any(|o| key(o) == key(l)) {
                conf.push_str(l);
                conf.push('\n');
            }
        }
        for o in &overrides {
            conf.push_str(o);
            conf.push('\n');
        }
        std::fs::write(home.join("carbon.conf"), conf).expect("carbon.conf");
        let _ = std::fs::remove_file(home.join("carbon-cache-a.pid"));
        let stderr = home.join(format!("stderr-{attempt}"));
        let mut child = Child(
            Command::new(carbon_cache())
                .arg(format!("--config={}", home.join("carbon.conf").display()))
                .args(["--nodaemon", "start"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).expect("stderr file"))
                .spawn()
                .expect("carbon-cache"),
        );
        match listening(&mut child.0, &[line, pickle, query]) {
            Ok(()) => return (child, line, pickle, query),
            Err(why) => {
                drop(child);
                let log = |f: &Path| std::fs::read_to_string(f).unwrap_or_default();
                failures.push_str(&format!(
                    "attempt {attempt}, ports {line}/{pickle}: {why}\nstderr:\n{}\nconsole.log:\n{}\n",
                    log(&stderr),
                    log(&home.join("log/console.log")),
                ));
            }
        }
    }
    panic!("carbon-cache never listened:\n{failures}");
}

/// Waits until every port in `ports` accepts connections, or says why not:
/// the child exited or 30 s passed.
pub fn listening(child: &mut std::process::Child, ports: &[u16]) -> Result<(), String> {
    let start = Instant::now();
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited ({status}) before port {port} opened"));
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("port {port} not open after 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Form encoding of `params`, in order.
pub fn urlencode(params: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One HTTP/1.1 request to carbyne's web server: `(status, body)`;
/// params in the query string (GET) or as a form body (POST).
pub fn http(port: u16, method: &str, path: &str, params: &[(String, String)]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let q = urlencode(params);
    let req = if method == "POST" {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{q}",
            q.len()
        )
    } else {
        let sep = if q.is_empty() { "" } else { "?" };
        format!("GET {path}{sep}{q} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    };
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers")
        + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Whole bodies only: answers carry a Content-Length.
    assert!(!head.to_ascii_lowercase().contains("chunked"), "{head}");
    (status, raw[split..].to_vec())
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
#[allow(dead_code)]
pub struct Rng(pub u64);

#[allow(dead_code)]
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Asserts that every `(name, timestamp, value)` is in the whisper files
/// under `root` (one file per name, carbon's layout), naming the first
/// ones missing.
#[allow(dead_code)]
pub fn assert_points_written<'a>(root: &Path, sent: impl IntoIterator<Item = (&'a str, i64, f64)>) {
    let (mut missing, mut n) = (Vec::new(), 0);
    for (name, ts, v) in sent {
        n += 1;
        let path = root.join(format!("{}.wsp", name.replace('.', "/")));
        let got = carbyne::whisper::Whisper::open(&path, false)
            .ok()
            .and_then(|w| w.fetch(ts - 1, Some(ts), None, None).ok().flatten())
            .and_then(|s| s.values.first().copied().flatten());
        if got != Some(v) {
            missing.push(format!("{name} {ts}: {got:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {n} points not written: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// A tmpfs mounted for the test, unmounted when dropped.
#[allow(dead_code)]
pub struct Tmpfs(PathBuf);

#[allow(dead_code)]
impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mounting a tmpfs needs root (tests/run.sh runs as root)"
        );
        Tmpfs(at.to_path_buf())
    }

    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends plaintext lines on one connection.
pub fn send(port: u16, lines: &[String]) {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut text = lines.join("\n");
    text.push('\n');
    c.write_all(text.as_bytes()).expect("send");
}

/// Every `.wsp` under `root`, by relative path.
pub fn files(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|x| x == "wsp") {
                out.push(p.strip_prefix(root).expect("prefix").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Waits until the files under `root` stop changing (carbon-cache writes on
/// its own schedule).
#[allow(dead_code)]
pub fn settled(root: &Path) {
    still(
        || -> Vec<(PathBuf, u64, std::time::SystemTime)> {
            files(root)
                .into_iter()
                .filter_map(|f| {
                    let m = std::fs::metadata(root.join(&f)).ok()?;
                    Some((f, m.len(), m.modified().ok()?))
                })
                .collect()
        },
        Vec::is_empty,
    );
}

/// Waits until what `read` finds (in carbon-cache's files) is not `empty`
/// and has not changed for 3 s. Bounded, but generous: on a loaded machine
/// carbon-cache (Python) once took longer than 90 s to write everything it
/// was sent.
#[allow(dead_code)]
pub fn still<T: PartialEq>(read: impl Fn() -> T, empty: impl Fn(&T) -> bool) {
    let (mut last, mut since) = (read(), Instant::now());
    let start = Instant::now();
    while since.elapsed() < Duration::from_secs(3) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "carbon-cache never settled"
        );
        std::thread::sleep(Duration::from_millis(300));
        let now = read();
        if now != last || empty(&now) {
            (last, since) = (now, Instant::now());
        }
    }
}

/// carbyne's server on `cfg`, once it listens on `port`.
#[allow(dead_code)]
pub fn server(cfg: &Path, port: u16) -> Proc {
    let child = Proc(
        bin()
            .args(["server", "--config"])
            .arg(cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne server"),
    );
    wait_for_port(port);
    child
}

/// A carbyne process, killed if the test ends (or fails) first.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Proc {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}
