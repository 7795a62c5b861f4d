//! diskusage: disk I/O from `/proc/diskstats`, as Diamond's DiskUsageCollector
//! (metrics under `iostat.<device>.*`).
//!
//! Per device and interval: the counter increases (`reads`, `writes`,
//! `reads_byte`, ...), per-second rates, and iostat's derived figures (`await`,
//! `service_time`, `util_percentage`, `average_queue_length`, ...). `ram*` and
//! `loop*` devices are skipped, and so is a device with no I/O in the
//! interval unless `send_zero`. Lines with fewer than 14 columns (partitions
//! on kernels before 2.6.25) are skipped as Diamond skips them.

use super::{byte_units, read, CollectError, Collector, Emit};
use crate::config::{compile_regex, Config, ConfigError};
use crate::sample::Kind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Diamond's default device regex, plus NVMe namespaces and their partitions.
pub const DEFAULT_DEVICES: &str = "PhysicalDrive[0-9]+$|md[0-9]+$|sd[a-z]+[0-9]*$|x?vd[a-z]+[0-9]*$|disk[0-9]+$|dm-[0-9]+$|nvme[0-9]+n[0-9]+(p[0-9]+)?$";

/// `[collectors.diskusage]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskUsageConfig {
    /// Regex (matched at the start of the name) of the devices to report.
    pub devices: String,
    /// Bytes per sector in `/proc/diskstats` (the kernel always counts 512).
    pub sector_size: u64,
    /// Also report devices that did no I/O in the interval.
    pub send_zero: bool,
    /// Units for the byte metrics (`reads_byte`, `read_byte_per_second`, ...).
    pub byte_unit: Vec<String>,
}

impl Default for DiskUsageConfig {
    fn default() -> Self {
        DiskUsageConfig {
            devices: DEFAULT_DEVICES.into(),
            sector_size: 512,
            send_zero: false,
            byte_unit: vec!["byte".into()],
        }
    }
}

pub struct DiskUsage {
    devices: regex::Regex,
    sector_size: f64,
    send_zero: bool,
    units: Vec<(String, f64)>,
    file: PathBuf,
    buf: String,
}

impl DiskUsage {
    pub fn new(opts: &DiskUsageConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let devices = compile_regex("collectors.diskusage.devices", Some(&opts.devices), true)?
            .ok_or_else(|| ConfigError::new("collectors.diskusage.devices", "missing"))?;
        if opts.sector_size == 0 {
            return Err(ConfigError::new(
                "collectors.diskusage.sector_size",
                "must be more than 0",
            ));
        }
        Ok(DiskUsage {
            devices,
            sector_size: opts.sector_size as f64,
            send_zero: opts.send_zero,
            units: byte_units("collectors.diskusage.byte_unit", &opts.byte_unit)?,
            file: cfg.proc_root.join("diskstats"),
            buf: String::new(),
        })
    }
}

/// The counters of one device, in the order Diamond names them.
const COUNTERS: [&str; 10] = [
    "reads",
    "reads_merged",
    "reads_sectors",
    "reads_milliseconds",
    "writes",
    "writes_merged",
    "writes_sectors",
    "writes_milliseconds",
    "io_milliseconds",
    "io_milliseconds_weighted",
];

/// The increases of one device's counters over an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Deltas {
    pub reads: f64,
    pub reads_merged: f64,
    pub reads_sectors: f64,
    pub reads_milliseconds: f64,
    pub writes: f64,
    pub writes_merged: f64,
    pub writes_sectors: f64,
    pub writes_milliseconds: f64,
    pub io_milliseconds: f64,
    pub io_milliseconds_weighted: f64,
}

impl Deltas {
    fn from_array(a: [f64; 10]) -> Self {
        Deltas {
            reads: a[0],
            reads_merged: a[1],
            reads_sectors: a[2],
            reads_milliseconds: a[3],
            writes: a[4],
            writes_merged: a[5],
            writes_sectors: a[6],
            writes_milliseconds: a[7],
            io_milliseconds: a[8],
            io_milliseconds_weighted: a[9],
        }
    }
}

fn raw_counters(d: &procfs::DiskStat) -> [u64; 10] {
    [
        d.reads,
        d.merged,
        d.sectors_read,
        d.time_reading,
        d.writes,
        d.writes_merged,
        d.sectors_written,
        d.time_writing,
        d.time_in_progress,
        d.weighted_time_in_progress,
    ]
}

