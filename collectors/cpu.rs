//! cpu: jiffies per second from `/proc/stat`, as Diamond's CPUCollector.
//!
//! `cpu.total.<field>` and, with `percore`, `cpu.cpuN.<field>` for each of
//! user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice
//! that the kernel reports (older kernels have fewer), plus `cpu.cpu_count`.
//! With USER_HZ = 100 a core's jiffies per second read as its percentages.
//!
//! For Prometheus, node_exporter's cpu and stat families from the same
//! reading: `node_cpu_seconds_total{cpu,mode}` and
//! `node_cpu_guest_seconds_total{cpu,mode}` per core, in seconds, and
//! `node_intr_total`, `node_context_switches_total`, `node_forks_total`,
//! `node_boot_time_seconds`, `node_procs_running`, `node_procs_blocked`.

use super::{read, CollectError, Collector, Emit};
use crate::config::{Config, ConfigError};
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.cpu]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Also send every core's metrics (`cpu.cpuN.*`).
    pub percore: bool,
    /// Divide the `total` metrics by the number of CPUs.
    pub normalize: bool,
    /// Send only `cpu.percent`: the busy share of user+nice+system+idle.
    pub simple: bool,
}

impl Default for CpuConfig {
    fn default() -> Self {
        CpuConfig {
            percore: true,
            normalize: false,
            simple: false,
        }
    }
}

/// The fields of a `cpu` line, in the kernel's order.
pub const FIELDS: [&str; 10] = [
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
];

/// One `cpu`/`cpuN` line of `/proc/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuLine<'a> {
    /// `total` for the aggregate line, else `cpu0`, `cpu1`, ...
    pub name: &'a str,
    /// Jiffies per field; fields the kernel does not report are `None`.
    pub jiffies: [Option<u64>; 10],
}

/// Parses the `cpu` lines of a `/proc/stat` text.
pub fn parse(text: &str) -> Result<Vec<CpuLine<'_>>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if !line.starts_with("cpu") {
            continue;
        }
        let mut it = line.split_ascii_whitespace();
        let name = match it.next() {
            Some("cpu") => "total",
            Some(n) => n,
            None => continue,
        };
        let mut jiffies = [None; 10];
        for (slot, tok) in jiffies.iter_mut().zip(it) {
            *slot = Some(
                tok.parse::<u64>()
                    .map_err(|_| format!("line {}: bad number {tok:?}", n + 1))?,
            );
        }
        out.push(CpuLine { name, jiffies });
    }
    if out.first().map(|l| l.name) != Some("total") {
        return Err("no aggregate `cpu` line".into());
    }
    Ok(out)
}

/// Jiffies per second the kernel reports in `/proc/stat` (USER_HZ, 100 on
/// every Linux architecture), as node_exporter assumes too.
const USER_HZ: f64 = 100.0;

const CPU_SECONDS: Family = Family::counter(
    "node_cpu_seconds_total",
    "Seconds the CPUs spent in each mode.",
);
const CPU_GUEST: Family = Family::counter(
    "node_cpu_guest_seconds_total",
    "Seconds the CPUs spent in guests (VMs) for each mode.",
);
/// The other lines of `/proc/stat` node_exporter's stat collector reads:
/// the line's key, the family, and whether only its first number counts.
const STAT: [(&str, Family); 6] = [
    (
        "intr",
        Family::counter("node_intr_total", "Total number of interrupts serviced."),
    ),
    (
        "ctxt",
        Family::counter(
            "node_context_switches_total",
            "Total number of context switches.",
        ),
    ),
    (
        "btime",
        Family::gauge("node_boot_time_seconds", "Node boot time, in unixtime."),
    ),
    (
        "processes",
        Family::counter("node_forks_total", "Total number of forks."),
    ),
    (
        "procs_running",
        Family::gauge(
            "node_procs_running",
            "Number of processes in runnable state.",
        ),
    ),
    (
        "procs_blocked",
        Family::gauge(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
        ),
    ),
];

