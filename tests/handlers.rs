//! Handlers against real receivers: etsy statsd 0.9.0 (npm).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A real etsy statsd flushing every second to a Graphite listener of ours.
struct Statsd {
    _child: Child,
    port: u16,
    graphite: TcpListener,
}

fn statsd() -> Statsd {
    let stats_js = peer("node_modules/statsd/stats.js");
    let graphite = TcpListener::bind("127.0.0.1:0").expect("bind");
    let gport = graphite.local_addr().expect("addr").port();
    let port = free_udp_port();
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let conf = dir.join("statsd.js");
    std::fs::write(
        &conf,
        format!(
            "{{ port: {port}, address: \"127.0.0.1\", mgmt_port: {}, mgmt_address: \"127.0.0.1\",\n\
               graphitePort: {gport}, graphiteHost: \"127.0.0.1\", flushInterval: 1000,\n\
               backends: [\"./backends/graphite\"] }}\n",
            free_port()
        ),
    )
    .expect("config");
    let child = Command::new("node")
        .arg(&stats_js)
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is needed for the statsd peer");
    let s = Statsd {
        _child: Child(child),
        port,
        graphite,
    };
    // Up once it has flushed its own numbers.
    let first = receive(
        s.graphite.try_clone().expect("clone"),
        Duration::from_secs(15),
        |t| t.contains("statsd.numStats"),
    );
    assert!(first.contains("statsd.numStats"), "statsd did not start");
    s
}

/// The last value statsd flushed for each name, waiting until `want` is there.
fn flushed(s: &Statsd, want: &str) -> BTreeMap<String, f64> {
    let start = Instant::now();
    let text = receive(
        s.graphite.try_clone().expect("clone"),
        Duration::from_secs(10),
        |t| t.contains(want) && start.elapsed() > Duration::from_millis(1200),
    );
    parse_lines(&text)
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect()
}

fn only(collectors: &[&str]) -> String {
    // Every collector there is: the sections of the collectors' config.
    let all = toml::Table::try_from(carbyne::collectors::CollectorsConfig::default())
        .expect("collectors' config");
    all.keys()
        .map(|c| {
            format!(
                "[collectors.{c}]\nenabled = {}\n",
                collectors.contains(&c.as_str())
            )
        })
        .collect()
}

fn meminfo(key: &str) -> f64 {
    let text = std::fs::read_to_string(fixture("proc/t0/meminfo")).expect("meminfo");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .expect(key);
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse::<f64>().ok())
        .expect("value")
        * 1024.0
}

#[test]
fn statsd_gauges_come_out_of_etsy_statsd_with_their_names_and_values() {
    let s = statsd();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "self_metrics = false\n{}[handlers.statsd]\nport = {}\nprefix = \"agents\"\nmax_datagram_bytes = 200\n",
            only(&["memory", "loadavg", "sockstat"]),
            s.port
        ),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = flushed(&s, "stats.gauges.agents.servers.testhost.sockets.udp_mem");
    let g = |k: &str| {
        v.get(&format!("stats.gauges.agents.servers.testhost.{k}"))
            .copied()
    };
    assert_eq!(g("memory.MemTotal"), Some(meminfo("MemTotal")));
    assert_eq!(g("memory.Cached"), Some(meminfo("Cached")));
    assert_eq!(g("loadavg.01"), Some(0.01));
    assert_eq!(g("loadavg.processes_total"), Some(79.0));
    assert_eq!(g("sockets.tcp_mem"), Some(26.0));
    // Every sample of the run arrived, through 200-byte datagrams.
    let n = v
        .keys()
        .filter(|k| k.starts_with("stats.gauges.agents."))
        .count();
    assert_eq!(n, 17 + 8 + 8, "{v:?}");
}

