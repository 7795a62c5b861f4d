//! filestat: open file handles from `/proc/sys/fs/file-nr`, as Diamond's
//! FilestatCollector: `files.assigned`, `files.unused`, `files.max`; and,
//! with `collect_user_data`, Diamond's per-user counts by lsof's file type
//! (`files.user.<user>.<TYPE>`), counted from `/proc` without running lsof.
//!
//! For Prometheus, node_exporter's `node_filefd_allocated` and
//! `node_filefd_maximum`, and the per-user counts as
//! `carbyne_filestat_user_open_files{type,user}`.

mod accounts;

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::{Config, ConfigError};
use crate::sample::Family;
use accounts::lookup_account;
pub use accounts::Account;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, StatxFlags};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// `[collectors.filestat]`: Diamond's FilestatCollector options. The user
/// and type options matter only with `collect_user_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilestatConfig {
    /// Count each user's open files by type (`files.user.<user>.<TYPE>`).
    pub collect_user_data: bool,
    /// Only these users (empty: every user with a process), plus those
    /// `group_include` adds.
    pub user_include: Vec<String>,
    /// Never these users (wins over everything).
    pub user_exclude: Vec<String>,
    /// Add the users in any of these groups (primary or supplementary).
    pub group_include: Vec<String>,
    /// Leave out the users in any of these groups (not those of `user_include`).
    pub group_exclude: Vec<String>,
    /// Leave out uids below this, unless named in `user_include` or added by group.
    pub uid_min: u32,
    /// Leave out uids above this, unless named in `user_include` or added by group.
    pub uid_max: u32,
    /// The types to send (`REG`, `DIR`, `CHR`, `FIFO`, `IPv4`, `IPv6`,
    /// `unix`, `sock`, `a_inode`, ...); empty: every type that two or more
    /// open files on the host have.
    pub type_include: Vec<String>,
    /// Types not to send.
    pub type_exclude: Vec<String>,
}

impl Default for FilestatConfig {
    fn default() -> Self {
        FilestatConfig {
            collect_user_data: false,
            user_include: Vec::new(),
            user_exclude: Vec::new(),
            group_include: Vec::new(),
            group_exclude: Vec::new(),
            uid_min: 0,
            uid_max: 65536,
            type_include: Vec::new(),
            type_exclude: Vec::new(),
        }
    }
}

pub struct Filestat {
    file: PathBuf,
    missing: Missing,
    buf: String,
    users: Option<PerUser>,
}

impl Filestat {
    pub fn new(opts: &FilestatConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let key = "collectors.filestat";
        for (name, list) in [
            ("type_include", &opts.type_include),
            ("type_exclude", &opts.type_exclude),
        ] {
            // A type is one segment of the metric name.
            if let Some(bad) = list
                .iter()
                .find(|t| t.is_empty() || t.contains(|c: char| c == '.' || c.is_whitespace()))
            {
                return Err(ConfigError::new(
                    format!("{key}.{name}"),
                    format!("{bad:?} is not a file type (REG, DIR, IPv4, ...)"),
                ));
            }
        }
        if opts.uid_min > opts.uid_max {
            return Err(ConfigError::new(
                format!("{key}.uid_min"),
                format!(
                    "{} is above uid_max ({}): no uid could be counted",
                    opts.uid_min, opts.uid_max
                ),
            ));
        }
        Ok(Filestat {
            file: cfg.proc_root.join("sys/fs/file-nr"),
            missing: Missing::default(),
            buf: String::new(),
            users: opts.collect_user_data.then(|| PerUser {
                opts: opts.clone(),
                proc_root: cfg.proc_root.clone(),
                accounts: HashMap::new(),
                runs: 0,
                buf: Vec::new(),
            }),
        })
    }
}

