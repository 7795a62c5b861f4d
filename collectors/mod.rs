//! Collectors: one file each, each with its config struct, its pure parsing
//! and its tests. This file is the explicit list of them and what they share.
//!
//! To add one: write `collectors/NAME.rs` (options struct, a type that
//! implements [`Collector`], parse functions over `&str`, tests on
//! fixtures), add a field to [`CollectorsConfig`] and a line to [`build`],
//! and an example `conf.d/NAME.toml`.

pub mod cgroup;
pub mod conntrack;
pub mod cpu;
pub mod diskspace;
pub mod diskusage;
pub mod entropy;
pub mod filestat;
pub mod hwmon;
pub mod interrupt;
pub mod ksm;
pub mod loadavg;
pub mod memory;
pub mod mountstats;
pub mod netstat;
pub mod network;
pub mod nfs;
pub mod nfsd;
pub mod pressure;
pub mod proc;
pub mod processresources;
pub mod sockstat;
pub mod tcp;
pub mod udp;
pub mod uptime;
pub mod vmstat;

use crate::config::{compile_regex, Common, Config, ConfigError, Section};
use crate::rates::{CounterState, Counters};
use crate::sample::{Family, Kind, MetricPath, Prom, PromKind, Sample, Series};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `[collectors.*]`: one section per collector.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorsConfig {
    pub cgroup: Section<cgroup::CgroupConfig>,
    pub conntrack: Section<conntrack::ConntrackConfig>,
    pub cpu: Section<cpu::CpuConfig>,
    pub diskspace: Section<diskspace::DiskSpaceConfig>,
    pub diskusage: Section<diskusage::DiskUsageConfig>,
    pub entropy: Section<entropy::EntropyConfig>,
    pub filestat: Section<filestat::FilestatConfig>,
    pub hwmon: Section<hwmon::HwmonConfig>,
    pub interrupt: Section<interrupt::InterruptConfig>,
    pub ksm: Section<ksm::KsmConfig>,
    pub loadavg: Section<loadavg::LoadAvgConfig>,
    pub memory: Section<memory::MemoryConfig>,
    pub mountstats: Section<mountstats::MountStatsConfig>,
    pub netstat: Section<netstat::NetstatConfig>,
    pub network: Section<network::NetworkConfig>,
    pub nfs: Section<nfs::NfsConfig>,
    pub nfsd: Section<nfsd::NfsdConfig>,
    pub pressure: Section<pressure::PressureConfig>,
    pub proc: Section<proc::ProcConfig>,
    pub processresources: Section<processresources::ProcessResourcesConfig>,
    pub sockstat: Section<sockstat::SockstatConfig>,
    pub tcp: Section<tcp::TcpConfig>,
    pub udp: Section<udp::UdpConfig>,
    pub uptime: Section<uptime::UptimeConfig>,
    pub vmstat: Section<vmstat::VmstatConfig>,
}

/// The collectors that run only when their section says `enabled = true`
/// (as every collector in Diamond); every other runs unless it says false.
pub const OFF_BY_DEFAULT: &[&str] = &[
    "cgroup",
    "conntrack",
    "hwmon",
    "interrupt",
    "ksm",
    "netstat",
    "nfs",
    "nfsd",
    "processresources",
];

/// Why one run of a collector produced nothing (or less than it should).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
}

