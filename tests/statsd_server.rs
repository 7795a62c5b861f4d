//! The statsd server against etsy statsd 0.9.0 (npm): the same seeded
//! packet streams to both, each flushing to a Graphite listener of the test;
//! the flushed lines compared metric by metric.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Statsd settings as (our TOML, statsd's JS object fields).
struct Variant {
    /// `None`: ours is what `carbyne migrate statsd` makes of statsd's file
    /// (only its addresses moved to free ports).
    toml: Option<&'static str>,
    js: &'static str,
    sentinel: &'static str,
}

const FLUSH_MS: u64 = 2000;

/// Collects what arrives on `l` until a line named `sentinel` has come with
/// a nonzero value, and then the flush after it; returns every line.
fn collect_until(l: &TcpListener, sentinel: &str, limit: Duration) -> Vec<(String, f64, i64)> {
    let text = receive(l.try_clone().expect("clone"), limit, |t| {
        let lines: Vec<&str> = t.lines().collect();
        let hit = lines.iter().position(|x| {
            x.starts_with(&format!("{sentinel} ")) && !x.contains(&format!("{sentinel} 0 "))
        });
        match hit {
            None => false,
            // A later flush (another timestamp on a numStats line) has come too.
            Some(i) => {
                let ts = lines[i].rsplit(' ').next().unwrap_or_default();
                lines[i..]
                    .iter()
                    .any(|x| x.contains("numStats") && !x.ends_with(ts))
            }
        }
    });
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let (n, v, t) = (it.next()?, it.next()?, it.next()?);
            Some((n.to_string(), v.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

/// The flush holding the sentinel, and the one after it, as name -> value.
fn flushes(
    lines: &[(String, f64, i64)],
    sentinel: &str,
) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let ts = lines
        .iter()
        .find(|(n, v, _)| n == sentinel && *v != 0.0)
        .map(|(_, _, t)| *t)
        .expect("the sentinel was flushed");
    let next = lines
        .iter()
        .filter(|(n, _, t)| *t > ts && n.contains("numStats"))
        .map(|(_, _, t)| *t)
        .min();
    let pick = |t: Option<i64>| -> BTreeMap<String, f64> {
        lines
            .iter()
            .filter(|(n, _, lt)| Some(*lt) == t && !timing(n))
            .map(|(n, v, _)| (n.clone(), *v))
            .collect()
    };
    (pick(Some(ts)), pick(next))
}

/// Names whose values depend on timing, not on the packets.
fn timing(name: &str) -> bool {
    ["processing_time", "graphiteStats", "timestamp_lag"]
        .iter()
        .any(|t| name.contains(t))
}

/// A seeded stream: every type, sample rates, gauge deltas, sets, tags, bad lines.
fn packets(seed: u64) -> Vec<String> {
    let mut r = fastrand::Rng::with_seed(seed);
    let keys = [
        "api.hits",
        "lat",
        "lat.db",
        "mem",
        "users",
        "my key/x",
        "ünïcode",
        "a;b",
        "gauge.z",
    ];
    let mut out = Vec::new();
    for _ in 0..300 {
        let mut lines = Vec::new();
        for _ in 0..r.usize(1..6) {
            let k = keys[r.usize(..keys.len())];
            let line = match r.u8(..12) {
                0 | 1 => format!("{k}:{}|c", r.i32(-5..50)),
                2 => format!("{k}:{}|c|@0.{}", r.u32(1..9), r.u32(1..9)),
                3 | 4 => format!("{k}:{}|ms", r.u32(0..1000) as f64 / 4.0),
                5 => format!("{k}:{}|ms|@0.5", r.u32(0..300)),
                6 => format!("{k}:{}|g", r.i32(0..100)),
                7 => format!("{k}:{}{}|g", if r.bool() { "+" } else { "-" }, r.u32(0..20)),
                8 => format!("{k}:u{}|s", r.u32(0..15)),
                9 => format!("{k}:1|c|#env:prod,role:{}", r.u32(0..3)),
                10 => format!("{k}:2|c:3|ms:4|g"),
                _ => [
                    "bad",
                    "x:y|c",
                    "x:1",
                    "x:-1|ms",
                    "x:1|c|@-1",
                    "x:1|c|#",
                    ":1|c",
                    "x:0x10|h",
                ][r.usize(..8)]
                .to_string(),
            };
            lines.push(line);
        }
        out.push(lines.join("\n"));
    }
    out
}

fn run_variant(v: &Variant, seed: u64) {
    let stats_js = peer("node_modules/statsd/stats.js");
    let (ga, gb) = (
        TcpListener::bind("127.0.0.1:0").expect("bind"),
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    );
    let (pa, pb) = (free_udp_port(), free_udp_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let js = format!(
        "{{ port: {pa}, address: \"127.0.0.1\", mgmt_port: {}, mgmt_address: \"127.0.0.1\", \
           graphitePort: {}, graphiteHost: \"127.0.0.1\", flushInterval: {FLUSH_MS}, \
           backends: [\"./backends/graphite\"]{} }}\n",
        free_port(),
        ga.local_addr().expect("addr").port(),
        v.js
    );
    std::fs::write(dir.path().join("statsd.js"), js).expect("js config");
    let _theirs = Child(
        Command::new("node")
            .arg(&stats_js)
            .arg(dir.path().join("statsd.js"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node"),
    );
    // statsd's first flush, then ours starts: our flushes come just after its.
    let first = receive(
        ga.try_clone().expect("clone"),
        Duration::from_secs(15),
        |t| t.contains("numStats"),
    );
    assert!(first.contains("numStats"), "etsy statsd did not start");
    let addresses = format!(
        "[server.statsd]\nlisten = \"127.0.0.1:{pb}\"\nadmin = \"127.0.0.1:{}\"\ngraphite = \"127.0.0.1:{}\"\n",
        free_port(),
        gb.local_addr().expect("addr").port(),
    );
    let config = match v.toml {
        Some(toml) => {
            let file = dir.path().join("carbyne.toml");
            std::fs::write(
                &file,
                format!(
                    "{addresses}flush_interval = {}\n{toml}",
                    FLUSH_MS as f64 / 1000.0
                ),
            )
            .expect("toml config");
            file
        }
        None => {
            let out = dir.path().join("migrated");
            let o = bin()
                .args(["migrate", "--output"])
                .arg(&out)
                .arg("statsd")
                .arg(dir.path().join("statsd.js"))
                .output()
                .expect("carbyne migrate");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let migrated = std::fs::read_to_string(out.join("conf.d/50-server-statsd.toml"))
                .expect("migrated file");
            assert!(
                migrated.contains(&format!("listen = \"127.0.0.1:{pa}\"")),
                "{migrated}"
            );
            // Both cannot listen on one port: only the addresses move.
            std::fs::write(out.join("conf.d/60-ports.toml"), &addresses).expect("ports");
            out
        }
    };
    let _ours = Child(
        bin()
            .args(["server", "--config"])
            .arg(&config)
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne server"),
    );
    let first = receive(
        gb.try_clone().expect("clone"),
        Duration::from_secs(15),
        |t| t.contains("numStats"),
    );
    assert!(first.contains("numStats"), "carbyne server did not start");
    // Both have just flushed: send everything now.
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let start = Instant::now();
    let mut stream = packets(seed);
    stream.push("zz.sentinel:1|c".into());
    for p in &stream {
        sock.send_to(p.as_bytes(), ("127.0.0.1", pa)).expect("send");
        sock.send_to(p.as_bytes(), ("127.0.0.1", pb)).expect("send");
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        start.elapsed() < Duration::from_millis(FLUSH_MS / 2),
        "sending took too long for the flush window"
    );
    let limit = Duration::from_millis(FLUSH_MS * 4);
    let (a, b) = (
        collect_until(&ga, v.sentinel, limit),
        collect_until(&gb, v.sentinel, limit),
    );
    let (ta, tna) = flushes(&a, v.sentinel);
    let (tb, tnb) = flushes(&b, v.sentinel);
    for (name, theirs, ours) in [("data flush", &ta, &tb), ("next flush", &tna, &tnb)] {
        let ka: Vec<&String> = theirs.keys().collect();
        let kb: Vec<&String> = ours.keys().collect();
        assert_eq!(ka, kb, "{name}: the same names");
        for (k, x) in theirs {
            let y = ours[k];
            let close =
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0) || (x.is_nan() && y.is_nan());
            assert!(close, "{name}: {k}: statsd {x}, carbyne {y}");
        }
    }
    assert!(ta.len() > 50, "a real comparison: {} metrics", ta.len());
}

#[test]
fn same_flush_as_etsy_statsd_with_the_defaults() {
    run_variant(
        &Variant {
            toml: Some(""),
            js: "",
            sentinel: "stats_counts.zz.sentinel",
        },
        1,
    );
}

#[test]
fn same_flush_as_etsy_statsd_with_every_naming_option() {
    run_variant(
        &Variant {
            toml: Some("legacy_namespace = false\nglobal_prefix = \"glob\"\nprefix_counter = \"cnt\"\n\
                   prefix_timer = \"tmr\"\nprefix_gauge = \"gge\"\nprefix_set = \"st\"\n\
                   global_suffix = \"sfx\"\nprefix_stats = \"sd\"\n\
                   percent_threshold = [90, -10, 99.5]\n\
                   histogram = [{ metric = \"lat\", bins = [10, 100.5, \"inf\"] }]\n"),
            js: ", prefixStats: \"sd\", percentThreshold: [90, -10, 99.5], \
                 histogram: [{ metric: \"lat\", bins: [10, 100.5, \"inf\"] }], \
                 graphite: { legacyNamespace: false, globalPrefix: \"glob\", prefixCounter: \"cnt\", \
                 prefixTimer: \"tmr\", prefixGauge: \"gge\", prefixSet: \"st\", globalSuffix: \"sfx\" }",
            sentinel: "glob.cnt.zz.sentinel.count.sfx",
        },
        2,
    );
}

#[test]
fn same_flush_as_etsy_statsd_deleting_idle_stats_without_counts() {
    run_variant(
        &Variant {
            toml: Some("delete_idle_stats = true\nflush_counts = false\n"),
            js: ", deleteIdleStats: true, flush_counts: false",
            sentinel: "stats.zz.sentinel",
        },
        3,
    );
}

#[test]
fn same_flush_as_etsy_statsd_on_what_migrate_makes_of_its_config_js() {
    run_variant(
        &Variant {
            toml: None,
            js: ",\n  // statsd's own styles: comments, single quotes, trailing commas\n  \
                 prefixStats: 'sd', percentThreshold: [90, -10, 99.5,],\n  \
                 histogram: [{ metric: 'lat', bins: [10, 100.5, 'inf'] }],\n  \
                 deleteIdleStats: true, deleteCounters: false, flush_counts: false,\n  \
                 graphite: { legacyNamespace: false, globalPrefix: 'glob', prefixCounter: \"\", \
                 prefixTimer: 'tmr', globalSuffix: 'sfx' }, /* the rest as statsd's defaults */",
            sentinel: "glob.zz.sentinel.rate.sfx",
        },
        4,
    );
}

/// Our server alone, with a Graphite listener that may start late.
fn ours(graphite_port: u16, flush: f64) -> (Child, u16, u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (udp, admin) = (free_udp_port(), free_port());
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "[server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             graphite = \"127.0.0.1:{graphite_port}\"\nflush_interval = {flush}\n"
        ),
    )
    .expect("config");
    let child = bin()
        .args(["server", "--config"])
        .arg(dir.path().join("c.toml"))
        .stderr(Stdio::null())
        .spawn()
        .expect("server");
    wait_for_port(admin);
    (Child(child), udp, admin, dir)
}

#[test]
fn management_interface() {
    let (_c, udp, port, _d) = ours(free_port(), 60.0);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(
        b"web.hits:5|c\nweb.mem:7|g\napi.lat:3|ms\nbad",
        ("127.0.0.1", udp),
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(200));
    assert!(statsd_admin(port, "help").starts_with("Commands: stats, counters"));
    assert_eq!(statsd_admin(port, "health"), "health: up\n");
    assert_eq!(statsd_admin(port, "health down"), "health: down\n");
    assert_eq!(statsd_admin(port, "health up"), "health: up\n");
    let stats = statsd_admin(port, "stats");
    assert!(
        stats.contains("messages.bad_lines_seen: 1\n") && stats.ends_with("END\n\n"),
        "{stats}"
    );
    assert!(stats.contains("graphite.last_exception:"), "{stats}");
    assert!(statsd_admin(port, "counters").contains("'web.hits': 5"));
    assert!(statsd_admin(port, "gauges").contains("'web.mem': 7"));
    assert!(statsd_admin(port, "timers").contains("'api.lat': [ 3 ]"));
    assert!(statsd_admin(port, "config").contains("flush_interval: 60"));
    assert_eq!(
        statsd_admin(port, "delcounters web.*"),
        "deleted: web.hits\nEND\n\n"
    );
    assert!(!statsd_admin(port, "counters").contains("web.hits"));
    assert_eq!(statsd_admin(port, "frobnicate"), "ERROR\n");
}

#[test]
fn flushes_wait_for_graphite_and_sigterm_flushes_what_is_left() {
    let gport = free_port();
    let (child, udp, _admin, _d) = ours(gport, 1.0);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(b"early:3|c", ("127.0.0.1", udp))
        .expect("send");
    // Graphite is down for a couple of flushes.
    std::thread::sleep(Duration::from_millis(2500));
    let listener = TcpListener::bind(("127.0.0.1", gport)).expect("late graphite");
    let text = receive(
        listener.try_clone().expect("clone"),
        Duration::from_secs(5),
        |t| t.contains("stats_counts.early 3"),
    );
    assert!(
        text.contains("stats_counts.early 3 "),
        "the held flush arrived: {text}"
    );
    let exc: Vec<f64> = parse_lines(&text)
        .into_iter()
        .filter(|(n, _, _)| n == "stats.statsd.graphiteStats.last_exception")
        .map(|(_, v, _)| v)
        .collect();
    assert!(
        exc.iter().any(|v| *v > 0.0),
        "the failure was recorded: {exc:?}"
    );
    sock.send_to(b"late:4|c", ("127.0.0.1", udp)).expect("send");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child.0, "-TERM");
    let text = receive(listener, Duration::from_secs(5), |t| {
        t.contains("stats_counts.late 4")
    });
    assert!(
        text.contains("stats_counts.late 4 "),
        "SIGTERM flushed: {text}"
    );
}

/// Many senders, spread by the kernel over one socket per core: every line
/// counted once, and each sender's gauge deltas applied in its own order.
#[test]
fn many_senders_over_several_sockets_lose_nothing() {
    const THREADS: usize = 4;
    const DATAGRAMS: usize = 300;
    const LINES: usize = 20;
    let listener = TcpListener::bind("127.0.0.1:0").expect("graphite");
    let gport = listener.local_addr().expect("addr").port();
    let (_child, udp, _admin, _d) = ours(gport, 1.0);
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let socks: Vec<UdpSocket> = (0..2)
                    .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
                    .collect();
                for (i, sock) in socks.iter().enumerate() {
                    sock.send_to(format!("many.g{t}_{i}:1|g").as_bytes(), ("127.0.0.1", udp))
                        .expect("send");
                }
                for d in 0..DATAGRAMS {
                    let mut lines: Vec<String> = (0..LINES)
                        .map(|l| format!("many.k{}:1|c", (d * LINES + l) % 50))
                        .collect();
                    lines.push(format!("many.g{t}_{}:+1|g", d % 2));
                    socks[d % 2]
                        .send_to(lines.join("\n").as_bytes(), ("127.0.0.1", udp))
                        .expect("send");
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let want = (THREADS * DATAGRAMS * LINES) as f64;
    let gauge = 1.0 + (DATAGRAMS / 2) as f64;
    let summed = |t: &str| -> (f64, usize) {
        let lines = parse_lines(t);
        let count = lines
            .iter()
            .filter(|(n, _, _)| n.starts_with("stats_counts.many."))
            .map(|(_, v, _)| v)
            .sum();
        let gauges = lines
            .iter()
            .filter(|(n, v, _)| n.starts_with("stats.gauges.many.") && *v == gauge)
            .map(|(n, _, _)| n)
            .collect::<std::collections::HashSet<_>>()
            .len();
        (count, gauges)
    };
    let text = receive(listener, Duration::from_secs(10), |t| {
        summed(t) == (want, THREADS * 2)
    });
    assert_eq!(summed(&text), (want, THREADS * 2), "{text}");
}
