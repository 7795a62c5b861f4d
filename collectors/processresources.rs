//! processresources: groups of processes, selected by regexes on their
//! name, executable or command line, their resources summed per group, as
//! Diamond's ProcessResourcesCollector: `process.<group>.{cpu_percent,
//! cpu_times.user,cpu_times.system,memory_info_ex.rss,memory_info_ex.vms,
//! num_threads,num_fds,num_ctx_switches.voluntary,
//! num_ctx_switches.involuntary,io_counters.read_bytes,
//! io_counters.write_bytes,uptime,workers_count}`, read from
//! `/proc/<pid>/{stat,status,io,fd}`.
//!
//! A process is identified (name, executable, command line) once, when its
//! pid first appears; each run then reads only the matched processes, so
//! the cost follows what is matched, not every process on the host:
//! - `/proc` is listed only when the kernel's last allocated pid (in
//!   `/proc/loadavg`) moved by more than [`PROBE_MAX`] since the run
//!   before; otherwise the few new pids are looked at one by one (a new
//!   thread's pid, found the same way, is told apart by its `Tgid`);
//! - a matched process's `stat`, `status` and `io` are kept open (up to
//!   [`HOLD_MAX`] processes) and read again from their start, without a
//!   path lookup, an open or a close. A held file of a process that is
//!   gone no longer reads (the kernel ties it to that process, not to the
//!   pid), so a reused pid is never read through it.
//!
//! A matched pid reused by another process is noticed by its start time;
//! an unmatched one is looked at again every [`RESCAN_EVERY`] runs (a
//! process that exec'd keeps its pid and start). Probing needs the last
//! pid of `proc_root`'s own pid namespace: in a container whose
//! `proc_root` is the host's `/proc`, `/proc` is listed every run.

use super::{CollectError, Collector, Emit};
use crate::config::{Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// `[collectors.processresources]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessResourcesConfig {
    /// The groups: `[collectors.processresources.process.<group>]`.
    pub process: BTreeMap<String, GroupConfig>,
}

/// One group: a process belongs to it when any regex finds a match
/// (anywhere, as Python's `re.search`) in its name, executable path or
/// command line (arguments joined by spaces), or it is carbyne itself and
/// `selfmon` is set. A process may belong to several groups.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    pub name: Vec<String>,
    pub exe: Vec<String>,
    pub cmdline: Vec<String>,
    pub selfmon: bool,
    /// Send `workers_count = 0` when nothing matches (otherwise nothing).
    pub count_workers: bool,
}

struct Group {
    name: String,
    patterns: [Option<regex::Regex>; 3],
    selfmon: bool,
    count_workers: bool,
}

/// What identifies a process for matching.
#[derive(Debug, Default, Clone)]
pub struct Identity {
    pub name: String,
    pub exe: String,
    pub cmdline: String,
}

/// The fields of `/proc/<pid>/stat` used here.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Stat {
    pub utime: u64,
    pub stime: u64,
    pub threads: u64,
    /// Clock ticks after boot.
    pub starttime: u64,
    pub vsize: u64,
    /// Pages.
    pub rss: u64,
}

/// Parses a `/proc/<pid>/stat` line (the command may hold spaces and
/// parentheses: the fields start after the last `)`).
pub fn parse_stat(text: &str) -> Option<(String, Stat)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let f: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        comm,
        Stat {
            utime: n(11)?,
            stime: n(12)?,
            threads: n(17)?,
            starttime: n(19)?,
            vsize: n(20)?,
            rss: n(21)?,
        },
    ))
}

/// `(voluntary, involuntary)` context switches of a `status` text.
pub fn ctx_switches(status: &str) -> Option<(u64, u64)> {
    let get = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((
        get("voluntary_ctxt_switches:")?,
        get("nonvoluntary_ctxt_switches:")?,
    ))
}

/// `(read_bytes, write_bytes)` of an `io` text.
pub fn io_bytes(io: &str) -> Option<(u64, u64)> {
    let get = |key: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    Some((get("read_bytes:")?, get("write_bytes:")?))
}

