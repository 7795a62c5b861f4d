//! `[server.web] cluster_servers`: several servers read as one over
//! graphite-web's cluster protocol. Two carbyne servers and one real
//! graphite-web 1.1.10 (served over HTTP) hold parts of the metrics, some
//! of the same metric with different gaps and steps; a carbyne front and
//! a graphite-web front (in-process, CLUSTER_SERVERS) over the same peers
//! and the same local files are asked the same requests, and must answer
//! alike: finds, index.json and renders, merged as graphite-web merges.

mod common;

use common::graphite_web::*;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whisper files for the front (`f`), two carbyne peers (`a`, `b`) and
/// the graphite-web peer (`g`); `now` is the time they end at.
fn make_files(root: &Path) -> i64 {
    let script = r#"
import random, sys, time, whisper, os
root = sys.argv[1]
rnd = random.Random(11)
now = int(time.time())
def make(server, name, archives, points):
    path = os.path.join(root, server, *name.split('.')) + '.wsp'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, archives)
    whisper.update_many(path, points)
def series(step, count, keep, base):
    return [(now - i * step, base + rnd.uniform(0, 10)) for i in range(count) if keep(i)]
for server in 'fabg':
    for kind in ['user', 'system']:
        make(server, 'servers.%s1.cpu.%s' % (server, kind), [(60, 1440)],
             series(60, 1400, lambda i: rnd.random() > 0.1, 0))
# The same metric on every server, each with other gaps and values: the
# front's values first, the gaps filled by the peers in their order.
make('f', 'shared.gaps', [(60, 1440)], series(60, 1400, lambda i: i % 3 == 0, 100))
make('a', 'shared.gaps', [(60, 1440)], series(60, 1400, lambda i: i % 2 == 0, 200))
make('b', 'shared.gaps', [(60, 1440)], series(60, 1400, lambda i: i % 5 != 0, 300))
make('g', 'shared.gaps', [(60, 1440)], series(60, 1400, lambda i: True, 400))
# Another step on a peer: a whole other length replaces the one with gaps.
make('f', 'shared.step', [(60, 1440)], series(60, 1400, lambda i: i % 4 != 0, 500))
make('a', 'shared.step', [(10, 8640)], series(10, 8000, lambda i: True, 600))
make('g', 'shared.step', [(10, 8640)], series(10, 8000, lambda i: True, 700))
# Only on a peer, at a depth the front has no folder for.
make('b', 'only.on.b', [(60, 1440)], series(60, 100, lambda i: True, 0))
make('g', 'only.on.g', [(60, 1440)], series(60, 100, lambda i: True, 0))
# Tagged names the carbyne peers' receivers would have listed.
for server, names in [('a', ['disk.used;dc=east;host=a1', 'disk.used;dc=west;host=a2']),
                      ('b', ['disk.used;dc=north;host=b1', 'cpu;dc=east;rack=r1'])]:
    os.makedirs(os.path.join(root, server, '_tagged'), exist_ok=True)
    with open(os.path.join(root, server, '_tagged', '.names'), 'w') as f:
        f.write(''.join(n + '\n' for n in names))
print(now)
"#;
    make_with_python(script, root)
}

/// graphite-web 1.1.10 served over HTTP on a free port (a cluster peer).
fn serve_graphite_web(whisper: &Path) -> (GraphiteWeb, u16) {
    let port = free_port();
    let gw = GraphiteWeb::start_env(whisper, &[], &[("GRAPHITE_SERVE", port.to_string())]);
    wait_for_port(port);
    (gw, port)
}

const TARGETS: &[&str] = &[
    "servers.*.cpu.user",
    "servers.*.cpu.*",
    "shared.gaps",
    "shared.step",
    "shared.*",
    "only.*.*",
    "sumSeries(servers.*.cpu.user)",
    "groupByNode(servers.*.cpu.*,1,'sum')",
    "aliasByNode(shared.*,1)",
    "timeShift(shared.gaps,'1h')",
    "movingAverage(shared.gaps,5)",
    "divideSeries(shared.gaps,servers.f1.cpu.user)",
    "nosuch.metric",
];

