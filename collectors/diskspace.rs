//! diskspace: free and used space and inodes per mounted filesystem, from
//! `/proc/mounts` and `statvfs(2)`, as Diamond's DiskSpaceCollector.
//!
//! `diskspace.<fs>.{byte_percentfree,byte_used,byte_free,byte_avail,
//! inodes_percentfree,inodes_used,inodes_free,inodes_avail}`, where `<fs>` is
//! the filesystem's label (from `/dev/disk/by-label`) or its mount point with
//! `/` and `.` as `_` (`/` itself is `root`).
//!
//! For Prometheus, node_exporter's filesystem families for the same
//! mounts: `node_filesystem_{size,free,avail}_bytes`,
//! `node_filesystem_files{,_free}`, `node_filesystem_readonly` and
//! `node_filesystem_device_error`, labelled `{device,fstype,mountpoint}`.

use super::{byte_units, read, regex_list, CollectError, Collector, Emit};
use crate::config::{Config, ConfigError};
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// `[collectors.diskspace]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskSpaceConfig {
    /// Filesystem types to examine.
    pub filesystems: Vec<String>,
    /// Regexes; a mount point matching any of them is skipped.
    pub exclude_filters: Vec<String>,
    /// Units for the byte metrics, each giving its own set (`byte_used`, `gigabyte_used`, ...).
    pub byte_unit: Vec<String>,
}

impl Default for DiskSpaceConfig {
    fn default() -> Self {
        DiskSpaceConfig {
            filesystems: [
                "ext2",
                "ext3",
                "ext4",
                "xfs",
                "glusterfs",
                "nfs",
                "nfs4",
                "ntfs",
                "hfs",
                "fat32",
                "fat16",
                "btrfs",
            ]
            .map(String::from)
            .to_vec(),
            exclude_filters: vec!["^/export/home".into()],
            byte_unit: vec!["byte".into()],
        }
    }
}

/// One mounted filesystem worth measuring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    /// Mounted read-only (`ro` among its options).
    pub readonly: bool,
}

/// Undoes the octal escapes of `/proc/mounts` (`\040` is a space).
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct DiskSpace {
    filesystems: HashSet<String>,
    exclude: Option<regex::Regex>,
    units: Vec<(String, f64)>,
    mounts_file: PathBuf,
    labels_dir: PathBuf,
    dev_root: PathBuf,
    buf: String,
}

impl DiskSpace {
    pub fn new(opts: &DiskSpaceConfig, cfg: &Config) -> Result<Self, ConfigError> {
        Ok(DiskSpace {
            filesystems: opts.filesystems.iter().cloned().collect(),
            exclude: regex_list(
                "collectors.diskspace.exclude_filters",
                &opts.exclude_filters,
                false,
            )?,
            units: byte_units("collectors.diskspace.byte_unit", &opts.byte_unit)?,
            mounts_file: cfg.proc_root.join("mounts"),
            labels_dir: cfg.dev_root.join("disk/by-label"),
            dev_root: cfg.dev_root.clone(),
            buf: String::new(),
        })
    }

    /// The mounts of a `/proc/mounts` text that Diamond would measure.
    pub fn select(&self, mounts: &str) -> Vec<Mount> {
        let mut out = Vec::new();
        for line in mounts.lines() {
            let mut it = line.split_ascii_whitespace();
            let (Some(device), Some(mp), Some(fs_type)) = (it.next(), it.next(), it.next()) else {
                continue;
            };
            let readonly = it.next().is_some_and(|o| o.split(',').any(|o| o == "ro"));
            if !self.filesystems.contains(fs_type) {
                continue;
            }
            let mount_point = unescape(mp);
            if self
                .exclude
                .as_ref()
                .is_some_and(|r| r.is_match(&mount_point))
            {
                continue;
            }
            if ["/dev", "/proc", "/sys"]
                .iter()
                .any(|p| mount_point.starts_with(p))
            {
                continue;
            }
            if !device.contains('/') || !mount_point.starts_with('/') {
                continue;
            }
            out.push(Mount {
                device: unescape(device),
                mount_point,
                fs_type: fs_type.to_string(),
                readonly,
            });
        }
        out
    }

