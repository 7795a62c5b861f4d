//! diskusage: disk I/O from `/proc/diskstats`, as Diamond's DiskUsageCollector
//! (metrics under `iostat.<device>.*`).
//!
//! Per device and interval: the counter increases (`reads`, `writes`,
//! `reads_byte`, ...), per-second rates, and iostat's derived figures (`await`,
//! `service_time`, `util_percentage`, `average_queue_length`, ...). `ram*` and
//! `loop*` devices are skipped, and so is a device with no I/O in the
//! interval unless `send_zero`. Lines with fewer than 14 columns (partitions
//! on kernels before 2.6.25) are skipped as Diamond skips them.
//!
//! For Prometheus, node_exporter 1.5's diskstats families from the same
//! reading (`node_disk_reads_completed_total{device}` and the rest, raw
//! counters in bytes and seconds, and `node_disk_info`) for the devices
//! node_exporter reports: every device but those `prometheus_exclude`
//! matches (its `--collector.diskstats.ignored-devices` default).

use super::{byte_units, read, CollectError, Collector, Emit};
use crate::config::{compile_regex, Config, ConfigError};
use crate::sample::{Family, Kind};
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
    /// Regex of the devices left out of the Prometheus series (node_exporter's default).
    pub prometheus_exclude: String,
}

/// node_exporter 1.5's default `ignored-devices`: partitions, RAM and loop devices.
pub const NODE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

impl Default for DiskUsageConfig {
    fn default() -> Self {
        DiskUsageConfig {
            devices: DEFAULT_DEVICES.into(),
            sector_size: 512,
            send_zero: false,
            byte_unit: vec!["byte".into()],
            prometheus_exclude: NODE_EXCLUDE.into(),
        }
    }
}

