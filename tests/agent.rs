//! The built binary against real sockets: `agent --once` to a TCP and a UDP
//! listener, to a closed port, and the daemon against a listener that starts late.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

fn meminfo_bytes(proc: &str, key: &str) -> f64 {
    let text = std::fs::read_to_string(fixture(&format!("{proc}/meminfo"))).expect("meminfo");
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .expect(key);
    let kb: f64 = line
        .split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number");
    kb * 1024.0
}

#[test]
fn once_sends_diamond_names_to_a_real_tcp_listener_and_rates_on_the_second_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handler =
        format!("self_metrics = false\n[handlers.graphite]\nport = {port}\ntimeout = 5\n");

    // First run on the t0 snapshot: gauges only, no rate without a previous reading.
    let cfg = config_dir(dir.path(), "proc/t0", &handler);
    let before = now();
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = receive(
        listener.try_clone().expect("clone"),
        Duration::from_secs(10),
        |t| t.contains("sockets.udp_mem"),
    );
    let lines = parse_lines(&text);
    let v: BTreeMap<&str, f64> = lines.iter().map(|(n, v, _)| (n.as_str(), *v)).collect();
    assert!(lines.iter().all(|(_, _, t)| (before..=now()).contains(t)));
    assert_eq!(
        v["servers.testhost.memory.MemTotal"],
        meminfo_bytes("proc/t0", "MemTotal")
    );
    assert_eq!(
        v["servers.testhost.memory.Dirty"],
        meminfo_bytes("proc/t0", "Dirty")
    );
    assert_eq!(v["servers.testhost.cpu.cpu_count"], 2.0);
    assert_eq!(v["servers.testhost.loadavg.processes_total"], 79.0);
    assert_eq!(v["servers.testhost.loadavg.01"], 0.01);
    assert_eq!(v["servers.testhost.sockets.tcp_mem"], 26.0);
    assert!(v.contains_key("servers.testhost.diskspace.root.byte_avail"));
    assert!(
        !v.keys().any(|k| k.contains(".cpu.total.")),
        "no rate on the first run"
    );
    assert!(!v.keys().any(|k| k.contains(".vmstat.")));

    // Second run on the t1 snapshot, same state dir: real per-second rates.
    let cfg = config_dir(dir.path(), "proc/t1", &handler);
    std::thread::sleep(Duration::from_millis(300));
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = receive(listener, Duration::from_secs(10), |t| {
        t.contains("vmstat.pswpout")
    });
    let v: BTreeMap<String, f64> = parse_lines(&text)
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect();
    for k in [
        "cpu.total.user",
        "cpu.cpu1.idle",
        "iostat.vda.iops",
        "vmstat.pgpgin",
        "mountstats._mnt_projects.rpc.read.ops",
    ] {
        assert!(
            v.contains_key(&format!("servers.testhost.{k}")),
            "{k} missing"
        );
    }
    // Rates share one measured elapsed time, so their ratios are the counters'.
    // vmstat t0 -> t1: read the two snapshots' increases.
    let counter = |proc: &str, key: &str| -> f64 {
        let text = std::fs::read_to_string(fixture(&format!("{proc}/vmstat"))).expect("vmstat");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .expect(key)
            .trim()
            .parse()
            .expect("number")
    };
    let d_in = counter("proc/t1", "pgpgin") - counter("proc/t0", "pgpgin");
    let d_fault = counter("proc/t1", "pgfault") - counter("proc/t0", "pgfault");
    let ratio = v["servers.testhost.vmstat.pgpgin"] / v["servers.testhost.vmstat.pgfault"];
    assert!(
        (ratio - d_in / d_fault).abs() < 1e-9,
        "{ratio} vs {}",
        d_in / d_fault
    );
    // The NFS READ ops went up by 100 between the snapshots, over >= 0.3 s.
    let reads = v["servers.testhost.mountstats._mnt_projects.rpc.read.ops"];
    assert!(reads > 0.0 && reads <= 100.0 / 0.3, "{reads}");
}

#[test]
fn once_over_udp_packs_lines_into_datagrams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let port = sock.local_addr().expect("addr").port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!("[handlers.graphite]\nport = {port}\nproto = \"udp\"\n"),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut text = String::new();
    let mut buf = [0u8; 65536];
    let mut datagrams = 0;
    while !text.contains("handlers") && !text.contains("collectors.vmstat.samples") {
        let n = sock.recv(&mut buf).expect("datagram");
        assert!(n <= 1432, "datagram of {n} bytes");
        assert!(buf[..n].ends_with(b"\n"), "whole lines only");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        datagrams += 1;
    }
    assert!(datagrams > 1);
    let names: BTreeSet<String> = parse_lines(&text).into_iter().map(|(n, _, _)| n).collect();
    assert!(names.contains("servers.testhost.memory.MemFree"));
    assert!(names.contains("servers.testhost.carbyne.collectors.cpu.run_time_ms"));
}

