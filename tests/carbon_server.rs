//! The carbon receiver against carbon-cache 1.1.10 (PyPI): the same seeded
//! stream of plaintext lines to both, then every file each wrote compared:
//! the same set of files, the same headers, the same points in every
//! archive.

mod common;

use carbyne::whisper::Whisper;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCHEMAS: &str = "\
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[web]
pattern = ^web\\.
retentions = 10s:30m,1m:6h,10m:2d

[tagged]
pattern = ;env=
retentions = 10:360,60:1440

[default]
pattern = .*
retentions = 60s:1d,5m:7d
";

const AGGREGATION: &str = "\
[min]
pattern = \\.min$
xFilesFactor = 0.1
aggregationMethod = min

[max]
pattern = \\.max$
xFilesFactor = 0.1
aggregationMethod = max

[sum]
pattern = \\.count$
xFilesFactor = 0
aggregationMethod = sum

[last]
pattern = ^web\\..*\\.last
aggregationMethod = last
";

/// Lines over many names (every schema and aggregation rule, tagged names
/// with unsorted tags), timestamps out of order, duplicates, NaN.
fn stream(seed: u64, now: i64) -> Vec<String> {
    let mut r = Rng(seed);
    let names: Vec<String> = (0..120)
        .map(|i| match i % 8 {
            0 => format!("web.host{i}.requests.count"),
            1 => format!("web.host{i}.latency.min"),
            2 => format!("web.host{i}.latency.max"),
            3 => format!("web.host{i}.queue.last"),
            4 => format!("db.node{i}.load"),
            5 => format!("app{i}.errors.count"),
            6 => format!("svc.m{i};env=prod;dc=dc{}", i % 3),
            _ => format!("svc.n{i};role=web;env=dev"),
        })
        .collect();
    let mut out = Vec::new();
    for _ in 0..4000 {
        let name = &names[r.below(names.len() as u64) as usize];
        // Within the finest archives' retention, in no order, on whole
        // minutes: two points in one slot are then the same timestamp, whose
        // last value wins whichever way the writes are batched. (Different
        // timestamps in one slot keep the highest within a write but the
        // latest across writes, which depends on timing, in carbon too.)
        let ts = (now - 5 - r.below(3000) as i64) / 60 * 60;
        // A point just inside the finest web archive (30 minutes) when
        // generated may be outside it by the time one of the two writes it:
        // whisper then puts it straight into the minute archive instead of
        // propagating it, which depends on when each writes. Keep points off
        // that edge by more than carbon-cache takes to write everything on a
        // loaded machine (over a minute was seen).
        let ts = if (1500..=1800).contains(&(now - ts)) {
            ts - 360
        } else {
            ts
        };
        let value = (r.below(100_000) as f64) / 100.0 - 200.0;
        out.push(format!("{name} {value} {ts}"));
        if r.below(20) == 0 {
            // The same timestamp again, another value.
            out.push(format!("{name} {} {ts}", value + 1.0));
        }
        if r.below(100) == 0 {
            out.push(format!("{name} nan {ts}"));
        }
    }
    out
}

/// carbon's pickle messages for `lines`, as Python's pickle module writes
/// them (protocol 2, 500 points a message, `!L` length prefix).
fn pickle_frames(lines: &[String]) -> Vec<u8> {
    let script = "import pickle, struct, sys\n\
        pts = []\n\
        for l in sys.stdin:\n\
        \x20   n, v, t = l.split()\n\
        \x20   pts.append((n, (int(t), float(v))))\n\
        for i in range(0, len(pts), 500):\n\
        \x20   p = pickle.dumps(pts[i:i + 500], protocol=2)\n\
        \x20   sys.stdout.buffer.write(struct.pack('!L', len(p)) + p)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = lines.join("\n") + "\n";
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 output");
    writer.join().expect("writer").expect("write");
    assert!(out.status.success(), "pickling failed");
    out.stdout
}

/// A running carbon-cache of a small cluster.
struct Cache {
    _child: Child,
    storage: PathBuf,
    line: u16,
    pickle: u16,
}

/// Two carbon-caches on carbon's default schema, storing under `dir`/a and
/// `dir`/b (their relay rules, if any, go in `dir`/conf).
fn two_carbon_caches(dir: &Path) -> [Cache; 2] {
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    ["a", "b"].map(|n| {
        let storage = dir.join(n);
        let (child, line, pickle, _) = start_carbon_cache(&conf, &storage, "");
        Cache {
            _child: child,
            storage,
            line,
            pickle,
        }
    })
}

