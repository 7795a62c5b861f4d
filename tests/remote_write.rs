//! remote_write into the real receivers, started here: Prometheus 2.42
//! (`--web.enable-remote-write-receiver`) and VictoriaMetrics (both
//! Debian's, installed by tests/run.sh). A known sequence (two agent runs
//! over fixture /proc trees) must be found in both, every sample with its
//! labels and value; a receiver down for a while gets everything once it
//! is back; one answering 400 costs its own samples only.

mod common;

use common::prom::{query, query_until, start_prometheus_with};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The collectors on by default that these tests leave out.
const OTHERS: &[&str] = &[
    "diskspace",
    "diskusage",
    "entropy",
    "filestat",
    "mountstats",
    "network",
    "pressure",
    "sockstat",
    "tcp",
    "udp",
    "uptime",
    "vmstat",
];

fn only_some_collectors() -> String {
    OTHERS
        .iter()
        .map(|c| format!("[collectors.{c}]\nenabled = false\n"))
        .collect()
}

const MAPPING: &str =
    "mappings:\n- match: servers.*.proc.*\n  name: carbyne_proc_$2\n  labels: {host: \"$1\"}\n";

fn start_prometheus_receiver(dir: &std::path::Path, port: u16) -> Child {
    start_prometheus_with(dir, &[], &["--web.enable-remote-write-receiver"], port).0
}

fn start_victoria(dir: &std::path::Path) -> (Child, u16) {
    let port = free_port();
    let child = Child(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg("-retentionPeriod=1")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("victoria-metrics (tests/run.sh installs Debian's)"),
    );
    wait_for_port(port);
    (child, port)
}

/// Every sample VictoriaMetrics holds of the series matching `selector`:
/// labels (without `__name__`, which leads the key) -> [(ms, value)].
fn victoria_export(port: u16, selector: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let _ = prom::get(port, "/internal/force_flush");
    let q: String = form_urlencoded::byte_serialize(selector.as_bytes()).collect();
    let body = prom::get(port, &format!("/api/v1/export?match[]={q}")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("export line");
        let m = v["metric"].as_object().expect("metric");
        let mut key = m["__name__"].as_str().unwrap_or("").to_string();
        let labels: BTreeMap<&String, &str> = m
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k, v.as_str().unwrap_or("")))
            .collect();
        key.push_str(&format!("{labels:?}"));
        let ts = v["timestamps"].as_array().expect("timestamps");
        let vals = v["values"].as_array().expect("values");
        let mut points: Vec<(i64, f64)> = ts
            .iter()
            .zip(vals)
            .map(|(t, v)| (t.as_i64().unwrap_or(0), v.as_f64().unwrap_or(f64::NAN)))
            .collect();
        points.sort_by_key(|p| p.0);
        out.insert(key, points);
    }
    out
}

/// The same from Prometheus: a range selector over the last 10 minutes.
fn prometheus_export(port: u16, selector: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out = BTreeMap::new();
    for s in query(port, &format!("{selector}[10m]")) {
        let m = s["metric"].as_object().expect("metric");
        let mut key = m["__name__"].as_str().unwrap_or("").to_string();
        let labels: BTreeMap<&String, &str> = m
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k, v.as_str().unwrap_or("")))
            .collect();
        key.push_str(&format!("{labels:?}"));
        let points = s["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64,
                    p[1].as_str()
                        .unwrap_or("")
                        .parse::<f64>()
                        .unwrap_or(f64::NAN),
                )
            })
            .collect();
        out.insert(key, points);
    }
    out
}

/// The config: `top` (keys before any table), a few collectors, `handlers`.
/// The same points: timestamps equal, values equal to VictoriaMetrics'
/// precision (it keeps 12 significant decimal digits).
fn same_points(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ta, va), (tb, vb))| {
            ta == tb && (va - vb).abs() <= 1e-11 * va.abs().max(vb.abs())
        })
}

fn same(a: &BTreeMap<String, Vec<(i64, f64)>>, b: &BTreeMap<String, Vec<(i64, f64)>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, pa)| b.get(k).is_some_and(|pb| same_points(pa, pb)))
}