/// Runs between two looks at every process (to catch an unmatched pid
/// reused by a process that matches).
pub const RESCAN_EVERY: u64 = 30;

/// New pids since the run before looked at one by one; more, and `/proc`
/// is listed.
pub const PROBE_MAX: u32 = 256;

/// Matched processes whose files are kept open (three descriptors each,
/// 192 at most: the agent runs under the default soft limit of 1 024 open
/// files, shared with its handlers and log tails); beyond them, files are
/// opened by path each run.
pub const HOLD_MAX: usize = 64;

/// A process as last seen: its start (to notice a reused pid), its groups
/// (none: it matches no group) and, while it matches, its files.
struct Known {
    starttime: u64,
    groups: Vec<usize>,
    files: Option<Held>,
}

/// A matched process's `stat`, `status` and `io`, kept open.
struct Held {
    stat: std::fs::File,
    status: std::fs::File,
    io: Option<std::fs::File>,
}

impl Held {
    fn open(dir: &Path) -> Option<Held> {
        let open = |name: &str| std::fs::File::open(dir.join(name)).ok();
        Some(Held {
            stat: open("stat")?,
            status: open("status")?,
            io: open("io"),
        })
    }
}

/// A kept-open file read again from its start into `bytes`: None when it
/// no longer reads (its process is gone) or is not text.
fn reread<'b>(f: &std::fs::File, bytes: &'b mut Vec<u8>) -> Option<&'b str> {
    use std::os::unix::fs::FileExt;
    bytes.clear();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read_at(&mut chunk, bytes.len() as u64) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(chunk.get(..n)?),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    std::str::from_utf8(bytes).ok()
}

/// A process's open descriptors: on procfs since Linux 6.2 the size that
/// `stat` gives its `fd` directory (a lookup, not an open, a listing and a
/// close), else (an older kernel says 0) its entries counted.
fn count_fds(dir: &Path, procfs: bool) -> Option<u64> {
    let fd = dir.join("fd");
    if procfs {
        if let Some(n) = std::fs::metadata(&fd)
            .ok()
            .map(|m| m.len())
            .filter(|n| *n > 0)
        {
            return Some(n);
        }
    }
    std::fs::read_dir(fd).map(|rd| rd.count() as u64).ok()
}

/// The last pid the kernel allocated: `/proc/loadavg`'s fifth field.
pub fn last_pid(loadavg: &str) -> Option<u32> {
    loadavg.split_ascii_whitespace().nth(4)?.parse().ok()
}

/// The `Tgid:` of a `status` text: its process's pid (a thread's differs
/// from its own).
pub fn tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

pub struct ProcessResources {
    root: PathBuf,
    groups: Vec<Group>,
    /// Every pid seen, with its groups (empty: matches none).
    known: HashMap<u32, Known>,
    runs: u64,
    /// The last allocated pid at the run before, and `/proc/loadavg` held
    /// open to read it.
    last_pid: Option<u32>,
    loadavg: Option<std::fs::File>,
    /// The boot time, from `/proc/stat`.
    btime: Option<f64>,
    /// Whether `proc_root` is a procfs (not a test's tree of files, whose
    /// files, kept open, would read on after they were replaced).
    procfs: bool,
    /// Whether `loadavg`'s last pid counts `proc_root`'s pids: the
    /// reader's pid namespace is the mount's (`self` there is this
    /// process's own pid), or a test's tree.
    probe: bool,
    ticks: f64,
    page: f64,
    buf: String,
    bytes: Vec<u8>,
}

