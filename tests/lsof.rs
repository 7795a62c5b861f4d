//! filestat's per-user counts (`collect_user_data`) against the real lsof:
//! a process of an unused uid holds files of every kind lsof tells apart
//! (regular, directory, device, pipe, TCP and UDP over IPv4 and IPv6,
//! unbound sockets, unix, netlink, epoll, a mapped deleted file), and
//! `agent --once --dry-run` must count per type what `lsof -u` lists.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// A uid no account has, so only the test's process runs as it.
const UID: u32 = 54321;

/// Every TYPE the child holds, and some it does not (they must be 0).
const TYPES: &[&str] = &[
    "REG", "DIR", "CHR", "BLK", "FIFO", "IPv4", "IPv6", "unix", "netlink", "sock", "a_inode",
    "raw", "pack",
];

#[test]
fn per_user_counts_by_type_match_lsof() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: running a process as another uid needs root");
        return;
    }
    let mut child = Command::new("/usr/bin/python3")
        .arg(repo("tests/peers/open_files.py"))
        .uid(UID)
        .gid(UID)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 as another uid");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read");
    let child = Child(child);
    assert_eq!(ready.trim(), "ready");

    let dir = tempfile::tempdir().expect("tempdir");
    let types: Vec<String> = TYPES.iter().map(|t| format!("{t:?}")).collect();
    let cfg = dir.path().join("carbyne.toml");
    std::fs::write(
        &cfg,
        format!(
            "hostname = \"h\"\nself_metrics = false\nstate_dir = {:?}\n\
             [collectors.filestat]\ncollect_user_data = true\nuser_include = [\"{UID}\"]\n\
             type_include = [{}]\n",
            dir.path().join("state"),
            types.join(", ")
        ),
    )
    .expect("write config");
    let out = dry_run(&cfg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prefix = format!("servers.h.files.user.{UID}.");
    let ours: BTreeMap<String, f64> = parse_lines(&String::from_utf8_lossy(&out.stdout))
        .into_iter()
        .filter_map(|(name, v, _)| Some((name.strip_prefix(&prefix)?.to_string(), v)))
        .collect();

    // lsof's field output: one `t<TYPE>` line per file listed.
    let lsof = Command::new("lsof")
        .args(["-wbu", &UID.to_string(), "-Ft"])
        .output()
        .expect("lsof (tests/run.sh installs it)");
    let mut theirs: BTreeMap<String, f64> = TYPES.iter().map(|t| (t.to_string(), 0.0)).collect();
    for line in String::from_utf8_lossy(&lsof.stdout).lines() {
        if let Some(ty) = line.strip_prefix('t') {
            *theirs.entry(ty.to_string()).or_default() += 1.0;
        }
    }
    drop(child);
    assert_eq!(ours, theirs, "carbyne (left) against lsof -u {UID} (right)");
    // The child holds at least one of each kind it opens: the test compares something.
    for ty in [
        "REG", "DIR", "CHR", "FIFO", "IPv4", "IPv6", "unix", "netlink", "sock", "a_inode",
    ] {
        assert!(theirs[ty] >= 1.0, "lsof lists no {ty}: {theirs:?}");
    }
}
