//! Log tailing against real files: rotation while lines are being written,
//! once-mode runs through the binary (a failed send keeps the position),
//! and `carbyne logster`.

mod common;

use carbyne::tail::{Follower, StartAt};
use common::*;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Rotation {
    RenameAndCreate,
    CopyTruncate,
    Truncate,
    DeleteAndRecreate,
}

fn open_append(p: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .expect("open for append")
}

/// Writes `n` numbered lines to `path`, rotating it three times along the
/// way, while a follower reads; every line must be read exactly once.
fn rotate_while_writing(how: Rotation) {
    const N: u64 = 6000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.log");
    File::create(&path).expect("create");
    let read = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(std::sync::Mutex::new(vec![0u8; N as usize]));

    let writer = {
        let (path, read) = (path.clone(), read.clone());
        std::thread::spawn(move || {
            let mut f = open_append(&path);
            for i in 0..N {
                if i > 0 && i % 1500 == 0 {
                    rotate(how, &path, &mut f, i, &read);
                }
                if matches!(how, Rotation::RenameAndCreate) && i > 3 && i % 1500 == 3 {
                    // Three lines went to the renamed file, as a daemon writes
                    // on until it is told to reopen its log.
                    f = open_append(&path);
                }
                if i % 500 == 7 {
                    // A line written in two halves: read only once it is whole.
                    f.write_all(format!("line {i} ").as_bytes()).expect("write");
                    f.flush().expect("flush");
                    std::thread::sleep(Duration::from_millis(15));
                    f.write_all(b"second half\n").expect("write");
                } else {
                    f.write_all(format!("line {i}\n").as_bytes())
                        .expect("write");
                }
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        })
    };

    let mut follower = Follower::new(&path, None, StartAt::Beginning, 1 << 16);
    let start = Instant::now();
    while read.load(Ordering::SeqCst) < N && start.elapsed() < Duration::from_secs(30) {
        let mut seen = seen.lock().expect("lock");
        follower
            .poll(&mut |l| {
                let s = String::from_utf8_lossy(l);
                let n: usize = s
                    .strip_prefix("line ")
                    .and_then(|r| r.split(' ').next())
                    .and_then(|x| x.parse().ok())
                    .unwrap_or_else(|| panic!("{how:?}: unexpected line {s:?}"));
                if n % 500 == 7 {
                    assert!(
                        s.ends_with("second half"),
                        "{how:?}: partial line read: {s:?}"
                    );
                }
                seen[n] += 1;
                read.fetch_add(1, Ordering::SeqCst);
            })
            .expect("poll");
        drop(seen);
        std::thread::sleep(Duration::from_millis(3));
    }
    writer.join().expect("writer");
    let seen = seen.lock().expect("lock");
    let missing: Vec<usize> = (0..N as usize).filter(|i| seen[*i] == 0).take(10).collect();
    let twice: Vec<usize> = (0..N as usize).filter(|i| seen[*i] > 1).take(10).collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{how:?}: missing {missing:?}, twice {twice:?}"
    );
    assert_eq!(read.load(Ordering::SeqCst), N, "{how:?}");
}

fn rotate(how: Rotation, path: &Path, f: &mut File, i: u64, read: &AtomicU64) {
    let rotated = path.with_extension(format!("log.{i}"));
    match how {
        Rotation::RenameAndCreate => {
            std::fs::rename(path, &rotated).expect("rename");
        }
        Rotation::CopyTruncate => {
            f.flush().expect("flush");
            // logrotate's copytruncate: the copy is FILE.1.
            let copy = path.with_extension("log.1");
            std::fs::copy(path, &copy).expect("copy");
            f.set_len(0).expect("truncate");
        }
        Rotation::Truncate => {
            // Lines not read before a plain truncation are lost by nature:
            // wait until the reader has them all.
            let start = Instant::now();
            while read.load(Ordering::SeqCst) < i && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(2));
            }
            f.set_len(0).expect("truncate");
        }
        Rotation::DeleteAndRecreate => {
            std::fs::remove_file(path).expect("delete");
            std::thread::sleep(Duration::from_millis(30));
            *f = open_append(path);
        }
    }
}

#[test]
fn rename_and_create_while_writing() {
    rotate_while_writing(Rotation::RenameAndCreate);
}

#[test]
fn copytruncate_while_writing() {
    rotate_while_writing(Rotation::CopyTruncate);
}

#[test]
fn truncate_while_writing() {
    rotate_while_writing(Rotation::Truncate);
}

#[test]
fn delete_and_recreate_while_writing() {
    rotate_while_writing(Rotation::DeleteAndRecreate);
}