/// `assigned unused max` of a file-nr text.
pub fn parse(text: &str) -> Option<[u64; 3]> {
    let mut it = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

const ALLOCATED: Family = Family::gauge(
    "node_filefd_allocated",
    "File descriptor statistics: allocated.",
);
const MAXIMUM: Family = Family::gauge(
    "node_filefd_maximum",
    "File descriptor statistics: maximum.",
);
const USER_FILES: Family = Family::gauge(
    "carbyne_filestat_user_open_files",
    "Open files of a user by lsof's TYPE (Diamond's files.user.<user>.<TYPE>).",
);

impl Collector for Filestat {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        let [assigned, unused, max] = parse(text).ok_or_else(|| CollectError::Parse {
            path: self.file.clone(),
            message: format!("not three counts: {:?}", text.trim()),
        })?;
        out.gauge("assigned", assigned as f64);
        out.gauge("unused", unused as f64);
        out.gauge("max", max as f64);
        out.series(&ALLOCATED, Vec::new(), assigned as f64);
        out.series(&MAXIMUM, Vec::new(), max as f64);
        if let Some(users) = &mut self.users {
            users.collect(out)?;
        }
        Ok(())
    }
}

/// How often (in runs) user and group names are looked up again.
const ACCOUNTS_EVERY: u32 = 60;

/// The per-user part: every process's open files counted by lsof's TYPE.
struct PerUser {
    opts: FilestatConfig,
    proc_root: PathBuf,
    accounts: HashMap<u32, Account>,
    runs: u32,
    buf: Vec<u8>,
}

impl PerUser {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let tally = scan(&self.proc_root, &mut self.buf)?;
        self.runs = self.runs.wrapping_add(1);
        let refresh = self.runs.is_multiple_of(ACCOUNTS_EVERY);
        let groups = !self.opts.group_include.is_empty() || !self.opts.group_exclude.is_empty();
        let mut owners: Vec<Account> = Vec::with_capacity(tally.by_uid.len());
        for &uid in tally.by_uid.keys() {
            if refresh || !self.accounts.contains_key(&uid) {
                match lookup_account(uid, groups) {
                    Ok(a) => {
                        self.accounts.insert(uid, a);
                    }
                    // The user database failed (sssd down): the name known
                    // before stays; none known, the uid stands in this run.
                    Err(_) if self.accounts.contains_key(&uid) => {}
                    Err(_) => {
                        owners.push(Account {
                            uid,
                            name: uid.to_string(),
                            groups: Vec::new(),
                        });
                        continue;
                    }
                }
            }
            if let Some(a) = self.accounts.get(&uid) {
                owners.push(a.clone());
            }
        }
        let types = select_types(&self.opts, &tally.host);
        // Two uids of one login name (an alias in /etc/passwd) are one user:
        // their files are summed, not sent as one path twice.
        let mut by_name: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for owner in select_users(&self.opts, &owners) {
            by_name
                .entry(owner.name.as_str())
                .or_default()
                .push(owner.uid);
        }
        for (name, uids) in by_name {
            for ty in &types {
                let n: u64 = uids
                    .iter()
                    .filter_map(|uid| tally.by_uid.get(uid)?.get(ty.as_str()))
                    .sum();
                out.gauge(&format!("user.{name}.{ty}"), n as f64);
                out.series(
                    &USER_FILES,
                    vec![("type", ty.clone()), ("user", name.to_string())],
                    n as f64,
                );
            }
        }
        Ok(())
    }
}

/// The users Diamond's FilestatCollector keeps, in its order of precedence:
/// `user_include` (or everyone), plus members of `group_include`, minus
/// members of `group_exclude`, minus uids outside `uid_min..=uid_max`
/// (unless named or added by group), plus the named users, minus
/// `user_exclude`. `owners` are the owners of running processes; the result
/// is sorted by name.
pub fn select_users<'a>(o: &FilestatConfig, owners: &'a [Account]) -> Vec<&'a Account> {
    let named = |a: &Account| o.user_include.contains(&a.name);
    let in_any = |a: &Account, groups: &[String]| a.groups.iter().any(|g| groups.contains(g));
    let mut keep: Vec<&Account> = if o.user_include.is_empty() {
        owners.iter().collect()
    } else {
        Vec::new()
    };
    let mut by_group: HashSet<u32> = HashSet::new();
    if !o.group_include.is_empty() {
        for a in owners {
            if in_any(a, &o.group_include) && !keep.iter().any(|k| k.uid == a.uid) {
                keep.push(a);
                by_group.insert(a.uid);
            }
        }
    }
    keep.retain(|a| !in_any(a, &o.group_exclude));
    keep.retain(|a| {
        named(a) || by_group.contains(&a.uid) || (o.uid_min..=o.uid_max).contains(&a.uid)
    });
    for a in owners {
        if named(a) && !keep.iter().any(|k| k.uid == a.uid) {
            keep.push(a);
        }
    }
    keep.retain(|a| !o.user_exclude.contains(&a.name));
    keep.sort_by(|a, b| a.name.cmp(&b.name).then(a.uid.cmp(&b.uid)));
    keep
}