/// node_exporter's series of a `/proc/stat` text whose cpu lines are `lines`.
fn series(text: &str, lines: &[CpuLine], out: &mut Emit) {
    for line in lines.iter().filter(|l| l.name != "total") {
        let cpu = line.name.trim_start_matches("cpu");
        for (i, raw) in line.jiffies.iter().enumerate() {
            let Some(raw) = raw else { continue };
            let (family, mode) = match i {
                8 => (&CPU_GUEST, "user"),
                9 => (&CPU_GUEST, "nice"),
                _ => (&CPU_SECONDS, FIELDS[i]),
            };
            out.series(
                family,
                vec![("cpu", cpu.to_string()), ("mode", mode.to_string())],
                *raw as f64 / USER_HZ,
            );
        }
    }
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(key) = it.next() else { continue };
        let Some((_, family)) = STAT.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        if let Some(v) = it.next().and_then(|v| v.parse::<u64>().ok()) {
            out.series(family, Vec::new(), v as f64);
        }
    }
}

pub struct Cpu {
    opts: CpuConfig,
    file: PathBuf,
    buf: String,
}

impl Cpu {
    pub fn new(opts: &CpuConfig, cfg: &Config) -> Result<Self, ConfigError> {
        Ok(Cpu {
            opts: opts.clone(),
            file: cfg.proc_root.join("stat"),
            buf: String::new(),
        })
    }
}

impl Collector for Cpu {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        let lines = parse(text).map_err(|message| CollectError::Parse {
            path: self.file.clone(),
            message,
        })?;
        let ncpus = lines.len() - 1;
        let mut key = String::with_capacity(32);
        if out.wants_series() {
            series(text, &lines, out);
        }

        if self.opts.simple {
            // Diamond: 100 - idle share of (user, nice, system, idle).
            let total = &lines[0];
            let mut d = [None; 4];
            for (i, slot) in d.iter_mut().enumerate() {
                *slot = total.jiffies[i].and_then(|raw| out.counters().delta(FIELDS[i], raw));
            }
            let [Some(user), Some(nice), Some(system), Some(idle)] = d else {
                return Ok(());
            };
            let d = [user, nice, system, idle];
            let sum: f64 = d.iter().sum();
            if sum > 0.0 {
                out.gauge("percent", 100.0 - d[3] * 100.0 / sum);
            }
            return Ok(());
        }

