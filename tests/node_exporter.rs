//! carbyne's Prometheus endpoint against the real node_exporter 1.5
//! (Debian's, installed by tests/run.sh) on the same host: for every
//! node_exporter family carbyne's collectors cover, the same names, types
//! and label sets, and values that the reading times explain (a counter
//! between node_exporter's readings before and after carbyne's; a gauge
//! near them). Then a real Prometheus scrapes carbyne and answers PromQL
//! over what it stored, and promtool judges carbyne's whole output.

mod common;

use common::prom::{get_with, lints, promtool, query_until, start_prometheus};
use common::{bin, free_port, wait_for_port, Child};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The default collectors, with every one node_exporter has families of.
const COLLECTORS: &[&str] = &[
    "cpu",
    "loadavg",
    "memory",
    "diskspace",
    "diskusage",
    "vmstat",
    "sockstat",
    "network",
    "entropy",
    "filestat",
    "pressure",
    "tcp",
    "udp",
];

/// The node_exporter families carbyne's collectors are to give: every
/// family whose name one of these matches (node_exporter's cpu, stat,
/// meminfo, filesystem, diskstats, loadavg, vmstat, sockstat, netdev,
/// entropy, filefd, pressure and netstat collectors).
const COVERED: &[&str] = &[
    r"^node_cpu_(guest_)?seconds_total$",
    r"^node_(intr_total|context_switches_total|forks_total|boot_time_seconds|procs_running|procs_blocked)$",
    r"^node_memory_",
    r"^node_filesystem_",
    r"^node_disk_",
    r"^node_load(1|5|15)$",
    r"^node_vmstat_",
    r"^node_sockstat_",
    r"^node_network_(receive|transmit)_(bytes|packets|errs|drop|fifo|frame|compressed|multicast|colls|carrier)_total$",
    r"^node_entropy_",
    r"^node_filefd_",
    r"^node_pressure_",
    r"^node_netstat_",
    r"^node_(uname_info|time_seconds)$",
];

/// A parsed exposition: family name -> (type, label set -> value).
type Families = BTreeMap<String, (String, BTreeMap<String, f64>)>;

/// Parses the text format: `# TYPE` lines and samples (label sets kept as
/// written; both programs sort label names and escape alike).
fn parse(text: &str) -> Families {
    let mut out: Families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            out.entry(name.to_string()).or_default().0 = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        out.entry(name.to_string())
            .or_default()
            .1
            .insert(labels.to_string(), value);
    }
    out
}

fn scrape(port: u16) -> Families {
    let (_, body) = get_with(port, "/metrics", "").expect("scrape");
    parse(&String::from_utf8(body).expect("utf-8"))
}

/// Starts the agent with `COLLECTORS` every second and a prometheus
/// handler on a free port.
fn start_carbyne(dir: &std::path::Path) -> (Child, u16) {
    start_carbyne_with(dir, "interval = 1\n", COLLECTORS)
}