/// The types sent for each user: `type_include`, or else every type that at
/// least two open files on the host have (as Diamond's `uniq -d` over lsof),
/// minus `type_exclude` (which Diamond applies only with a `type_include`).
pub fn select_types(o: &FilestatConfig, host: &BTreeMap<&'static str, u64>) -> Vec<String> {
    let mut types: Vec<String> = if o.type_include.is_empty() {
        host.iter()
            .filter(|(_, n)| **n >= 2)
            .map(|(t, _)| t.to_string())
            .collect()
    } else {
        o.type_include.clone()
    };
    types.retain(|t| !o.type_exclude.contains(t));
    types
}

/// Open files counted by lsof's TYPE, per owner uid and over the host.
#[derive(Debug, Default)]
pub struct Tally {
    pub by_uid: BTreeMap<u32, BTreeMap<&'static str, u64>>,
    pub host: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, uid: u32, ty: &'static str) {
        *self.by_uid.entry(uid).or_default().entry(ty).or_default() += 1;
        *self.host.entry(ty).or_default() += 1;
    }
}

/// lsof's TYPE for a file mode.
fn mode_type(mode: u32) -> &'static str {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => "REG",
        FileType::Directory => "DIR",
        FileType::CharacterDevice => "CHR",
        FileType::BlockDevice => "BLK",
        FileType::Fifo => "FIFO",
        FileType::Symlink => "LINK",
        FileType::Socket => "sock",
        // eventfd, epoll, signalfd, timerfd...: inodes without a type.
        FileType::Unknown => "a_inode",
    }
}

/// The kernel's socket tables, read once per run at the first socket met:
/// the inode column of each gives lsof's TYPE for the sockets it lists; a
/// socket in none of them (not bound yet, another network namespace) is `sock`.
const SOCKET_TABLES: &[(&str, usize, &str)] = &[
    ("net/tcp", 9, "IPv4"),
    ("net/udp", 9, "IPv4"),
    ("net/udplite", 9, "IPv4"),
    ("net/tcp6", 9, "IPv6"),
    ("net/udp6", 9, "IPv6"),
    ("net/udplite6", 9, "IPv6"),
    ("net/raw", 9, "raw"),
    ("net/raw6", 9, "raw6"),
    ("net/unix", 6, "unix"),
    ("net/netlink", 9, "netlink"),
    ("net/packet", 8, "pack"),
];

/// Socket inode to type, from one table's text (header line first).
pub fn parse_socket_table(
    text: &[u8],
    column: usize,
    ty: &'static str,
    into: &mut HashMap<u64, &'static str>,
) {
    for line in text.split(|&b| b == b'\n').skip(1) {
        if let Some(ino) = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .nth(column)
            .and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok())
        {
            into.entry(ino).or_insert(ty);
        }
    }
}

/// The distinct files a `maps` text maps, as lsof's `mem` entries: file
/// mappings told apart by device and inode, less the program itself
/// (`exe`, lsof's `txt`). Device numbers are `(major, minor)`. Paths are
/// bytes: a file name need not be UTF-8. Inode 0 is an anonymous mapping,
/// but for System V shared memory (`/SYSV...`), whose id 0 shows as inode 0.
pub fn mapped_files(maps: &[u8], exe: Option<(u32, u32, u64)>) -> Vec<&[u8]> {
    let mut seen: HashSet<(u32, u32, u64)> = HashSet::new();
    let mut files = Vec::new();
    for line in maps.split(|&b| b == b'\n') {
        let mut f = line.splitn(6, |&b| b == b' ');
        let (Some(dev), Some(ino)) = (f.nth(3), f.next()) else {
            continue;
        };
        let dev = std::str::from_utf8(dev).unwrap_or("");
        let ino = std::str::from_utf8(ino).unwrap_or("");
        let (Some((major, minor)), Ok(ino)) = (dev.split_once(':'), ino.parse::<u64>()) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (
            u32::from_str_radix(major, 16),
            u32::from_str_radix(minor, 16),
        ) else {
            continue;
        };
        let path = f.next().unwrap_or(&[]).trim_ascii_start();
        let key = (major, minor, ino);
        if (ino == 0 && !path.starts_with(b"/SYSV")) || Some(key) == exe || !seen.insert(key) {
            continue;
        }
        files.push(path);
    }
    files
}

