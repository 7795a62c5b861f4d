//! carbon's rule files, against carbon-cache 1.1.10 (PyPI) reading the
//! same files: the same seeded stream to both, then the files each wrote
//! and the counts each reported compared.

mod common;

use carbyne::whisper::Whisper;
use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Own metrics every second, kept a second each; the rest by the minute.
const SCHEMAS: &str = "\
[carbon]
pattern = ^carbon\\.
retentions = 1:1h

[default]
pattern = .*
retentions = 60:1d
";

const WHITELIST: &str = "\
# what is kept, when it matches
^servers\\.
app\\.web
";

const BLACKLIST: &str = "\
\\.tmp\\.
# not a comment when indented: searched as written
 db3
";

/// Names some lists keep and some they drop, from a seeded generator.
fn stream(seed: u64, now: i64) -> Vec<String> {
    let mut rng = Rng(seed);
    let shapes = [
        "servers.web{}.cpu",
        "servers.db{}.load",
        "servers.web{}.tmp.x",
        "junk.{}.value",
        "x.app.web.{}",
        "app.db{}.hits",
    ];
    (0..600)
        .map(|i| {
            let shape = shapes[rng.below(shapes.len() as u64) as usize];
            let name = shape.replace("{}", &rng.below(12).to_string());
            format!("{name} {i} {}", now - 60 * rng.below(30) as i64)
        })
        .collect()
}

/// Asserts carbon's count `metric` comes to `ours`: carbon's reaches its
/// file when its cache writes it, so it is read again for up to a minute.
fn same_count(metric: &str, ours: f64, theirs: impl Fn() -> f64) {
    let until = Instant::now() + Duration::from_secs(60);
    let x = loop {
        let x = theirs();
        if x == ours || Instant::now() > until {
            break x;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(x, ours, "{metric}: carbon {x}, carbyne {ours}");
    assert!(x > 50.0, "{metric}: {x}");
}

#[test]
fn whitelist_and_blacklist_keep_what_carbon_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (theirs, ours) = (dir.path().join("carbon"), dir.path().join("carbyne"));
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(conf.join("storage-schemas.conf"), SCHEMAS).expect("schemas");
    // carbon reads its lists from the folder of its carbon.conf.
    let home = theirs.with_extension("home");
    std::fs::create_dir_all(&home).expect("home");
    for (f, text) in [("whitelist.conf", WHITELIST), ("blacklist.conf", BLACKLIST)] {
        std::fs::write(home.join(f), text).expect("list");
        std::fs::write(conf.join(f), text).expect("list");
    }
    let (_carbon, cport, _, _) = start_carbon_cache(
        &conf,
        &theirs,
        "USE_WHITELIST = True\nCARBON_METRIC_INTERVAL = 1\n",
    );
    let oport = free_port();
    let cfg = dir.path().join("carbyne.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{oport}\"\npickle_listen = \"\"\n\
             storage_dir = {:?}\nschemas = {:?}\ncarbon_metric_interval = 1\n\
             whitelist = {:?}\nblacklist = {:?}\n",
            ours,
            conf.join("storage-schemas.conf"),
            conf.join("whitelist.conf"),
            conf.join("blacklist.conf"),
        ),
    )
    .expect("carbyne.toml");
    let mut child = server(&cfg, oport);
    let lines = stream(11, now() / 60 * 60);
    send(cport, &lines);
    send(oport, &lines);
    // Both report their counts within a few seconds.
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, "-TERM");
    assert!(child.wait().expect("wait").success());
    let kept = |root: &Path| -> BTreeSet<PathBuf> {
        files(root)
            .into_iter()
            .filter(|p| !p.starts_with("carbon"))
            .collect()
    };
    // carbon-cache writes on its own time (its own metrics every second):
    // wait until what it kept stops changing.
    still(|| kept(&theirs), BTreeSet::is_empty);
    let (a, b) = (kept(&theirs), kept(&ours));
    assert_eq!(a, b, "the same names kept");
    let sent: BTreeSet<&str> = lines.iter().filter_map(|l| l.split(' ').next()).collect();
    assert!(
        a.len() >= 10 && a.len() < sent.len() / 2,
        "a real comparison: {} of {} names kept",
        a.len(),
        sent.len()
    );
    for m in ["blacklistMatches", "whitelistRejects"] {
        same_count(m, own_sum(&ours, "agents", m), || {
            own_sum(&theirs, "agents", m)
        });
    }
}