fn write_config(
    dir: &std::path::Path,
    proc: &str,
    top: &str,
    handlers: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("mapping.yml"), MAPPING).expect("mapping");
    config_dir(
        dir,
        proc,
        &format!("{top}{}{handlers}", only_some_collectors()),
    )
}

fn rw_handler(name: &str, port: u16, path: &str, dir: &std::path::Path) -> String {
    format!(
        "[handlers.{name}]\ntype = \"remote_write\"\nurl = \"http://127.0.0.1:{port}{path}\"\n\
         max_backoff = 0.5\nmapping_file = {:?}\n\
         external_labels = {{ instance = \"testhost:9100\", job = \"node\" }}\n",
        dir.join("mapping.yml")
    )
}

/// The agent as a daemon on `cfg`.
fn start_agent(cfg: &std::path::Path) -> Child {
    Child(
        bin()
            .args(["agent", "--config", cfg.to_str().expect("path")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne"),
    )
}

/// Waits (45 s at most) until the Prometheus at `port` holds `node_load1`
/// samples for about every second since `started`: the time of the first,
/// and how many there are.
fn first_load_sample(port: u16, started: i64) -> (i64, usize) {
    query_until(port, "count_over_time(node_load1[5m])", |r| {
        r.first()
            .and_then(|s| s["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|n| n as i64 >= now() - started - 2)
    });
    let points = prometheus_export(port, "node_load1");
    let series = points.values().next();
    (
        series
            .and_then(|p| p.first())
            .map(|p| p.0 / 1000)
            .unwrap_or(i64::MAX),
        series.map_or(0, Vec::len),
    )
}

#[test]
fn a_known_sequence_reaches_prometheus_and_victoriametrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let _prometheus = start_prometheus_receiver(dir.path(), prom_port);
    wait_for_port(prom_port);
    let (_vm, vm_port) = start_victoria(dir.path());
    let handlers = format!(
        "{}{}",
        rw_handler("prom", prom_port, "/api/v1/write", dir.path()),
        rw_handler("vm", vm_port, "/api/v1/write", dir.path())
    );
    let mut stamps = Vec::new();
    for proc in ["proc/server-a", "proc/server-b"] {
        let cfg = write_config(dir.path(), proc, "", &handlers);
        let before = now();
        let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = now();
        stamps.push(before);
        // The run's timestamp is in before..=after: the next run starts in
        // a later second.
        while now() <= after {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let selector = "{job=\"node\"}";
    let theirs = query_until(prom_port, "count({job=\"node\"})", |r| !r.is_empty());
    assert!(!theirs.is_empty(), "Prometheus has nothing");
    let start = Instant::now();
    let (mut p, mut v) = (BTreeMap::new(), BTreeMap::new());
    while start.elapsed() < Duration::from_secs(30) {
        p = prometheus_export(prom_port, selector);
        v = victoria_export(vm_port, selector);
        if !p.is_empty() && same(&p, &v) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(p.len() > 40, "{:?}", p.keys());
    // Both receivers hold the same series with the same samples.
    let only_p: BTreeSet<_> = p.keys().filter(|k| !v.contains_key(*k)).collect();
    let only_v: BTreeSet<_> = v.keys().filter(|k| !p.contains_key(*k)).collect();
    assert!(
        only_p.is_empty() && only_v.is_empty(),
        "Prometheus only {only_p:?}, VictoriaMetrics only {only_v:?}"
    );
    let differ: Vec<_> = p
        .iter()
        .filter(|(k, pts)| !same_points(pts, &v[*k]))
        .map(|(k, pts)| format!("{k}: Prometheus {pts:?}, VictoriaMetrics {:?}", v[k]))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");

    // Known values, at both runs' timestamps, with the external labels.
    let at = |key: &str| -> Vec<f64> {
        let pts = p
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {:?}", p.keys()));
        for (ts, _) in pts {
            assert!(
                stamps.iter().any(|s| (ts / 1000 - s).abs() <= 1),
                "{key} at {ts}"
            );
        }
        pts.iter().map(|(_, v)| *v).collect()
    };
    assert_eq!(
        at("node_load1{\"instance\": \"testhost:9100\", \"job\": \"node\"}"),
        [0.52, 0.40]
    );
    assert_eq!(
        at("node_cpu_seconds_total{\"cpu\": \"0\", \"instance\": \"testhost:9100\", \"job\": \"node\", \"mode\": \"user\"}"),
        [25.0, 29.0]
    );
    assert_eq!(
        at("carbyne_proc_procs_running{\"host\": \"testhost\", \"instance\": \"testhost:9100\", \"job\": \"node\"}"),
        [3.0, 2.0]
    );
    // The Graphite names of collectors with node_exporter families are
    // hidden from Prometheus; others (the agent's own) are mapped, without
    // the agent's `servers.testhost.` (hosts differ by `instance`).
    for hidden in ["cpu_", "loadavg_", "memory_", "servers_testhost_"] {
        assert!(
            !p.keys().any(|k| k.starts_with(hidden)),
            "{hidden} in {:?}",
            p.keys()
        );
    }
    assert!(p.keys().any(|k| k.starts_with("carbyne_collectors_cpu_")));
}

#[test]
fn a_receiver_down_for_a_while_gets_everything_once_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let handlers = rw_handler("prom", prom_port, "/api/v1/write", dir.path());
    let cfg = write_config(
        dir.path(),
        "proc/server-a",
        "interval = 1\nflush_timeout = 5\n",
        &handlers,
    );
    let started = now();
    let _agent = start_agent(&cfg);
    // Nothing listens for the first seconds.
    std::thread::sleep(Duration::from_secs(5));
    let up = now();
    let _prometheus = start_prometheus_receiver(dir.path(), prom_port);
    let (first, n) = first_load_sample(prom_port, started);
    assert!(
        first <= up - 3,
        "the first sample is from {first}, the receiver came up at {up} ({n} samples)"
    );
    assert!(
        n as i64 >= up - started - 1,
        "{n} samples over {} s",
        now() - started
    );
}

/// The requests a test server was sent: head and body.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// Answers every request with `400 Bad Request`, keeping each request's
/// head and body.
fn refusing_server() -> (u16, Requests) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(200) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut raw = Vec::new();
            let mut buf = [0u8; 65536];
            let mut want: Option<usize> = None;
            loop {
                if let Some(w) = want {
                    if raw.len() >= w {
                        break;
                    }
                }
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
                if want.is_none() {
                    if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        want = Some(end + 4 + len);
                    }
                }
            }
            let end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(raw.len());
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let body = raw.get(end + 4..).unwrap_or_default().to_vec();
            keep.lock().expect("lock").push((head, body));
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 10\r\nConnection: close\r\n\r\nout of ord",
            );
        }
    });
    (port, seen)
}

