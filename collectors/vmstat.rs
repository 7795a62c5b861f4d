//! vmstat: paging and swapping from `/proc/vmstat`, per second, as Diamond's
//! VMStatCollector: `vmstat.{pgfault,pgmajfault,pgpgin,pgpgout,pswpin,pswpout}`.

use super::{read, CollectError, Collector, Emit};
use crate::config::Config;
use crate::sample::PromKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.vmstat]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmstatConfig {}

/// The counters sent, as rates.
pub const COUNTERS: [&str; 6] = [
    "pgfault",
    "pgmajfault",
    "pgpgin",
    "pgpgout",
    "pswpin",
    "pswpout",
];

/// The wanted counters of a `/proc/vmstat` text.
pub fn parse(text: &str) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    text.lines().filter_map(|line| {
        let (k, v) = line.split_once(' ')?;
        let name = COUNTERS.iter().find(|c| **c == k)?;
        Some((*name, v.trim().parse().ok()?))
    })
}

pub struct Vmstat {
    file: PathBuf,
    buf: String,
}

impl Vmstat {
    pub fn new(_opts: &VmstatConfig, cfg: &Config) -> Self {
        Vmstat {
            file: cfg.proc_root.join("vmstat"),
            buf: String::new(),
        }
    }
}

/// Whether node_exporter's vmstat collector sends a field by default
/// (its `^(oom_kill|pgpg|pswp|pg.*fault).*`).
pub fn node_field(key: &str) -> bool {
    key.starts_with("oom_kill")
        || key.starts_with("pgpg")
        || key.starts_with("pswp")
        || key
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

/// node_exporter's series of a `/proc/vmstat` text: `node_vmstat_<field>`, untyped.
pub fn series(text: &str, out: &mut Emit) {
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if !node_field(k) {
            continue;
        }
        if let Ok(v) = v.trim().parse::<u64>() {
            out.series_named(
                format!("node_vmstat_{k}"),
                PromKind::Untyped,
                format!("/proc/vmstat information field {k}."),
                Vec::new(),
                v as f64,
            );
        }
    }
}

impl Collector for Vmstat {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        if out.wants_series() {
            series(text, out);
        }
        for (name, raw) in parse(text) {
            out.rate(name, raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_exporter_fields() {
        for k in [
            "oom_kill",
            "pgpgin",
            "pswpout",
            "pgfault",
            "pgmajfault",
            "pgdemote_fault",
        ] {
            assert!(node_field(k), "{k}");
        }
        for k in [
            "nr_free_pages",
            "pgalloc_normal",
            "fault",
            "workingset_refault_anon",
        ] {
            assert!(!node_field(k), "{k}");
        }
    }
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn per_second_worked_by_hand() {
        let mut c = Vmstat::new(&VmstatConfig {}, &Config::default());
        let (first, second) = two_runs(&mut c, 10.0, |c, i| {
            c.file = fixture(if i == 0 {
                "proc/server-a/vmstat"
            } else {
                "proc/server-b/vmstat"
            });
        });
        assert!(values(&first).is_empty());
        let p = crate::collectors::testutil::series(&first);
        let text = std::fs::read_to_string(fixture("proc/server-a/vmstat")).expect("fixture");
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.parse::<f64>().ok())
                .expect(k)
        };
        for k in [
            "pgfault",
            "pgmajfault",
            "pgpgin",
            "pgpgout",
            "pswpin",
            "pswpout",
        ] {
            assert_eq!(p[&format!("node_vmstat_{k}")], get(k), "{k}");
        }
        assert!(p.keys().all(|k| node_field(&k["node_vmstat_".len()..])));
        let v = values(&second);
        assert_eq!(v["pgfault"], 25_000.0);
        assert_eq!(v["pgmajfault"], 5.0);
        assert_eq!(v["pgpgin"], 400.0);
        assert_eq!(v["pgpgout"], 1200.0);
        assert_eq!(v["pswpin"], 0.0);
        assert_eq!(v["pswpout"], 2.0);
        assert_eq!(v.len(), 6);
    }

    #[test]
    fn captured_kernel_has_all_six() {
        let text = std::fs::read_to_string(fixture("proc/t0/vmstat")).expect("fixture");
        assert_eq!(parse(&text).count(), 6);
    }
}
