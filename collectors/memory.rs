//! memory: `/proc/meminfo` in bytes, as Diamond's MemoryCollector:
//! `memory.{MemTotal,MemFree,MemAvailable,Buffers,Cached,Active,Dirty,
//! Inactive,Shmem,SwapTotal,SwapFree,SwapCached,VmallocTotal,VmallocUsed,
//! VmallocChunk,Committed_AS}` and `memory.MemUsedPercentage`; `detailed`
//! sends every key of the file.
//!
//! For Prometheus, node_exporter's meminfo families: every key as
//! `node_memory_<Key>_bytes` (a key in kB) or `node_memory_<Key>` (a
//! count), `(anon)` written `_anon`, in bytes whatever `byte_unit` says.

use super::{byte_units, read, CollectError, Collector, Emit};
use crate::config::{Config, ConfigError};
use crate::sample::PromKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The keys sent without `detailed`.
pub const KEYS: [&str; 16] = [
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Buffers",
    "Cached",
    "Active",
    "Dirty",
    "Inactive",
    "Shmem",
    "SwapTotal",
    "SwapFree",
    "SwapCached",
    "VmallocTotal",
    "VmallocUsed",
    "VmallocChunk",
    "Committed_AS",
];

/// `[collectors.memory]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Send every key of `/proc/meminfo`, not just the usual ones.
    pub detailed: bool,
    /// Unit of the values; like Diamond, only the first entry is used.
    pub byte_unit: Vec<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            detailed: false,
            byte_unit: vec!["byte".into()],
        }
    }
}

/// One `Key: value [kB]` line: the value in bytes when it had a unit,
/// else as a plain count (`HugePages_Total: 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub key: &'a str,
    pub value: u64,
    pub is_bytes: bool,
}

/// Parses `/proc/meminfo`; lines that do not parse are skipped.
pub fn parse(text: &str) -> impl Iterator<Item = Entry<'_>> {
    text.lines().filter_map(|line| {
        let (key, rest) = line.split_once(':')?;
        let mut it = rest.split_ascii_whitespace();
        let value: u64 = it.next()?.parse().ok()?;
        match it.next() {
            Some("kB") => Some(Entry {
                key,
                value: value.checked_mul(1024)?,
                is_bytes: true,
            }),
            None => Some(Entry {
                key,
                value,
                is_bytes: false,
            }),
            Some(_) => None,
        }
    })
}

/// The share of memory in use: `(MemTotal - MemAvailable) / MemTotal`, with
/// `MemFree + Buffers + Cached` standing in for `MemAvailable` on kernels
/// before 3.14.
pub fn used_percentage(text: &str) -> Option<f64> {
    let (mut total, mut avail, mut free, mut buffers, mut cached) = (None, None, 0u64, 0u64, 0u64);
    for e in parse(text) {
        match e.key {
            "MemTotal" => total = Some(e.value),
            "MemAvailable" => avail = Some(e.value),
            "MemFree" => free = e.value,
            "Buffers" => buffers = e.value,
            "Cached" => cached = e.value,
            _ => {}
        }
    }
    let total = total.filter(|t| *t > 0)? as f64;
    let avail = avail.unwrap_or(free + buffers + cached) as f64;
    Some(100.0 * (total - avail) / total)
}

pub struct Memory {
    detailed: bool,
    divisor: f64,
    file: PathBuf,
    buf: String,
}

impl Memory {
    pub fn new(opts: &MemoryConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let units = byte_units("collectors.memory.byte_unit", &opts.byte_unit)?;
        Ok(Memory {
            detailed: opts.detailed,
            divisor: units[0].1,
            file: cfg.proc_root.join("meminfo"),
            buf: String::new(),
        })
    }
}

/// node_exporter's name of a meminfo key: `Active(anon)` is `Active_anon`,
/// a key in kB ends in `_bytes`.
pub fn node_name(e: &Entry) -> String {
    let mut name = String::with_capacity(e.key.len() + 18);
    name.push_str("node_memory_");
    for c in e.key.chars() {
        match c {
            '(' => name.push('_'),
            ')' => {}
            c => name.push(c),
        }
    }
    if e.is_bytes {
        name.push_str("_bytes");
    }
    name
}