/// A list file edited while the receiver runs is read again within carbon's
/// 10 s; one that no longer reads keeps the list in force, said in the log.
#[test]
fn an_edited_list_is_read_again_and_a_broken_one_kept_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let black = dir.path().join("blacklist.conf");
    std::fs::write(&black, "^drop\\.\n").expect("blacklist");
    let port = free_port();
    let cfg = dir.path().join("carbyne.toml");
    let storage = dir.path().join("whisper");
    std::fs::write(
        &cfg,
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{port}\"\npickle_listen = \"\"\n\
             storage_dir = {storage:?}\ncarbon_metric_interval = 0\nblacklist = {black:?}\n"
        ),
    )
    .expect("carbyne.toml");
    // A list that does not read stops config check, naming file and line.
    std::fs::write(dir.path().join("bad.conf"), "ok\n(\n").expect("bad");
    let bad_cfg = dir.path().join("bad.toml");
    std::fs::write(
        &bad_cfg,
        format!(
            "[server.carbon]\nstorage_dir = {storage:?}\nwhitelist = {:?}\n",
            dir.path().join("bad.conf")
        ),
    )
    .expect("bad.toml");
    let out = run(&[
        "config",
        "check",
        "--config",
        bad_cfg.to_str().expect("path"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.conf") && err.contains("line 2"), "{err}");

    let mut child = Proc(
        bin()
            .args(["server", "--config"])
            .arg(&cfg)
            .stderr(Stdio::piped())
            .spawn()
            .expect("carbyne server"),
    );
    wait_for_port(port);
    let ts = now() / 60 * 60;
    send(port, &[format!("drop.a 1 {ts}"), format!("keep.a 1 {ts}")]);
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&black, "^keep\\.\n").expect("edit");
    // Read again at the next check, within 10 s.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        send(port, &[format!("drop.b 1 {ts}"), format!("keep.b 1 {ts}")]);
        std::thread::sleep(Duration::from_millis(500));
        if storage.join("drop/b.wsp").exists() {
            break;
        }
        assert!(Instant::now() < until, "the edited list was never read");
    }
    // Broken now: the list in force (^keep\.) stays.
    std::fs::write(&black, "(\n").expect("break");
    std::thread::sleep(Duration::from_secs(11));
    send(port, &[format!("keep.c 1 {ts}")]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "-TERM");
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(err.contains("in force stay"), "{err}");
    let got: BTreeSet<PathBuf> = files(&storage).into_iter().collect();
    for (name, there) in [
        ("drop/a.wsp", false),
        ("keep/a.wsp", true),
        ("drop/b.wsp", true),
        ("keep/c.wsp", false),
    ] {
        assert_eq!(got.contains(Path::new(name)), there, "{name}: {got:?}");
    }
}

const AGGREGATION_RULES: &str = "\
# Every method, three frequencies.
web.all.requests (3) = sum web.<host>.requests
web.all.hosts (3) = count web.<host>.requests
web.all.latency_avg (3) = avg web.*.latency
web.all.latency_min (5) = min web.*.latency
web.all.latency_max (5) = max web.*.latency
web.all.latency_p50 (3) = p50 web.*.latency
web.all.latency_p75 (3) = p75 web.*.latency
web.all.latency_p80 (5) = p80 web.*.latency
web.all.latency_p90 (5) = p90 web.*.latency
web.all.latency_p95 (3) = p95 web.*.latency
web.all.latency_p99 (10) = p99 web.*.latency
web.all.latency_p999 (10) = p999 web.*.latency
# <<field>>: one segment or more.
apps.all.<metric> (5) = sum apps.<app>.*.<<metric>>
apps.<app>.servers (5) = count apps.<app>.<server>.cpu.user
# A name that is its own output: not passed on, as carbon does.
servers.<h>.cpu (3) = max servers.<h>.cpu
";