        out.gauge("cpu_count", ncpus as f64);
        for line in &lines {
            let total = line.name == "total";
            if !total && !self.opts.percore {
                continue;
            }
            let div = if total && self.opts.normalize && ncpus > 0 {
                ncpus as f64
            } else {
                1.0
            };
            for (field, raw) in FIELDS.iter().zip(line.jiffies) {
                let Some(raw) = raw else { continue };
                key.clear();
                key.push_str(line.name);
                key.push('.');
                key.push_str(field);
                if let Some(d) = out.counters().delta(&key, raw) {
                    out.push_rate(&key, d, div);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    fn collector(opts: CpuConfig) -> Cpu {
        Cpu {
            opts,
            file: PathBuf::new(),
            buf: String::new(),
        }
    }

    fn run(opts: CpuConfig) -> (Vec<crate::sample::Sample>, Vec<crate::sample::Sample>) {
        let mut c = collector(opts);
        two_runs(&mut c, 10.0, |c, i| {
            c.file = fixture(if i == 0 {
                "proc/server-a/stat"
            } else {
                "proc/server-b/stat"
            });
        })
    }

    #[test]
    fn node_exporter_series_from_the_first_run() {
        use crate::collectors::testutil::series;
        let (first, _) = run(CpuConfig::default());
        let p = series(&first);
        // 4 cores x 10 modes (guest and guest_nice in their own family).
        assert_eq!(p.len(), 40 + 6, "{p:?}");
        assert_eq!(p["node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}"], 25.0);
        assert_eq!(p["node_cpu_seconds_total{cpu=\"3\",mode=\"idle\"}"], 200.0);
        assert_eq!(
            p["node_cpu_seconds_total{cpu=\"2\",mode=\"softirq\"}"],
            0.25
        );
        assert_eq!(
            p["node_cpu_guest_seconds_total{cpu=\"1\",mode=\"nice\"}"],
            0.0
        );
        assert!(
            !p.keys().any(|k| k.contains("total\"")),
            "no aggregate line"
        );
        assert_eq!(p["node_intr_total"], 1937463.0);
        assert_eq!(p["node_context_switches_total"], 3765234.0);
        assert_eq!(p["node_boot_time_seconds"], 1700000000.0);
        assert_eq!(p["node_forks_total"], 51234.0);
        assert_eq!(p["node_procs_running"], 3.0);
        assert_eq!(p["node_procs_blocked"], 0.0);
    }

    #[test]
    fn first_run_has_only_the_count() {
        let (first, _) = run(CpuConfig::default());
        let v = values(&first);
        assert_eq!(v.len(), 1);
        assert_eq!(v["cpu_count"], 4.0);
    }

    #[test]
    fn jiffies_per_second_total_and_per_core() {
        // 10 s apart on 4 cores: the totals moved by user 1000, nice 20,
        // system 300, idle 2600, iowait 60, softirq 20 jiffies.
        let (_, second) = run(CpuConfig::default());
        let v = values(&second);
        assert_eq!(v["cpu_count"], 4.0);
        assert_eq!(v["total.user"], 100.0);
        assert_eq!(v["total.nice"], 2.0);
        assert_eq!(v["total.system"], 30.0);
        assert_eq!(v["total.idle"], 260.0);
        assert_eq!(v["total.iowait"], 6.0);
        assert_eq!(v["total.irq"], 0.0);
        assert_eq!(v["total.softirq"], 2.0);
        assert_eq!(v["total.guest_nice"], 0.0);
        // cpu0: user 2500 -> 2900, idle 20000 -> 20480.
        assert_eq!(v["cpu0.user"], 40.0);
        assert_eq!(v["cpu0.idle"], 48.0);
        assert_eq!(v["cpu3.system"], 6.0);
        assert_eq!(v.len(), 1 + 5 * 10);
        assert!(second
            .iter()
            .filter(|s| s.name.ends_with("user"))
            .all(|s| s.kind == crate::sample::Kind::Rate));
    }

    #[test]
    fn normalize_divides_totals_only() {
        let opts = CpuConfig {
            normalize: true,
            percore: false,
            ..Default::default()
        };
        let (_, second) = run(opts);
        let v = values(&second);
        assert_eq!(v["total.user"], 25.0);
        assert_eq!(v["total.idle"], 65.0);
        assert!(!v.contains_key("cpu0.user"));
    }

    #[test]
    fn simple_gives_one_percentage() {
        let opts = CpuConfig {
            simple: true,
            ..Default::default()
        };
        let (first, second) = run(opts);
        assert!(values(&first).is_empty());
        let v = values(&second);
        assert_eq!(v.len(), 1);
        // 100 - 2600 * 100 / (1000 + 20 + 300 + 2600)
        assert!(close(v["percent"], 100.0 - 260000.0 / 3920.0), "{v:?}");
    }

    #[test]
    fn older_kernel_has_fewer_fields() {
        let text = std::fs::read_to_string(fixture("proc/old-2.6/stat")).expect("fixture");
        let lines = parse(&text).expect("parse");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].jiffies[6], Some(10));
        assert_eq!(lines[0].jiffies[7], None, "no steal before 2.6.11");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("cpu  1 2 x\n").is_err());
        assert!(parse("intr 1 2 3\n").is_err());
        assert!(parse("").is_err());
    }
}