impl ProcessResources {
    pub fn new(opts: &ProcessResourcesConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let mut groups = Vec::new();
        for (name, g) in &opts.process {
            let key = format!("collectors.processresources.process.{name}");
            if name.is_empty() || name.contains(['.', ' ']) {
                return Err(ConfigError::new(
                    key,
                    "a group's name is one metric path segment",
                ));
            }
            let list = |what: &str, l: &[String]| -> Result<Option<regex::Regex>, ConfigError> {
                super::regex_list(&format!("{key}.{what}"), l, false)
            };
            groups.push(Group {
                name: name.clone(),
                patterns: [
                    list("name", &g.name)?,
                    list("exe", &g.exe)?,
                    list("cmdline", &g.cmdline)?,
                ],
                selfmon: g.selfmon,
                count_workers: g.count_workers,
            });
        }
        let procfs = rustix::fs::statfs(&cfg.proc_root)
            .is_ok_and(|f| f.f_type == rustix::fs::PROC_SUPER_MAGIC);
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Ok(ProcessResources {
            root: cfg.proc_root.clone(),
            groups,
            known: HashMap::new(),
            runs: 0,
            last_pid: None,
            loadavg: None,
            btime: None,
            procfs,
            probe: !procfs
                || std::fs::read_link(cfg.proc_root.join("self"))
                    .is_ok_and(|p| p.to_str() == Some(std::process::id().to_string().as_str())),
            ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            page: if page > 0 { page as f64 } else { 4096.0 },
            buf: String::new(),
            bytes: Vec::new(),
        })
    }

    fn read(&mut self, path: &Path) -> Option<&str> {
        super::read(path, &mut self.buf).ok()
    }