/// The front's finds and renders compared: carbyne's (`port`) against
/// graphite-web's (`gw`), both over the same peers and local files.
/// `only`: whether a peer holding `only.*` answers.
fn compare_fronts(port: u16, gw: &mut GraphiteWeb, now: i64, what: &str, only: bool) {
    let mut failures = Vec::new();
    let now_s = now.to_string();
    for (from, until) in [("-2h", "now"), ("-1d", "-20h")] {
        for t in TARGETS {
            let params = p(&[
                ("target", t),
                ("from", from),
                ("until", until),
                ("now", &now_s),
                ("format", "json"),
            ]);
            let (cs, cb) = http(port, "GET", "/render", &params);
            let (gs, gb) = gw.request("GET", "/render", &params);
            if cs != gs {
                failures.push(format!("{t} {from}: status {cs}, graphite-web {gs}"));
                continue;
            }
            let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
            let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
            if let Err(e) = same(&c, &g, &format!("{t} from {from}")) {
                failures.push(e);
            }
            let none_expected = *t == "nosuch.metric" || (t.starts_with("only") && !only);
            if c.as_array().is_some_and(|a| a.is_empty()) && !none_expected {
                failures.push(format!("{t} from {from}: no series at all"));
            }
        }
    }
    for q in [
        "*",
        "servers.*",
        "shared.*",
        "only.*",
        "only.on.*",
        "servers.*.cpu.*",
    ] {
        // Nodes of the same last segment come in a random order from
        // graphite-web (it shuffles, then sorts by that segment only).
        let ordered = q != "servers.*.cpu.*";
        for format in ["treejson", "completer"].into_iter().filter(|_| ordered) {
            let params = p(&[("query", q), ("format", format)]);
            let (_, cb) = http(port, "GET", "/metrics/find", &params);
            let (_, gb) = gw.request("GET", "/metrics/find", &params);
            let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
            let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
            if let Err(e) = same(&c, &g, &format!("find {q} {format}")) {
                failures.push(e);
            }
        }
        // json: the paths and kinds (intervals run from the time of asking).
        let params = p(&[("query", q), ("format", "json")]);
        let kinds = |b: &[u8]| -> Vec<(String, bool)> {
            let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
            let mut out: Vec<(String, bool)> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| {
                    (
                        n["path"].as_str().unwrap_or("").to_string(),
                        n["is_leaf"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            out.sort();
            out
        };
        let c = kinds(&http(port, "GET", "/metrics/find", &params).1);
        let g = kinds(&gw.request("GET", "/metrics/find", &params).1);
        if c != g || (c.is_empty() && (only || !q.starts_with("only"))) {
            failures.push(format!("find {q} json: {c:?}, graphite-web {g:?}"));
        }
    }
    for (path, params) in [
        ("/tags/autoComplete/tags", vec![]),
        ("/tags/autoComplete/tags", vec![("tagPrefix", "h")]),
        ("/tags/autoComplete/tags", vec![("expr", "dc=east")]),
        ("/tags/autoComplete/tags", vec![("limit", "2")]),
        ("/tags/autoComplete/values", vec![("tag", "dc")]),
        (
            "/tags/autoComplete/values",
            vec![("tag", "host"), ("expr", "name=disk.used")],
        ),
        (
            "/tags/autoComplete/values",
            vec![("tag", "dc"), ("valuePrefix", "e")],
        ),
    ] {
        let params = p(&params);
        let (_, cb) = http(port, "GET", path, &params);
        let (_, gb) = gw.request("GET", path, &params);
        let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
        let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
        if c != g || (only && c.as_array().is_none_or(|a| a.is_empty())) {
            failures.push(format!("{path} {params:?}: {c}, graphite-web {g}"));
        }
    }
    for q in ["servers.*", "shared.*", "only.*.*"] {
        let params = p(&[("query", q), ("query", "nosuch.*")]);
        let (_, cb) = http(port, "GET", "/metrics/expand", &params);
        let (_, gb) = gw.request("GET", "/metrics/expand", &params);
        let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
        let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
        if c != g {
            failures.push(format!("expand {q}: {c}, graphite-web {g}"));
        }
    }
    let (_, cb) = http(port, "GET", "/metrics/index.json", &[]);
    let (_, gb) = gw.request("GET", "/metrics/index.json", &[]);
    let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
    let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
    if c != g {
        failures.push(format!("index.json: {c}, graphite-web {g}"));
    }
    assert!(
        failures.is_empty(),
        "{what}: {} differences from graphite-web:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_cluster_reads_as_graphite_webs_cluster_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("whisper");
    let now = make_files(&root);
    let dir = |s: &str| root.join(s);
    let conf = |s: &str| {
        let d = tmp.path().join(format!("conf-{s}"));
        std::fs::create_dir_all(&d).expect("conf dir");
        d
    };
    let (_a, a) = start_carbyne(&conf("a"), &dir("a"), "");
    let (_b, b) = start_carbyne(&conf("b"), &dir("b"), "");
    let (_g, g) = serve_graphite_web(&dir("g"));
    let dead = free_port();

    // A peer's own answer (local=1) holds its files only.
    let (_, body) = http(a, "GET", "/metrics/index.json", &p(&[("local", "1")]));
    let own: Value = serde_json::from_slice(&body).expect("index");
    assert!(own.as_array().is_some_and(|l| l.iter().all(|n| {
        let n = n.as_str().unwrap_or("");
        n.starts_with("servers.a1.") || n.starts_with("shared.")
    })));

    for (what, peers) in [
        ("two carbyne peers", vec![a, b]),
        ("a carbyne and a graphite-web peer", vec![a, g]),
    ] {
        let list: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let extra = format!("cluster_servers = {list:?}\n");
        let (_front, port) =
            start_carbyne(&conf(&format!("front-{}", peers[1])), &dir("f"), &extra);
        let mut gw = GraphiteWeb::start_env(
            &dir("f"),
            &[],
            &[("GRAPHITE_CLUSTER_SERVERS", list.join(","))],
        );
        compare_fronts(port, &mut gw, now, what, true);
    }

    // A peer that is down: the others' answer, at once the second time
    // (left out for cluster_retry_delay), as graphite-web answers.
    let list = vec![format!("127.0.0.1:{a}"), format!("127.0.0.1:{dead}")];
    let extra = format!("cluster_servers = {list:?}\ncluster_fetch_timeout = 2.0\n");
    let (_front, port) = start_carbyne(&conf("front-dead"), &dir("f"), &extra);
    let mut gw = GraphiteWeb::start_env(
        &dir("f"),
        &[],
        &[("GRAPHITE_CLUSTER_SERVERS", list.join(","))],
    );
    compare_fronts(port, &mut gw, now, "a carbyne peer and a dead one", false);
    let t = Instant::now();
    let (status, _) = http(
        port,
        "GET",
        "/render",
        &p(&[("target", "shared.gaps"), ("format", "json")]),
    );
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A fake cluster server on a free port: `answer` writes what it sends
/// to each connection (after reading the request's head). Also how many
/// connections it had.
fn fake_peer(answer: fn(&mut std::net::TcpStream)) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(20) {
            let Ok(mut conn) = conn else { continue };
            seen.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || {
                let mut head = [0u8; 4096];
                let _ = std::io::Read::read(&mut conn, &mut head);
                answer(&mut conn);
            });
        }
    });
    (port, count)
}

/// A pickled render answer of one series, as a peer might send it.
fn pickled_series(name: &str, start: i64, step: i64, values: &[f64]) -> Vec<u8> {
    let mut p = carbyne::server::carbon::pickle::Pickler::default();
    p.list_start();
    p.dict_start();
    for (k, v) in [("name", name), ("pathExpression", "shared.*")] {
        p.string(k);
        p.string(v);
    }
    for (k, v) in [("start", start), ("end", 1 << 62), ("step", step)] {
        p.string(k);
        p.int(v);
    }
    p.string("values");
    p.list_start();
    for v in values {
        p.float(*v);
    }
    p.list_end();
    p.dict_end();
    p.list_end();
    p.finish()
}

#[test]
fn broken_cluster_servers_cost_a_timeout_and_nothing_else() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("whisper");
    make_files(&root);
    // Garbage with a 200; a pickle that names a class it may not; one that
    // never answers; one that sends without end.
    let garbage = fake_peer(|c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot a pkl");
    });
    let class = fake_peer(|c| {
        let body = b"\x80\x02cos\nsystem\n)\x81.";
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = c.write_all(body);
    });
    let silent = fake_peer(|_| std::thread::sleep(Duration::from_secs(30)));
    // Series whose step is 0, or whose end lies far past their values.
    let step0 = fake_peer(|c| {
        let body = pickled_series("shared.gaps", 0, 0, &[1.0]);
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = c.write_all(&body);
    });
    let far = fake_peer(|c| {
        let body = pickled_series("shared.far", 0, 1, &[1.0, 2.0]);
        let _ = write!(
            c,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = c.write_all(&body);
    });
    let endless = fake_peer(|c| {
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\n\r\n\x80\x02]q\x00(");
        let chunk = vec![b'N'; 1 << 16];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) && c.write_all(&chunk).is_ok() {}
    });
    let list: Vec<String> = [&garbage, &class, &silent, &endless, &step0, &far]
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.0))
        .collect();
    let extra = format!(
        "max_points_per_request = 100000\ncluster_servers = {list:?}\ncluster_fetch_timeout = 2.0\ncluster_find_timeout = 2.0\n"
    );
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    let (mut front, port) = start_carbyne(&conf, &root.join("f"), &extra);
    let t = Instant::now();
    let (status, body) = http(
        port,
        "GET",
        "/render",
        &p(&[
            ("target", "shared.*"),
            ("from", "-1h"),
            ("format", "json"),
            ("maxDataPoints", "5"),
        ]),
    );
    let took = t.elapsed();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).expect("json");
    let names: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["target"].as_str())
        .collect();
    // The front's own series, and the far one (cut to the end of its values).
    assert_eq!(names, ["shared.far", "shared.gaps", "shared.step"]);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Left out now: the next request does not wait for them.
    let t = Instant::now();
    let (status, _) = http(port, "GET", "/metrics/find", &p(&[("query", "*")]));
    assert_eq!(status, 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Every broken one was asked once: each is left out after its first answer.
    for (what, peer) in [
        ("garbage", &garbage),
        ("a class", &class),
        ("step 0", &step0),
    ] {
        assert_eq!(peer.1.load(Ordering::Relaxed), 1, "{what}: asked again");
    }
    let rss = std::fs::read_to_string(format!("/proc/{}/status", front.0.id()))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB");
    assert!(
        front.0.try_wait().expect("wait").is_none(),
        "the front runs on"
    );
}

#[test]
fn cluster_settings_that_cannot_work_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (extra, key) in [
        ("cluster_servers = [\"ftp://h:1\"]", "cluster_servers"),
        (
            "cluster_servers = [\"h:8080/?noTags=1\"]",
            "cluster_servers",
        ),
        ("cluster_servers = [\"h:0\"]", "cluster_servers"),
        ("cluster_fetch_timeout = 1e300", "cluster_fetch_timeout"),
        ("request_timeout = 1e300", "request_timeout"),
        (
            "cluster_servers = [\"h:8080\"]\nrequest_timeout = 2.0",
            "request_timeout",
        ),
    ] {
        let cfg = tmp.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("state_dir = \"/tmp\"\n[server.web]\nstorage_dir = \"/tmp\"\n{extra}\n"),
        )
        .expect("config");
        let out = bin()
            .args(["config", "check", "--config"])
            .arg(&cfg)
            .output()
            .expect("carbyne");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}: accepted");
        assert!(err.contains(&format!("server.web.{key}")), "{extra}: {err}");
    }
}