/// Counts every process's open files under `proc_root` by owner and type,
/// as lsof lists them: `cwd` and `rtd` (the root), `txt` (the program),
/// `mem` (mapped files) and the descriptors. Threads are not listed apart
/// (they share their process's files); what the agent may not read (other
/// users' processes when it is not root) is not counted.
pub fn scan(proc_root: &Path, buf: &mut Vec<u8>) -> Result<Tally, CollectError> {
    let io = |source: std::io::Error| CollectError::Io {
        path: proc_root.to_path_buf(),
        source,
    };
    let root = rustix::fs::open(
        proc_root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let mut tally = Tally::default();
    let mut sockets: Option<HashMap<u64, &'static str>> = None;
    for entry in Dir::read_from(&root).map_err(|e| io(e.into()))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.to_bytes().first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        // A process that exits while it is read is counted as far as it got.
        scan_process(proc_root, &root, name, &mut tally, &mut sockets, buf);
    }
    Ok(tally)
}

fn open_dir_at(dir: &OwnedFd, name: &CStr) -> Option<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

fn scan_process(
    proc_root: &Path,
    root: &OwnedFd,
    pid: &CStr,
    tally: &mut Tally,
    sockets: &mut Option<HashMap<u64, &'static str>>,
    buf: &mut Vec<u8>,
) {
    let Some(dir) = open_dir_at(root, pid) else {
        return;
    };
    // The owner of /proc/<pid> is the process's effective uid, lsof's USER.
    let Ok(st) = rustix::fs::fstat(&dir) else {
        return;
    };
    let uid = st.st_uid;
    for link in [c"cwd", c"root"] {
        if let Some(s) = stat_cached(&dir, link) {
            tally.add(uid, mode_type(s.stx_mode.into()));
        }
    }
    let exe = stat_cached(&dir, c"exe");
    if let Some(s) = &exe {
        tally.add(uid, mode_type(s.stx_mode.into()));
    }
    let exe_key = exe.map(|s| (s.stx_dev_major, s.stx_dev_minor, s.stx_ino));
    // Opened through the process's directory: a pid reused since cannot
    // lend its mappings to this owner.
    if let Some(maps) = read_at(&dir, c"maps", buf) {
        for path in mapped_files(maps, exe_key) {
            // A mapped device (a GPU, /dev/mem) is lsof's CHR; the rest REG.
            let ty = if path.starts_with(b"/dev/") && !path.ends_with(b" (deleted)") {
                std::str::from_utf8(path)
                    .ok()
                    .and_then(|p| std::fs::metadata(p).ok())
                    .map(|m| mode_type(std::os::unix::fs::MetadataExt::mode(&m)))
                    .unwrap_or("REG")
            } else {
                "REG"
            };
            tally.add(uid, ty);
        }
    }
    let Some(fds) = open_dir_at(&dir, c"fd") else {
        return;
    };
    let Ok(list) = Dir::read_from(&fds) else {
        return;
    };
    for entry in list {
        let Ok(entry) = entry else { break };
        let name = entry.file_name();
        if !name.to_bytes().first().is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let Some(s) = stat_cached(&fds, name) else {
            continue;
        };
        let ty = match mode_type(s.stx_mode.into()) {
            "sock" => {
                let table = sockets.get_or_insert_with(|| socket_types(proc_root));
                table.get(&s.stx_ino).copied().unwrap_or("sock")
            }
            ty => ty,
        };
        tally.add(uid, ty);
    }
}

/// The type, inode and device of what `name` under `dir` links to, from
/// the attributes the kernel has cached (`AT_STATX_DONT_SYNC`): a file on
/// an NFS server that does not answer does not hold up the run (what
/// lsof's `-b`, which Diamond passes, is for).
fn stat_cached(dir: &OwnedFd, name: &CStr) -> Option<rustix::fs::Statx> {
    rustix::fs::statx(
        dir,
        name,
        AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE | StatxFlags::INO,
    )
    .ok()
}