#[test]
fn once_against_a_closed_port_exits_nonzero_naming_the_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!("flush_timeout = 1\n[handlers.graphite]\nport = {port}\n"),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("graphite 127.0.0.1:{port}: connection refused")),
        "{err}"
    );
    assert!(err.contains("samples not delivered"), "{err}");
}

/// A daemon config ticking every second with only memory and loadavg on
/// (and `extra`), sending to Graphite on `port`.
fn daemon_config(dir: &std::path::Path, port: u16, extra: &str) -> std::path::PathBuf {
    config_dir(
        dir,
        "proc/t0",
        &format!(
            "interval = 1\nflush_timeout = 3\n\
             [collectors.cpu]\nenabled = false\n[collectors.diskspace]\nenabled = false\n\
             [collectors.diskusage]\nenabled = false\n[collectors.mountstats]\nenabled = false\n\
             [collectors.sockstat]\nenabled = false\n[collectors.vmstat]\nenabled = false\n\
             {extra}[handlers.graphite]\nport = {port}\nmax_backoff = 0.5\n"
        ),
    )
}

#[test]
fn daemon_buffers_while_the_server_is_down_and_flushes_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = daemon_config(dir.path(), port, "");
    let started = now();
    let mut child = bin()
        .args(["agent", "--config", cfg.to_str().expect("path")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The server is down for the first ticks.
    // (Five seconds, so that a slow start of the agent still leaves ticks
    // from before the server came up.)
    std::thread::sleep(Duration::from_millis(5000));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind late listener");
    let text = receive(
        listener.try_clone().expect("clone"),
        Duration::from_secs(15),
        |t| {
            let ticks: BTreeSet<i64> = parse_lines_lossy(t).iter().map(|(_, ts)| *ts).collect();
            ticks.len() >= 6 && ticks.iter().any(|ts| *ts >= started + 6)
        },
    );
    signal(&child, "-TERM");
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let text = text + &receive(listener, Duration::from_millis(500), |_| false);

    // Every tick from the first one on arrived whole: 17 memory and 8
    // loadavg samples. (The test's first listener drops its connection
    // unread: what the agent wrote in the last second may come twice.)
    let mut per_tick: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (name, _, ts) in parse_lines(&text) {
        if name.starts_with("servers.testhost.memory.")
            || name.starts_with("servers.testhost.loadavg.")
        {
            per_tick.entry(ts).or_default().insert(name);
        }
    }
    let ticks: Vec<i64> = per_tick.keys().copied().collect();
    assert!(ticks.len() >= 5, "{per_tick:?}");
    assert!(
        ticks[0] <= started + 3,
        "samples from before the server came up: {per_tick:?}"
    );
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "no tick lost: {ticks:?}"
    );
    assert!(per_tick.values().all(|n| n.len() == 25), "{per_tick:?}");
}

fn parse_lines_lossy(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let n = it.next()?;
            let _ = it.next()?;
            Some((n.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_dead_handler_does_not_hold_up_a_live_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let live = listener.local_addr().expect("addr").port();
    let dead = free_port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "flush_timeout = 1\nself_metrics = false\n\
             [handlers.live]\ntype = \"graphite\"\nport = {live}\n\
             [handlers.dead]\ntype = \"graphite\"\nport = {dead}\n"
        ),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("dead 127.0.0.1:{dead}")), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("live ")), "{err}");
    let text = receive(listener, Duration::from_secs(5), |t| {
        t.contains("sockets.udp_mem")
    });
    let names: BTreeSet<String> = parse_lines(&text).into_iter().map(|(n, _, _)| n).collect();
    assert!(names.contains("servers.testhost.memory.MemTotal"));
    assert!(names.contains("servers.testhost.sockets.udp_mem"));
}

