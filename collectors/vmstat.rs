//! vmstat: paging and swapping from `/proc/vmstat`, per second, as Diamond's
//! VMStatCollector: `vmstat.{pgfault,pgmajfault,pgpgin,pgpgout,pswpin,pswpout}`.

use super::{read, CollectError, Collector, Emit};
use crate::config::Config;
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

impl Collector for Vmstat {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        for (name, raw) in parse(text) {
            out.rate(name, raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(first.is_empty());
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
