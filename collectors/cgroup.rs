//! cgroup: each systemd unit's CPU, memory and I/O from cgroup v2 (what
//! people install cAdvisor or Telegraf for; Diamond never had it):
//! `cgroup.<unit>.cpu_usage` (percent of one CPU), `.memory_current`
//! (bytes), `.io_read_bytes` and `.io_write_bytes` (bytes per second, all
//! devices), for every unit under the `slices` of `<sys_root>/fs/cgroup`.
//! The unit's name has `.` as `_` (`ssh_service`). Nothing is sent on a
//! host without cgroup v2's unified tree.

use super::{segment, CollectError, Collector, Emit, Missing};
use crate::config::{Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[collectors.cgroup]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CgroupConfig {
    /// The slices (directories under /sys/fs/cgroup) whose units are sent.
    pub slices: Vec<String>,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            slices: vec!["system.slice".into()],
        }
    }
}

/// `usage_usec` of a `cpu.stat` text.
pub fn cpu_usage_usec(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// The `rbytes` and `wbytes` of an `io.stat` text, summed over devices.
pub fn io_bytes(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for field in text.split_ascii_whitespace() {
        if let Some(v) = field
            .strip_prefix("rbytes=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            r = r.wrapping_add(v);
        } else if let Some(v) = field
            .strip_prefix("wbytes=")
            .and_then(|v| v.parse::<u64>().ok())
        {
            w = w.wrapping_add(v);
        }
    }
    (r, w)
}

pub struct Cgroup {
    slices: Vec<PathBuf>,
    missing: Missing,
    buf: String,
}

impl Cgroup {
    pub fn new(opts: &CgroupConfig, cfg: &Config) -> Result<Self, ConfigError> {
        if let Some(bad) = opts
            .slices
            .iter()
            .find(|s| s.is_empty() || s.contains("..") || s.starts_with('/'))
        {
            return Err(ConfigError::new(
                "collectors.cgroup.slices",
                format!("{bad:?} is not a directory under /sys/fs/cgroup"),
            ));
        }
        let root = cfg.sys_root.join("fs/cgroup");
        Ok(Cgroup {
            slices: opts.slices.iter().map(|s| root.join(s)).collect(),
            missing: Missing::default(),
            buf: String::new(),
        })
    }

    fn text(&mut self, path: &Path) -> Option<&str> {
        super::read(path, &mut self.buf).ok()
    }
}

impl Collector for Cgroup {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut any = false;
        for slice in self.slices.clone() {
            let Ok(rd) = std::fs::read_dir(&slice) else {
                continue;
            };
            any = true;
            let mut units: Vec<(String, PathBuf)> = rd
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
                .collect();
            units.sort();
            for (unit, dir) in units {
                let name = segment(&unit);
                if let Some(usec) = self.text(&dir.join("cpu.stat")).and_then(cpu_usage_usec) {
                    let key = format!("{name}.cpu_usage");
                    if let Some(d) = out.counters().delta(&key, usec) {
                        // microseconds per second / 10 000 = percent of a CPU
                        out.push_rate(&key, d, 10_000.0);
                    }
                }
                if let Some(bytes) = self
                    .text(&dir.join("memory.current"))
                    .and_then(|t| t.trim().parse::<u64>().ok())
                {
                    out.gauge(&format!("{name}.memory_current"), bytes as f64);
                }
                if let Some((r, w)) = self.text(&dir.join("io.stat")).map(io_bytes) {
                    for (what, raw) in [("io_read_bytes", r), ("io_write_bytes", w)] {
                        let key = format!("{name}.{what}");
                        if let Some(d) = out.counters().delta(&key, raw) {
                            out.push_rate(&key, d, 1.0);
                        }
                    }
                }
            }
        }
        if !any {
            if let Some(first) = self.slices.first() {
                self.missing.note(first);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, two_runs, values};

    fn unit(root: &Path, unit: &str, usec: u64, mem: u64, io: &str) {
        let dir = root.join("fs/cgroup/system.slice").join(unit);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("cpu.stat"),
            format!("usage_usec {usec}\nuser_usec 1\nsystem_usec 2\nnr_periods 0\n"),
        )
        .expect("write");
        std::fs::write(dir.join("memory.current"), format!("{mem}\n")).expect("write");
        std::fs::write(dir.join("io.stat"), io).expect("write");
    }

    #[test]
    fn per_unit_cpu_memory_and_io() {
        let d = tempfile::tempdir().expect("tempdir");
        let cfg = Config {
            sys_root: d.path().to_path_buf(),
            ..Config::default()
        };
        let mut c = Cgroup::new(&CgroupConfig::default(), &cfg).expect("cgroup");
        let root = d.path().to_path_buf();
        let (first, second) = two_runs(&mut c, 10.0, |_, i| {
            if i == 0 {
                unit(
                    &root,
                    "ssh.service",
                    1_000_000,
                    4096,
                    "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
                );
                unit(&root, "cron.service", 0, 1 << 20, "");
            } else {
                // 5 s of CPU in 10 s: half a CPU. Two disks.
                unit(
                    &root,
                    "ssh.service",
                    6_000_000,
                    8192,
                    "8:0 rbytes=1100 wbytes=200 rios=1 wios=2\n259:0 rbytes=0 wbytes=5000 rios=0 wios=9\n",
                );
                unit(&root, "cron.service", 0, 1 << 20, "");
            }
        });
        let v0 = values(&first);
        assert_eq!(v0.len(), 2, "memory only at first: {v0:?}");
        let v = values(&second);
        assert!(close(v["ssh_service.cpu_usage"], 50.0));
        assert_eq!(v["ssh_service.memory_current"], 8192.0);
        assert_eq!(v["ssh_service.io_read_bytes"], 100.0);
        assert_eq!(v["ssh_service.io_write_bytes"], 500.0);
        assert_eq!(v["cron_service.cpu_usage"], 0.0);
        assert_eq!(v["cron_service.io_read_bytes"], 0.0);
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn no_unified_tree_sends_nothing_and_bad_slices_are_refused() {
        let cfg = Config {
            sys_root: PathBuf::from("/nonexistent"),
            ..Config::default()
        };
        let mut c = Cgroup::new(&CgroupConfig::default(), &cfg).expect("cgroup");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(first.is_empty());
        let bad = CgroupConfig {
            slices: vec!["../etc".into()],
        };
        let e = Cgroup::new(&bad, &cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("collectors.cgroup.slices"), "{e}");
        assert_eq!(
            io_bytes("8:0 rbytes=1 wbytes=2\n8:16 rbytes=3 wbytes=4\n"),
            (4, 6)
        );
        assert_eq!(cpu_usage_usec("user_usec 5\n"), None);
    }
}
