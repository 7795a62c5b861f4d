//! `carbyne server` and the whisper tools under hostile or unlucky input:
//! each test reproduces what crashed, lost data or grew without bound, and
//! checks that it no longer does. Every load is bounded in count and time.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A server with `toml` (ports filled in by the caller), logging to a file.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(toml: &str, wait_for: &[u16]) -> Server {
        Server::start_with(toml, wait_for, |_| {})
    }

    fn start_with(
        toml: &str,
        wait_for: &[u16],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        // Its own state_dir, so nothing lands in the default /var/lib/carbyne.
        let text = format!("state_dir = \"{{DIR}}/state\"\n{toml}")
            .replace("{DIR}", &dir.path().display().to_string());
        std::fs::write(dir.path().join("c.toml"), text).expect("config");
        let log = std::fs::File::create(dir.path().join("log")).expect("log");
        let mut cmd = bin();
        cmd.args(["server", "--config"])
            .arg(dir.path().join("c.toml"))
            .stdout(Stdio::null())
            .stderr(log);
        adjust(&mut cmd);
        let mut srv = Server {
            child: Child(cmd.spawn().expect("server")),
            dir,
        };
        for p in wait_for {
            let start = Instant::now();
            while TcpStream::connect(("127.0.0.1", *p)).is_err() {
                assert!(srv.alive(), "the server exited: {}", srv.log());
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "port {p} never opened: {}",
                    srv.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        srv
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("whisper")
    }

    /// Waits (10 s at most) for the whisper file of `metric`.
    fn file(&self, metric: &str) -> PathBuf {
        let p = self.storage().join(metric.replace('.', "/") + ".wsp");
        let start = Instant::now();
        while !p.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// Resident memory in kB.
    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

fn carbon_toml(line: u16, pickle: u16, extra: &str) -> String {
    format!(
        "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{line}\"\npickle_listen = \"127.0.0.1:{pickle}\"\n\
         udp = false\nstorage_dir = \"{{DIR}}/whisper\"\ncarbon_metric_interval = 0\n{extra}"
    )
}

/// A whisper file of `points` minutes (one archive at 60 s, average)
/// holding one point, its folders made.
fn one_point_file(f: &Path, points: u32, point: (i64, f64), now: i64) {
    std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
    carbyne::whisper::create(
        f,
        &[(60, points)],
        0.5,
        carbyne::whisper::Aggregation::Average,
        carbyne::whisper::Allocation::Sparse,
    )
    .expect("create");
    let w = carbyne::whisper::Whisper::open(f, true).expect("open");
    w.update_many(&[point], Some(now)).expect("update");
}

fn send_line(port: u16, text: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(text.as_bytes()).expect("write");
}

/// The points of the file over the last hour (from its finest archive).
fn points(path: &Path) -> Vec<f64> {
    let w = carbyne::whisper::Whisper::open(path, false).expect("open");
    let now = carbyne::whisper::unix_now();
    let s = w
        .fetch(now - 3600, None, None, None)
        .expect("fetch")
        .expect("series");
    s.values.into_iter().flatten().collect()
}

/// Items 1 and 6: a 100 kB pickle of 60 000 nested lists aborted the
/// process; a memo put at index 2^32-1 allocated ~134 MB. Both are refused
/// and counted, the server stays up and keeps every point.
#[test]
fn hostile_pickles_are_refused_and_the_server_stays_up() {
    let (line, pickle) = (free_port(), free_port());
    let mut srv = Server::start(&carbon_toml(line, pickle, ""), &[line, pickle]);
    let now = carbyne::whisper::unix_now();
    send_line(line, &format!("before.deep 1 {now}\n"));
    let n = 60_000;
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', n));
    deep.extend(std::iter::repeat_n(b'a', n - 1));
    deep.push(b'.');
    let memo = b"\x80\x02]r\xff\xff\xff\xffr\xfe\xff\xff\xff.".to_vec();
    for body in [deep, memo] {
        let mut s = TcpStream::connect(("127.0.0.1", pickle)).expect("pickle");
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        s.write_all(&frame).expect("write");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(srv.alive(), "the server died: {}", srv.log());
    send_line(line, &format!("after.deep 2 {now}\n"));
    assert_eq!(points(&srv.file("after.deep")), [2.0]);
    assert!(
        srv.log().contains("nested more than 16 deep"),
        "{}",
        srv.log()
    );
    signal(&srv.child.0, "-TERM");
    assert!(srv.child.0.wait().expect("wait").success());
    assert_eq!(points(&srv.file("before.deep")), [1.0]);
    assert!(srv.rss_kb() < 200_000);
}

/// Item 2: SIGHUP killed the server and lost its cache. It now reloads:
/// a changed storage-schemas.conf applies to files created after it.
#[test]
fn sighup_reloads_the_schemas_and_keeps_the_cache() {
    let (line, pickle) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("storage-schemas.conf");
    std::fs::write(&schemas, "[all]\npattern = .*\nretentions = 60s:1d\n").expect("schemas");
    let extra = format!("schemas = {schemas:?}\nmax_updates_per_second = 50\n");
    let mut srv = Server::start(&carbon_toml(line, pickle, &extra), &[line]);
    let now = carbyne::whisper::unix_now();
    // Held in the cache by the update rate while SIGHUP comes.
    let lines: String = (0..300).map(|i| format!("held.m{i} 1 {now}\n")).collect();
    send_line(line, &lines);
    std::fs::write(&schemas, "[all]\npattern = .*\nretentions = 10s:1h\n").expect("schemas");
    signal(&srv.child.0, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(srv.alive(), "SIGHUP ended the server: {}", srv.log());
    send_line(line, &format!("after.hup 1 {now}\n"));
    let info = carbyne::whisper::Whisper::open(&srv.file("after.hup"), false).expect("open");
    assert_eq!(info.header.archives[0].seconds_per_point, 10);
    assert!(
        srv.log().contains("configuration reloaded"),
        "{}",
        srv.log()
    );
    // A schemas file that does not load keeps the rules in force.
    std::fs::write(&schemas, "[all]\npattern = .*\nretentions = 5x:6h\n").expect("schemas");
    signal(&srv.child.0, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(srv.alive());
    assert!(
        srv.log()
            .contains("storage-schemas.conf: line 3: key `server.carbon.schemas`")
            && srv.log().contains("the running one stays"),
        "{}",
        srv.log()
    );
    signal(&srv.child.0, "-TERM");
    assert!(srv.child.0.wait().expect("wait").success());
    for i in 0..300 {
        assert_eq!(points(&srv.file(&format!("held.m{i}"))), [1.0], "held.m{i}");
    }
}

/// Item 3: a kill while files are being created leaves no truncated file.
#[test]
fn sigkill_while_creating_leaves_only_whole_files() {
    let (line, pickle) = (free_port(), free_port());
    // Large files take long to write: kills land mid-create.
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("storage-schemas.conf");
    std::fs::write(&schemas, "[all]\npattern = .*\nretentions = 1s:2d\n").expect("schemas");
    let extra = format!("schemas = {schemas:?}\n");
    let mut srv = Server::start(&carbon_toml(line, pickle, &extra), &[line]);
    let now = carbyne::whisper::unix_now();
    let lines: String = (0..200).map(|i| format!("big.m{i} 1 {now}\n")).collect();
    send_line(line, &lines);
    // Killed as soon as the first files are there, in the middle of the run.
    let start = Instant::now();
    let count = || std::fs::read_dir(srv.storage().join("big")).map_or(0, |d| d.count());
    while count() < 5 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(2));
    }
    srv.child.0.kill().expect("SIGKILL");
    let _ = srv.child.0.wait();
    let mut whole = 0;
    for e in std::fs::read_dir(srv.storage().join("big")).expect("dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "wsp") {
            carbyne::whisper::Whisper::open(&p, false)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(
                std::fs::metadata(&p).expect("meta").len(),
                28 + 172_800 * 12
            );
            whole += 1;
        }
    }
    assert!(whole > 0, "no file was created before the kill");
}

/// Item 4: statsd's last flush on SIGTERM reaches the carbon receiver of
/// the same process.
#[test]
fn sigterm_flushes_statsd_into_carbon_before_carbon_stops() {
    let (line, pickle, udp, admin) = (free_port(), free_port(), free_udp_port(), free_port());
    let toml = format!(
        "{}\n[server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{admin}\"\n\
         graphite = \"127.0.0.1:{line}\"\nflush_interval = 60\n",
        carbon_toml(line, pickle, "")
    );
    let mut srv = Server::start(&toml, &[line, admin]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(b"last.flush:7|c", ("127.0.0.1", udp))
        .expect("send");
    std::thread::sleep(Duration::from_millis(200));
    signal(&srv.child.0, "-TERM");
    assert!(srv.child.0.wait().expect("wait").success(), "{}", srv.log());
    assert!(!srv.log().contains("unreachable"), "{}", srv.log());
    assert_eq!(points(&srv.file("stats_counts.last.flush")), [7.0]);
}

/// The last flush at SIGTERM, soon after a regular one, lands in the next
/// slot: stamped with the time of the signal it overwrote the flush before.
#[test]
fn the_last_flush_does_not_overwrite_the_one_before() {
    let (line, pickle, udp, admin) = (free_port(), free_port(), free_udp_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("storage-schemas.conf");
    std::fs::write(&schemas, "[stats]\npattern = ^stats\nretentions = 2s:1h\n").expect("schemas");
    let toml = format!(
        "{}\n[server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{admin}\"\n\
         graphite = \"127.0.0.1:{line}\"\nflush_interval = 2\n",
        carbon_toml(line, pickle, &format!("schemas = {schemas:?}\n"))
    );
    let mut srv = Server::start(&toml, &[line, admin]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let send = |n: usize| {
        for _ in 0..n {
            sock.send_to(b"split.hits:1|c", ("127.0.0.1", udp))
                .expect("send");
        }
    };
    send(4);
    // Right after the first regular flush, three more, then SIGTERM.
    let start = Instant::now();
    while !srv.file("stats_counts.split.hits").exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    send(3);
    std::thread::sleep(Duration::from_millis(100));
    signal(&srv.child.0, "-TERM");
    assert!(srv.child.0.wait().expect("wait").success(), "{}", srv.log());
    // Stamped up to one interval ahead: readable once that time has come.
    std::thread::sleep(Duration::from_millis(2200));
    let got: f64 = points(&srv.file("stats_counts.split.hits")).iter().sum();
    assert_eq!(got, 7.0, "{}", srv.log());
}

/// Item 7: idle connections on the line port neither lock out the pickle
/// port nor stay for ever.
#[test]
fn idle_connections_time_out_and_limits_are_per_listener() {
    let (line, pickle) = (free_port(), free_port());
    let extra = "max_connections = 3\nidle_timeout = 1\n";
    let srv = Server::start(&carbon_toml(line, pickle, extra), &[line, pickle]);
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", line)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fourth line connection is refused: closed at once.
    let mut extra_conn = TcpStream::connect(("127.0.0.1", line)).expect("connect");
    extra_conn
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(matches!(extra_conn.read(&mut [0u8; 1]), Ok(0) | Err(_)));
    // The pickle port has room of its own.
    let now = carbyne::whisper::unix_now() as f64;
    let frame = carbyne::server::carbon::pickle::dumps(&[("via.pickle".into(), now, 3.0)]);
    TcpStream::connect(("127.0.0.1", pickle))
        .expect("pickle")
        .write_all(&frame)
        .expect("write");
    assert_eq!(points(&srv.file("via.pickle")), [3.0]);
    // The idle ones are closed after the timeout.
    for mut c in idle {
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert!(
            matches!(c.read(&mut [0u8; 1]), Ok(0)),
            "an idle connection stayed open"
        );
    }
    send_line(line, &format!("after.idle 1 {}\n", now as i64));
    assert_eq!(points(&srv.file("after.idle")), [1.0]);
}

fn statsd_toml(udp: u16, admin: u16, extra: &str) -> String {
    format!(
        "[server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{admin}\"\n\
         graphite = \"127.0.0.1:{}\"\nflush_interval = 60\n{extra}",
        free_port()
    )
}

/// Items 8 and 13: a TCP line without a newline grew without limit (1 GB
/// in 2.7 s); one invalid UTF-8 byte closed the connection. Now the long
/// line is skipped and counted, and the stream goes on.
#[test]
fn statsd_tcp_lines_are_bounded_and_bytes_do_not_end_the_stream() {
    let (udp, adm) = (free_port(), free_port());
    let srv = Server::start(&statsd_toml(udp, adm, ""), &[udp, adm]);
    let mut s = TcpStream::connect(("127.0.0.1", udp)).expect("tcp");
    s.write_all(b"bin\xff.key:1|c\n").expect("write");
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..64 {
        s.write_all(&chunk).expect("64 MiB without a newline");
    }
    s.write_all(b"\nafter.long:5|c\n").expect("write");
    drop(s);
    let start = Instant::now();
    while !statsd_admin(adm, "counters").contains("'after.long': 5") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            statsd_admin(adm, "counters")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(statsd_admin(adm, "counters").contains("'bin.key': 1"));
    assert!(statsd_admin(adm, "stats").contains("messages.bad_lines_seen: 1\n"));
    assert!(srv.rss_kb() < 100_000, "RSS {} kB", srv.rss_kb());
}

/// The child runs with at most `n` open files.
fn open_files_limit(c: &mut std::process::Command, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// Item 9: the TCP listener ended for good at the first accept error
/// (EMFILE). With a low file limit, it now waits out the shortage.
#[test]
fn statsd_tcp_listener_survives_running_out_of_file_descriptors() {
    let (udp, adm) = (free_port(), free_port());
    let srv = Server::start_with(
        &statsd_toml(udp, adm, "udp_sockets = 1\n"),
        &[udp, adm],
        |c| open_files_limit(c, 64),
    );
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", udp)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    drop(held);
    std::thread::sleep(Duration::from_millis(1500));
    let mut s = TcpStream::connect(("127.0.0.1", udp)).expect("tcp");
    s.write_all(b"after.emfile:1|c\n").expect("write");
    drop(s);
    let start = Instant::now();
    while !statsd_admin(adm, "counters").contains("'after.emfile': 1") {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        srv.log().contains("accept"),
        "the shortage was logged: {}",
        srv.log()
    );
}

/// Items 15, 16 and 17: the whisper tools on a FIFO, a huge --until and a
/// closed pipe.
#[test]
fn whisper_tools_refuse_fifos_clamp_ranges_and_stop_quietly_on_a_closed_pipe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.wsp");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let f = fifo.to_str().expect("path");
    for args in [
        vec!["whisper", "info", f],
        vec!["whisper", "fetch", f],
        vec!["whisper", "dump", f],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    }
    let a = dir.path().join("a.wsp");
    let a = a.to_str().expect("path");
    assert!(run(&["whisper", "create", a, "1s:30d", "1m:1y"])
        .status
        .success());
    let out = run(&["whisper", "merge", "--until", "99999999999", a, a]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Item 5: a timestamp past 2^32 wrapped onto 1970; refused as whisper does.
    let before = std::fs::read(a).expect("read");
    let out = run(&["whisper", "update", a, "4294967396:5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside whisper's range"));
    assert_eq!(std::fs::read(a).expect("read"), before);
    // The reader goes away after the first bytes.
    let mut child = bin()
        .args(["whisper", "dump", a])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dump");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 18: configuration files that are no files, or no text.
#[test]
fn config_refuses_devices_fifos_and_says_where_text_is_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.toml");
    std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    for p in [Path::new("/dev/zero"), fifo.as_path()] {
        let out = run(&["config", "check", "--config", p.to_str().expect("path")]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a regular file"));
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"interval = 10\npath_prefix = \"a\xff\"\n").expect("write");
    let out = run(&["config", "check", "--config", bad.to_str().expect("path")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: not UTF-8"));
    let re = dir.path().join("re.toml");
    std::fs::write(
        &re,
        format!(
            "[collectors.cpu]\nmetrics_whitelist = \"({}\"\n",
            "a".repeat(100_000)
        ),
    )
    .expect("write");
    let out = run(&["config", "check", "--config", re.to_str().expect("path")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.len() < 2000 && err.contains("line 2") && !err.contains("^(?:"),
        "{err}"
    );
    let confd = dir.path().join("d/conf.d");
    std::fs::create_dir_all(&confd).expect("dir");
    std::os::unix::fs::symlink("/nonexistent", confd.join("x.toml")).expect("link");
    let out = run(&[
        "config",
        "check",
        "--config",
        dir.path().join("d").to_str().expect("path"),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.toml: a symbolic link to nothing"));
}

/// The web server under bad and absurd requests: every one answered 400
/// or 413 with graphite-web's `{"error": ...}`, nothing read outside the
/// storage directory, and the server still answering afterwards.
#[test]
fn web_bad_requests_are_answered_not_crashed() {
    let port = free_port();
    let mut s = Server::start(
        &format!(
            "[server.web]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = \"{{DIR}}/whisper\"\n\
             max_series_per_request = 50\nmax_points_per_request = 100000\nmax_find_results = 100\n"
        ),
        &[port],
    );
    // 200 metrics at 1 s for a day: enough to pass every limit above.
    let root = s.storage();
    for i in 0..200 {
        let f = root.join(format!("many/m{i}.wsp"));
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        carbyne::whisper::create(
            &f,
            &[(1, 86400)],
            0.5,
            carbyne::whisper::Aggregation::Average,
            carbyne::whisper::Allocation::Sparse,
        )
        .expect("create");
    }
    std::fs::write(s.dir.path().join("secret.wsp"), b"not for you").expect("secret");
    let deep = "sumSeries(".repeat(5000) + "a" + &")".repeat(5000);
    let glob = format!(
        "{{{}}}.{{{}}}",
        (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(","),
        (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let huge = "a.".repeat(200_000) + "b";
    // (path, parameters, the status wanted)
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16);
    let cases: Vec<Case> = vec![
        (
            "/render",
            vec![
                ("target", "sumSeries(a.b".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "noSuchFunction(a.b)".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "scale(many.m1,'x')".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "summarize(many.m1,'1fortnight')".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "aliasSub(many.m1,'(','x')".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![("target", deep), ("format", "json".into())],
            400,
        ),
        (
            "/render",
            vec![("target", glob.clone()), ("format", "json".into())],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "many.m1".into()),
                ("from", "-999999999y".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "many.m1".into()),
                ("from", "now".into()),
                ("until", "now".into()),
                ("format", "json".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![("target", "many.*".into()), ("format", "json".into())],
            413,
        ),
        (
            "/render",
            vec![
                ("target", "many.m1".into()),
                ("from", "-2d".into()),
                ("format", "json".into()),
                ("xFilesFactor", "x".into()),
            ],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "group(many.m1,many.m2)".into()),
                ("from", "-1d".into()),
                ("format", "json".into()),
            ],
            413,
        ),
        (
            "/render",
            vec![("target", "many.m1".into()), ("format", "pdf".into())],
            400,
        ),
        (
            "/render",
            vec![
                ("target", "many.m1".into()),
                ("width", "1000000".into()),
                ("height", "1000000".into()),
            ],
            413,
        ),
        (
            "/render",
            vec![("target", "many.m1".into()), ("fontSize", "1e9".into())],
            400,
        ),
        (
            "/render",
            // An unknown format is a PNG, as graphite-web draws one.
            vec![("target", "many.m1".into()), ("format", "yaml".into())],
            200,
        ),
        (
            "/render",
            vec![("target", "..".into()), ("format", "json".into())],
            400,
        ),
        (
            "/render",
            vec![("target", "../secret".into()), ("format", "json".into())],
            400,
        ),
        (
            "/render",
            vec![("target", "/etc/passwd".into()), ("format", "json".into())],
            400,
        ),
        (
            "/render",
            vec![("target", "many.m1\0".into()), ("format", "json".into())],
            400,
        ),
        ("/metrics/find", vec![("query", "many.*".into())], 413),
        ("/metrics/find", vec![], 400),
        ("/metrics/find", vec![("query", glob)], 400),
        ("/metrics/find", vec![("query", huge)], 400),
        (
            "/metrics/find",
            vec![("query", "*".into()), ("leavesOnly", "x".into())],
            400,
        ),
        ("/metrics/index.json", vec![], 413),
        ("/nope", vec![], 404),
    ];
    let mut failures = Vec::new();
    for (path, params, want) in cases {
        let shown: String = format!("{path} {params:?}").chars().take(120).collect();
        let params: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for method in ["GET", "POST"] {
            let (status, body) = http(port, method, path, &params);
            let text = String::from_utf8_lossy(&body);
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let ok = match status {
                400 | 413 | 404 => json["error"].is_string(),
                // A URL past what the HTTP layer reads (about 64 KiB): hyper's
                // own 414, before any of it is parsed. POST carries the same.
                414 => method == "GET",
                // A path trick that reads nothing is an empty answer, never the file.
                200 => !text.contains("not for you") && (text == "[]" || want == 200),
                _ => false,
            };
            if !ok || (status != want && status != 200 && status != 414) {
                failures.push(format!(
                    "{method} {shown}: {status} {}",
                    text.chars().take(200).collect::<String>()
                ));
            }
        }
    }
    assert!(s.alive(), "the server died: {}", s.log());
    let ok = http(
        port,
        "GET",
        "/render",
        &[
            ("target".into(), "many.m1".into()),
            ("format".into(), "json".into()),
            ("from".into(), "-1h".into()),
        ],
    );
    assert_eq!(ok.0, 200, "{}", String::from_utf8_lossy(&ok.1));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Out of file descriptors in the middle of renders: a render that cannot
/// open every file it matches answers 503, never a 200 whose sum is short
/// of the files it could not open; the server answers fully afterwards.
#[test]
fn web_renders_short_of_file_descriptors_answer_503_not_a_wrong_sum() {
    let port = free_port();
    let mut s = Server::start_with(
        &format!(
            "[server.web]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = \"{{DIR}}/whisper\"\n"
        ),
        &[port],
        |c| open_files_limit(c, 40),
    );
    let root = s.storage();
    let now = carbyne::whisper::unix_now();
    for i in 0..300 {
        one_point_file(
            &root.join(format!("fd/m{i}/v.wsp")),
            60,
            (now - 60, 1.0),
            now,
        );
    }
    let params = vec![
        ("target".to_string(), "sumSeries(fd.*.v)".to_string()),
        ("from".to_string(), "-10min".to_string()),
        ("format".to_string(), "json".to_string()),
    ];
    let sum_of = |body: &[u8]| -> Option<f64> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v[0]["datapoints"]
            .as_array()?
            .iter()
            .filter_map(|p| p[0].as_f64())
            .next_back()
    };
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..24)
            .map(|_| sc.spawn(|| http(port, "GET", "/render", &params)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut short = 0;
    for (status, body) in &answers {
        match status {
            200 => assert_eq!(sum_of(body), Some(300.0), "a 200 holds every file"),
            503 => short += 1,
            // A connection the server could not even accept.
            0 => {}
            other => panic!("status {other}: {}", String::from_utf8_lossy(body)),
        }
    }
    assert!(s.alive(), "{}", s.log());
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(port, "GET", "/render", &params);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(sum_of(&body), Some(300.0));
    eprintln!("{short} of {} renders answered 503", answers.len());
}

/// Files the web server keeps open between requests: one replaced by the
/// real whisper-resize.py (the old file kept as `.bak`, so still linked)
/// and then updated is read anew; one deleted is no longer read.
#[test]
fn kept_files_replaced_or_deleted_are_noticed_at_once() {
    let port = free_port();
    let srv = Server::start(
        &format!(
            "[server.web]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = \"{{DIR}}/whisper\"\n"
        ),
        &[port],
    );
    let now = carbyne::whisper::unix_now();
    let at = now - now % 60 - 120;
    let files: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| {
            let f = srv.storage().join(format!("kept/{n}.wsp"));
            one_point_file(&f, 1440, (at, 1.0), now);
            f
        })
        .collect();
    let params = vec![
        ("target".to_string(), "sumSeries(kept.*)".to_string()),
        ("from".to_string(), "-10min".to_string()),
        ("format".to_string(), "json".to_string()),
    ];
    let sum_at = || -> Option<f64> {
        let (status, body) = http(port, "GET", "/render", &params);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        v[0]["datapoints"]
            .as_array()?
            .iter()
            .find(|p| p[1].as_i64() == Some(at))?[0]
            .as_f64()
    };
    assert_eq!(sum_at(), Some(2.0));
    let a = files[0].display().to_string();
    let resize = std::process::Command::new("python3")
        .arg(python_scripts().join("whisper-resize.py"))
        .args([a.as_str(), "60:2d"])
        .output()
        .expect("whisper-resize.py");
    assert!(resize.status.success(), "{resize:?}");
    assert!(files[0].with_extension("wsp.bak").exists());
    let update = std::process::Command::new("python3")
        .arg(python_scripts().join("whisper-update.py"))
        .args([a.as_str(), &format!("{at}:5")])
        .output()
        .expect("whisper-update.py");
    assert!(update.status.success(), "{update:?}");
    assert_eq!(
        sum_at(),
        Some(6.0),
        "the resized file is read, not the kept one"
    );
    std::fs::remove_file(&files[1]).expect("remove");
    assert_eq!(sum_at(), Some(5.0), "the deleted file is not read");
}