/// The agent with `top` (top-level keys, its interval among them),
/// `collectors` and a prometheus handler on a free port; its configuration
/// is `dir/carbyne.toml`.
fn start_carbyne_with(dir: &std::path::Path, top: &str, collectors: &[&str]) -> (Child, u16) {
    let port = free_port();
    let mut cfg = format!(
        "hostname = \"testhost\"\nstate_dir = {:?}\n{top}\
         [handlers.prometheus]\nlisten = \"127.0.0.1:{port}\"\n",
        dir.join("state")
    );
    for c in collectors {
        cfg.push_str(&format!("[collectors.{c}]\nenabled = true\n"));
    }
    let path = dir.join("carbyne.toml");
    std::fs::write(&path, cfg).expect("config");
    let child = Child(
        bin()
            .args(["agent", "--config", path.to_str().expect("path")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("carbyne"),
    );
    wait_for_port(port);
    (child, port)
}

fn start_node_exporter() -> (Child, u16) {
    start_node_exporter_with(&[])
}

/// node_exporter on a free port with `args`.
fn start_node_exporter_with(args: &[String]) -> (Child, u16) {
    let port = free_port();
    let child = Child(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-node-exporter (tests/run.sh installs Debian's)"),
    );
    wait_for_port(port);
    (child, port)
}

/// Whether carbyne's `value` is one the host could have had between
/// node_exporter's readings `before` and `after`.
fn explained(kind: &str, before: f64, value: f64, after: f64) -> bool {
    let (lo, hi) = (before.min(after), before.max(after));
    if kind == "counter" {
        // Read between the two: inside them (a float's last digit aside).
        let slack = 1e-9 * hi.abs().max(1.0);
        return lo - slack <= value && value <= hi + slack;
    }
    // Gauges move both ways: near the readings (free memory, sockets in
    // use, runnable processes and entropy can swing in a second).
    let slack = 0.1 * hi.abs().max(lo.abs()) + 64.0;
    lo - slack <= value && value <= hi + slack
}

#[test]
fn the_same_families_labels_and_values_as_node_exporter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_carbyne, port) = start_carbyne(dir.path());
    let (_node, node_port) = start_node_exporter();
    let covered: Vec<regex::Regex> = COVERED
        .iter()
        .map(|r| regex::Regex::new(r).expect("regex"))
        .collect();
    let is_covered = |name: &str| covered.iter().any(|r| r.is_match(name));

    // node_exporter, then (two ticks later) carbyne's latest run, then
    // node_exporter again: carbyne read the host between the two.
    let mut result = Err(String::new());
    for _attempt in 0..3 {
        let before = scrape(node_port);
        std::thread::sleep(Duration::from_millis(2200));
        let ours = scrape(port);
        let after = scrape(node_port);
        result = compare(&before, &ours, &after, &is_covered);
        if result.is_ok() {
            break;
        }
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Starts node_exporter with only `collector`, reading the fixture procfs
/// `procfs`, and the agent with only `collector` reading the same; their
/// scrapes' families whose names start with `prefix` (the agent's once its
/// first run is in).
fn fixture_families(
    procfs: &std::path::Path,
    collector: &str,
    prefix: &str,
) -> (Families, Families) {
    let (_node, node_port) = start_node_exporter_with(&[
        format!("--path.procfs={}", procfs.display()),
        "--collector.disable-defaults".into(),
        format!("--collector.{collector}"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_carbyne, port) = start_carbyne_with(
        dir.path(),
        &format!("interval = 1\nproc_root = {procfs:?}\n"),
        &[collector],
    );
    let only = |f: Families| -> Families {
        f.into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .collect()
    };
    let theirs = only(scrape(node_port));
    let mut ours = only(scrape(port));
    let start = std::time::Instant::now();
    while ours.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        ours = only(scrape(port));
    }
    (theirs, ours)
}

/// The same families, label sets and values, exactly.
fn assert_same(theirs: &Families, ours: &Families) {
    let names = |f: &Families| f.keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(names(ours), names(theirs));
    for (name, family) in theirs {
        assert_eq!(ours.get(name), Some(family), "{name}");
    }
}

/// Connection tracking's statistics from a fixture procfs (two CPUs' rows
/// of hexadecimal counters), as node_exporter sums them.
#[test]
fn conntrack_statistics_as_node_exporter_reads_them() {
    let (theirs, ours) = fixture_families(
        &common::fixture("proc/conntrack"),
        "conntrack",
        "node_nf_conntrack_",
    );
    assert_eq!(theirs.len(), 10, "{theirs:#?}");
    assert_same(&theirs, &ours);
}

/// NFS mounts (none on a test machine): node_exporter and carbyne read the
/// same fixture procfs (`self -> 1`, its mountstats and mountinfo: an NFSv4
/// mount over TCP, an NFSv3 one over UDP, one with statistics version 1.0,
/// the first mounted twice), and must give the same mountstats families,
/// label sets and values, exactly.
#[test]
fn nfs_mountstats_as_node_exporter_reads_them() {
    let (theirs, ours) = fixture_families(
        &common::fixture("proc/nfs"),
        "mountstats",
        "node_mountstats_",
    );
    assert!(theirs.len() > 40, "{theirs:#?}");
    assert_same(&theirs, &ours);
}

fn compare(
    before: &Families,
    ours: &Families,
    after: &Families,
    is_covered: &dyn Fn(&str) -> bool,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let theirs: BTreeSet<&String> = after.keys().filter(|n| is_covered(n)).collect();
    let mine: BTreeSet<&String> = ours.keys().filter(|n| n.starts_with("node_")).collect();
    let missing: Vec<_> = theirs.difference(&mine).collect();
    let extra: Vec<_> = mine.difference(&theirs).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "families node_exporter has and carbyne not: {missing:?}"
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "families carbyne has and node_exporter not: {extra:?}"
        ));
    }
    let mut compared = 0;
    for name in theirs.intersection(&mine) {
        let (kind, series) = &ours[*name];
        let (their_kind, their_after) = &after[*name];
        let their_before = before.get(*name).map(|f| &f.1);
        if kind != their_kind {
            problems.push(format!(
                "{name}: carbyne says {kind}, node_exporter {their_kind}"
            ));
        }
        let labels: BTreeSet<&String> = series.keys().collect();
        let their_labels: BTreeSet<&String> = their_after.keys().collect();
        // node_exporter may leave out the loopback interface (it lists
        // links over netlink); carbyne reports every line of /proc/net/dev.
        // carbyne's file systems are the ones Diamond's options select (by
        // type, each device once), node_exporter's every mount but pseudo
        // file systems: each of carbyne's must be one of node_exporter's.
        let same = if name.starts_with("node_network_") {
            their_labels.is_subset(&labels)
        } else if name.starts_with("node_filesystem_") {
            !labels.is_empty() && labels.is_subset(&their_labels)
        } else {
            labels == their_labels
        };
        if !same {
            problems.push(format!(
                "{name}: label sets differ: carbyne {labels:?}, node_exporter {their_labels:?}"
            ));
        }
        for (l, v) in series {
            let (Some(a), Some(b)) = (their_before.and_then(|s| s.get(l)), their_after.get(l))
            else {
                continue;
            };
            compared += 1;
            if !explained(kind, *a, *v, *b) {
                problems.push(format!(
                    "{name}{l}: carbyne {v}, node_exporter {a} before and {b} after"
                ));
            }
        }
    }
    if compared < 100 {
        problems.push(format!("only {compared} series compared"));
    }
    eprintln!(
        "{} families and {compared} series compared with node_exporter's",
        theirs.intersection(&mine).count()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[test]
fn prometheus_scrapes_it_and_answers_promql() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_carbyne, port) = start_carbyne(dir.path());
    let cpus = std::fs::read_to_string("/proc/stat")
        .expect("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert!(cpus > 0);

    // promtool on the whole output (and OpenMetrics and gzip answered),
    // once the first run is in.
    let start = std::time::Instant::now();
    let (head, body) = loop {
        let (head, body) = get_with(port, "/metrics", "").expect("scrape");
        if body.windows(4).any(|w| w == b"node") || start.elapsed() > Duration::from_secs(10) {
            break (head, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}"),
        "{text}"
    );
    // promtool's lints are naming advice. A node_ family may draw only
    // what node_exporter's own output draws; a name from a Graphite one
    // (the agent's own metrics, collectors without node_exporter families)
    // may draw advice on its naming, nothing else.
    let (code, said) = promtool(&text);
    assert!(code == 0 || code == 3, "promtool exit {code}: {said}");
    let (_node, node_port) = start_node_exporter();
    let (_, theirs) = get_with(node_port, "/metrics", "").expect("node_exporter");
    let (_, their_said) = promtool(&String::from_utf8_lossy(&theirs));
    let their_lints: BTreeSet<&str> = their_said.lines().collect();
    let naming = [
        "metric names should not contain abbreviated units",
        "use base unit",
    ];
    let bad: Vec<&str> = lints(&said)
        .into_iter()
        .filter(|l| {
            if l.starts_with("node_") {
                !their_lints.contains(l)
            } else {
                !naming.iter().any(|n| l.contains(n))
            }
        })
        .collect();
    assert!(bad.is_empty(), "promtool: {bad:?}");
    let (head, body) = get_with(
        port,
        "/metrics",
        "Accept: application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\n",
    )
    .expect("scrape");
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let mut open = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut open)
        .expect("gzip");
    assert!(open.contains("# TYPE node_cpu_seconds counter\n"), "{open}");
    assert!(open.ends_with("# EOF\n"));

    let (_prometheus, prom) = start_prometheus(dir.path(), &[format!("127.0.0.1:{port}")]);
    let rates = query_until(prom, "rate(node_cpu_seconds_total[1m])", |r| {
        r.len() >= cpus * 8
    });
    assert!(rates.len() >= cpus * 8, "{rates:?}");
    for r in &rates {
        let v: f64 = r["value"][1].as_str().unwrap_or("").parse().expect("value");
        // Seconds per second of one core, in one mode.
        assert!((0.0..=1.5).contains(&v), "{r}");
        assert_eq!(r["metric"]["job"].as_str(), Some("carbyne"));
    }
    let modes: BTreeSet<&str> = rates
        .iter()
        .filter_map(|r| r["metric"]["mode"].as_str())
        .collect();
    assert!(
        modes.contains("idle") && modes.contains("user"),
        "{modes:?}"
    );
    let avail = query_until(prom, "node_filesystem_avail_bytes", |r| !r.is_empty());
    let root = avail
        .iter()
        .find(|r| r["metric"]["mountpoint"].as_str() == Some("/"))
        .unwrap_or_else(|| panic!("no / in {avail:?}"));
    let v: f64 = root["value"][1]
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("value");
    let st = rustix::fs::statvfs("/").expect("statvfs");
    let now = (st.f_bavail * st.f_frsize) as f64;
    // Within 10 % of what statvfs says now (the tests write files).
    assert!((v - now).abs() <= 0.1 * now + 1e9, "{v} against {now}");
    assert!(root["metric"]["device"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert!(root["metric"]["fstype"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
}

#[test]
fn a_reload_that_restarts_the_handler_keeps_the_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, port) = start_carbyne_with(dir.path(), "interval = 10\n", &[]);
    let path = dir.path().join("carbyne.toml");
    let cfg = std::fs::read_to_string(&path).expect("config");
    let has_load = || {
        get_with(port, "/metrics", "")
            .map(|(_, b)| String::from_utf8_lossy(&b).contains("\nnode_load1 "))
    };
    let start = std::time::Instant::now();
    while has_load() != Some(true) {
        assert!(start.elapsed() < Duration::from_secs(15), "no first run");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A changed section restarts the handler; the next run is 10 s after
    // the first (runs are on multiples of the interval).
    std::fs::write(&path, format!("{cfg}expiry = 200.0\n")).expect("config");
    common::signal(&child.0, "-HUP");
    let (mut answered, mut empty) = (0, 0);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        match has_load() {
            Some(true) => answered += 1,
            Some(false) => empty += 1,
            None => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        empty, 0,
        "{empty} pages without the series, {answered} with"
    );
    assert!(answered > 20, "{answered} answers");
}