    /// Name (the kernel's `comm`, or the command's file name when `comm`
    /// is its first 15 bytes), executable and command line of a process.
    fn identify(&mut self, pid: u32, comm: &str) -> Identity {
        let dir = self.root.join(pid.to_string());
        let exe = std::fs::read_link(dir.join("exe"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let args: Vec<String> = self
            .read(&dir.join("cmdline"))
            .map(|t| {
                t.split('\0')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mut name = comm.to_string();
        if comm.len() == 15 {
            if let Some(base) = args.first().and_then(|a| a.rsplit('/').next()) {
                if base.starts_with(comm) {
                    name = base.to_string();
                }
            }
        }
        Identity {
            name,
            exe,
            cmdline: args.join(" "),
        }
    }

    fn matching(&self, pid: u32, id: &Identity) -> Vec<usize> {
        let me = std::process::id();
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| {
                (g.selfmon && pid == me)
                    || [&id.name, &id.exe, &id.cmdline]
                        .iter()
                        .zip(&g.patterns)
                        .any(|(text, re)| re.as_ref().is_some_and(|re| re.is_match(text)))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The pids to look at this run, and whether they were probed rather
    /// than listed: on a listing, every process in `/proc` (and what is
    /// known trimmed to them); otherwise the matched processes and the
    /// pids allocated since the run before.
    fn candidates(&mut self) -> Result<(Vec<u32>, bool), CollectError> {
        let rescan = self.runs.is_multiple_of(RESCAN_EVERY);
        self.runs += 1;
        let before = self.last_pid;
        if self.loadavg.is_none() && self.probe {
            self.loadavg = std::fs::File::open(self.root.join("loadavg")).ok();
        }
        self.last_pid = self
            .loadavg
            .as_ref()
            .and_then(|f| reread(f, &mut self.bytes))
            .and_then(last_pid);
        match (before, self.last_pid) {
            (Some(a), Some(b)) if !rescan && b >= a && b - a <= PROBE_MAX => {
                // A pid allocated since is a new process's, whatever was
                // known under it (the counter may have come round to a
                // pid that was alive at the last listing).
                for pid in a.saturating_add(1)..=b {
                    self.forget(pid);
                }
                let mut pids: Vec<u32> = self
                    .known
                    .iter()
                    .filter(|(_, k)| !k.groups.is_empty())
                    .map(|(pid, _)| *pid)
                    .chain(a.saturating_add(1)..=b)
                    .collect();
                pids.sort_unstable();
                pids.dedup();
                return Ok((pids, true));
            }
            _ => {}
        }
        let entries = std::fs::read_dir(&self.root).map_err(|source| CollectError::Io {
            path: self.root.clone(),
            source,
        })?;
        let mut pids: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        let gone: Vec<u32> = self
            .known
            .iter()
            .filter(|(pid, k)| pids.binary_search(pid).is_err() || (rescan && k.groups.is_empty()))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in gone {
            self.forget(pid);
        }
        Ok((pids, false))
    }

    /// Whether a probed pid is a process (a thread's `Tgid` is another's;
    /// a `status` that no longer reads: gone since its `stat` was read).
    fn is_process(&mut self, pid: u32, dir: &Path) -> bool {
        self.read(&dir.join("status"))
            .is_some_and(|t| tgid(t).is_none_or(|t| t == pid))
    }

    /// Closes a process's held files.
    fn let_go(&mut self, pid: u32) {
        if let Some(k) = self.known.get_mut(&pid) {
            k.files = None;
        }
    }

    /// Forgets a process (and closes its held files).
    fn forget(&mut self, pid: u32) {
        self.known.remove(&pid);
    }

    /// Processes whose files are held. (Counted when a matched process is
    /// first seen, not kept: nothing to fall out of step.)
    fn held(&self) -> usize {
        self.known.values().filter(|k| k.files.is_some()).count()
    }
}

/// Per-group sums.
#[derive(Default)]
struct Sums {
    workers: u64,
    cpu_ticks_delta: Option<f64>,
    utime: u64,
    stime: u64,
    rss: u64,
    vsize: u64,
    threads: u64,
    fds: u64,
    voluntary: u64,
    involuntary: u64,
    read_bytes: u64,
    write_bytes: u64,
    uptime: f64,
}

impl Collector for ProcessResources {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        if self.groups.is_empty() {
            return Ok(());
        }
        let (pids, probing) = self.candidates()?;
        // (Read once: `/proc/stat` is long on a host of many CPUs and
        // interrupts, and the boot time does not move.)
        if self.btime.is_none() {
            self.btime = self
                .read(&self.root.join("stat"))
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("btime ")))
                .and_then(|v| v.trim().parse::<f64>().ok());
        }
        let btime = self.btime;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut sums: Vec<Sums> = (0..self.groups.len()).map(|_| Sums::default()).collect();
        for pid in pids {
            let known = self.known.get(&pid);
            if known.is_some_and(|k| k.groups.is_empty()) {
                continue;
            }
            let dir = self.root.join(pid.to_string());
            // Through the held file; when that no longer reads, by path
            // (the pid may be another process's now).
            let mut read = known
                .and_then(|k| k.files.as_ref())
                .and_then(|h| reread(&h.stat, &mut self.bytes).and_then(parse_stat));
            if read.is_none() {
                self.let_go(pid);
                read = super::read(&dir.join("stat"), &mut self.buf)
                    .ok()
                    .and_then(parse_stat);
            }
            // Gone since the listing, or not ours to read: skipped.
            let Some((comm, stat)) = read else {
                self.forget(pid);
                continue;
            };
            let groups = match self.known.get(&pid) {
                Some(k) if k.starttime == stat.starttime => k.groups.clone(),
                _ => {
                    // A pid found by probing may be a new thread's.
                    if probing && !self.is_process(pid, &dir) {
                        continue;
                    }
                    self.forget(pid);
                    let id = self.identify(pid, &comm);
                    let groups = self.matching(pid, &id);
                    let files = if self.procfs && !groups.is_empty() && self.held() < HOLD_MAX {
                        Held::open(&dir)
                    } else {
                        None
                    };
                    self.known.insert(
                        pid,
                        Known {
                            starttime: stat.starttime,
                            groups: groups.clone(),
                            files,
                        },
                    );
                    groups
                }
            };
            if groups.is_empty() {
                continue;
            }
            let (ctx, io) = match self.known.get(&pid).and_then(|k| k.files.as_ref()) {
                Some(h) => (
                    reread(&h.status, &mut self.bytes).and_then(ctx_switches),
                    h.io.as_ref()
                        .and_then(|f| reread(f, &mut self.bytes))
                        .and_then(io_bytes),
                ),
                None => (
                    self.read(&dir.join("status")).and_then(ctx_switches),
                    self.read(&dir.join("io")).and_then(io_bytes),
                ),
            };
            let fds = count_fds(&dir, self.procfs);
            let started = btime.map(|b| b + stat.starttime as f64 / self.ticks);
            let cpu = out.counters().delta(
                &format!("cpu.{pid}.{}", stat.starttime),
                stat.utime + stat.stime,
            );
            for g in groups {
                let Some(s) = sums.get_mut(g) else { continue };
                s.workers += 1;
                s.utime += stat.utime;
                s.stime += stat.stime;
                s.rss += stat.rss;
                s.vsize += stat.vsize;
                s.threads += stat.threads;
                s.fds += fds.unwrap_or(0);
                if let Some((v, i)) = ctx {
                    s.voluntary += v;
                    s.involuntary += i;
                }
                if let Some((r, w)) = io {
                    s.read_bytes += r;
                    s.write_bytes += w;
                }
                if let Some(t) = started {
                    s.uptime += (now - t).max(0.0);
                }
                if let Some(d) = cpu {
                    s.cpu_ticks_delta = Some(s.cpu_ticks_delta.unwrap_or(0.0) + d);
                }
            }
        }
        let elapsed = out.counters().elapsed();
        for (g, s) in self.groups.iter().zip(sums) {
            let name = &g.name;
            if s.workers == 0 {
                if g.count_workers {
                    out.gauge(&format!("{name}.workers_count"), 0.0);
                }
                continue;
            }
            if let (Some(d), Some(dt)) = (s.cpu_ticks_delta, elapsed) {
                out.gauge(&format!("{name}.cpu_percent"), d / self.ticks / dt * 100.0);
            }
            let ticks = self.ticks;
            let page = self.page;
            for (metric, v) in [
                ("cpu_times.user", s.utime as f64 / ticks),
                ("cpu_times.system", s.stime as f64 / ticks),
                ("memory_info_ex.rss", s.rss as f64 * page),
                ("memory_info_ex.vms", s.vsize as f64),
                ("num_threads", s.threads as f64),
                ("num_fds", s.fds as f64),
                ("num_ctx_switches.voluntary", s.voluntary as f64),
                ("num_ctx_switches.involuntary", s.involuntary as f64),
                ("io_counters.read_bytes", s.read_bytes as f64),
                ("io_counters.write_bytes", s.write_bytes as f64),
                ("uptime", s.uptime),
                ("workers_count", s.workers as f64),
            ] {
                out.gauge(&format!("{name}.{metric}"), v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, two_runs, values};

    /// A proc tree: `stat` with btime, and processes
    /// `(pid, comm, cmdline, exe, utime, starttime)`.
    fn tree(root: &Path, procs: &[(u32, &str, &str, &str, u64, u64)]) {
        std::fs::create_dir_all(root).expect("mkdir");
        std::fs::write(root.join("stat"), "cpu 1 2 3 4\nbtime 1700000000\n").expect("stat");
        for (pid, comm, cmdline, exe, utime, start) in procs {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(d.join("fd")).expect("mkdir");
            std::fs::write(
                d.join("stat"),
                format!(
                    "{pid} ({comm}) S 1 {pid} {pid} 0 -1 4194560 500 0 0 0 {utime} 20 0 0 20 0 4 0 {start} 104857600 2560 18446744073709551615\n"
                ),
            )
            .expect("stat");
            std::fs::write(
                d.join("status"),
                "Name:\tx\nvoluntary_ctxt_switches:\t10\nnonvoluntary_ctxt_switches:\t2\n",
            )
            .expect("status");
            std::fs::write(
                d.join("io"),
                "rchar: 1\nread_bytes: 4096\nwrite_bytes: 8192\n",
            )
            .expect("io");
            std::fs::write(d.join("cmdline"), cmdline.replace(' ', "\0")).expect("cmdline");
            let _ = std::fs::remove_file(d.join("exe"));
            std::os::unix::fs::symlink(exe, d.join("exe")).expect("exe");
            for fd in 0..3 {
                std::fs::write(d.join("fd").join(fd.to_string()), "").expect("fd");
            }
        }
    }

    /// One run with no state before: `process.<metric>` -> value.
    fn once(c: &mut ProcessResources) -> std::collections::BTreeMap<String, f64> {
        let path = crate::sample::MetricPath::new("s", None, "", "process");
        let filter = crate::collectors::Filter::default();
        let mut e = Emit::new(&path, &filter, 0, crate::rates::Counters::begin(None, 0.0));
        c.collect(&mut e).expect("run");
        values(&e.finish().0)
    }

    fn group(name: &[&str], exe: &[&str], cmdline: &[&str]) -> GroupConfig {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        GroupConfig {
            name: v(name),
            exe: v(exe),
            cmdline: v(cmdline),
            ..GroupConfig::default()
        }
    }

    #[test]
    fn groups_summed_and_cpu_per_second() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("proc");
        let mut opts = ProcessResourcesConfig::default();
        opts.process
            .insert("postgres".into(), group(&["^postgres"], &[], &[]));
        opts.process.insert(
            "elasticsearch".into(),
            group(&[], &[], &["java.*Elasticsearch"]),
        );
        opts.process
            .insert("bin".into(), group(&[], &["^/usr/lib/postgresql/"], &[]));
        let mut none = group(&["^nothing"], &[], &[]);
        none.count_workers = true;
        opts.process.insert("none".into(), none);
        opts.process
            .insert("quiet".into(), group(&["^nothing"], &[], &[]));
        let cfg = Config {
            proc_root: root.clone(),
            ..Config::default()
        };
        let mut c = ProcessResources::new(&opts, &cfg).expect("new");
        c.ticks = 100.0;
        c.page = 4096.0;
        let pg = "/usr/lib/postgresql/15/bin/postgres";
        let (first, second) = two_runs(&mut c, 10.0, |_, i| {
            let extra = if i == 0 { 0 } else { 50 };
            tree(
                &root,
                &[
                    (
                        100,
                        "postgres",
                        "/usr/lib/postgresql/15/bin/postgres -D /srv",
                        pg,
                        1000 + extra,
                        500,
                    ),
                    (101, "postgres", "postgres: checkpointer", pg, 30, 600),
                    (200, "bash", "-bash", "/usr/bin/bash", 5, 700),
                    (
                        300,
                        "java",
                        "java -cp x org.elasticsearch.bootstrap.Elasticsearch",
                        "/usr/bin/java",
                        7,
                        800,
                    ),
                ],
            );
        });
        let v0 = values(&first);
        assert!(
            !v0.contains_key("postgres.cpu_percent"),
            "no rate on the first run"
        );
        let v = values(&second);
        assert_eq!(v["postgres.workers_count"], 2.0);
        // 50 ticks at 100 a second, in 10 s: 5 % of a CPU.
        assert!(close(v["postgres.cpu_percent"], 5.0));
        assert_eq!(v["postgres.cpu_times.user"], (1050 + 30) as f64 / 100.0);
        assert_eq!(v["postgres.memory_info_ex.rss"], 2.0 * 2560.0 * 4096.0);
        assert_eq!(v["postgres.memory_info_ex.vms"], 2.0 * 104_857_600.0);
        assert_eq!(v["postgres.num_threads"], 8.0);
        assert_eq!(v["postgres.num_fds"], 6.0);
        assert_eq!(v["postgres.num_ctx_switches.voluntary"], 20.0);
        assert_eq!(v["postgres.io_counters.write_bytes"], 16_384.0);
        assert!(v["postgres.uptime"] > 0.0);
        assert_eq!(v["bin.workers_count"], 2.0, "matched by executable");
        assert_eq!(
            v["elasticsearch.workers_count"], 1.0,
            "matched by command line"
        );
        assert_eq!(v["none.workers_count"], 0.0, "count_workers");
        assert!(!v.keys().any(|k| k.starts_with("quiet.")));
        assert_eq!(v.keys().filter(|k| k.starts_with("postgres.")).count(), 13);

        // A process is identified once: bash turning into postgres under
        // the same pid and start is not looked at again...
        tree(&root, &[(200, "postgres", "postgres", pg, 5, 700)]);
        let v = once(&mut c);
        assert_eq!(v["s.process.postgres.workers_count"], 2.0);
        // ... a matched pid taken by another process is (its start moved)...
        tree(&root, &[(101, "bash", "-bash", "/usr/bin/bash", 5, 950)]);
        let v = once(&mut c);
        assert_eq!(v["s.process.postgres.workers_count"], 1.0, "a reused pid");
        // ... and every process is looked at again every RESCAN_EVERY runs.
        c.runs = RESCAN_EVERY;
        let v = once(&mut c);
        assert_eq!(v["s.process.postgres.workers_count"], 2.0, "the rescan");
    }

    #[test]
    fn new_pids_are_probed_between_listings() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("proc");
        let mut opts = ProcessResourcesConfig::default();
        opts.process
            .insert("postgres".into(), group(&["^postgres"], &[], &[]));
        let cfg = Config {
            proc_root: root.clone(),
            ..Config::default()
        };
        let mut c = ProcessResources::new(&opts, &cfg).expect("new");
        let pg = "/usr/lib/postgresql/15/bin/postgres";
        let loadavg = |last: u32| {
            std::fs::write(
                root.join("loadavg"),
                format!("0.00 0.01 0.05 1/99 {last}\n"),
            )
            .expect("loadavg")
        };
        let workers = |c: &mut ProcessResources| once(c)["s.process.postgres.workers_count"];
        tree(&root, &[(100, "postgres", "postgres", pg, 1, 500)]);
        loadavg(100);
        assert_eq!(workers(&mut c), 1.0, "the first run lists /proc");
        // A process started since: its pid is the last allocated.
        tree(&root, &[(101, "postgres", "postgres", pg, 1, 600)]);
        loadavg(101);
        assert_eq!(workers(&mut c), 2.0, "a new pid probed");
        // No pid allocated: /proc is not listed (a pid below the last
        // one cannot be new on a real kernel).
        tree(&root, &[(50, "postgres", "postgres", pg, 1, 700)]);
        assert_eq!(workers(&mut c), 2.0, "nothing new, nothing listed");
        // A new thread of process 100: its pid shows as a directory when
        // asked for by name, with the same command; its Tgid tells it.
        tree(&root, &[(102, "postgres", "postgres", pg, 1, 800)]);
        std::fs::write(
            root.join("102/status"),
            "Name:\tpostgres\nTgid:\t100\nPid:\t102\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t1\n",
        )
        .expect("status");
        loadavg(102);
        assert_eq!(workers(&mut c), 2.0, "a thread is not a worker");
        // More pids allocated than are probed: /proc is listed again.
        std::fs::remove_dir_all(root.join("102")).expect("rm");
        tree(&root, &[(400, "bash", "-bash", "/usr/bin/bash", 1, 900)]);
        loadavg(102 + PROBE_MAX + 1);
        assert_eq!(workers(&mut c), 3.0, "the listing finds pid 50");
        assert_eq!(c.held(), 0, "files are held on procfs only");
        // A process gone.
        std::fs::remove_dir_all(root.join("101")).expect("rm");
        assert_eq!(workers(&mut c), 2.0);
        // The counter came round to pid 400, unmatched (bash) at the
        // listing: the new process under it is looked at.
        tree(&root, &[(400, "postgres", "postgres", pg, 1, 950)]);
        loadavg(400);
        assert_eq!(workers(&mut c), 3.0, "a pid allocated again");
        assert_eq!(last_pid("0.52 0.58 0.59 3/1067 240735\n"), Some(240_735));
        assert_eq!(last_pid("0.52"), None);
    }

    /// On the real /proc: a child started between two runs is found (by
    /// probing when few pids were allocated in between, else by listing),
    /// and a new thread of this process, with its command line, is not
    /// counted as a process.
    #[test]
    fn on_the_real_proc_a_new_child_counts_and_a_new_thread_does_not() {
        let mut opts = ProcessResourcesConfig::default();
        opts.process
            .insert("sleepers".into(), group(&[], &[], &[r"^sleep 3600\.4242$"]));
        let me = std::fs::read("/proc/self/cmdline").expect("cmdline");
        let me = String::from_utf8_lossy(&me).replace('\0', " ");
        let me = format!("^{}$", regex::escape(me.trim_end()));
        opts.process
            .insert("me".into(), group(&[], &[], &[me.as_str()]));
        let mut c = ProcessResources::new(&opts, &Config::default()).expect("new");
        struct Kill(Vec<std::process::Child>);
        impl Drop for Kill {
            fn drop(&mut self) {
                for child in &mut self.0 {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        let sleep = || {
            std::process::Command::new("sleep")
                .arg("3600.4242")
                .spawn()
                .expect("sleep")
        };
        let mut kids = Kill(vec![sleep()]);
        let v = once(&mut c);
        assert_eq!(v["s.process.sleepers.workers_count"], 1.0);
        assert_eq!(v["s.process.me.workers_count"], 1.0);
        kids.0.push(sleep());
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv());
        let v = once(&mut c);
        drop(tx);
        let _ = thread.join();
        assert_eq!(v["s.process.sleepers.workers_count"], 2.0);
        assert_eq!(
            v["s.process.me.workers_count"], 1.0,
            "a thread is no worker"
        );
        assert!(v["s.process.me.num_threads"] >= 2.0);
        assert_eq!(c.held(), 3, "the matched processes' files are held");
        // Descriptors counted as a listing counts them (`stat`'s size on
        // procfs since Linux 6.2).
        assert!(c.procfs && c.probe);
        let dir = Path::new("/proc").join(kids.0[0].id().to_string());
        let listed = std::fs::read_dir(dir.join("fd")).expect("fd").count() as u64;
        assert_eq!(count_fds(&dir, true), Some(listed));
    }

    #[test]
    fn selfmon_on_the_real_proc_and_bad_options() {
        let mut opts = ProcessResourcesConfig::default();
        opts.process.insert(
            "me".into(),
            GroupConfig {
                selfmon: true,
                ..GroupConfig::default()
            },
        );
        let mut c = ProcessResources::new(&opts, &Config::default()).expect("new");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["me.workers_count"], 1.0);
        assert!(v["me.memory_info_ex.rss"] > 0.0 && v["me.num_threads"] >= 1.0);
        let bad = |g: GroupConfig, name: &str| {
            let mut o = ProcessResourcesConfig::default();
            o.process.insert(name.into(), g);
            ProcessResources::new(&o, &Config::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = bad(group(&["(postgres"], &[], &[]), "pg");
        assert!(
            e.contains("collectors.processresources.process.pg.name"),
            "{e}"
        );
        let e = bad(group(&["x"], &[], &[]), "a.b");
        assert!(e.contains("collectors.processresources.process.a.b"), "{e}");
        assert_eq!(
            parse_stat("7 (a) b) c) S 1 1 1 0 -1 0 0 0 0 0 11 12 0 0 20 0 3 0 99 1000 5 0"),
            Some((
                "a) b) c".to_string(),
                Stat {
                    utime: 11,
                    stime: 12,
                    threads: 3,
                    starttime: 99,
                    vsize: 1000,
                    rss: 5
                }
            ))
        );
    }
}
