//! conntrack: the connection tracking table's fill, as Diamond's
//! ConnTrackCollector: `conntrack.ip_conntrack_count` and
//! `conntrack.ip_conntrack_max`, from `/proc/sys/net/netfilter/
//! nf_conntrack_{count,max}` or the older kernels'
//! `/proc/sys/net/ipv4/netfilter/ip_conntrack_{count,max}` (Diamond sends
//! both under the `ip_` names). Nothing is sent where netfilter's
//! connection tracking is not loaded. Off by default, as in Diamond.
//!
//! For Prometheus, node_exporter's `node_nf_conntrack_entries` and
//! `node_nf_conntrack_entries_limit` from the same files, and its
//! `node_nf_conntrack_stat_*` from `/proc/net/stat/nf_conntrack` (each
//! column summed over the CPUs' rows).

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.conntrack]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackConfig {}

/// Each metric and the files it is read from, the first one there wins.
const SOURCES: [(&str, [&str; 2]); 2] = [
    (
        "ip_conntrack_count",
        [
            "sys/net/netfilter/nf_conntrack_count",
            "sys/net/ipv4/netfilter/ip_conntrack_count",
        ],
    ),
    (
        "ip_conntrack_max",
        [
            "sys/net/netfilter/nf_conntrack_max",
            "sys/net/ipv4/netfilter/ip_conntrack_max",
        ],
    ),
];

/// node_exporter's family of each of [`SOURCES`].
const FAMILIES: [Family; 2] = [
    Family::gauge(
        "node_nf_conntrack_entries",
        "Number of currently allocated flow entries for connection tracking.",
    ),
    Family::gauge(
        "node_nf_conntrack_entries_limit",
        "Maximum size of connection tracking table.",
    ),
];

/// node_exporter's statistics families, by their column in
/// `/proc/net/stat/nf_conntrack` (gauges, as node_exporter gives them).
const STAT_FAMILIES: [(&str, Family); 8] = [
    ("found", Family::gauge("node_nf_conntrack_stat_found", "Number of searched entries which were successful.")),
    ("invalid", Family::gauge("node_nf_conntrack_stat_invalid", "Number of packets seen which can not be tracked.")),
    ("ignore", Family::gauge("node_nf_conntrack_stat_ignore", "Number of packets seen which are already connected to a conntrack entry.")),
    ("insert", Family::gauge("node_nf_conntrack_stat_insert", "Number of entries inserted into the list.")),
    ("insert_failed", Family::gauge("node_nf_conntrack_stat_insert_failed", "Number of entries for which list insertion was attempted but failed.")),
    ("drop", Family::gauge("node_nf_conntrack_stat_drop", "Number of packets dropped due to conntrack failure.")),
    ("early_drop", Family::gauge("node_nf_conntrack_stat_early_drop", "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.")),
    ("search_restart", Family::gauge("node_nf_conntrack_stat_search_restart", "Number of conntrack table lookups which had to be restarted due to hashtable resizes.")),
];

/// The columns of `/proc/net/stat/nf_conntrack` (a header, then one row of
/// hexadecimal counters per CPU), each summed over the rows.
pub fn stat_sums(text: &str) -> Vec<(&str, u64)> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let mut sums: Vec<(&str, u64)> = header.split_ascii_whitespace().map(|c| (c, 0)).collect();
    for row in lines {
        for (slot, field) in sums.iter_mut().zip(row.split_ascii_whitespace()) {
            slot.1 = slot
                .1
                .wrapping_add(u64::from_str_radix(field, 16).unwrap_or(0));
        }
    }
    sums
}

pub struct Conntrack {
    root: PathBuf,
    missing: [Missing; 4],
    stat_missing: Missing,
    buf: String,
}

impl Conntrack {
    pub fn new(_opts: &ConntrackConfig, cfg: &Config) -> Self {
        Conntrack {
            root: cfg.proc_root.clone(),
            missing: Default::default(),
            stat_missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Conntrack {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut missing = self.missing.iter_mut();
        for ((name, files), family) in SOURCES.iter().zip(&FAMILIES) {
            // Each file has its own `Missing`, in order; the first file
            // there wins.
            let mut found = false;
            for file in files {
                let path = self.root.join(file);
                let Some(m) = missing.next() else { break };
                if found {
                    continue;
                }
                let Some(text) = read_optional(&path, &mut self.buf, m)? else {
                    continue;
                };
                let v: u64 = text.trim().parse().map_err(|_| CollectError::Parse {
                    path: path.clone(),
                    message: format!("not a count: {:?}", text.trim()),
                })?;
                out.gauge(name, v as f64);
                out.series(family, Vec::new(), v as f64);
                found = true;
            }
        }
        if out.wants_series() {
            let path = self.root.join("net/stat/nf_conntrack");
            if let Some(text) = read_optional(&path, &mut self.buf, &mut self.stat_missing)? {
                let sums = stat_sums(text);
                for (column, family) in &STAT_FAMILIES {
                    if let Some((_, v)) = sums.iter().find(|(c, _)| c == column) {
                        out.series(family, Vec::new(), *v as f64);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{two_runs, values};

    fn with(files: &[(&str, &str)]) -> std::collections::BTreeMap<String, f64> {
        let d = tempfile::tempdir().expect("tempdir");
        for (f, text) in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let cfg = Config {
            proc_root: d.path().to_path_buf(),
            ..Config::default()
        };
        let mut c = Conntrack::new(&ConntrackConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        values(&first)
    }

    #[test]
    fn statistics_are_summed_over_the_cpus() {
        let text = std::fs::read_to_string(crate::collectors::testutil::fixture(
            "proc/conntrack/net/stat/nf_conntrack",
        ))
        .expect("fixture");
        let sums = stat_sums(&text);
        let get = |c: &str| sums.iter().find(|(n, _)| *n == c).map(|(_, v)| *v);
        assert_eq!(get("found"), Some(0xa1b2 + 0xf00));
        assert_eq!(get("search_restart"), Some(15));
        assert_eq!(get("entries"), Some(2 * 1234));
        // Garbage reads as 0; a short row sums what it has.
        let s = stat_sums("found drop\nzz 1\n2\n");
        assert_eq!(s, [("found", 2), ("drop", 1)]);
        assert!(stat_sums("").is_empty());
    }

    #[test]
    fn either_kernel_path_under_the_ip_names() {
        let v = with(&[
            ("sys/net/netfilter/nf_conntrack_count", "33\n"),
            ("sys/net/netfilter/nf_conntrack_max", "262144\n"),
        ]);
        assert_eq!(
            (v["ip_conntrack_count"], v["ip_conntrack_max"]),
            (33.0, 262_144.0)
        );
        let v = with(&[
            ("sys/net/ipv4/netfilter/ip_conntrack_count", "7\n"),
            ("sys/net/ipv4/netfilter/ip_conntrack_max", "65536\n"),
        ]);
        assert_eq!(
            (v["ip_conntrack_count"], v["ip_conntrack_max"]),
            (7.0, 65_536.0)
        );
        // Both there: the nf_ files, each metric once.
        let v = with(&[
            ("sys/net/netfilter/nf_conntrack_count", "1\n"),
            ("sys/net/ipv4/netfilter/ip_conntrack_count", "2\n"),
        ]);
        assert_eq!(v.len(), 1);
        assert_eq!(v["ip_conntrack_count"], 1.0);
        // No conntrack module: nothing, and no error.
        assert!(with(&[]).is_empty());
    }
}