/// The whole of the (small, virtual) file `name` under `dir`, as bytes.
fn read_at<'b>(dir: &OwnedFd, name: &CStr, buf: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    use std::io::Read;
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    buf.clear();
    std::fs::File::from(fd).read_to_end(buf).ok()?;
    Some(buf)
}

fn socket_types(proc_root: &Path) -> HashMap<u64, &'static str> {
    let mut map = HashMap::new();
    for (file, column, ty) in SOCKET_TABLES {
        // Bytes: a unix socket's path (any user can bind one) need not be UTF-8.
        if let Ok(text) = std::fs::read(proc_root.join(file)) {
            parse_socket_table(&text, *column, ty, &mut map);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn three_counts() {
        let cfg = Config {
            proc_root: fixture("proc/t0"),
            ..Config::default()
        };
        let mut c = Filestat::new(&FilestatConfig::default(), &cfg).expect("config");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(
            (v["assigned"], v["unused"], v["max"]),
            (211.0, 0.0, 2_466_161.0)
        );
        assert_eq!(parse("1 2"), None);
    }
    fn acct(uid: u32, name: &str, groups: &[&str]) -> Account {
        Account {
            uid,
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn chosen(o: &FilestatConfig, owners: &[Account]) -> Vec<String> {
        select_users(o, owners)
            .into_iter()
            .map(|a| a.name.clone())
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn users_in_diamonds_order_of_precedence() {
        let owners = [
            acct(0, "root", &["root"]),
            acct(33, "www-data", &["www-data", "web"]),
            acct(1000, "alice", &["alice", "staff", "web"]),
            acct(1001, "bob", &["bob", "staff"]),
            acct(70000, "svc", &["svc"]),
        ];
        let d = FilestatConfig::default();
        // Everyone within 0..=65536.
        assert_eq!(chosen(&d, &owners), ["alice", "bob", "root", "www-data"]);
        let o = FilestatConfig {
            uid_min: 1000,
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["alice", "bob"]);
        // A named user is kept whatever its uid; only the named ones.
        let o = FilestatConfig {
            user_include: strings(&["svc", "nobody-running"]),
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["svc"]);
        // A group adds its members past the uid limits.
        let o = FilestatConfig {
            user_include: strings(&["bob"]),
            group_include: strings(&["web"]),
            uid_min: 1000,
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["alice", "bob", "www-data"]);
        // An excluded group removes its members, but not the named users.
        let o = FilestatConfig {
            user_include: strings(&["bob"]),
            group_exclude: strings(&["staff"]),
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["bob"]);
        let o = FilestatConfig {
            group_exclude: strings(&["staff"]),
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["root", "www-data"]);
        // user_exclude wins over everything.
        let o = FilestatConfig {
            user_include: strings(&["bob", "svc"]),
            group_include: strings(&["web"]),
            user_exclude: strings(&["svc", "www-data"]),
            ..d.clone()
        };
        assert_eq!(chosen(&o, &owners), ["alice", "bob"]);
    }

    #[test]
    fn types_seen_twice_on_the_host_or_the_included_ones() {
        let host: BTreeMap<&'static str, u64> =
            [("REG", 40), ("DIR", 9), ("IPv6", 1), ("unix", 2)].into();
        let d = FilestatConfig::default();
        assert_eq!(select_types(&d, &host), ["DIR", "REG", "unix"]);
        let o = FilestatConfig {
            type_exclude: strings(&["REG"]),
            ..d.clone()
        };
        assert_eq!(select_types(&o, &host), ["DIR", "unix"]);
        let o = FilestatConfig {
            type_include: strings(&["IPv6", "FIFO", "REG"]),
            type_exclude: strings(&["REG"]),
            ..d
        };
        assert_eq!(select_types(&o, &host), ["IPv6", "FIFO"]);
    }

    #[test]
    fn mapped_files_are_distinct_and_leave_out_the_program() {
        let maps = "\
55d0a000-55d0b000 r--p 00000000 fe:00 247706                     /usr/bin/python3.11
55d0b000-55d0c000 r-xp 00001000 fe:00 247706                     /usr/bin/python3.11
7f00-7f01 rw-p 00000000 00:00 0 
7f01-7f02 r--p 00000000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f02-7f03 r-xp 00028000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f03-7f04 rw-s 00000000 fe:00 10010705                   /tmp/with space (deleted)
7f04-7f05 rw-s 00000000 00:05 5                          /dev/zero (deleted)
7ffd-7ffe r-xp 00000000 00:00 0                          [vdso]
";
        let mut maps = maps.as_bytes().to_vec();
        maps.extend_from_slice(b"7f05-7f06 rw-s 00000000 fe:00 77 /tmp/odd\xff name\n");
        maps.extend_from_slice(b"7f06-7f07 rw-s 00000000 00:01 0 /SYSV00000000 (deleted)\n");
        assert_eq!(
            mapped_files(&maps, Some((0xfe, 0, 247706))),
            [
                &b"/usr/lib/x86_64-linux-gnu/libc.so.6"[..],
                b"/tmp/with space (deleted)",
                b"/dev/zero (deleted)",
                b"/tmp/odd\xff name",
                b"/SYSV00000000 (deleted)",
            ]
        );
        assert_eq!(mapped_files(&maps, None).len(), 6);
        assert!(mapped_files(b"garbage\n1 2 3 zz:00 9 /x\n", None).is_empty());
    }

    #[test]
    fn socket_tables_give_types_by_inode() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C5B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 910089 1 0000000000000000 100 0 0 10 0
";
        let unix = b"Num       RefCount Protocol Flags    Type St Inode Path
000000007748817b: 00000003 00000000 00000000 0001 03   136 /run/x.sock
000000007748817c: 00000003 00000000 00000000 0001 03   137 @bad\xff
";
        let mut map = HashMap::new();
        parse_socket_table(tcp.as_bytes(), 9, "IPv4", &mut map);
        parse_socket_table(unix, 6, "unix", &mut map);
        assert_eq!(map, [(910089, "IPv4"), (136, "unix"), (137, "unix")].into());
    }

    #[test]
    fn scan_counts_a_real_process_files_by_type() {
        // A tree that lists one real process: a `sleep` reading a regular
        // file, writing a pipe, its errors to /dev/null.
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("input");
        std::fs::write(&input, "x").expect("write");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::fs::File::open(&input).expect("open"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sleep");
        let pid = child.id().to_string();
        std::os::unix::fs::symlink(format!("/proc/{pid}"), dir.path().join(&pid)).expect("link");
        // Until `sleep` sleeps, the dynamic loader may still be mapping its
        // libraries (a loaded machine showed only two REG files): wait for
        // it to sleep with a library mapped (bounded).
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(5) {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let sleeping = state
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('S'));
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            if sleeping && maps.contains(".so") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut buf = Vec::new();
        let tally = scan(dir.path(), &mut buf);
        let _ = child.kill();
        let _ = child.wait();
        let tally = tally.expect("scan");
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(tally.by_uid.keys().collect::<Vec<_>>(), [&uid]);
        let t = &tally.by_uid[&uid];
        // cwd and rtd; stdout; stderr; stdin, the program and its
        // libraries (and whatever this test's own runner let it inherit).
        let n = |k: &str| t.get(k).copied().unwrap_or(0);
        assert_eq!(n("DIR"), 2, "{t:?}");
        assert!(n("FIFO") >= 1 && n("CHR") >= 1, "{t:?}");
        assert!(n("REG") >= 3, "{t:?}");
        assert_eq!(tally.host, *t);
        let root = lookup_account(0, true).expect("root");
        assert!(root.groups.contains(&"root".to_string()), "{root:?}");
        assert_eq!(lookup_account(54321, true).expect("no entry").name, "54321");
    }

    #[test]
    fn user_data_is_sent_only_when_asked() {
        let cfg = Config::default();
        let opts = FilestatConfig {
            collect_user_data: true,
            type_include: strings(&["REG"]),
            ..FilestatConfig::default()
        };
        let mut c = Filestat::new(&opts, &cfg).expect("config");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        // SAFETY: geteuid has no preconditions.
        let me = lookup_account(unsafe { libc::geteuid() }, false)
            .expect("lookup")
            .name;
        assert!(v[&format!("user.{me}.REG")] >= 1.0, "{v:?}");
        assert!(v
            .keys()
            .all(|k| !k.starts_with("user.") || k.ends_with(".REG")));
        let mut c = Filestat::new(&FilestatConfig::default(), &cfg).expect("config");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(values(&first).keys().all(|k| !k.starts_with("user.")));
    }
}
