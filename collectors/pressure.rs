//! pressure: pressure stall information (PSI) from
//! `/proc/pressure/{cpu,memory,io}` (kernel 4.20 and later; Diamond never
//! had it): `pressure.<res>.{some,full}.{avg10,avg60,avg300}` (the share
//! of time stalled, percent, as the kernel averages it) and `.total`
//! (microseconds stalled per second).
//!
//! For Prometheus, node_exporter's families from the same reading:
//! `node_pressure_{cpu,io,memory}_waiting_seconds_total` (`some`) and
//! `node_pressure_{io,memory}_stalled_seconds_total` (`full`), in seconds.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.pressure]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PressureConfig {}

pub const RESOURCES: [&str; 3] = ["cpu", "memory", "io"];

/// One line of a pressure file: `some avg10=0.12 avg60=0.05 avg300=0.01
/// total=12345` as (`some`, [avg10, avg60, avg300], total).
pub fn parse_line(line: &str) -> Option<(&str, [f64; 3], u64)> {
    let mut it = line.split_ascii_whitespace();
    let kind = it.next().filter(|k| *k == "some" || *k == "full")?;
    let mut avg = [0.0; 3];
    for (slot, key) in avg.iter_mut().zip(["avg10=", "avg60=", "avg300="]) {
        *slot = it.next()?.strip_prefix(key)?.parse().ok()?;
    }
    let total = it.next()?.strip_prefix("total=")?.parse().ok()?;
    Some((kind, avg, total))
}

/// node_exporter's family of a resource's `some` or `full` line (none
/// for the cpu's `full`, which node_exporter does not send).
fn family(res: &str, kind: &str) -> Option<Family> {
    Some(match (res, kind) {
        ("cpu", "some") => Family::counter(
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
        ),
        ("io", "some") => Family::counter(
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
        ),
        ("io", "full") => Family::counter(
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
        ),
        ("memory", "some") => Family::counter(
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
        ),
        ("memory", "full") => Family::counter(
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
        ),
        _ => return None,
    })
}

pub struct Pressure {
    files: [PathBuf; 3],
    missing: [Missing; 3],
    buf: String,
}

impl Pressure {
    pub fn new(_opts: &PressureConfig, cfg: &Config) -> Self {
        Pressure {
            files: RESOURCES.map(|r| cfg.proc_root.join("pressure").join(r)),
            missing: Default::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Pressure {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        for ((file, res), missing) in self.files.iter().zip(RESOURCES).zip(&mut self.missing) {
            let Some(text) = read_optional(file, &mut self.buf, missing)? else {
                continue;
            };
            // A line of another shape (from a later kernel) is skipped.
            for (kind, avg, total) in text.lines().filter_map(parse_line) {
                for (name, v) in ["avg10", "avg60", "avg300"].iter().zip(avg) {
                    out.gauge(&format!("{res}.{kind}.{name}"), v);
                }
                out.rate(&format!("{res}.{kind}.total"), total);
                if let Some(f) = family(res, kind) {
                    out.series(&f, Vec::new(), total as f64 / 1e6);
                }
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
    fn averages_as_they_are_and_totals_per_second() {
        let mut c = Pressure::new(&PressureConfig {}, &Config::default());
        let (first, second) = two_runs(&mut c, 2.0, |c, i| {
            let dir = fixture(if i == 0 {
                "proc/t0/pressure"
            } else {
                "proc/t1/pressure"
            });
            c.files = RESOURCES.map(|r| dir.join(r));
        });
        assert_eq!(
            values(&first).len(),
            3 * 2 * 3,
            "no totals on the first run"
        );
        let p = crate::collectors::testutil::series(&first);
        assert_eq!(p.len(), 5, "{p:?}");
        assert_eq!(p["node_pressure_cpu_waiting_seconds_total"], 2_226.853441);
        assert!(p.contains_key("node_pressure_io_stalled_seconds_total"));
        assert!(p.contains_key("node_pressure_memory_waiting_seconds_total"));
        let v = values(&second);
        assert_eq!(v["cpu.some.avg10"], 1.92);
        assert_eq!(v["cpu.some.avg300"], 2.12);
        assert_eq!(
            v["cpu.some.total"],
            (2_226_941_665.0 - 2_226_853_441.0) / 2.0
        );
        assert_eq!(v["cpu.full.total"], 0.0);
        assert!(v.contains_key("io.full.avg60") && v.contains_key("memory.some.total"));
        assert_eq!(v.len(), 3 * 2 * 4);
    }

    #[test]
    fn no_psi_or_odd_lines_send_nothing_for_them() {
        let mut c = Pressure::new(&PressureConfig {}, &Config::default());
        c.files = RESOURCES.map(|r| PathBuf::from("/nonexistent/pressure").join(r));
        let (first, second) = two_runs(&mut c, 2.0, |_, _| {});
        assert!(first.is_empty() && second.is_empty());
        assert_eq!(parse_line("some avg10=x avg60=0 avg300=0 total=1"), None);
        assert_eq!(parse_line("other avg10=0 avg60=0 avg300=0 total=1"), None);
        // A file with a line of another shape: the good line still counts.
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            d.path().join("cpu"),
            "some avg10=1.00 avg60=2.00 avg300=3.00 total=5\nnew kind=1\n",
        )
        .expect("write");
        c.files = RESOURCES.map(|r| d.path().join(r));
        let (first, _) = two_runs(&mut c, 2.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["cpu.some.avg60"], 2.0);
        assert_eq!(v.len(), 3);
    }
}