const REWRITE_RULES: &str = "\
[pre]
# Old names join the new before aggregation.
^legacy\\.web\\. = web.
^svc-(\\d+)\\.req$ = web.svc\\1.requests
[post]
# Names passed on are renamed; aggregated ones are not.
\\.latency$ = .lat
";

/// Points for names every rule takes, late ones, duplicates, fractions of a
/// second, NaN and blacklisted names, over the last minute.
fn aggregator_stream(seed: u64, now: i64) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut seconds: std::collections::HashMap<(String, i64), String> = Default::default();
    let mut out = Vec::new();
    for _ in 0..3000 {
        let i = rng.below(8);
        let name = match rng.below(10) {
            0 | 1 => format!("web.host{i}.requests"),
            2 | 3 => format!("web.host{i}.latency"),
            4 => format!("legacy.web.host{i}.requests"),
            5 => format!("svc-{i}.req"),
            6 => format!("apps.app{}.srv{i}.cpu.user", i % 3),
            7 => format!("apps.app{}.srv{i}.mem.used", i % 3),
            8 => format!("servers.h{i}.cpu"),
            _ => match i % 3 {
                0 => format!("junk.tmp.{i}"),
                1 => format!("other.thing{i}"),
                _ => format!("web.tmp.{i}.requests"),
            },
        };
        // Over the last minute: past carbon's 5 intervals for the short
        // rules, so some come late and some very late.
        let sec = now - rng.below(60) as i64;
        let ts = match rng.below(4) {
            0 => format!("{sec}.5"),
            _ => sec.to_string(),
        };
        // One timestamp per name and second: two in one whisper slot keep
        // whichever each program wrote last, a matter of timing.
        let ts = seconds.entry((name.clone(), sec)).or_insert(ts).clone();
        let value = match rng.below(50) {
            0 => "nan".to_string(),
            _ => format!("{}", rng.below(100_000) as f64 / 100.0 - 100.0),
        };
        out.push(format!("{name} {value} {ts}"));
    }
    out
}

/// Every point (time, value) of every file under `root` but carbon's own,
/// over the last two hours.
fn points(root: &Path) -> std::collections::BTreeMap<PathBuf, Vec<(i64, f64)>> {
    let now = carbyne::whisper::unix_now();
    files(root)
        .into_iter()
        .filter(|p| !p.starts_with("carbon"))
        .map(|f| {
            let w = Whisper::open(&root.join(&f), false).expect("open");
            let s = w.fetch(now - 7_000, Some(now), None, None).expect("fetch");
            let known = s
                .map(|s| {
                    (s.from..)
                        .step_by(s.step as usize)
                        .zip(s.values)
                        .filter_map(|(t, v)| Some((t, v?)))
                        .collect()
                })
                .unwrap_or_default();
            (f, known)
        })
        .collect()
}

/// A real carbon-aggregator relaying to `cache_pickle`, its rule files and
/// lists in `home`; returns it with its line port once it listens.
fn start_carbon_aggregator(home: &Path, cache_pickle: u16) -> (Child, u16) {
    let mut failures = String::new();
    for attempt in 1..=3 {
        let (line, pickle) = (free_port(), free_port());
        std::fs::write(
            home.join("carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}\nLOCAL_DATA_DIR = {d}/unused\nLOG_DIR = {d}/log\nPID_DIR = {d}\n\
                 ENABLE_TAGS = False\n\
                 [aggregator]\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line}\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\n\
                 DESTINATIONS = 127.0.0.1:{cache_pickle}\nFORWARD_ALL = True\nMAX_QUEUE_SIZE = 1000000\n\
                 MAX_AGGREGATION_INTERVALS = 5\nUSE_WHITELIST = True\nCARBON_METRIC_INTERVAL = 1\n\
                 LOG_AGGREGATOR_MISSES = False\nENABLE_TAGS = False\n",
                d = home.display()
            ),
        )
        .expect("carbon.conf");
        let _ = std::fs::remove_file(home.join("carbon-aggregator-a.pid"));
        // It says why it does not start on stdout.
        let stderr = home.join(format!("aggregator-output-{attempt}"));
        let out = std::fs::File::create(&stderr).expect("output file");
        let mut child = Child(
            std::process::Command::new(python_scripts().join("carbon-aggregator.py"))
                .arg(format!("--config={}", home.join("carbon.conf").display()))
                .args(["--nodaemon", "start"])
                .stdout(out.try_clone().expect("output file"))
                .stderr(out)
                .spawn()
                .expect("carbon-aggregator"),
        );
        match listening(&mut child.0, &[line, pickle]) {
            Ok(()) => return (child, line),
            Err(why) => {
                drop(child);
                failures.push_str(&format!(
                    "attempt {attempt}: {why}\n{}\n",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                ));
            }
        }
    }
    panic!("carbon-aggregator never listened:\n{failures}");
}