    /// Device node -> label, from the symlinks of `/dev/disk/by-label`.
    pub fn labels(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        let Ok(rd) = std::fs::read_dir(&self.labels_dir) else {
            return out;
        };
        for e in rd.flatten() {
            let Ok(target) = std::fs::read_link(e.path()) else {
                continue;
            };
            let resolved = normalize(&self.labels_dir.join(target));
            // Name the device as the system sees it (under /dev), whatever the root.
            let dev = match resolved.strip_prefix(&self.dev_root) {
                Ok(rel) => Path::new("/dev").join(rel),
                Err(_) => resolved,
            };
            out.insert(
                dev.to_string_lossy().into_owned(),
                e.file_name().to_string_lossy().into_owned(),
            );
        }
        out
    }
}

/// Lexically resolves `.` and `..` (the link target need not exist).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// The `<fs>` segment for a mount, as Diamond names it (spaces, which would
/// break a Graphite path, become `_` too).
pub fn fs_name(m: &Mount, labels: &HashMap<String, String>) -> String {
    if let Some(l) = labels.get(&m.device) {
        return l.clone();
    }
    let name: String = m
        .mount_point
        .chars()
        .filter(|&c| c != '\\')
        .map(|c| match c {
            '/' | '.' | ' ' => '_',
            c => c,
        })
        .collect();
    if name == "_" {
        "root".into()
    } else {
        name
    }
}

/// The numbers `statvfs(2)` gives for one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vfs {
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_avail: u64,
    pub files: u64,
    pub files_free: u64,
    pub files_avail: u64,
}

/// The metrics of one filesystem, in Diamond's order.
pub fn space_metrics(name: &str, v: &Vfs, units: &[(String, f64)]) -> Vec<(String, f64)> {
    let mut out = Vec::with_capacity(4 * units.len() + 4);
    let bs = v.block_size as f64;
    for (unit, div) in units {
        if v.blocks > 0 {
            out.push((
                format!("{name}.{unit}_percentfree"),
                v.blocks_free as f64 / v.blocks as f64 * 100.0,
            ));
        }
        let used = v.blocks.saturating_sub(v.blocks_free) as f64;
        out.push((format!("{name}.{unit}_used"), bs * used / div));
        out.push((
            format!("{name}.{unit}_free"),
            bs * v.blocks_free as f64 / div,
        ));
        out.push((
            format!("{name}.{unit}_avail"),
            bs * v.blocks_avail as f64 / div,
        ));
    }
    if v.files > 0 {
        out.push((
            format!("{name}.inodes_percentfree"),
            v.files_free as f64 / v.files as f64 * 100.0,
        ));
    }
    out.push((
        format!("{name}.inodes_used"),
        v.files.saturating_sub(v.files_free) as f64,
    ));
    out.push((format!("{name}.inodes_free"), v.files_free as f64));
    out.push((format!("{name}.inodes_avail"), v.files_avail as f64));
    out
}

fn statvfs(path: &str) -> std::io::Result<Vfs> {
    let s = rustix::fs::statvfs(path)?;
    Ok(Vfs {
        // POSIX counts blocks in f_frsize units.
        block_size: if s.f_frsize > 0 {
            s.f_frsize
        } else {
            s.f_bsize
        },
        blocks: s.f_blocks,
        blocks_free: s.f_bfree,
        blocks_avail: s.f_bavail,
        files: s.f_files,
        files_free: s.f_ffree,
        files_avail: s.f_favail,
    })
}

const SIZE: Family = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
const FREE: Family = Family::gauge(
    "node_filesystem_free_bytes",
    "Filesystem free space in bytes.",
);
const AVAIL: Family = Family::gauge(
    "node_filesystem_avail_bytes",
    "Filesystem space available to non-root users in bytes.",
);
const FILES: Family = Family::gauge("node_filesystem_files", "Filesystem total file nodes.");
const FILES_FREE: Family = Family::gauge(
    "node_filesystem_files_free",
    "Filesystem total free file nodes.",
);
const READONLY: Family = Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
const DEVICE_ERROR: Family = Family::gauge(
    "node_filesystem_device_error",
    "Whether an error occurred while getting statistics for the given device.",
);