#[test]
fn a_receiver_answering_400_costs_only_its_own_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let _prometheus = start_prometheus_receiver(dir.path(), prom_port);
    wait_for_port(prom_port);
    let (bad_port, seen) = refusing_server();
    let handlers = format!(
        "{}{}basic_auth_username = \"agent\"\nbasic_auth_password = \"s3cret\"\nmax_samples_per_send = 10\n",
        rw_handler("prom", prom_port, "/api/v1/write", dir.path()),
        rw_handler("bad", bad_port, "/receive", dir.path()),
    );
    let cfg = write_config(dir.path(), "proc/server-a", "", &handlers);
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The refusing receiver fails the run, by name; the good one is whole.
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bad") && stderr.contains("rejected"),
        "{stderr}"
    );
    assert!(!stderr.contains("handlers.prom"), "{stderr}");
    let found = query_until(prom_port, "count({job=\"node\"})", |r| !r.is_empty());
    let n: f64 = found
        .first()
        .and_then(|s| s["value"][1].as_str()?.parse().ok())
        .unwrap_or(0.0);
    assert!(n > 40.0, "{found:?}");

    // What the refusing one was sent: remote_write 1.0, in batches of 10.
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.len() >= 4, "{} requests", seen.len());
    let mut series = 0;
    for (head, body) in &seen {
        let h = head.to_ascii_lowercase();
        assert!(h.starts_with("post /receive http/1.1"), "{head}");
        for want in [
            "content-encoding: snappy",
            "content-type: application/x-protobuf",
            "x-prometheus-remote-write-version: 0.1.0",
            // agent:s3cret
            "authorization: basic ywdlbnq6cznjcmv0",
        ] {
            assert!(h.contains(want), "{want} in {head}");
        }
        let req = carbyne::prometheus::remote::decode(body).expect("a WriteRequest");
        let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
        assert!(samples <= 10 && samples > 0);
        for ts in &req.timeseries {
            let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            assert_eq!(names[0], "__name__");
            let mut sorted = names[1..].to_vec();
            sorted.sort();
            assert_eq!(names[1..], sorted[..]);
            assert!(names.contains(&"instance") && names.contains(&"job"));
        }
        series += req.timeseries.len();
    }
    assert_eq!(series as f64, n, "the same series went to both");
}

