//! interrupt: interrupt counts from `/proc/interrupts`, per second, as
//! Diamond's InterruptCollector: `interrupts.<type>.<device>.<irq>.CPU<n>`
//! and `.total` for numbered IRQs, `interrupts.<name>.CPU<n>` and `.total`
//! for the named ones (`NMI`, `LOC`, `RES`, ...), and `interrupts.ERR`,
//! `interrupts.MIS`. Off by default, as in Diamond: a host with many CPUs
//! and IRQs sends thousands of metrics.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.interrupt]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterruptConfig {}

/// One row of `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'t> {
    /// The metric name the row's counts go under, without `.CPU<n>`.
    pub name: String,
    /// One count per CPU (fewer when the kernel prints fewer); a single
    /// count for `ERR` and `MIS`.
    pub counts: Vec<u64>,
    /// Whether the row is one count with no per-CPU names (`ERR`, `MIS`).
    pub single: bool,
    pub label: &'t str,
}

/// The rows of a `/proc/interrupts` text: the header's `CPUn` columns give
/// the CPU count; each row is `label: count... description`. Numbered rows
/// are named `<type>.<device>.<irq>` from their description as Diamond
/// names them (the first word is the type; in the rest, `, ` becomes `-`
/// and each space `_`); named rows by their label.
pub fn parse(text: &str) -> Vec<Row<'_>> {
    let mut lines = text.lines();
    let cpus = lines
        .next()
        .map_or(0, |h| h.split_ascii_whitespace().count());
    let mut rows = Vec::new();
    for line in lines {
        let Some((label, rest)) = line.split_once(':') else {
            continue;
        };
        let label = label.trim();
        if label.is_empty() || label.contains(['.', ' ']) {
            continue;
        }
        // Up to one count per CPU, then the description.
        let mut counts = Vec::with_capacity(cpus);
        let mut tail = rest;
        while counts.len() < cpus.max(1) {
            let t = tail.trim_start();
            let end = t.find(|c: char| c.is_ascii_whitespace()).unwrap_or(t.len());
            match t[..end].parse::<u64>() {
                Ok(v) if end > 0 => {
                    counts.push(v);
                    tail = &t[end..];
                }
                _ => break,
            }
        }
        if counts.is_empty() {
            continue;
        }
        let description = tail.trim();
        let numbered = label.bytes().all(|b| b.is_ascii_digit());
        let (name, single) = if numbered {
            let (kind, device) = description
                .split_once(|c: char| c.is_ascii_whitespace())
                .map_or((description, ""), |(k, d)| (k, d.trim_start()));
            if kind.is_empty() {
                (label.to_string(), false)
            } else {
                let device = device.replace(", ", "-").replace(' ', "_");
                let kind = kind.replace(' ', "_");
                if device.is_empty() {
                    (format!("{kind}.{label}"), false)
                } else {
                    (format!("{kind}.{device}.{label}"), false)
                }
            }
        } else {
            (
                label.to_string(),
                counts.len() == 1 && description.is_empty(),
            )
        };
        rows.push(Row {
            name,
            counts,
            single,
            label,
        });
    }
    rows
}

pub struct Interrupt {
    file: PathBuf,
    missing: Missing,
    buf: String,
}

impl Interrupt {
    pub fn new(_opts: &InterruptConfig, cfg: &Config) -> Self {
        Interrupt {
            file: cfg.proc_root.join("interrupts"),
            missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Interrupt {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        for row in parse(text) {
            if row.single {
                out.rate(&row.name, row.counts[0]);
                continue;
            }
            // The total is the sum of the CPUs' increases (none when a CPU
            // has no rate this run: the first run, or a reset).
            let mut total = Some(0.0);
            for (cpu, raw) in row.counts.iter().enumerate() {
                let key = format!("{}.CPU{cpu}", row.name);
                match out.counters().delta(&key, *raw) {
                    Some(d) => {
                        out.push_rate(&key, d, 1.0);
                        total = total.map(|t| t + d);
                    }
                    None => total = None,
                }
            }
            if let Some(t) = total {
                out.push_rate(&format!("{}.total", row.name), t, 1.0);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    #[test]
    fn numbered_and_named_rows() {
        let text = "           CPU0       CPU1\n\
            \x20 0:         22          0   IO-APIC   2-edge      timer\n\
            \x2010:  323299242  152420999   IO-APIC-level  virtio0, virtio1\n\
            \x2051:        293        330   PCI-MSI-X  eth3-rx-1\n\
            114:       7000          0   IO-APIC-level  3w-sas\n\
            NMI:          0          0   Non-maskable interrupts\n\
            LOC:    6418830    7258366   Local timer interrupts\n\
            ERR:          0\n\
            MIS:          5\n";
        let rows = parse(text);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "IO-APIC.2-edge______timer.0",
                "IO-APIC-level.virtio0-virtio1.10",
                "PCI-MSI-X.eth3-rx-1.51",
                "IO-APIC-level.3w-sas.114",
                "NMI",
                "LOC",
                "ERR",
                "MIS"
            ]
        );
        assert_eq!(rows[1].counts, [323_299_242, 152_420_999]);
        assert!(rows[6].single && rows[7].single && !rows[4].single);
        assert_eq!(rows[7].counts, [5]);
    }

    #[test]
    fn per_second_on_a_real_capture() {
        let mut c = Interrupt::new(&InterruptConfig {}, &Config::default());
        let (first, second) = two_runs(&mut c, 2.0, |c, i| {
            c.file = fixture(if i == 0 {
                "proc/t0/interrupts"
            } else {
                "proc/t1/interrupts"
            });
        });
        assert!(first.is_empty());
        let v = values(&second);
        // LOC (the local timer) on each CPU, worked from the two files.
        let t0 = std::fs::read_to_string(fixture("proc/t0/interrupts")).expect("t0");
        let t1 = std::fs::read_to_string(fixture("proc/t1/interrupts")).expect("t1");
        let loc = |t: &str| {
            parse(t)
                .into_iter()
                .find(|r| r.label == "LOC")
                .expect("LOC")
                .counts
        };
        let (a, b) = (loc(&t0), loc(&t1));
        assert!(b[0] > a[0] && b[1] > a[1], "the timer ticked");
        assert_eq!(v["LOC.CPU0"], (b[0] - a[0]) as f64 / 2.0);
        assert!(close(
            v["LOC.total"],
            ((b[0] - a[0]) + (b[1] - a[1])) as f64 / 2.0
        ));
        assert_eq!(v["ERR"], 0.0);
        assert!(
            v.contains_key("IO-APIC.4-edge______ttyS0.26.CPU1"),
            "{:?}",
            v.keys().take(5).collect::<Vec<_>>()
        );
        // Every row: two CPUs and a total, but ERR and MIS.
        let rows = parse(&t1);
        assert_eq!(v.len(), (rows.len() - 2) * 3 + 2);
    }
}
