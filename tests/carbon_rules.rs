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

/// The sum of an own metric's points (one a second) over the last hour.
fn own_total(root: &Path, metric: &str) -> f64 {
    let dirs: Vec<PathBuf> = files(&root.join("carbon/agents"))
        .into_iter()
        .filter(|p| p.ends_with(format!("{metric}.wsp")))
        .collect();
    assert_eq!(dirs.len(), 1, "{metric} under {}: {dirs:?}", root.display());
    let w = Whisper::open(&root.join("carbon/agents").join(&dirs[0]), false).expect("open");
    let now = carbyne::whisper::unix_now();
    w.fetch(now - 3_600, Some(now), None, None)
        .expect("fetch")
        .map_or(0.0, |s| s.values.iter().flatten().sum())
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
    let mut child = Proc(
        bin()
            .args(["server", "--config"])
            .arg(&cfg)
            .stderr(Stdio::null())
            .spawn()
            .expect("carbyne server"),
    );
    wait_for_port(oport);
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
    let (mut last, mut still) = (kept(&theirs), Instant::now());
    let start = Instant::now();
    while still.elapsed() < Duration::from_secs(3) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "carbon-cache never settled"
        );
        std::thread::sleep(Duration::from_millis(300));
        let now = kept(&theirs);
        if now != last || now.is_empty() {
            (last, still) = (now, Instant::now());
        }
    }
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
        let y = own_total(&ours, m);
        // carbon's count reaches its file when its cache writes it.
        let until = Instant::now() + Duration::from_secs(60);
        let x = loop {
            let x = own_total(&theirs, m);
            if x == y || Instant::now() > until {
                break x;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(x, y, "{m}: carbon {x}, carbyne {y}");
        assert!(x > 50.0, "{m}: {x}");
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
    assert!(err.contains("the list in force stays"), "{err}");
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