#[test]
fn a_file_that_does_not_exist_yet_is_read_from_its_start_once_it_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("late.log");
    let mut f = Follower::new(&path, None, StartAt::End, 1024);
    let mut n = 0;
    f.poll(&mut |_| n += 1).expect("poll");
    std::fs::write(&path, "a\nb\n").expect("write");
    f.poll(&mut |_| n += 1).expect("poll");
    assert_eq!(n, 2);
}

fn sum(lines: &[(String, f64, i64)], name: &str) -> f64 {
    lines
        .iter()
        .filter(|(n, _, _)| n == name)
        .map(|(_, v, _)| v)
        .sum()
}

#[test]
fn once_mode_keeps_the_position_when_the_send_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "13:00:00 ERROR before any run\n").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let logs = format!(
        "self_metrics = false\nflush_timeout = 1\n\
         [collectors.cpu]\nenabled = false\n[collectors.diskspace]\nenabled = false\n\
         [collectors.diskusage]\nenabled = false\n[collectors.loadavg]\nenabled = false\n\
         [collectors.memory]\nenabled = false\n[collectors.mountstats]\nenabled = false\n\
         [collectors.sockstat]\nenabled = false\n[collectors.vmstat]\nenabled = false\n\
         [logs.app]\nfile = {:?}\nparser = \"log4j\"\n",
        log.display().to_string()
    );
    let with_port = |p: u16| {
        config_dir(
            dir.path(),
            "proc/t0",
            &format!("{logs}[handlers.graphite]\nport = {p}\n"),
        )
    };
    // 1: the first run records where the file ends.
    let cfg = with_port(port);
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 2: three new lines, but Graphite is down: exit 1, position kept.
    open_append(&log)
        .write_all(b"13:00:01 ERROR one\n13:00:02 WARN two\n13:00:03 INFO three\n")
        .expect("append");
    let cfg = with_port(free_port());
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    // 3: Graphite back: the same three lines, once.
    let cfg = with_port(port);
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["agent", "--once", "--config", cfg.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = receive(listener, Duration::from_secs(10), |t| {
        t.matches("lines_read").count() >= 2
    });
    let lines = parse_lines(&text);
    assert_eq!(
        sum(&lines, "servers.testhost.app.lines_read"),
        3.0,
        "{text}"
    );
    assert_eq!(
        sum(&lines, "servers.testhost.app.lines_matched"),
        2.0,
        "{text}"
    );
    assert!(lines
        .iter()
        .any(|(n, v, _)| n == "servers.testhost.app.ERROR" && *v > 0.0));
}

#[test]
fn logster_command_like_logster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("mail.log");
    std::fs::write(&log, "").expect("write");
    let state = dir.path().join("state");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "logster".into(),
            "--state-dir".into(),
            state.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push("PostfixLogster".into());
        v.push(log.display().to_string());
        v
    };
    let run_args = |extra: &[&str]| {
        let a = args(extra);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run(&refs)
    };
    // No output and no dry run: a usage error, as Logster gives.
    assert_eq!(run_args(&[]).status.code(), Some(2));
    // First run: records the end of the file (a dry run would record nothing).
    assert!(run_args(&["--output", "stdout"]).status.success());
    std::fs::copy(fixture("logs/maillog"), &log).expect("copy");
    // A dry run prints and does not move the position...
    let o = run_args(&["--dry-run", "--metric-prefix", "mail"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        text.contains("\nmail.numSent 4 ") || text.starts_with("mail.numSent 4 "),
        "{text}"
    );
    // ...so the real run sends the same, with Logster's bare names.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hp = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let o = run_args(&[
        "--output",
        "graphite",
        "--graphite-host",
        &hp,
        "--metric-suffix",
        "mx1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = receive(listener, Duration::from_secs(10), |t| {
        t.contains("lines_too_long")
    });
    let lines = parse_lines(&got);
    assert_eq!(sum(&lines, "numSent.mx1"), 4.0, "{got}");
    assert_eq!(sum(&lines, "numBounced.mx1"), 1.0);
    assert_eq!(sum(&lines, "lines_read.mx1"), 23.0);
    assert_eq!(sum(&lines, "lines_too_long.mx1"), 1.0, "the 75 kB line");
}

/// Runs the agent daemon, calls `during` while it runs, stops it with
/// SIGTERM and returns what `listener` received.
fn daemon(cfg: &Path, listener: &TcpListener, during: impl FnOnce()) -> String {
    let mut child = bin()
        .args(["agent", "--config", cfg.to_str().expect("path")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(700));
    during();
    signal(&child, "-TERM");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "agent did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    receive(
        listener.try_clone().expect("clone"),
        Duration::from_secs(2),
        |_| false,
    )
}