#[test]
fn statsd_counts_are_the_counters_increases() {
    let s = statsd();
    let dir = tempfile::tempdir().expect("tempdir");
    let handler = format!(
        "self_metrics = false\n{}[handlers.statsd]\nport = {}\ncounters_as = \"count\"\n",
        only(&["vmstat", "loadavg"]),
        s.port
    );
    for proc in ["proc/t0", "proc/t1"] {
        let cfg = config_dir(dir.path(), proc, &handler);
        let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v = flushed(&s, "stats_counts.servers.testhost.vmstat.pgpgin");
    let counter = |proc: &str, key: &str| -> f64 {
        let text = std::fs::read_to_string(fixture(&format!("{proc}/vmstat"))).expect("vmstat");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .and_then(|v| v.trim().parse().ok())
            .expect(key)
    };
    for key in ["pgpgin", "pgpgout", "pgfault", "pgmajfault"] {
        let want = counter("proc/t1", key) - counter("proc/t0", key);
        let got = v[&format!("stats_counts.servers.testhost.vmstat.{key}")];
        assert_eq!(got, want, "{key}");
    }
    // Gauges stay gauges.
    assert_eq!(
        v["stats.gauges.servers.testhost.loadavg.processes_total"],
        79.0
    );
}

/// A real rsyslogd in the foreground, listening on UDP and TCP ports, a
/// unix datagram socket and a unix stream socket of the test's, writing
/// `facility|severity|app|host|structured-data|msg` lines to a file.
struct Rsyslog {
    _child: Child,
    dir: tempfile::TempDir,
    udp: u16,
    tcp: u16,
}

fn rsyslog() -> Rsyslog {
    let bin = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("rsyslogd is missing: `bash tests/run.sh` installs Debian's rsyslog");
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, tcp) = (free_udp_port(), free_port());
    let d = dir.path().display().to_string();
    let conf = format!(
        r#"global(workDirectory="{d}")
module(load="imudp")
module(load="imtcp")
module(load="imptcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imuxsock" Socket="{d}/dgram.sock" RateLimit.Interval="0" UseSpecialParser="off" ParseHostname="on")
input(type="imptcp" path="{d}/stream.sock" unlink="on")
template(name="t" type="string" string="%syslogfacility-text%|%syslogseverity-text%|%app-name%|%hostname%|%structured-data%|%msg%\n")
*.* action(type="omfile" file="{d}/out.log" template="t")
"#
    );
    std::fs::write(dir.path().join("rsyslog.conf"), conf).expect("config");
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(dir.path().join("rsyslog.conf"))
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rsyslogd");
    let start = Instant::now();
    while !(dir.path().join("dgram.sock").exists() && dir.path().join("stream.sock").exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rsyslogd did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    Rsyslog {
        _child: Child(child),
        dir,
        udp,
        tcp,
    }
}

impl Rsyslog {
    /// The lines rsyslog wrote, once there are at least `n`.
    fn lines(&self, n: usize) -> Vec<Vec<String>> {
        let path = self.dir.path().join("out.log");
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<Vec<String>> = text
                .lines()
                .map(|l| l.splitn(6, '|').map(String::from).collect())
                .collect();
            if lines.len() >= n || start.elapsed() > Duration::from_secs(10) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `agent --once` on the t0 fixture with memory and loadavg only (25 samples).
fn once_with(dir: &std::path::Path, handler: &str) {
    let cfg = config_dir(
        dir,
        "proc/t0",
        &format!(
            "self_metrics = false\n{}{handler}",
            only(&["memory", "loadavg"])
        ),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn syslog_rfc5424_over_udp_into_rsyslog() {
    let r = rsyslog();
    let dir = tempfile::tempdir().expect("tempdir");
    once_with(
        dir.path(),
        &format!("[handlers.syslog]\ntransport = \"udp\"\naddress = \"127.0.0.1:{}\"\nhostname = \"web01\"\n", r.udp),
    );
    let lines = r.lines(25);
    assert_eq!(lines.len(), 25, "{lines:?}");
    let total = meminfo("MemTotal");
    let want = [
        "user".to_string(),
        "info".into(),
        "carbyne".into(),
        "web01".into(),
        format!("[carbyne@32473 name=\"servers.testhost.memory.MemTotal\" value=\"{total}\"]"),
    ];
    let line = lines
        .iter()
        .find(|l| l[5].starts_with("servers.testhost.memory.MemTotal "))
        .expect("MemTotal message");
    assert_eq!(line[..5], want[..]);
    let msg: Vec<&str> = line[5].split(' ').collect();
    assert_eq!(msg[1].parse::<f64>().ok(), Some(total));
}

#[test]
fn syslog_rfc3164_over_tcp_into_rsyslog() {
    let r = rsyslog();
    let dir = tempfile::tempdir().expect("tempdir");
    once_with(
        dir.path(),
        &format!(
            "[handlers.syslog]\ntransport = \"tcp\"\naddress = \"127.0.0.1:{}\"\nformat = \"rfc3164\"\n\
             facility = \"local3\"\nseverity = \"notice\"\nhostname = \"web01\"\n",
            r.tcp
        ),
    );
    let lines = r.lines(25);
    assert_eq!(
        lines.len(),
        25,
        "octet-counted frames all parsed: {lines:?}"
    );
    assert!(lines
        .iter()
        .all(|l| l[..4] == ["local3", "notice", "carbyne", "web01"]));
    assert!(lines.iter().any(|l| l[5]
        .trim_start()
        .starts_with("servers.testhost.loadavg.01 0.01 ")));
}

#[test]
fn syslog_over_unix_datagram_and_stream_sockets_into_rsyslog() {
    let r = rsyslog();
    for (sock, n) in [("dgram.sock", 25), ("stream.sock", 50)] {
        let dir = tempfile::tempdir().expect("tempdir");
        once_with(
            dir.path(),
            &format!(
                "[handlers.syslog]\ntransport = \"unix\"\naddress = {:?}\nhostname = \"web01\"\n",
                r.dir.path().join(sock).display().to_string()
            ),
        );
        let lines = r.lines(n);
        assert_eq!(lines.len(), n, "{sock}: {lines:?}");
        assert!(
            lines.iter().all(|l| l[2] == "carbyne" && l[3] == "web01"),
            "{sock}"
        );
    }
}

/// One request a test HTTP server received.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

/// A real HTTP/1.1 server on 127.0.0.1 that answers with `statuses` in turn
/// (the last one from then on) and records every request.
fn http_server(statuses: Vec<u16>) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Request>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Request>::new()));
    let seen = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (seen, statuses) = (seen.clone(), statuses.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut w = conn;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
                    let mut headers = BTreeMap::new();
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                        }
                    }
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let mut all = seen.lock().expect("lock");
                    let status = statuses[all.len().min(statuses.len() - 1)];
                    all.push(Request {
                        path,
                        headers,
                        body,
                        status,
                    });
                    drop(all);
                    let text = if status == 400 { "bad token" } else { "ok" };
                    let _ = write!(
                        w,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    (port, log)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .expect("gzip body");
    out
}

fn http_once(dir: &std::path::Path, handler: &str) -> std::process::Output {
    let cfg = config_dir(
        dir,
        "proc/t0",
        &format!(
            "self_metrics = false\nflush_timeout = 3\n{}{handler}",
            only(&["memory", "loadavg"])
        ),
    );
    run(&["agent", "--once", "--config", cfg.to_str().expect("path")])
}

#[test]
fn http_json_gzip_and_headers_reach_a_real_server() {
    let (port, log) = http_server(vec![200]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = http_once(
        dir.path(),
        &format!(
            "[handlers.http]\nurl = \"http://127.0.0.1:{port}/metrics\"\ngzip = true\n\
             headers = {{ Authorization = \"Bearer s3cret\" }}\nmax_batch = 10\n"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = log.lock().expect("lock").clone();
    // At least three requests: the collectors' samples may come in more
    // than one batch, each of at most 10.
    assert!(reqs.len() >= 3, "25 samples in batches of at most 10");
    let mut items = Vec::new();
    for r in &reqs {
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.headers["authorization"], "Bearer s3cret");
        assert_eq!(r.headers["content-encoding"], "gzip");
        assert_eq!(r.headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&gunzip(&r.body)).expect("json body");
        assert!(v["metric"].as_array().is_some_and(|m| m.len() <= 10));
        items.extend(v["metric"].as_array().expect("metric array").clone());
    }
    assert_eq!(items.len(), 25);
    let total = items
        .iter()
        .find(|m| m["path"] == "servers.testhost.memory.MemTotal")
        .expect("MemTotal");
    assert_eq!(total["value"].as_f64(), Some(meminfo("MemTotal")));
    assert!(total["timestamp"]
        .as_i64()
        .is_some_and(|t| t > 1_700_000_000));
    assert_eq!(total["host"], "testhost");
}

#[test]
fn http_retries_a_503_and_delivers_exactly_once() {
    let (port, log) = http_server(vec![503, 200]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = http_once(
        dir.path(),
        &format!("[handlers.http]\nurl = \"http://127.0.0.1:{port}/\"\nformat = \"plain\"\nmax_backoff = 0.2\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = log.lock().expect("lock").clone();
    // The collectors' samples may come in more than one batch: the first
    // is refused and sent again, and every sample is delivered once.
    assert!(reqs.len() >= 2, "{reqs:?}");
    assert_eq!(reqs[0].body, reqs[1].body, "the same batch again");
    let mut lines = Vec::new();
    for r in reqs.iter().filter(|r| r.status == 200) {
        lines.extend(parse_lines(&String::from_utf8_lossy(&r.body)));
    }
    assert_eq!(lines.len(), 25);
    let mut names: Vec<&String> = lines.iter().map(|l| &l.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 25, "each sample once");
}

#[test]
fn http_400_is_dropped_counted_and_not_retried() {
    let (port, log) = http_server(vec![400]);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = http_once(
        dir.path(),
        &format!("[handlers.http]\nurl = \"http://127.0.0.1:{port}/\"\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("400") && err.contains("bad token") && err.contains("25 samples rejected"),
        "{err}"
    );
    // The collectors' samples may reach the handler in more than one batch;
    // each is refused once and never sent again.
    let reqs = log.lock().expect("lock").clone();
    let mut paths = Vec::new();
    for r in &reqs {
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json body");
        for m in v["metric"].as_array().expect("metric array") {
            paths.push(m["path"].as_str().expect("path").to_string());
        }
    }
    let sent = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!((sent, paths.len()), (25, 25), "not retried: {reqs:?}");
}

/// A real pyzmq SUB socket: binds or connects `endpoint`, subscribes to
/// `topic`, prints "ready", then prints every message received (its lines
/// joined by `|`) until `n` lines have come or 15 s pass.
fn zmq_subscriber(endpoint: &str, bind: bool, topic: &str, n: usize) -> std::process::Child {
    let script = format!(
        r#"
import sys, time, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.SUB)
s.setsockopt(zmq.SUBSCRIBE, {topic:?}.encode())
s.{how}("{endpoint}")
print("ready", flush=True)
got, end = 0, time.time() + 15
while got < {n} and time.time() < end:
    if s.poll(200):
        m = s.recv()
        t = m.decode().rstrip("\n")
        print(t.replace("\n", "|"), flush=True)
        got += t.count("\n") + 1
"#,
        how = if bind { "bind" } else { "connect" },
    );
    Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with pyzmq (tests/run.sh installs it)")
}

fn subscriber_output(child: std::process::Child) -> Vec<String> {
    let out = child.wait_with_output().expect("subscriber");
    assert!(out.status.success(), "the pyzmq subscriber failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Reads the subscriber's "ready" line, byte by byte (a buffered reader
/// would swallow the messages after it).
fn wait_ready(child: &mut std::process::Child) {
    use std::io::Read;
    let stdout = child.stdout.as_mut().expect("stdout");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while stdout.read(&mut b).expect("read") == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    assert_eq!(
        line, b"ready",
        "pyzmq is missing: `bash tests/run.sh` installs it"
    );
}

#[test]
fn zeromq_bound_publisher_reaches_a_pyzmq_subscriber_with_every_message() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    // The subscriber connects first (ZeroMQ retries until carbyne binds).
    let mut sub = zmq_subscriber(&endpoint, false, "", 25);
    wait_ready(&mut sub);
    let dir = tempfile::tempdir().expect("tempdir");
    once_with(
        dir.path(),
        &format!("[handlers.zeromq]\nendpoint = \"{endpoint}\"\nsubscriber_wait = 10\n"),
    );
    let got = subscriber_output(sub);
    assert_eq!(got.len(), 25, "{got:?}");
    let lines = parse_lines(&(got.join("\n") + "\n"));
    let total = lines
        .iter()
        .find(|(n, _, _)| n == "servers.testhost.memory.MemTotal")
        .expect("MemTotal");
    assert_eq!(total.1, meminfo("MemTotal"));
}

#[test]
fn zeromq_connecting_publisher_with_topic_and_batches() {
    let port = free_port();
    let endpoint = format!("tcp://127.0.0.1:{port}");
    let mut sub = zmq_subscriber(&endpoint, true, "metrics", 25);
    wait_ready(&mut sub);
    let dir = tempfile::tempdir().expect("tempdir");
    once_with(
        dir.path(),
        &format!(
            "[handlers.zeromq]\nendpoint = \"{endpoint}\"\nbind = false\ntopic = \"metrics\"\nbatch = true\nsubscriber_wait = 10\n"
        ),
    );
    let got = subscriber_output(sub);
    // One message per batch: the two collectors' samples may come to the
    // handler together or one collector after the other.
    assert!(
        (1..=2).contains(&got.len()),
        "one message per batch: {got:?}"
    );
    let mut lines = Vec::new();
    for m in &got {
        let body = m.strip_prefix("metrics ").expect("topic first");
        lines.extend(parse_lines(&(body.replace('|', "\n") + "\n")));
    }
    assert_eq!(lines.len(), 25);
}