/// The sum of an own metric's points under `carbon/<group>/*/` (one a
/// second) over the last hour.
fn own_sum(root: &Path, group: &str, metric: &str) -> f64 {
    let base = root.join("carbon").join(group);
    let found: Vec<PathBuf> = files(&base)
        .into_iter()
        .filter(|p| p.ends_with(format!("{metric}.wsp")))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{metric} under {}: {found:?}",
        base.display()
    );
    let w = Whisper::open(&base.join(&found[0]), false).expect("open");
    let now = carbyne::whisper::unix_now();
    w.fetch(now - 3_600, Some(now), None, None)
        .expect("fetch")
        .map_or(0.0, |s| s.values.iter().flatten().sum())
}

/// carbon-aggregator 1.1.10 relaying into carbon-cache, and carbyne's
/// receiver, with the same aggregation rules, rewrite rules and blacklist,
/// given the same seeded stream: the same files with the same points, and
/// the same counts (blacklisted names, aggregated points sent).
#[test]
fn aggregation_and_rewrite_rules_write_what_carbon_aggregator_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (theirs, ours) = (dir.path().join("carbon"), dir.path().join("carbyne"));
    let conf = dir.path().join("conf");
    let home = dir.path().join("aggregator");
    for d in [&conf, &home] {
        std::fs::create_dir_all(d).expect("dir");
    }
    let schemas = "[carbon]\npattern = ^carbon\\.\nretentions = 1:1h\n\n[default]\npattern = .*\nretentions = 1:2h\n";
    std::fs::write(conf.join("storage-schemas.conf"), schemas).expect("schemas");
    for (f, text) in [
        ("aggregation-rules.conf", AGGREGATION_RULES),
        ("rewrite-rules.conf", REWRITE_RULES),
        ("blacklist.conf", "\\.tmp\\.\n"),
        // carbon-aggregator does not start without one, though unused.
        ("storage-schemas.conf", schemas),
    ] {
        std::fs::write(home.join(f), text).expect("rules");
        std::fs::write(conf.join(f), text).expect("rules");
    }
    let (_cache, _, cache_pickle, _) = start_carbon_cache(&conf, &theirs, "");
    let (_aggregator, aport) = start_carbon_aggregator(&home, cache_pickle);
    let oport = free_port();
    let cfg = dir.path().join("carbyne.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{oport}\"\npickle_listen = \"\"\n\
             storage_dir = {:?}\nschemas = {:?}\ncarbon_metric_interval = 1\nblacklist = {:?}\n\
             aggregation_rules = {:?}\nrewrite_rules = {:?}\n",
            ours,
            conf.join("storage-schemas.conf"),
            conf.join("blacklist.conf"),
            conf.join("aggregation-rules.conf"),
            conf.join("rewrite-rules.conf"),
        ),
    )
    .expect("carbyne.toml");
    let mut child = server(&cfg, oport);
    let lines = aggregator_stream(5, now());
    send(aport, &lines);
    send(oport, &lines);
    // Every output metric computes within its frequency (10 s at most) and
    // both report their counts every second.
    std::thread::sleep(Duration::from_secs(14));
    signal(&child, "-TERM");
    assert!(child.wait().expect("wait").success());
    // carbon-cache writes on its own time: wait until its points stop changing.
    still(|| points(&theirs), std::collections::BTreeMap::is_empty);
    let (a, b) = (points(&theirs), points(&ours));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same files"
    );
    let mut differ = Vec::new();
    let mut compared = 0;
    for (f, pa) in &a {
        let pb = &b[f];
        compared += pa.len();
        let same = pa.len() == pb.len()
            && pa.iter().zip(pb).all(|((t, p), (u, q))| {
                t == u && (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0)
            });
        if !same {
            let only = |x: &[(i64, f64)], y: &[(i64, f64)]| -> Vec<String> {
                x.iter()
                    .filter(|p| !y.contains(p))
                    .take(4)
                    .map(|(t, v)| format!("{t}={v}"))
                    .collect()
            };
            differ.push(format!(
                "{}: carbon only {:?}, carbyne only {:?}",
                f.display(),
                only(pa, pb),
                only(pb, pa)
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} files differ:\n{}",
        differ.len(),
        differ.join("\n")
    );
    for must in [
        "web/all/latency_p999.wsp",
        "web/all/hosts.wsp",
        "apps/all/cpu/user.wsp",
        "apps/app1/servers.wsp",
        "web/svc3/requests.wsp",
        "web/host2/lat.wsp",
        "servers/h1/cpu.wsp",
        "other/thing1.wsp",
    ] {
        assert!(a.contains_key(Path::new(must)), "{must}: {:?}", a.keys());
    }
    for gone in ["legacy", "junk", "web/tmp", "web/host2/latency.wsp"] {
        assert!(
            !a.keys().any(|k| k.starts_with(gone)),
            "{gone}: {:?}",
            a.keys()
        );
    }
    assert!(compared > 1500, "a real comparison: {compared} points");
    // The counts, carbon-aggregator's under carbon.aggregator.*; carbyne's
    // blacklist count with the receiver's, its aggregator's as carbon's.
    for (metric, group) in [
        ("blacklistMatches", "agents"),
        ("aggregateDatapointsSent", "aggregator"),
    ] {
        same_count(metric, own_sum(&ours, group, metric), || {
            own_sum(&theirs, "aggregator", metric)
        });
    }
}

/// `config check` reads the rule files as the server would, and refuses
/// what carbon would skip or fail on, naming the file and line.
#[test]
fn config_check_names_the_rule_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().join("whisper");
    let check = |key: &str, file: &str, text: Option<&str>| {
        let path = dir.path().join(file);
        if let Some(t) = text {
            std::fs::write(&path, t).expect("rules");
        }
        let cfg = dir.path().join(format!("{file}.toml"));
        std::fs::write(
            &cfg,
            format!("[server.carbon]\nstorage_dir = {storage:?}\n{key} = {path:?}\n"),
        )
        .expect("config");
        let out = run(&["config", "check", "--config", cfg.to_str().expect("path")]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    for (key, file, text, line) in [
        (
            "aggregation_rules",
            "agg-method.conf",
            "# ok\na.all (60) = sum a.*\na.b (60) = median a.*\n",
            "line 3",
        ),
        (
            "aggregation_rules",
            "agg-field.conf",
            "a.<x> (60) = sum a.<y>.*\n",
            "line 1",
        ),
        (
            "rewrite_rules",
            "rewrite-group.conf",
            "[pre]\n^a = b\n(x) = \\2\n",
            "line 3",
        ),
        (
            "rewrite_rules",
            "rewrite-lookaround.conf",
            "[post]\n(?=a) = b\n",
            "line 2",
        ),
    ] {
        let (code, err) = check(key, file, Some(text));
        assert_eq!(code, Some(2), "{file}: {err}");
        assert!(err.contains(file) && err.contains(line), "{file}: {err}");
    }
    // carbon-aggregator does not start without its rules file; a missing
    // rewrite file is no rules, as in carbon.
    let (code, err) = check("aggregation_rules", "missing.conf", None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.conf"), "{err}");
    let (code, err) = check("rewrite_rules", "missing-rewrite.conf", None);
    assert_eq!(code, Some(0), "{err}");
}