/// Diamond's figures for one device from its increases `d` over `dt` seconds.
pub fn device_metrics(
    d: &Deltas,
    in_progress: f64,
    dt: f64,
    sector_size: f64,
    units: &[(String, f64)],
) -> Vec<(String, f64)> {
    let mut m: Vec<(String, f64)> = Vec::with_capacity(32);
    let mut put = |k: &str, v: f64| m.push((k.to_string(), v));
    let io = d.reads + d.writes;
    put("reads", d.reads);
    put("reads_merged", d.reads_merged);
    put("reads_milliseconds", d.reads_milliseconds);
    put("writes", d.writes);
    put("writes_merged", d.writes_merged);
    put("writes_milliseconds", d.writes_milliseconds);
    put("io_in_progress", in_progress);
    put("io_milliseconds", d.io_milliseconds);
    put("io_milliseconds_weighted", d.io_milliseconds_weighted);
    put("read_requests_merged_per_second", d.reads_merged / dt);
    put("write_requests_merged_per_second", d.writes_merged / dt);
    let reads_ps = d.reads / dt;
    let writes_ps = d.writes / dt;
    put("reads_per_second", reads_ps);
    put("writes_per_second", writes_ps);
    put("io", io);
    put(
        "average_queue_length",
        d.io_milliseconds_weighted / dt / 1000.0,
    );
    put("util_percentage", d.io_milliseconds / dt / 10.0);
    put(
        "read_await",
        if d.reads > 0.0 {
            d.reads_milliseconds / d.reads
        } else {
            0.0
        },
    );
    put(
        "write_await",
        if d.writes > 0.0 {
            d.writes_milliseconds / d.writes
        } else {
            0.0
        },
    );
    put("iops", io / dt);
    let (service_time, await_) = if io > 0.0 {
        (
            d.io_milliseconds / io,
            (d.reads_milliseconds + d.writes_milliseconds) / io,
        )
    } else {
        (0.0, 0.0)
    };
    put("service_time", service_time);
    put("await", await_);
    put(
        "concurrent_io",
        (reads_ps + writes_ps) * (service_time / 1000.0),
    );
    for (unit, div) in units {
        let rb = d.reads_sectors * sector_size / div;
        let wb = d.writes_sectors * sector_size / div;
        m.push((format!("reads_{unit}"), rb));
        m.push((format!("writes_{unit}"), wb));
        m.push((format!("read_{unit}_per_second"), rb / dt));
        m.push((format!("write_{unit}_per_second"), wb / dt));
        m.push((
            format!("average_request_size_{unit}"),
            if io > 0.0 { (rb + wb) / io } else { 0.0 },
        ));
    }
    m
}