/// SIGHUP: a new drop-in (a collector with its own interval) takes effect,
/// the samples queued while Graphite was down survive it, and a broken
/// drop-in is rejected with an error naming it while the agent goes on.
#[test]
fn sighup_reloads_the_config_and_keeps_what_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = daemon_config(dir.path(), port, "[collectors.memory]\nenabled = false\n");
    let dropins = dir.path().join("conf.d");
    std::fs::create_dir_all(&dropins).expect("conf.d");
    let started = now();
    let child = bin()
        .args(["agent", "--config", cfg.to_str().expect("path")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Graphite is down: loadavg samples queue up.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(
        dropins.join("memory.toml"),
        "[collectors.memory]\nenabled = true\ninterval = 2\n",
    )
    .expect("drop-in");
    let reloaded = now();
    signal(&child, "-HUP");
    std::thread::sleep(Duration::from_millis(1500));
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind late listener");
    // What arrives until a memory sample of `since` or later has come.
    let memory_since = |since: i64| {
        receive(
            listener.try_clone().expect("clone"),
            Duration::from_secs(10),
            |t| {
                parse_lines_lossy(t)
                    .iter()
                    .filter(|(n, _)| n.starts_with("servers.testhost.memory."))
                    .any(|(_, ts)| *ts >= since)
            },
        )
    };
    let mut text = memory_since(reloaded + 4);
    // A broken drop-in: rejected, the running configuration goes on.
    std::fs::write(dropins.join("zz.toml"), "[collectors.cpu]\nbogus = 1\n").expect("broken");
    let broken = now();
    signal(&child, "-HUP");
    text += &memory_since(broken + 3);
    signal(&child, "-TERM");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(output.status.code(), Some(0));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("configuration reloaded"), "{err}");
    assert!(
        err.contains("not reloaded") && err.contains("zz.toml"),
        "{err}"
    );

    let ticks = |part: &str| -> Vec<i64> {
        let mut t: Vec<i64> = parse_lines_lossy(&text)
            .into_iter()
            .filter(|(n, _)| n.starts_with(part))
            .map(|(_, ts)| ts)
            .collect();
        t.sort();
        t.dedup();
        t
    };
    let load = ticks("servers.testhost.loadavg.");
    let before: Vec<i64> = load.iter().copied().filter(|t| *t < reloaded).collect();
    assert!(
        before.first().is_some_and(|t| *t <= started + 2),
        "samples queued before the reload arrived: {load:?}"
    );
    assert!(
        before.windows(2).all(|w| w[1] == w[0] + 1),
        "none of them lost: {load:?}"
    );
    let mem = ticks("servers.testhost.memory.");
    assert!(mem.len() >= 3, "the new drop-in took effect: {mem:?}");
    assert!(
        mem.iter().all(|t| *t >= reloaded && t % 2 == 0),
        "on its own interval: {mem:?}"
    );
    assert!(
        load.iter().any(|t| *t >= broken + 2),
        "still running after the broken config: {load:?}"
    );
}

/// Graphite `destinations` with one carbon down: the live one gets every
/// name the ring gives it, at once; the dead one's samples are held, and
/// `--once` names it when they cannot be delivered.
#[test]
fn a_dead_destination_does_not_hold_up_a_live_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let live = listener.local_addr().expect("addr").port();
    let dead = free_port();
    let dests = [format!("127.0.0.1:{live}:a"), format!("127.0.0.1:{dead}:b")];
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "flush_timeout = 1\nself_metrics = false\n\
             [handlers.graphite]\ndestinations = {dests:?}\n"
        ),
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("graphite 127.0.0.1:{dead}: connection refused")),
        "{err}"
    );
    assert!(!err.contains(&format!("127.0.0.1:{live}")), "{err}");
    let ring = ring(&dests, 1, true);
    // What the ring gives the live one: the names a dry run of the same
    // config (with fresh state) prints, placed.
    let dry_dir = tempfile::tempdir().expect("tempdir");
    let dry_cfg = config_dir(
        dry_dir.path(),
        "proc/t0",
        &format!("self_metrics = false\n[handlers.graphite]\ndestinations = {dests:?}\n"),
    );
    let want: BTreeSet<String> = dry_run_names(&dry_cfg)
        .into_iter()
        .filter(|n| ring.destinations(n)[0].port == live)
        .collect();
    assert!(!want.is_empty());
    let text = receive(listener, Duration::from_secs(10), |t| {
        let whole = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
        let got: BTreeSet<String> = parse_lines(whole).into_iter().map(|(n, _, _)| n).collect();
        got == want
    });
    let got: BTreeSet<String> = parse_lines(&text).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(got, want);
}

/// `agent --once` reports each handler's counts too: those of the run
/// before, as a run knows its own only once it has delivered.
#[test]
fn once_reports_the_handlers_counts_of_the_run_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!("[handlers.graphite]\nport = {port}\ntimeout = 5\n"),
    );
    let once = || {
        let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = receive(
            listener.try_clone().expect("clone"),
            Duration::from_secs(10),
            |t| t.contains("carbyne.collectors.vmstat.samples"),
        );
        parse_lines(&text)
    };
    let first = once();
    assert!(!first
        .iter()
        .any(|(n, _, _)| n.contains(".carbyne.handlers.")));
    let second = once();
    let v: BTreeMap<&str, f64> = second.iter().map(|(n, v, _)| (n.as_str(), *v)).collect();
    assert_eq!(
        v["servers.testhost.carbyne.handlers.graphite.sent"],
        first.len() as f64,
        "what the first run delivered"
    );
    assert_eq!(v["servers.testhost.carbyne.handlers.graphite.dropped"], 0.0);
    assert_eq!(v["servers.testhost.carbyne.handlers.graphite.queue"], 0.0);
}