#[test]
fn tls_to_a_prometheus_with_its_certificate_in_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (tests/run.sh installs it)");
    assert!(made.success());
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {:?}\n  key_file: {:?}\n",
            d.join("cert.pem"),
            d.join("key.pem")
        ),
    )
    .expect("web config");
    let web = format!("--web.config.file={}", d.join("web.yml").display());
    let port = free_port();
    let _prometheus =
        start_prometheus_with(d, &[], &["--web.enable-remote-write-receiver", &web], port);
    wait_for_port(port);
    let handler = |ca: &str| {
        format!(
            "[handlers.tls]\ntype = \"remote_write\"\nurl = \"https://127.0.0.1:{port}/api/v1/write\"\n\
             max_backoff = 0.2\n{ca}external_labels = {{ job = \"tls\" }}\n"
        )
    };
    // Without the certificate the server is not trusted: nothing is sent.
    let cfg = write_config(d, "proc/server-a", "flush_timeout = 2\n", &handler(""));
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        !out.status.success(),
        "an untrusted certificate was accepted"
    );
    let ca = format!("ca_file = {:?}\n", d.join("cert.pem"));
    let cfg = write_config(d, "proc/server-a", "", &handler(&ca));
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus's own API is behind the same TLS: ask it with curl.
    let start = Instant::now();
    let mut body = String::new();
    while start.elapsed() < Duration::from_secs(30) {
        let o = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(d.join("cert.pem"))
            .arg(format!(
                "https://127.0.0.1:{port}/api/v1/query?query=node_load1%7Bjob%3D%22tls%22%7D"
            ))
            .output()
            .expect("curl");
        body = String::from_utf8_lossy(&o.stdout).into_owned();
        if body.contains("0.52") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(body.contains("\"0.52\""), "{body}");
}

#[test]
fn a_reload_while_the_receiver_is_down_hands_the_queue_to_the_new_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    let handlers = rw_handler("prom", prom_port, "/api/v1/write", dir.path());
    let cfg = write_config(
        dir.path(),
        "proc/server-a",
        "interval = 1\nflush_timeout = 1\n",
        &handlers,
    );
    let started = now();
    let agent = start_agent(&cfg);
    std::thread::sleep(Duration::from_secs(3));
    // The section changes while nothing listens: the handler restarts.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, format!("{text}max_shards = 2\n")).expect("config");
    signal(&agent.0, "-HUP");
    std::thread::sleep(Duration::from_secs(3));
    let _prometheus = start_prometheus_receiver(dir.path(), prom_port);
    let (first, n) = first_load_sample(prom_port, started);
    assert!(
        first <= started + 2,
        "the first sample is from {first}; the agent started at {started}: the queue before the reload was lost"
    );
    assert!(
        n as i64 >= now() - started - 3,
        "{n} samples over {} s",
        now() - started
    );
}