pub struct DiskUsage {
    devices: regex::Regex,
    prometheus_exclude: Option<regex::Regex>,
    udev_dir: PathBuf,
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
        let prometheus_exclude = compile_regex(
            "collectors.diskusage.prometheus_exclude",
            Some(opts.prometheus_exclude.as_str()).filter(|r| !r.is_empty()),
            false,
        )?;
        Ok(DiskUsage {
            devices,
            prometheus_exclude,
            udev_dir: PathBuf::from("/run/udev/data"),
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

/// node_exporter's diskstats counters: family, and the value from a line.
type Counter = (Family, fn(&procfs::DiskStat) -> Option<f64>);

/// Milliseconds as seconds.
fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

const NODE_COUNTERS: [Counter; 16] = [
    (
        Family::counter(
            "node_disk_reads_completed_total",
            "The total number of reads completed successfully.",
        ),
        |d| Some(d.reads as f64),
    ),
    (
        Family::counter(
            "node_disk_reads_merged_total",
            "The total number of reads merged.",
        ),
        |d| Some(d.merged as f64),
    ),
    (
        Family::counter(
            "node_disk_read_bytes_total",
            "The total number of bytes read successfully.",
        ),
        |d| Some(d.sectors_read as f64 * 512.0),
    ),
    (
        Family::counter(
            "node_disk_read_time_seconds_total",
            "The total number of seconds spent by all reads.",
        ),
        |d| Some(ms(d.time_reading)),
    ),
    (
        Family::counter(
            "node_disk_writes_completed_total",
            "The total number of writes completed successfully.",
        ),
        |d| Some(d.writes as f64),
    ),
    (
        Family::counter(
            "node_disk_writes_merged_total",
            "The number of writes merged.",
        ),
        |d| Some(d.writes_merged as f64),
    ),
    (
        Family::counter(
            "node_disk_written_bytes_total",
            "The total number of bytes written successfully.",
        ),
        |d| Some(d.sectors_written as f64 * 512.0),
    ),
    (
        Family::counter(
            "node_disk_write_time_seconds_total",
            "This is the total number of seconds spent by all writes.",
        ),
        |d| Some(ms(d.time_writing)),
    ),
    (
        Family::counter(
            "node_disk_io_time_seconds_total",
            "Total seconds spent doing I/Os.",
        ),
        |d| Some(ms(d.time_in_progress)),
    ),
    (
        Family::counter(
            "node_disk_io_time_weighted_seconds_total",
            "The weighted # of seconds spent doing I/Os.",
        ),
        |d| Some(ms(d.weighted_time_in_progress)),
    ),
    (
        Family::counter(
            "node_disk_discards_completed_total",
            "The total number of discards completed successfully.",
        ),
        |d| d.discards.map(|v| v as f64),
    ),
    (
        Family::counter(
            "node_disk_discards_merged_total",
            "The total number of discards merged.",
        ),
        |d| d.discards_merged.map(|v| v as f64),
    ),
    (
        Family::counter(
            "node_disk_discarded_sectors_total",
            "The total number of sectors discarded successfully.",
        ),
        |d| d.sectors_discarded.map(|v| v as f64),
    ),
    (
        Family::counter(
            "node_disk_discard_time_seconds_total",
            "This is the total number of seconds spent by all discards.",
        ),
        |d| d.time_discarding.map(ms),
    ),
    (
        Family::counter(
            "node_disk_flush_requests_total",
            "The total number of flush requests completed successfully",
        ),
        |d| d.flushes.map(|v| v as f64),
    ),
    (
        Family::counter(
            "node_disk_flush_requests_time_seconds_total",
            "This is the total number of seconds spent by all flush requests.",
        ),
        |d| d.time_flushing.map(ms),
    ),
];

const IO_NOW: Family = Family::gauge(
    "node_disk_io_now",
    "The number of I/Os currently in progress.",
);
const INFO: Family = Family::gauge("node_disk_info", "Info of /sys/block/<block_device>.");

/// The udev properties `node_disk_info` carries, and its label for each.
const UDEV: [(&str, &str); 5] = [
    ("ID_MODEL", "model"),
    ("ID_PATH", "path"),
    ("ID_REVISION", "revision"),
    ("ID_SERIAL_SHORT", "serial"),
    ("ID_WWN", "wwn"),
];

/// The `node_disk_info` labels of a udev database text (`E:KEY=value` lines).
pub fn udev_labels(text: &str) -> [String; 5] {
    let mut out: [String; 5] = Default::default();
    for line in text.lines() {
        let Some((k, v)) = line.strip_prefix("E:").and_then(|l| l.split_once('=')) else {
            continue;
        };
        if let Some(i) = UDEV.iter().position(|(key, _)| *key == k) {
            out[i] = v.to_string();
        }
    }
    out
}

/// node_exporter's series of one device, unless `exclude` matches it.
fn series(
    exclude: Option<&regex::Regex>,
    udev_dir: &std::path::Path,
    ds: &procfs::DiskStat,
    out: &mut Emit,
) {
    let dev = ds.name.as_str();
    if exclude.is_some_and(|r| r.is_match(dev)) {
        return;
    }
    let label = || vec![("device", dev.to_string())];
    for (family, value) in &NODE_COUNTERS {
        if let Some(v) = value(ds) {
            out.series(family, label(), v);
        }
    }
    out.series(&IO_NOW, label(), ds.in_progress as f64);
    let udev = std::fs::read_to_string(udev_dir.join(format!("b{}:{}", ds.major, ds.minor)))
        .map(|t| udev_labels(&t))
        .unwrap_or_default();
    let mut labels = vec![
        ("device", dev.to_string()),
        ("major", ds.major.to_string()),
        ("minor", ds.minor.to_string()),
    ];
    labels.extend(UDEV.iter().map(|(_, l)| *l).zip(udev));
    labels.sort_by_key(|(k, _)| *k);
    out.series(&INFO, labels, 1.0);
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
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, &mut self.buf)?;
        let dt = out.counters().elapsed();
        let mut key = String::with_capacity(48);
        for line in text.lines() {
            // Fewer than 14 columns (old partitions) or garbage: skipped.
            let Ok(ds) = procfs::DiskStat::from_line(line) else {
                continue;
            };
            if out.wants_series() {
                series(self.prometheus_exclude.as_ref(), &self.udev_dir, &ds, out);
            }
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
        assert!(
            values(&first).is_empty(),
            "no figures without a previous reading"
        );
        values(&second)
    }

    #[test]
    fn node_exporter_series_for_whole_devices_from_the_first_run() {
        let mut c =
            DiskUsage::new(&DiskUsageConfig::default(), &Config::default()).expect("config");
        c.udev_dir = fixture("udev");
        let (first, _) = two_runs(&mut c, 10.0, |c, _| {
            c.file = fixture("proc/server-a/diskstats");
        });
        let p = crate::collectors::testutil::series(&first);
        let devices: std::collections::BTreeSet<&str> = p
            .keys()
            .filter_map(|k| k.split("device=\"").nth(1)?.split('"').next())
            .collect();
        // Partitions, ram and loop devices are left out, as node_exporter does.
        assert_eq!(
            devices.into_iter().collect::<Vec<_>>(),
            ["dm-0", "nvme0n1", "sda", "sdb"]
        );
        let sda = |f: &str| p[&format!("node_disk_{f}{{device=\"sda\"}}")];
        assert_eq!(sda("reads_completed_total"), 10000.0);
        assert_eq!(sda("reads_merged_total"), 500.0);
        assert_eq!(sda("read_bytes_total"), 800000.0 * 512.0);
        assert_eq!(sda("read_time_seconds_total"), 20.0);
        assert_eq!(sda("writes_completed_total"), 5000.0);
        assert_eq!(sda("written_bytes_total"), 400000.0 * 512.0);
        assert_eq!(sda("write_time_seconds_total"), 30.0);
        assert_eq!(sda("io_now"), 0.0);
        assert_eq!(sda("io_time_seconds_total"), 25.0);
        assert_eq!(sda("io_time_weighted_seconds_total"), 50.0);
        assert_eq!(sda("discards_completed_total"), 0.0);
        assert_eq!(sda("flush_requests_total"), 100.0);
        assert_eq!(sda("flush_requests_time_seconds_total"), 0.2);
        assert_eq!(
            p["node_disk_info{device=\"sda\",major=\"8\",minor=\"0\",model=\"QEMU_HARDDISK\",path=\"pci-0000:00:05.0-scsi-0:0:0:0\",revision=\"2.5+\",serial=\"QM00001\",wwn=\"\"}"],
            1.0
        );
        assert_eq!(
            p["node_disk_info{device=\"sdb\",major=\"8\",minor=\"16\",model=\"\",path=\"\",revision=\"\",serial=\"\",wwn=\"\"}"],
            1.0
        );
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