/// Header and every archive's points over its whole retention, at `now`.
type Contents = (String, Vec<Vec<Option<f64>>>);

fn contents(path: &Path, now: i64) -> Contents {
    let w = Whisper::open(path, false).expect("open");
    let h = &w.header;
    let head = format!(
        "{:?} xff={} {:?}",
        h.aggregation,
        h.x_files_factor,
        h.archives
            .iter()
            .map(|a| (a.seconds_per_point, a.points))
            .collect::<Vec<_>>()
    );
    let archives = h
        .archives
        .iter()
        .map(|a| {
            w.archive_fetch(a, now - a.retention() as i64, now)
                .expect("fetch")
                .values
        })
        .collect();
    (head, archives)
}

#[test]
fn same_files_and_points_as_carbon_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (theirs, ours) = (dir.path().join("carbon"), dir.path().join("carbyne"));
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("storage-schemas.conf"), SCHEMAS).expect("schemas");
    std::fs::write(conf.join("storage-aggregation.conf"), AGGREGATION).expect("aggregation");
    let (oport, opickle) = (free_port(), free_port());
    let (_carbon, cport, cpickle, _) = start_carbon_cache(&conf, &theirs, "");
    std::fs::write(
        dir.path().join("carbyne.toml"),
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{oport}\"\npickle_listen = \"127.0.0.1:{opickle}\"\n\
             storage_dir = {:?}\n\
             schemas = {:?}\naggregation = {:?}\ncarbon_metric_interval = 0\nwriters = 2\n",
            ours,
            conf.join("storage-schemas.conf"),
            conf.join("storage-aggregation.conf"),
        ),
    )
    .expect("carbyne.toml");
    let mut child = bin()
        .args(["server", "--config"])
        .arg(dir.path().join("carbyne.toml"))
        .stderr(Stdio::null())
        .spawn()
        .expect("carbyne server");
    wait_for_port(cport);
    wait_for_port(oport);

    wait_for_port(cpickle);
    wait_for_port(opickle);
    let now = now();
    // The web.* names go as pickles (Python's own pickle.dumps), the rest as
    // lines; one connection each: across connections the order of two
    // values for one timestamp would be a race, in carbon as in carbyne.
    let (pickled, plain): (Vec<String>, Vec<String>) = stream(7, now)
        .into_iter()
        .partition(|l| l.starts_with("web."));
    send(cport, &plain);
    send(oport, &plain);
    let frames = pickle_frames(&pickled);
    for port in [cpickle, opickle] {
        TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut c| c.write_all(&frames))
            .expect("send pickles");
    }
    std::thread::sleep(Duration::from_millis(500));
    // carbyne writes everything it holds on SIGTERM; carbon-cache on its own time.
    signal(&child, "-TERM");
    let exited = child.wait().expect("wait");
    assert!(exited.success(), "carbyne server: {exited}");
    settled(&theirs);

    let (a, b) = (files(&theirs), files(&ours));
    assert_eq!(a, b, "the same files");
    assert!(a.len() >= 100, "a real comparison: {} files", a.len());
    assert!(
        a.iter().any(|p| p.starts_with("_tagged")),
        "tagged series were stored: {a:?}"
    );
    let mut points = 0;
    let mut differ: BTreeMap<String, String> = BTreeMap::new();
    for f in &a {
        let (x, y) = (contents(&theirs.join(f), now), contents(&ours.join(f), now));
        if x.0 != y.0 {
            differ.insert(f.display().to_string(), format!("{} vs {}", x.0, y.0));
            continue;
        }
        for (i, (pa, pb)) in x.1.iter().zip(&y.1).enumerate() {
            points += pa.iter().flatten().count();
            let same = pa.len() == pb.len()
                && pa.iter().zip(pb).all(|(p, q)| match (p, q) {
                    (Some(p), Some(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                    (None, None) => true,
                    _ => false,
                });
            if !same {
                let slots: Vec<String> = pa
                    .iter()
                    .zip(pb)
                    .enumerate()
                    .filter(|(_, (p, q))| p != q)
                    .map(|(k, (p, q))| format!("slot {k}: carbon {p:?}, carbyne {q:?}"))
                    .collect();
                differ.insert(format!("{} archive {i}", f.display()), slots.join("; "));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} files differ: {differ:#?}",
        differ.len()
    );
    assert!(points > 3000, "a real comparison: {points} points");
}

fn ours(dir: &Path, extra: &str) -> (std::process::Child, u16) {
    let port = free_port();
    std::fs::write(
        dir.join("carbyne.toml"),
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = {:?}\n{extra}",
            dir.join("whisper")
        ),
    )
    .expect("carbyne.toml");
    let child = bin()
        .args(["server", "--config"])
        .arg(dir.join("carbyne.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("carbyne server");
    wait_for_port(port);
    (child, port)
}

/// SIGTERM while points pour in and the writer is behind (one update a
/// millisecond): every point a client sent before the signal is in the
/// files when the server exits; lines it could not read are counted and
/// logged, never fatal.
#[test]
fn sigterm_under_load_writes_every_point_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, port) = ours(
        dir.path(),
        "max_updates_per_second = 1000\ncreate = \"sparse\"\ncarbon_metric_interval = 0\n",
    );
    let now = now() / 60 * 60;
    let mut sent = BTreeMap::new();
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut text = String::new();
    for i in 0..20_000i64 {
        let (name, ts) = (format!("load.m{}", i % 2000), now - 60 * (i / 2000));
        text.push_str(&format!("{name} {i} {ts}\n"));
        sent.insert((name, ts), i as f64);
    }
    text.push_str("bad line here\n../escape 1 1\n");
    c.write_all(text.as_bytes()).expect("send");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.send_to(
        format!("load.udp 7 {now}\n").as_bytes(),
        ("127.0.0.1", port),
    )
    .expect("udp send");
    sent.insert(("load.udp".to_string(), now), 7.0);
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line rejected"), "{err}");

    let root = dir.path().join("whisper");
    assert_points_written(
        &root,
        sent.iter().map(|((name, ts), v)| (name.as_str(), *ts, *v)),
    );
    assert!(!root.join("escape.wsp").exists() && !dir.path().join("escape.wsp").exists());
}

/// The receiver's own metrics go into the store, under carbon's names.
#[test]
fn own_metrics_are_stored_as_carbon_names_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = ours(dir.path(), "carbon_metric_interval = 1\ninstance = \"b\"\n");
    send(port, &[format!("x.y 1 {}", now())]);
    let agents = dir.path().join("whisper/carbon/agents");
    // Files appear one by one as the writer creates them: wait for all.
    let want = [
        "metricsReceived",
        "committedPoints",
        "updateOperations",
        "creates",
        "errors",
        "cache/size",
        "cache/queues",
    ];
    let start = Instant::now();
    let found = loop {
        let names: Vec<PathBuf> = files(&agents);
        let hosts: BTreeSet<PathBuf> = names
            .iter()
            .filter_map(|p| p.iter().next().map(PathBuf::from))
            .collect();
        let complete = hosts.iter().find(|h| {
            want.iter()
                .all(|m| names.contains(&h.join(format!("{m}.wsp"))))
        });
        if let Some(host) = complete {
            break (host.clone(), hosts.len());
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{names:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let (host, hosts) = found;
    assert_eq!(hosts, 1, "one agent directory");
    assert!(host.to_string_lossy().ends_with("-b"), "{host:?}");
}

/// The consistent-hash ring places thousands of names exactly where carbon
/// 1.1.10's ConsistentHashingRouter does, for several clusters and
/// replication settings.
#[test]
fn ring_places_metrics_where_carbon_does() {
    let clusters: [&[&str]; 3] = [
        &["127.0.0.1:2004"],
        &[
            "10.0.0.1:2004:a",
            "10.0.0.1:2104:b",
            "10.0.0.2:2004:a",
            "10.0.0.3:2004",
        ],
        &[
            "carbon-1:2004:a",
            "carbon-2:2004:a",
            "carbon-3:2004:a",
            "carbon-4:2004:a",
            "carbon-5:2004:a",
            "carbon-6:2004:a",
            "carbon-7:2004:b",
        ],
    ];
    let names: Vec<String> = (0..3000)
        .map(|i| match i % 3 {
            0 => format!("servers.web{i}.cpu.total.user"),
            1 => format!("stats.timers.api.{i}.upper_90;env=prod;dc=d{}", i % 4),
            _ => format!("app.{i}.latência"),
        })
        .collect();
    let script = "import sys\n\
        from carbon.routers import ConsistentHashingRouter\n\
        from carbon.util import parseDestinations\n\
        class S: pass\n\
        s = S(); s.REPLICATION_FACTOR = int(sys.argv[1]); s.DIVERSE_REPLICAS = sys.argv[2] == '1'; s.ROUTER_HASH_TYPE = None\n\
        r = ConsistentHashingRouter(s)\n\
        for d in parseDestinations(sys.argv[3].split(',')): r.addDestination(d)\n\
        for name in sys.stdin.read().split('\\n'):\n\
        \x20   print(' '.join('%s:%d:%s' % (h, p, i) for (h, p, i) in r.getDestinations(name)))\n";
    for cluster in clusters {
        for (factor, diverse) in [(1, true), (2, true), (2, false), (3, false)] {
            let mut child = Command::new("python3")
                .args([
                    "-c",
                    script,
                    &factor.to_string(),
                    if diverse { "1" } else { "0" },
                ])
                .arg(cluster.join(","))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3");
            let input = names.join("\n");
            let mut stdin = child.stdin.take().expect("stdin");
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
            let out = child.wait_with_output().expect("output");
            writer.join().expect("writer").expect("write");
            assert!(out.status.success(), "carbon's router failed");
            // With a single destination carbon's get_nodes yields it twice
            // (so a replication factor of 2 sends twice to it); carbyne sends once.
            let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| {
                    let mut seen: Vec<&str> = Vec::new();
                    for d in l.split(' ') {
                        if !seen.contains(&d) {
                            seen.push(d);
                        }
                    }
                    seen.join(" ")
                })
                .collect();
            let ring = ring(cluster, factor, diverse);
            assert_eq!(theirs.len(), names.len());
            for (name, want) in names.iter().zip(&theirs) {
                let got: Vec<String> = ring
                    .destinations(name)
                    .iter()
                    .map(|d| {
                        format!(
                            "{}:{}:{}",
                            d.server,
                            d.port,
                            d.instance.as_deref().unwrap_or("None")
                        )
                    })
                    .collect();
                assert_eq!(
                    &got.join(" "),
                    want,
                    "{name} on {cluster:?}, replication {factor}, diverse {diverse}"
                );
            }
        }
    }
}

/// A pure relay in front of two real carbon-caches: by consistent hashing
/// every name lands, as Python-made pickles would, on the cache carbon's
/// own router picks, and only there; by relay rules, where the rules say.
#[test]
fn relay_forwards_to_real_carbon_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("conf");
    let [a, b] = two_carbon_caches(dir.path());
    let (sa, sb, pa, pb) = (a.storage.clone(), b.storage.clone(), a.pickle, b.pickle);
    let dests = [format!("127.0.0.1:{pa}:a"), format!("127.0.0.1:{pb}:b")];
    let now = now() / 60 * 60 - 60;
    let names: Vec<String> = (0..200).map(|i| format!("relay.m{i}.value")).collect();
    let lines: Vec<String> = names.iter().map(|n| format!("{n} 1 {now}")).collect();

    std::fs::write(
        conf.join("relay-rules.conf"),
        format!(
            "[even]\npattern = ^relay\\.m[0-9]*[02468]\\.\ndestinations = {}\n\n\
             [rest]\ndefault = true\ndestinations = {}\n",
            dests[0], dests[1]
        ),
    )
    .expect("rules");
    for method in ["consistent-hashing", "rules"] {
        let port = free_port();
        let cfg = dir.path().join(format!("{method}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{port}\"\npickle_listen = \"\"\n\
                 store = false\ncarbon_metric_interval = 0\n\
                 [server.carbon.relay]\nmethod = \"{method}\"\ndestinations = {dests:?}\nrules = {:?}\n",
                conf.join("relay-rules.conf")
            ),
        )
        .expect("config");
        let mut child = bin()
            .args(["server", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne relay");
        wait_for_port(port);
        send(port, &lines);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, "-TERM");
        assert!(child.wait().expect("wait").success());
        settled(&sa);
        settled(&sb);
        let ring = ring(&dests, 1, true);
        for name in &names {
            let file = PathBuf::from(format!("{}.wsp", name.replace('.', "/")));
            let on_a = if method == "rules" {
                name.trim_end_matches(".value")
                    .ends_with(['0', '2', '4', '6', '8'])
            } else {
                ring.destinations(name)[0].port == pa
            };
            let (want, other) = if on_a { (&sa, &sb) } else { (&sb, &sa) };
            assert!(
                want.join(&file).exists(),
                "{method}: {name} not on its cache"
            );
            assert!(
                !other.join(&file).exists(),
                "{method}: {name} on both caches"
            );
        }
        // The next method starts from empty caches.
        for s in [&sa, &sb] {
            let _ = std::fs::remove_dir_all(s);
        }
    }
}

/// The agent's Graphite handler with `destinations`: `agent --once` writes
/// straight into two real carbon-caches, each name into the one carbon's
/// ring picks (the port takes no part in it, so line ports place as the
/// caches' pickle ports would), and only there.
#[test]
fn agent_graphite_ring_writes_into_two_real_carbon_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, b] = two_carbon_caches(dir.path());
    let (sa, sb, la, lb) = (a.storage.clone(), b.storage.clone(), a.line, b.line);
    let dests = [format!("127.0.0.1:{la}:a"), format!("127.0.0.1:{lb}:b")];
    // Two agents of the same config, each with its own (fresh) state: one
    // sends, the other's dry run prints what that one sent.
    let config = |sub: &str| {
        let agent = dir.path().join(sub);
        std::fs::create_dir_all(&agent).expect("agent dir");
        config_dir(
            &agent,
            "proc/t0",
            &format!(
                "self_metrics = false\n[handlers.graphite]\ndestinations = {dests:?}\n\
                 method = \"consistent-hashing\"\n"
            ),
        )
    };
    let (cfg, dry_cfg) = (config("agent"), config("dry"));
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = dry_run_names(&dry_cfg);
    assert!(names.len() > 20, "{names:?}");
    let ring = ring(&dests, 1, true);
    // Each cache writes in its own time: wait until every file is there.
    let start = Instant::now();
    let mut placed = (0, 0);
    for name in &names {
        let file = PathBuf::from(format!("{}.wsp", name.replace('.', "/")));
        let on_a = ring.destinations(name)[0].port == la;
        let (want, other) = if on_a { (&sa, &sb) } else { (&sb, &sa) };
        while !want.join(&file).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name} never reached its cache"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!other.join(&file).exists(), "{name} on both caches");
        if on_a {
            placed.0 += 1;
        } else {
            placed.1 += 1;
        }
    }
    assert!(placed.0 > 0 && placed.1 > 0, "{placed:?}");
}