#[test]
fn daemon_follows_a_log_reports_every_line_once_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "13:00:00 ERROR old, before the agent started\n").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "interval = 1\nself_metrics = false\n\
             [collectors.cpu]\nenabled = false\n[collectors.diskspace]\nenabled = false\n\
             [collectors.diskusage]\nenabled = false\n[collectors.loadavg]\nenabled = false\n\
             [collectors.memory]\nenabled = false\n[collectors.mountstats]\nenabled = false\n\
             [collectors.sockstat]\nenabled = false\n[collectors.vmstat]\nenabled = false\n\
             [logs.app]\nfile = {:?}\nparser = \"log4j\"\n\
             [handlers.graphite]\nport = {port}\n",
            log.display().to_string()
        ),
    );
    let mut f = open_append(&log);
    let text = daemon(&cfg, &listener, || {
        for i in 0..20 {
            f.write_all(format!("13:00:{i:02} ERROR number {i}\n").as_bytes())
                .expect("write");
            if i == 10 {
                std::thread::sleep(Duration::from_millis(1200));
            }
        }
        f.write_all(b"13:00:59 WARN last").expect("write"); // no newline yet
        std::thread::sleep(Duration::from_millis(1500));
    });
    let lines = parse_lines(&text);
    assert_eq!(
        sum(&lines, "servers.testhost.app.lines_read"),
        20.0,
        "{text}"
    );
    assert_eq!(sum(&lines, "servers.testhost.app.lines_matched"), 20.0);
    assert!(
        lines
            .iter()
            .filter(|(n, _, _)| n == "servers.testhost.app.lines_read")
            .count()
            >= 2
    );

    // Restarted, the agent goes on from the saved position: the line
    // finished now is the only new one.
    f.write_all(b"\n").expect("write");
    let text = daemon(&cfg, &listener, || {
        std::thread::sleep(Duration::from_millis(1200))
    });
    let lines = parse_lines(&text);
    assert_eq!(
        sum(&lines, "servers.testhost.app.lines_read"),
        1.0,
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|(n, v, _)| n == "servers.testhost.app.WARN" && *v > 0.0),
        "{text}"
    );
}

/// Logster (logtail) reads a file it has never seen whole; so does
/// `carbyne logster`, dry run included, unless `--start-at end`. A missing
/// file is an error there, and a warning for the agent's `[logs.NAME]`.
#[test]
fn logster_reads_a_new_file_whole_and_a_missing_file_is_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("mail.log");
    std::fs::copy(fixture("logs/maillog"), &log).expect("copy");
    let state = dir.path().join("state");
    let st = state.to_str().expect("path");
    let lp = log.to_str().expect("path");
    let o = run(&["logster", "--dry-run", "-s", st, "postfix", lp]);
    assert!(o.status.success());
    assert_eq!(
        sum(&parse_lines(&String::from_utf8_lossy(&o.stdout)), "numSent"),
        4.0
    );
    // A dry run keeps no position: the same again.
    let o = run(&["logster", "--dry-run", "-s", st, "postfix", lp]);
    assert_eq!(
        sum(&parse_lines(&String::from_utf8_lossy(&o.stdout)), "numSent"),
        4.0
    );
    let o = run(&[
        "logster",
        "--dry-run",
        "--start-at",
        "end",
        "-s",
        st,
        "postfix",
        lp,
    ]);
    assert!(o.status.success() && o.stdout.is_empty());

    let missing = dir.path().join("nope.log");
    let o = run(&[
        "logster",
        "--dry-run",
        "-s",
        st,
        "postfix",
        missing.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.log: no such file"));

    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "[logs.mail]\nfile = {:?}\nparser = \"postfix\"\n",
            missing.display().to_string()
        ),
    );
    let o = run(&[
        "agent",
        "--once",
        "--dry-run",
        "--config",
        cfg.to_str().expect("path"),
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("nope.log: no such file").count(), 1, "{err}");
}

/// The daemon's log points fall on the collectors' slots, the last one
/// (at SIGTERM) included.
#[test]
fn daemon_log_points_fall_on_the_interval_slots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!(
            "interval = 7\nself_metrics = false\n\
             [logs.app]\nfile = {:?}\nparser = \"log4j\"\n\
             [handlers.graphite]\nport = {port}\n",
            log.display().to_string()
        ),
    );
    let mut f = open_append(&log);
    let text = daemon(&cfg, &listener, || {
        f.write_all(b"13:00:00 ERROR one\n").expect("write");
        std::thread::sleep(Duration::from_millis(1000));
    });
    let lines = parse_lines(&text);
    let app: Vec<i64> = lines
        .iter()
        .filter(|(n, _, _)| n.starts_with("servers.testhost.app."))
        .map(|(_, _, t)| *t)
        .collect();
    assert!(!app.is_empty(), "{text}");
    assert!(app.iter().all(|t| t % 7 == 0), "{app:?}");
    assert_eq!(
        sum(&lines, "servers.testhost.app.lines_read"),
        1.0,
        "{text}"
    );
}