impl Collector for Memory {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        if out.wants_series() {
            for e in parse(text) {
                let name = node_name(&e);
                let help = format!(
                    "Memory information field {}.",
                    &name["node_memory_".len()..]
                );
                out.series_named(name, PromKind::Gauge, help, Vec::new(), e.value as f64);
            }
        }
        for e in parse(text) {
            if !self.detailed && !KEYS.contains(&e.key) {
                continue;
            }
            let v = if e.is_bytes {
                e.value as f64 / self.divisor
            } else {
                e.value as f64
            };
            out.gauge(e.key, v);
        }
        if let Some(p) = used_percentage(text) {
            out.gauge("MemUsedPercentage", p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    fn run(opts: MemoryConfig, root: &str) -> std::collections::BTreeMap<String, f64> {
        let cfg = Config {
            proc_root: fixture(root),
            ..Config::default()
        };
        let mut c = Memory::new(&opts, &cfg).expect("config");
        values(&two_runs(&mut c, 1.0, |_, _| {}).0)
    }

    #[test]
    fn old_kernel_worked_by_hand() {
        // 2.6-era meminfo: no MemAvailable, no Shmem.
        let v = run(MemoryConfig::default(), "proc/old-2.6");
        assert_eq!(v["MemTotal"], 2_074_932.0 * 1024.0);
        assert_eq!(v["MemFree"], 120_984.0 * 1024.0);
        assert_eq!(v["Committed_AS"], 1_130_756.0 * 1024.0);
        assert_eq!(v["VmallocChunk"], 109_092.0 * 1024.0);
        assert!(!v.contains_key("MemAvailable"));
        assert!(!v.contains_key("HighTotal"), "not without detailed");
        // used = total - (free + buffers + cached)
        let want = 100.0 * (2_074_932.0 - (120_984.0 + 209_828.0 + 1_278_404.0)) / 2_074_932.0;
        assert!(close(v["MemUsedPercentage"], want));
        assert_eq!(v.len(), 14 + 1);
    }

    #[test]
    fn captured_kernel_uses_memavailable() {
        let text = std::fs::read_to_string(fixture("proc/server-a/meminfo")).expect("fixture");
        let get = |k: &str| {
            parse(&text)
                .find(|e| e.key == k)
                .map(|e| e.value as f64)
                .expect(k)
        };
        let v = run(MemoryConfig::default(), "proc/server-a");
        assert_eq!(v["MemAvailable"], get("MemAvailable"));
        assert!(close(
            v["MemUsedPercentage"],
            100.0 * (get("MemTotal") - get("MemAvailable")) / get("MemTotal")
        ));
        assert_eq!(v.len(), KEYS.len() + 1);
    }

    #[test]
    fn node_exporter_names_in_bytes_whatever_the_unit() {
        let cfg = Config {
            proc_root: fixture("proc/server-a"),
            ..Config::default()
        };
        let opts = MemoryConfig {
            detailed: false,
            byte_unit: vec!["megabyte".into()],
        };
        let mut c = Memory::new(&opts, &cfg).expect("config");
        let p = crate::collectors::testutil::series(&two_runs(&mut c, 1.0, |_, _| {}).0);
        let text = std::fs::read_to_string(fixture("proc/server-a/meminfo")).expect("fixture");
        assert_eq!(p.len(), text.lines().count(), "every key, detailed or not");
        let kb = |k: &str| parse(&text).find(|e| e.key == k).expect(k).value as f64;
        assert_eq!(p["node_memory_MemFree_bytes"], kb("MemFree"));
        assert_eq!(p["node_memory_Active_anon_bytes"], kb("Active(anon)"));
        assert_eq!(p["node_memory_HugePages_Total"], kb("HugePages_Total"));
        assert_eq!(p["node_memory_Hugepagesize_bytes"], kb("Hugepagesize"));
    }

    #[test]
    fn detailed_sends_every_key_with_counts_as_counts() {
        let opts = MemoryConfig {
            detailed: true,
            byte_unit: vec!["kilobyte".into()],
        };
        let v = run(opts, "proc/old-2.6");
        assert_eq!(v["HighTotal"], 1_179_584.0);
        assert_eq!(v["HugePages_Total"], 0.0);
        assert_eq!(v["Hugepagesize"], 2048.0);
        assert_eq!(v.len(), 26 + 1);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let e: Vec<_> = parse("MemTotal: 10 kB\nnonsense\nX: y kB\nY: 5 MB\nZ: 7\n").collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].value, 10240);
        assert_eq!(e[1].value, 7);
    }
}