/// `carbyne whisper fetch` and `info` take a metric name (tagged ones too)
/// and find its file where the receiver put it; times as Graphite's `-1h`.
#[test]
fn whisper_tools_read_a_metric_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, port) = ours(
        dir.path(),
        "pickle_listen = \"\"\nudp = false\ncarbon_metric_interval = 0\n",
    );
    let child = Child(child);
    let now = common::now();
    send(
        port,
        &[
            format!("servers.web1.loadavg.01 1.5 {}", now - 120),
            format!("disk.used;host=web1;dc=eu 42 {}", now - 60),
        ],
    );
    signal(&child.0, "-TERM");
    let mut child = child;
    assert!(child.0.wait().expect("wait").success());
    let storage = dir.path().join("whisper");
    let st = storage.to_str().expect("path");
    let fetch = |name: &str, from: &str| {
        let o = run(&[
            "whisper",
            "fetch",
            "--storage-dir",
            st,
            "--from",
            from,
            name,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let plain = fetch("servers.web1.loadavg.01", "-1h");
    assert!(plain.contains("\t1.500000\n"), "{plain}");
    assert!(!fetch("servers.web1.loadavg.01", "-1min").contains("1.500000"));
    // Tags in another order name the same series.
    let tagged = fetch("disk.used;dc=eu;host=web1", "now-10min");
    assert!(tagged.contains("\t42.000000\n"), "{tagged}");
    let o = run(&[
        "whisper",
        "info",
        "--storage-dir",
        st,
        "disk.used;host=web1;dc=eu",
        "maxRetention",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "604800");
    let o = run(&["whisper", "fetch", "--from", "yesterday-ish", "x"]);
    assert_eq!(o.status.code(), Some(2));
}
