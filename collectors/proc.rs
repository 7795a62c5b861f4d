//! proc: process counts from `/proc/stat`, as Diamond's
//! ProcessStatCollector: `proc.ctxt` and `proc.processes` (forks) per
//! second; `proc.procs_running`, `proc.procs_blocked` and `proc.btime`
//! (boot time, unix seconds) as they are.

use super::{read, CollectError, Collector, Emit};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.proc]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcConfig {}

/// The keys of `/proc/stat` sent, and whether each is a counter.
pub const KEYS: [(&str, bool); 5] = [
    ("ctxt", true),
    ("btime", false),
    ("processes", true),
    ("procs_running", false),
    ("procs_blocked", false),
];

/// The wanted `key value` lines of a `/proc/stat` text.
pub fn parse(text: &str) -> impl Iterator<Item = (&'static str, bool, u64)> + '_ {
    text.lines().filter_map(|line| {
        let (k, v) = line.split_once(' ')?;
        let (name, counter) = KEYS.iter().find(|(n, _)| *n == k)?;
        Some((*name, *counter, v.trim().parse().ok()?))
    })
}

pub struct Proc {
    file: PathBuf,
    buf: String,
}

impl Proc {
    pub fn new(_opts: &ProcConfig, cfg: &Config) -> Self {
        Proc {
            file: cfg.proc_root.join("stat"),
            buf: String::new(),
        }
    }
}

impl Collector for Proc {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        for (name, counter, raw) in parse(text) {
            if counter {
                out.rate(name, raw);
            } else {
                out.gauge(name, raw as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn per_second_and_as_they_are() {
        let mut c = Proc::new(&ProcConfig {}, &Config::default());
        let (first, second) = two_runs(&mut c, 10.0, |c, i| {
            c.file = fixture(if i == 0 {
                "proc/busy-t0/stat"
            } else {
                "proc/busy-t1/stat"
            });
        });
        let v0 = values(&first);
        assert_eq!(v0.len(), 3, "gauges only on the first run: {v0:?}");
        let v = values(&second);
        assert_eq!(v["ctxt"], 52_000.0);
        assert_eq!(v["processes"], 12.5);
        assert_eq!(v["procs_running"], 9.0);
        assert_eq!(v["procs_blocked"], 2.0);
        assert_eq!(v["btime"], 1_795_000_000.0);
        assert_eq!(v.len(), 5);
    }

    #[test]
    fn this_hosts_capture_parses() {
        let text = std::fs::read_to_string(fixture("proc/server-a/stat")).expect("fixture");
        assert_eq!(parse(&text).count(), 5);
    }
}
