//! loadavg: `/proc/loadavg`, as Diamond's LoadAverageCollector:
//! `loadavg.{01,05,15}`, the same divided by the CPU count
//! (`*_normalized`), `processes_running` and `processes_total`.
//!
//! For Prometheus, node_exporter's `node_load1`, `node_load5`, `node_load15`.

use super::{count_cpus, read, CollectError, Collector, Emit};
use crate::config::Config;
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.loadavg]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadAvgConfig {}

/// The fields of `/proc/loadavg`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    pub running: u64,
    pub total: u64,
}

/// Parses `0.52 1.08 2.30 3/412 12345`.
pub fn parse(text: &str) -> Result<LoadAvg, String> {
    let mut it = text.split_ascii_whitespace();
    let mut load = || -> Result<f64, String> {
        let t = it.next().ok_or("too few fields")?;
        t.parse::<f64>().map_err(|_| format!("bad load {t:?}"))
    };
    let (one, five, fifteen) = (load()?, load()?, load()?);
    let procs = it.next().ok_or("no running/total field")?;
    let (r, t) = procs
        .split_once('/')
        .ok_or_else(|| format!("bad running/total {procs:?}"))?;
    let num = |s: &str| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
    Ok(LoadAvg {
        one,
        five,
        fifteen,
        running: num(r)?,
        total: num(t)?,
    })
}

pub struct LoadAverage {
    file: PathBuf,
    stat: PathBuf,
    /// Counted from `/proc/stat` on the first run (CPU hotplug is not followed).
    ncpus: Option<f64>,
    buf: String,
}

impl LoadAverage {
    pub fn new(_opts: &LoadAvgConfig, cfg: &Config) -> Self {
        LoadAverage {
            file: cfg.proc_root.join("loadavg"),
            stat: cfg.proc_root.join("stat"),
            ncpus: None,
            buf: String::new(),
        }
    }
}

const LOAD: [Family; 3] = [
    Family::gauge("node_load1", "1m load average."),
    Family::gauge("node_load5", "5m load average."),
    Family::gauge("node_load15", "15m load average."),
];

impl Collector for LoadAverage {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let ncpus = match self.ncpus {
            Some(n) => n,
            None => {
                let n = read(&self.stat, &mut self.buf)
                    .map(count_cpus)
                    .unwrap_or(0)
                    .max(1) as f64;
                *self.ncpus.insert(n)
            }
        };
        let text = read(&self.file, &mut self.buf)?;
        let l = parse(text).map_err(|message| CollectError::Parse {
            path: self.file.clone(),
            message,
        })?;
        out.gauge("01", l.one);
        out.gauge("05", l.five);
        out.gauge("15", l.fifteen);
        out.gauge("01_normalized", l.one / ncpus);
        out.gauge("05_normalized", l.five / ncpus);
        out.gauge("15_normalized", l.fifteen / ncpus);
        out.gauge("processes_running", l.running as f64);
        out.gauge("processes_total", l.total as f64);
        for (family, v) in LOAD.iter().zip([l.one, l.five, l.fifteen]) {
            out.series(family, Vec::new(), v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    #[test]
    fn worked_by_hand() {
        let cfg = Config {
            proc_root: fixture("proc/server-a"),
            ..Config::default()
        };
        let mut c = LoadAverage::new(&LoadAvgConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["01"], 0.52);
        assert_eq!(v["05"], 1.08);
        assert_eq!(v["15"], 2.30);
        // 4 CPUs in server-a/stat.
        assert!(close(v["01_normalized"], 0.13));
        assert!(close(v["05_normalized"], 0.27));
        assert!(close(v["15_normalized"], 0.575));
        assert_eq!(v["processes_running"], 3.0);
        assert_eq!(v["processes_total"], 412.0);
        assert_eq!(v.len(), 8);
        let p = crate::collectors::testutil::series(&first);
        assert_eq!(p.len(), 3);
        assert_eq!(p["node_load1"], 0.52);
        assert_eq!(p["node_load5"], 1.08);
        assert_eq!(p["node_load15"], 2.30);
    }

    #[test]
    fn bad_text_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("0.1 0.2 0.3 4 5").is_err());
        assert!(parse("0.1 0.2 zz 1/2 5").is_err());
    }
}