impl Collector for DiskUsage {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        let dt = out.counters().elapsed();
        let mut key = String::with_capacity(48);
        for line in text.lines() {
            // Fewer than 14 columns (old partitions) or garbage: skipped.
            let Ok(ds) = procfs::DiskStat::from_line(line) else {
                continue;
            };
            let dev = ds.name.as_str();
            if dev.starts_with("ram") || dev.starts_with("loop") || !self.devices.is_match(dev) {
                continue;
            }
            let mut deltas = [0f64; 10];
            let mut complete = true;
            for ((name, raw), slot) in COUNTERS.iter().zip(raw_counters(&ds)).zip(&mut deltas) {
                key.clear();
                key.push_str(dev);
                key.push('.');
                key.push_str(name);
                match out.counters().delta(&key, raw) {
                    Some(v) => *slot = v,
                    None => complete = false,
                }
            }
            let Some(dt) = dt else { continue };
            if !complete {
                continue;
            }
            let d = Deltas::from_array(deltas);
            if d.reads + d.writes == 0.0 && !self.send_zero {
                continue;
            }
            let segment = dev.replace('/', "_");
            for (metric, value) in
                device_metrics(&d, ds.in_progress as f64, dt, self.sector_size, &self.units)
            {
                key.clear();
                key.push_str(&segment);
                key.push('.');
                key.push_str(&metric);
                out.push(&key, value, Kind::Rate);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    fn run(opts: DiskUsageConfig, a: &str, b: &str) -> std::collections::BTreeMap<String, f64> {
        let mut c = DiskUsage::new(&opts, &Config::default()).expect("config");
        let (first, second) = two_runs(&mut c, 10.0, |c, i| {
            c.file = fixture(if i == 0 { a } else { b });
        });
        assert!(first.is_empty(), "no figures without a previous reading");
        values(&second)
    }

    #[test]
    fn sda_worked_by_hand() {
        // Over 10 s sda did 100 reads (8000 sectors, 300 ms) and 300 writes
        // (24000 sectors, 1200 ms); busy 2500 ms, weighted 4000 ms, 2 in flight.
        let v = run(
            DiskUsageConfig::default(),
            "proc/server-a/diskstats",
            "proc/server-b/diskstats",
        );
        let want = [
            ("sda.reads", 100.0),
            ("sda.reads_merged", 10.0),
            ("sda.reads_byte", 4_096_000.0),
            ("sda.reads_milliseconds", 300.0),
            ("sda.writes", 300.0),
            ("sda.writes_merged", 50.0),
            ("sda.writes_byte", 12_288_000.0),
            ("sda.writes_milliseconds", 1200.0),
            ("sda.io_in_progress", 2.0),
            ("sda.io_milliseconds", 2500.0),
            ("sda.io_milliseconds_weighted", 4000.0),
            ("sda.read_requests_merged_per_second", 1.0),
            ("sda.write_requests_merged_per_second", 5.0),
            ("sda.reads_per_second", 10.0),
            ("sda.writes_per_second", 30.0),
            ("sda.read_byte_per_second", 409_600.0),
            ("sda.write_byte_per_second", 1_228_800.0),
            ("sda.io", 400.0),
            ("sda.average_request_size_byte", 40_960.0),
            ("sda.average_queue_length", 0.4),
            ("sda.util_percentage", 25.0),
            ("sda.read_await", 3.0),
            ("sda.write_await", 4.0),
            ("sda.iops", 40.0),
            ("sda.service_time", 6.25),
            ("sda.await", 3.75),
            ("sda.concurrent_io", 0.25),
        ];
        for (k, want) in want {
            let got = v.get(k).copied().unwrap_or(f64::NAN);
            assert!(close(got, want), "{k}: got {got}, want {want}");
        }
        assert_eq!(
            v.keys().filter(|k| k.starts_with("sda.")).count(),
            want.len()
        );
    }

    #[test]
    fn skips_ram_loop_and_idle_devices() {
        let v = run(
            DiskUsageConfig::default(),
            "proc/server-a/diskstats",
            "proc/server-b/diskstats",
        );
        let devices: std::collections::BTreeSet<&str> =
            v.keys().filter_map(|k| k.split('.').next()).collect();
        assert_eq!(
            devices.into_iter().collect::<Vec<_>>(),
            ["dm-0", "nvme0n1", "nvme0n1p1", "sda", "sda1"],
            "loop0 moved but is a loop device; sda2 and sdb did nothing"
        );
    }

    #[test]
    fn send_zero_reports_idle_devices() {
        let opts = DiskUsageConfig {
            send_zero: true,
            ..Default::default()
        };
        let v = run(opts, "proc/server-a/diskstats", "proc/server-b/diskstats");
        assert_eq!(v["sdb.io"], 0.0);
        assert_eq!(v["sda2.await"], 0.0);
        assert!(!v
            .keys()
            .any(|k| k.starts_with("ram") || k.starts_with("loop")));
    }

    #[test]
    fn devices_regex_and_units() {
        let opts = DiskUsageConfig {
            devices: "sda$".into(),
            byte_unit: vec!["kilobyte".into()],
            ..Default::default()
        };
        let v = run(opts, "proc/server-a/diskstats", "proc/server-b/diskstats");
        assert!(v.keys().all(|k| k.starts_with("sda.")), "{v:?}");
        assert_eq!(v["sda.reads_kilobyte"], 4000.0);
        assert_eq!(v["sda.read_kilobyte_per_second"], 400.0);
    }

    #[test]
    fn old_kernel_partitions_with_four_fields_are_skipped() {
        let v = run(
            DiskUsageConfig {
                send_zero: true,
                ..Default::default()
            },
            "proc/old-2.6/diskstats",
            "proc/old-2.6/diskstats",
        );
        let devices: std::collections::BTreeSet<&str> =
            v.keys().filter_map(|k| k.split('.').next()).collect();
        assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["sda"]);
    }
}
