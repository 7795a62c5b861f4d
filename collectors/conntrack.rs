//! conntrack: the connection tracking table's fill, as Diamond's
//! ConnTrackCollector: `conntrack.ip_conntrack_count` and
//! `conntrack.ip_conntrack_max`, from `/proc/sys/net/netfilter/
//! nf_conntrack_{count,max}` or the older kernels'
//! `/proc/sys/net/ipv4/netfilter/ip_conntrack_{count,max}` (Diamond sends
//! both under the `ip_` names). Nothing is sent where netfilter's
//! connection tracking is not loaded. Off by default, as in Diamond.
//!
//! For Prometheus, node_exporter's `node_nf_conntrack_entries` and
//! `node_nf_conntrack_entries_limit` from the same files.

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

pub struct Conntrack {
    root: PathBuf,
    missing: [Missing; 4],
    buf: String,
}

impl Conntrack {
    pub fn new(_opts: &ConntrackConfig, cfg: &Config) -> Self {
        Conntrack {
            root: cfg.proc_root.clone(),
            missing: Default::default(),
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