/// Reads a whole (small, virtual) file into `buf`, reusing its memory.
///
/// Unlike `fs::read_to_string` this asks for no metadata (procfs sizes are
/// 0 anyway) and reads in large chunks: two or three `read`s per file.
pub fn read<'b>(path: &Path, buf: &'b mut String) -> Result<&'b str, CollectError> {
    use std::io::Read;
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    bytes.reserve(16 * 1024);
    let res = std::fs::File::open(path).and_then(|f| (&f).take(u64::MAX).read_to_end(&mut bytes));
    // A name the kernel lists may hold any bytes (an interface, a mount
    // point): those that are not UTF-8 read as U+FFFD, the rest as it is.
    *buf = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match res {
        Ok(_) => Ok(buf.as_str()),
        Err(source) => Err(CollectError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether a file that may be missing was found missing already.
#[derive(Debug, Default)]
pub struct Missing(bool);

impl Missing {
    /// Says once, at debug level, that `path` is not there.
    pub fn note(&mut self, path: &Path) {
        if !self.0 {
            self.0 = true;
            log::debug!("{} is not there: nothing sent for it", path.display());
        }
    }
}

/// [`read`] for a file some kernels do not have (no IPv6, no PSI, no
/// conntrack) or refuse to read (PSI turned off): `None` then, said once
/// at debug level, so
/// that the collector sends nothing for it instead of failing its run.
pub fn read_optional<'b>(
    path: &Path,
    buf: &'b mut String,
    missing: &mut Missing,
) -> Result<Option<&'b str>, CollectError> {
    match read(path, buf) {
        Ok(text) => Ok(Some(text)),
        // (EOPNOTSUPP: PSI built in but off, `psi=0`.)
        Err(CollectError::Io { source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::Unsupported
            ) =>
        {
            missing.note(path);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A metric path segment from a name the system gives (a sysfs label, a
/// unit name): trimmed, with `.`, `/` and whitespace as `_`.
pub fn segment(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| {
            if c == '.' || c == '/' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn non_empty(p: &Option<String>) -> Option<&str> {
    p.as_deref().filter(|p| !p.is_empty())
}

/// A collector: reads its source and emits samples through [`Emit`].
pub trait Collector: Send {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError>;

    /// Whether it emits Prometheus series of its own (node_exporter's
    /// names) when asked to, in place of its Graphite names mapped.
    fn native_series(&self) -> bool {
        false
    }
}

/// Diamond's `metrics_whitelist` / `metrics_blacklist`, matched (like
/// Python's `re.match`) at the start of the name after the collector path.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    whitelist: Option<regex::Regex>,
    blacklist: Option<regex::Regex>,
}

impl Filter {
    /// An empty pattern is no filter (what the conf.d examples show as the
    /// default), not a pattern matching every name.
    pub fn new(name: &str, common: &Common) -> Result<Self, ConfigError> {
        Ok(Filter {
            whitelist: compile_regex(
                &format!("collectors.{name}.metrics_whitelist"),
                non_empty(&common.metrics_whitelist),
                true,
            )?,
            blacklist: compile_regex(
                &format!("collectors.{name}.metrics_blacklist"),
                non_empty(&common.metrics_blacklist),
                true,
            )?,
        })
    }

    /// Whether a metric of this name is sent. A whitelist, when set, wins.
    pub fn allows(&self, metric: &str) -> bool {
        if let Some(w) = &self.whitelist {
            return w.is_match(metric);
        }
        if let Some(b) = &self.blacklist {
            return !b.is_match(metric);
        }
        true
    }
}

/// What a collector writes to during one run: named values, rates from
/// counters, all turned into full [`Sample`]s.
pub struct Emit<'a> {
    path: &'a MetricPath,
    filter: &'a Filter,
    timestamp: i64,
    counters: Counters,
    samples: Vec<Sample>,
    /// Prometheus series are asked for (a handler takes them).
    series: bool,
    /// The Graphite samples are not for Prometheus (its series are).
    hide: bool,
}

impl<'a> Emit<'a> {
    pub fn new(
        path: &'a MetricPath,
        filter: &'a Filter,
        timestamp: i64,
        counters: Counters,
    ) -> Self {
        Emit {
            path,
            filter,
            timestamp,
            counters,
            samples: Vec::new(),
            series: false,
            hide: false,
        }
    }

    /// Asks for Prometheus series too; with `native`, the collector's own
    /// (and its Graphite samples are hidden from Prometheus).
    pub fn with_series(mut self, native: bool) -> Self {
        self.series = true;
        self.hide = native;
        self
    }

    /// Whether Prometheus series are asked for: a collector may skip
    /// work that only they need.
    pub fn wants_series(&self) -> bool {
        self.series
    }

    /// Emits `metric` (relative to the collector path) with `value`.
    pub fn push(&mut self, metric: &str, value: f64, kind: Kind) {
        if !value.is_finite() || !self.filter.allows(metric) {
            return;
        }
        let mut s = Sample::new(self.path.name(metric), value, self.timestamp, kind);
        if self.hide {
            s.prom = Prom::Hidden;
        }
        self.samples.push(s);
    }

    /// Emits a Prometheus series of the declared `family` (nothing unless
    /// series are asked for). Labels are given in the family's order.
    pub fn series(&mut self, family: &Family, labels: Vec<(&'static str, String)>, value: f64) {
        if self.series {
            self.push_series(
                Series {
                    name: Cow::Borrowed(family.name),
                    kind: family.kind,
                    help: Cow::Borrowed(family.help),
                    labels: borrowed(labels),
                },
                value,
            );
        }
    }

    /// Emits a Prometheus series whose family is made at run time
    /// (`node_memory_<field>_bytes`).
    pub fn series_named(
        &mut self,
        name: String,
        kind: PromKind,
        help: String,
        labels: Vec<(&'static str, String)>,
        value: f64,
    ) {
        if self.series {
            self.push_series(
                Series {
                    name: Cow::Owned(name),
                    kind,
                    help: Cow::Owned(help),
                    labels: borrowed(labels),
                },
                value,
            );
        }
    }

    fn push_series(&mut self, series: Series, value: f64) {
        if value.is_finite() {
            self.samples
                .push(Sample::series(series, value, self.timestamp));
        }
    }

    pub fn gauge(&mut self, metric: &str, value: f64) {
        self.push(metric, value, Kind::Gauge);
    }

    /// Emits the per-second rate of the counter `metric` (nothing on the first run).
    pub fn rate(&mut self, metric: &str, raw: u64) {
        if let Some(d) = self.counters.delta(metric, raw) {
            self.push_rate(metric, d, 1.0);
        }
    }

    /// Emits the rate of a counter that increased by `delta` since the last
    /// run, divided by `div` (e.g. the CPU count) after the elapsed time.
    pub fn push_rate(&mut self, metric: &str, delta: f64, div: f64) {
        let Some(dt) = self.counters.elapsed() else {
            return;
        };
        let len = self.samples.len();
        self.push(metric, delta / dt / div, Kind::Rate);
        if let Some(s) = self.samples.get_mut(len) {
            s.delta = Some(delta / div);
        }
    }

    /// The counters, for collectors that derive more than plain rates.
    pub fn counters(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The samples and the counter state to keep for the next run.
    pub fn finish(self) -> (Vec<Sample>, CounterState) {
        (self.samples, self.counters.finish())
    }
}

/// A collector's label names (static) as a series holds them.
fn borrowed(labels: Vec<(&'static str, String)>) -> Vec<(Cow<'static, str>, String)> {
    labels
        .into_iter()
        .map(|(k, v)| (Cow::Borrowed(k), v))
        .collect()
}

/// A configured collector, ready to be scheduled.
pub struct Instance {
    pub name: &'static str,
    pub interval: Duration,
    pub path: MetricPath,
    pub filter: Filter,
    pub collector: Box<dyn Collector>,
    /// Emit Prometheus series too (a handler takes them).
    pub series: bool,
}

impl Instance {
    /// Runs the collector once, at scheduled time `timestamp` (unix seconds)
    /// and measured time `now`, after the run that left `prev`.
    pub fn run(
        &mut self,
        timestamp: i64,
        now: f64,
        prev: Option<CounterState>,
    ) -> (Result<(), CollectError>, Vec<Sample>, CounterState) {
        let mut emit = Emit::new(
            &self.path,
            &self.filter,
            timestamp,
            Counters::begin(prev, now),
        );
        if self.series {
            emit = emit.with_series(self.collector.native_series());
        }
        let res = self.collector.collect(&mut emit);
        let (samples, state) = emit.finish();
        (res, samples, state)
    }
}

fn boxed<C: Collector + 'static>(c: C) -> Box<dyn Collector> {
    Box::new(c)
}

/// Builds every enabled collector of `cfg`; the disabled ones are checked too,
/// so a bad option fails before anything runs. `hostname` is the resolved host
/// segment.
pub fn build_with_host(cfg: &Config, hostname: Option<&str>) -> Result<Vec<Instance>, ConfigError> {
    let c = &cfg.collectors;
    // (name, common keys, Diamond's default path, the collector)
    let list: Vec<(&'static str, &Common, &str, Box<dyn Collector>)> = vec![
        (
            "cgroup",
            &c.cgroup.common,
            "cgroup",
            boxed(cgroup::Cgroup::new(&c.cgroup.options, cfg)?),
        ),
        (
            "conntrack",
            &c.conntrack.common,
            "conntrack",
            boxed(conntrack::Conntrack::new(&c.conntrack.options, cfg)),
        ),
        (
            "cpu",
            &c.cpu.common,
            "cpu",
            boxed(cpu::Cpu::new(&c.cpu.options, cfg)?),
        ),
        (
            "diskspace",
            &c.diskspace.common,
            "diskspace",
            boxed(diskspace::DiskSpace::new(&c.diskspace.options, cfg)?),
        ),
        (
            "diskusage",
            &c.diskusage.common,
            "iostat",
            boxed(diskusage::DiskUsage::new(&c.diskusage.options, cfg)?),
        ),
        (
            "entropy",
            &c.entropy.common,
            "entropy",
            boxed(entropy::Entropy::new(&c.entropy.options, cfg)),
        ),
        (
            "filestat",
            &c.filestat.common,
            "files",
            boxed(filestat::Filestat::new(&c.filestat.options, cfg)?),
        ),
        (
            "hwmon",
            &c.hwmon.common,
            "hwmon",
            boxed(hwmon::Hwmon::new(&c.hwmon.options, cfg)),
        ),
        (
            "interrupt",
            &c.interrupt.common,
            "interrupts",
            boxed(interrupt::Interrupt::new(&c.interrupt.options, cfg)),
        ),
        (
            "ksm",
            &c.ksm.common,
            "ksm",
            boxed(ksm::Ksm::new(&c.ksm.options, cfg)),
        ),
        (
            "loadavg",
            &c.loadavg.common,
            "loadavg",
            boxed(loadavg::LoadAverage::new(&c.loadavg.options, cfg)),
        ),
        (
            "memory",
            &c.memory.common,
            "memory",
            boxed(memory::Memory::new(&c.memory.options, cfg)?),
        ),
        (
            "mountstats",
            &c.mountstats.common,
            "mountstats",
            boxed(mountstats::MountStats::new(&c.mountstats.options, cfg)?),
        ),
        (
            "netstat",
            &c.netstat.common,
            "netstat",
            boxed(netstat::Netstat::new(&c.netstat.options, cfg)),
        ),
        (
            "network",
            &c.network.common,
            "network",
            boxed(network::Network::new(&c.network.options, cfg)?),
        ),
        (
            "nfs",
            &c.nfs.common,
            "nfs",
            boxed(nfs::Nfs::new(&c.nfs.options, cfg)),
        ),
        (
            "nfsd",
            &c.nfsd.common,
            "nfsd",
            boxed(nfsd::Nfsd::new(&c.nfsd.options, cfg)),
        ),
        (
            "pressure",
            &c.pressure.common,
            "pressure",
            boxed(pressure::Pressure::new(&c.pressure.options, cfg)),
        ),
        (
            "proc",
            &c.proc.common,
            "proc",
            boxed(proc::Proc::new(&c.proc.options, cfg)),
        ),
        (
            "processresources",
            &c.processresources.common,
            "process",
            boxed(processresources::ProcessResources::new(
                &c.processresources.options,
                cfg,
            )?),
        ),
        (
            "sockstat",
            &c.sockstat.common,
            "sockets",
            boxed(sockstat::Sockstat::new(&c.sockstat.options, cfg)),
        ),
        (
            "tcp",
            &c.tcp.common,
            "tcp",
            boxed(tcp::Tcp::new(&c.tcp.options, cfg)?),
        ),
        (
            "udp",
            &c.udp.common,
            "udp",
            boxed(udp::Udp::new(&c.udp.options, cfg)?),
        ),
        (
            "uptime",
            &c.uptime.common,
            "uptime",
            boxed(uptime::Uptime::new(&c.uptime.options, cfg)?),
        ),
        (
            "vmstat",
            &c.vmstat.common,
            "vmstat",
            boxed(vmstat::Vmstat::new(&c.vmstat.options, cfg)),
        ),
    ];
    let mut out = Vec::new();
    for (name, common, default_path, collector) in list {
        let filter = Filter::new(name, common)?;
        let interval = common.interval.unwrap_or(cfg.interval);
        if interval == 0 {
            return Err(ConfigError::new(
                format!("collectors.{name}.interval"),
                "must be at least 1 second",
            ));
        }
        let path = common.path.as_deref().unwrap_or(default_path);
        if path.is_empty() || (path != "." && (path.contains("..") || path.contains(' '))) {
            return Err(ConfigError::new(
                format!("collectors.{name}.path"),
                format!("{path:?} is not a metric path segment ('.' for none)"),
            ));
        }
        if !common.enabled.unwrap_or(!OFF_BY_DEFAULT.contains(&name)) {
            continue;
        }
        out.push(Instance {
            name,
            interval: Duration::from_secs(interval),
            path: MetricPath::new(&cfg.path_prefix, hostname, &cfg.path_suffix, path),
            filter,
            collector,
            series: false,
        });
    }
    Ok(out)
}

/// Checks every collector section of `cfg` (see [`build_with_host`]).
pub fn build(cfg: &Config) -> Result<Vec<Instance>, ConfigError> {
    build_with_host(cfg, Some("host"))
}

/// Byte units as Diamond's `byte_unit` names them, with their size in bits.
pub fn unit_bits(unit: &str) -> Option<f64> {
    let k = 1024f64;
    Some(match unit {
        "bit" | "b" => 1.0,
        "kilobit" | "kb" | "Kibit" => k,
        "megabit" | "mb" | "Mibit" => k * k,
        "gigabit" | "gb" | "Gibit" => k * k * k,
        "terabit" | "tb" | "Tibit" => k.powi(4),
        "petabit" | "pb" | "Pibit" => k.powi(5),
        "byte" | "B" => 8.0,
        "kilobyte" | "kB" | "KB" | "KiB" => 8.0 * k,
        "megabyte" | "MB" | "MiB" => 8.0 * k * k,
        "gigabyte" | "GB" | "GiB" => 8.0 * k * k * k,
        "terabyte" | "TB" | "TiB" => 8.0 * k.powi(4),
        "petabyte" | "PB" | "PiB" => 8.0 * k.powi(5),
        _ => return None,
    })
}

/// Checks a `byte_unit` list; returns each unit with its divisor from bytes.
pub fn byte_units(key: &str, units: &[String]) -> Result<Vec<(String, f64)>, ConfigError> {
    if units.is_empty() {
        return Err(ConfigError::new(key, "needs at least one unit"));
    }
    units
        .iter()
        .map(|u| match unit_bits(u) {
            Some(bits) => Ok((u.clone(), bits / 8.0)),
            None => Err(ConfigError::new(
                key,
                format!("unknown unit {u:?} (byte, kilobyte, megabyte, gigabyte, terabyte, petabyte, bit, kilobit, ...)"),
            )),
        })
        .collect()
}

/// Compiles a list of regexes into one alternation (Diamond's
/// `exclude_filters`); `None` for an empty list.
pub fn regex_list(
    key: &str,
    patterns: &[String],
    anchored: bool,
) -> Result<Option<regex::Regex>, ConfigError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        compile_regex(key, Some(p), false)?;
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    compile_regex(key, Some(&joined), anchored)
}

/// Counts the `cpuN` lines of a `/proc/stat` text.
pub fn count_cpus(stat: &str) -> usize {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(|b| b.is_ascii_digit()))
        .count()
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// The repository's fixture folder.
    pub fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel)
    }

    /// Runs `c` twice: at t=1000 on the `before` text state, at t=1000+dt on
    /// `after`; `swap` installs a text into the collector between runs.
    pub fn two_runs<C: Collector>(
        c: &mut C,
        dt: f64,
        mut swap: impl FnMut(&mut C, usize),
    ) -> (Vec<Sample>, Vec<Sample>) {
        let path = MetricPath::new("servers", Some("host"), "", "x");
        let filter = Filter::default();
        swap(c, 0);
        let native = c.native_series();
        let mut e =
            Emit::new(&path, &filter, 1000, Counters::begin(None, 1000.0)).with_series(native);
        c.collect(&mut e).expect("first run");
        let (first, st) = e.finish();
        swap(c, 1);
        let t = 1000.0 + dt;
        let mut e =
            Emit::new(&path, &filter, t as i64, Counters::begin(Some(st), t)).with_series(native);
        c.collect(&mut e).expect("second run");
        (first, e.finish().0)
    }

    /// The samples as `relative.name -> value` (names without `servers.host.x.`).
    pub fn values(samples: &[Sample]) -> std::collections::BTreeMap<String, f64> {
        samples
            .iter()
            .filter(|s| !matches!(s.prom, crate::sample::Prom::Series(_)))
            .map(|s| {
                (
                    s.name.trim_start_matches("servers.host.x.").to_string(),
                    s.value,
                )
            })
            .collect()
    }

    /// The Prometheus series as `name{label="value",...} -> value`.
    pub fn series(samples: &[Sample]) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for s in samples {
            let crate::sample::Prom::Series(p) = &s.prom else {
                continue;
            };
            let labels: Vec<String> = p
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let key = if labels.is_empty() {
                p.name.to_string()
            } else {
                format!("{}{{{}}}", p.name, labels.join(","))
            };
            assert!(out.insert(key.clone(), s.value).is_none(), "{key} twice");
        }
        out
    }

    pub fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_reads_with_a_replacement_character() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("dev");
        std::fs::write(&f, b"  eth\xff0: 1 2\n  lo: 3 4\n").expect("write");
        let mut buf = String::new();
        let text = read(&f, &mut buf).expect("read");
        assert_eq!(text, "  eth\u{fffd}0: 1 2\n  lo: 3 4\n");
        // The buffer is reused, valid text as it is.
        std::fs::write(&f, b"ok\n").expect("write");
        assert_eq!(read(&f, &mut buf).expect("read"), "ok\n");
    }

    #[test]
    fn whitelist_wins_and_matches_at_start() {
        let common = Common {
            metrics_whitelist: Some("total\\.".into()),
            metrics_blacklist: Some("total".into()),
            ..Common::default()
        };
        let f = Filter::new("cpu", &common).expect("filter");
        assert!(f.allows("total.user"));
        assert!(!f.allows("cpu0.user"));
        assert!(!f.allows("x.total.user"), "matches at the start only");
        let common = Common {
            metrics_blacklist: Some("cpu\\d+".into()),
            ..Common::default()
        };
        let f = Filter::new("cpu", &common).expect("filter");
        assert!(f.allows("total.user"));
        assert!(!f.allows("cpu3.idle"));
        // As the conf.d examples show them: no filter, not "match all".
        let common = Common {
            metrics_whitelist: Some(String::new()),
            metrics_blacklist: Some(String::new()),
            ..Common::default()
        };
        let f = Filter::new("cpu", &common).expect("filter");
        assert!(f.allows("total.user") && f.allows("cpu3.idle"));
    }

    #[test]
    fn units() {
        let u = byte_units("k", &["byte".into(), "kilobyte".into(), "bit".into()]).expect("units");
        assert_eq!(u[0].1, 1.0);
        assert_eq!(u[1].1, 1024.0);
        assert_eq!(u[2].1, 0.125);
        assert!(byte_units("k", &["parsec".into()]).is_err());
    }

    #[test]
    fn the_collectors_on_by_default() {
        let mut cfg = Config::default();
        let all = build(&cfg).expect("build");
        let names: Vec<_> = all.iter().map(|i| i.name).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "diskspace",
                "diskusage",
                "entropy",
                "filestat",
                "loadavg",
                "memory",
                "mountstats",
                "network",
                "pressure",
                "proc",
                "sockstat",
                "tcp",
                "udp",
                "uptime",
                "vmstat"
            ]
        );
        // The others run when their section says so; a section that says
        // nothing leaves them off.
        cfg.collectors.ksm.common.enabled = Some(true);
        cfg.collectors.netstat.common.interval = Some(60);
        cfg.collectors.cpu.common.enabled = Some(false);
        let names: Vec<_> = build(&cfg).expect("build").iter().map(|i| i.name).collect();
        assert!(names.contains(&"ksm") && !names.contains(&"netstat"));
        assert!(!names.contains(&"cpu"));
        for off in OFF_BY_DEFAULT {
            assert!(build(&Config::default())
                .expect("build")
                .iter()
                .all(|i| i.name != *off));
        }
    }
}