/// node_exporter's series of one mount (`vfs` is `None` when statvfs failed).
fn series(m: &Mount, vfs: Option<&Vfs>, out: &mut Emit) {
    let labels = || {
        vec![
            ("device", m.device.clone()),
            ("fstype", m.fs_type.clone()),
            ("mountpoint", m.mount_point.clone()),
        ]
    };
    out.series(
        &DEVICE_ERROR,
        labels(),
        if vfs.is_some() { 0.0 } else { 1.0 },
    );
    let Some(v) = vfs else { return };
    let bs = v.block_size as f64;
    out.series(&SIZE, labels(), bs * v.blocks as f64);
    out.series(&FREE, labels(), bs * v.blocks_free as f64);
    out.series(&AVAIL, labels(), bs * v.blocks_avail as f64);
    out.series(&FILES, labels(), v.files as f64);
    out.series(&FILES_FREE, labels(), v.files_free as f64);
    out.series(&READONLY, labels(), if m.readonly { 1.0 } else { 0.0 });
}

impl Collector for DiskSpace {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let text = read(&self.mounts_file, &mut buf)?;
        let labels = self.labels();
        let mut seen_devices = HashSet::new();
        let mounts = self.select(text);
        self.buf = buf;
        for m in mounts {
            // One filesystem mounted twice (bind mounts) is measured once.
            let Ok(st) = rustix::fs::stat(m.mount_point.as_str()) else {
                log::debug!("diskspace: {} is not mounted here, skipped", m.mount_point);
                continue;
            };
            if !seen_devices.insert(st.st_dev) {
                continue;
            }
            let vfs = match statvfs(&m.mount_point) {
                Ok(v) => v,
                Err(e) => {
                    log::debug!("diskspace: statvfs {}: {e}", m.mount_point);
                    series(&m, None, out);
                    continue;
                }
            };
            series(&m, Some(&vfs), out);
            for (metric, value) in space_metrics(&fs_name(&m, &labels), &vfs, &self.units) {
                out.gauge(&metric, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::fixture;

    fn collector(opts: &DiskSpaceConfig) -> DiskSpace {
        let cfg = Config {
            proc_root: fixture("proc/server-a"),
            dev_root: fixture("dev"),
            ..Config::default()
        };
        DiskSpace::new(opts, &cfg).expect("config")
    }

    fn names(opts: &DiskSpaceConfig) -> Vec<String> {
        let c = collector(opts);
        let text = std::fs::read_to_string(&c.mounts_file).expect("fixture");
        let labels = c.labels();
        c.select(&text)
            .iter()
            .map(|m| fs_name(m, &labels))
            .collect()
    }

    #[test]
    fn selects_and_names_as_diamond() {
        // vfat is not a default type, /export/home is excluded, /dev/odd is
        // under /dev, tmpfs and proc are not in the list; /boot has a label.
        assert_eq!(
            names(&DiskSpaceConfig::default()),
            [
                "root",
                "BOOT",
                "_var_lib_docker_data",
                "_srv_my_data",
                "_mnt_projects",
                "_data"
            ]
        );
    }

    #[test]
    fn exclude_filters_search_anywhere_and_can_be_emptied() {
        let opts = DiskSpaceConfig {
            exclude_filters: vec![],
            ..Default::default()
        };
        assert!(names(&opts).contains(&"_export_home".to_string()));
        let opts = DiskSpaceConfig {
            exclude_filters: vec!["docker".into(), "^/srv".into()],
            ..Default::default()
        };
        let n = names(&opts);
        assert!(
            !n.iter().any(|x| x.contains("docker") || x.contains("srv")),
            "{n:?}"
        );
        assert!(n.contains(&"_export_home".to_string()));
    }

    #[test]
    fn space_metrics_worked_by_hand() {
        // 4 KiB blocks: 1000 total, 250 free, 200 available to users.
        let v = Vfs {
            block_size: 4096,
            blocks: 1000,
            blocks_free: 250,
            blocks_avail: 200,
            files: 800,
            files_free: 600,
            files_avail: 600,
        };
        let units = byte_units("u", &["byte".into(), "kilobyte".into()]).expect("units");
        let m: HashMap<String, f64> = space_metrics("root", &v, &units).into_iter().collect();
        assert_eq!(m["root.byte_percentfree"], 25.0);
        assert_eq!(m["root.byte_used"], 3_072_000.0);
        assert_eq!(m["root.byte_free"], 1_024_000.0);
        assert_eq!(m["root.byte_avail"], 819_200.0);
        assert_eq!(m["root.kilobyte_used"], 3000.0);
        assert_eq!(m["root.kilobyte_avail"], 800.0);
        assert_eq!(m["root.inodes_percentfree"], 75.0);
        assert_eq!(m["root.inodes_used"], 200.0);
        assert_eq!(m["root.inodes_free"], 600.0);
        assert_eq!(m["root.inodes_avail"], 600.0);
        assert_eq!(m.len(), 2 * 4 + 4);
    }

    #[test]
    fn node_exporter_series_of_a_mount() {
        let c = collector(&DiskSpaceConfig::default());
        let text = std::fs::read_to_string(&c.mounts_file).expect("fixture");
        let mounts = c.select(&text);
        let boot = mounts
            .iter()
            .find(|m| m.mount_point == "/boot")
            .expect("/boot");
        let v = Vfs {
            block_size: 4096,
            blocks: 1000,
            blocks_free: 250,
            blocks_avail: 200,
            files: 800,
            files_free: 600,
            files_avail: 600,
        };
        let path = crate::sample::MetricPath::new("", None, "", "x");
        let filter = super::super::Filter::default();
        let mut e = Emit::new(&path, &filter, 1, crate::rates::Counters::begin(None, 1.0))
            .with_series(true);
        series(boot, Some(&v), &mut e);
        series(&mounts[0], None, &mut e);
        let p = crate::collectors::testutil::series(&e.finish().0);
        let l = format!(
            "{{device=\"{}\",fstype=\"{}\",mountpoint=\"/boot\"}}",
            boot.device, boot.fs_type
        );
        assert_eq!(p[&format!("node_filesystem_size_bytes{l}")], 4_096_000.0);
        assert_eq!(p[&format!("node_filesystem_free_bytes{l}")], 1_024_000.0);
        assert_eq!(p[&format!("node_filesystem_avail_bytes{l}")], 819_200.0);
        assert_eq!(p[&format!("node_filesystem_files{l}")], 800.0);
        assert_eq!(p[&format!("node_filesystem_files_free{l}")], 600.0);
        assert_eq!(p[&format!("node_filesystem_readonly{l}")], 0.0);
        assert_eq!(p[&format!("node_filesystem_device_error{l}")], 0.0);
        // A mount statvfs failed on: only the error, set.
        assert_eq!(p.len(), 7 + 1);
        let ro =
            c.select("/dev/sdz1 /ro ext4 ro,relatime 0 0\n/dev/sdz2 /rw ext4 rw,errors=ro 0 0\n");
        assert_eq!(
            ro.iter().map(|m| m.readonly).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(
            p.iter()
                .filter(|(k, _)| k.contains("mountpoint=\"/\""))
                .collect::<Vec<_>>(),
            [(
                &format!(
                    "node_filesystem_device_error{{device=\"{}\",fstype=\"{}\",mountpoint=\"/\"}}",
                    mounts[0].device, mounts[0].fs_type
                ),
                &1.0
            )]
        );
    }

    #[test]
    fn empty_filesystem_has_no_percentages() {
        let m = space_metrics("x", &Vfs::default(), &[("byte".into(), 1.0)]);
        assert!(m.iter().all(|(n, _)| !n.contains("percent")));
    }

    #[test]
    fn unescapes_mount_points() {
        assert_eq!(unescape("/srv/my\\040data"), "/srv/my data");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\"), "/odd\\");
    }

    #[test]
    fn bad_options_are_config_errors() {
        let cfg = Config::default();
        let bad = DiskSpaceConfig {
            exclude_filters: vec!["(".into()],
            ..Default::default()
        };
        let e = DiskSpace::new(&bad, &cfg)
            .err()
            .expect("bad regex")
            .to_string();
        assert!(e.contains("collectors.diskspace.exclude_filters"), "{e}");
        let bad = DiskSpaceConfig {
            byte_unit: vec!["furlong".into()],
            ..Default::default()
        };
        assert!(DiskSpace::new(&bad, &cfg).is_err());
    }
}
