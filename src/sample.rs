//! The sample model: what every collector produces and every handler consumes.
//!
//! A [`Sample`] carries its full dotted Graphite name, built once by
//! [`MetricPath`] exactly as Diamond builds it:
//! `path_prefix.hostname[.path_suffix].path.metric`.

use std::borrow::Cow;
use std::fmt::Write as _;

pub use crate::prometheus::Kind as PromKind;

/// How a value came to be: read as-is, or derived from a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A point-in-time reading (memory in use, load average).
    Gauge,
    /// A per-second rate derived from a monotonically increasing counter.
    Rate,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Full dotted name, e.g. `servers.web01.cpu.total.user`.
    pub name: String,
    pub value: f64,
    /// Unix time in seconds.
    pub timestamp: i64,
    pub kind: Kind,
    /// For a rate: the counter's increase it was derived from (statsd's
    /// `counters_as = "count"` sends it as a `|c` count).
    pub delta: Option<f64>,
    /// Optional `key=value` tags for handlers that carry them.
    pub tags: Vec<(String, String)>,
    /// What Prometheus makes of it.
    pub prom: Prom,
}

/// Who a sample is for, and what Prometheus needs that a dotted name does
/// not say. One reading of the source feeds both: a collector with series
/// of its own (node_exporter's names) emits them beside its Graphite
/// samples, raw counters included, and marks the Graphite ones hidden.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Prom {
    /// For every handler; a Prometheus exposition derives its name from
    /// the dotted one.
    #[default]
    Mapped,
    /// For Graphite-style handlers only: its collector gives Prometheus
    /// series of its own.
    Hidden,
    /// For Prometheus only: never sent to Graphite-style handlers.
    Series(Box<Series>),
}

/// A Prometheus series: its family and labels (the value is the sample's).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The family (and sample) name, valid as it is: `node_cpu_seconds_total`.
    pub name: Cow<'static, str>,
    pub kind: PromKind,
    pub help: Cow<'static, str>,
    pub labels: Vec<(Cow<'static, str>, String)>,
}

/// A family a collector declares once, as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    pub kind: PromKind,
    pub help: &'static str,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: PromKind::Counter,
            help,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: PromKind::Gauge,
            help,
        }
    }
}

impl Sample {
    pub fn new(name: String, value: f64, timestamp: i64, kind: Kind) -> Self {
        Sample {
            name,
            value,
            timestamp,
            kind,
            delta: None,
            tags: Vec::new(),
            prom: Prom::Mapped,
        }
    }

    /// A Prometheus-only sample of `series` (no dotted name: only the
    /// series names it).
    pub fn series(series: Series, value: f64, timestamp: i64) -> Self {
        Sample {
            name: String::new(),
            value,
            timestamp,
            kind: Kind::Gauge,
            delta: None,
            tags: Vec::new(),
            prom: Prom::Series(Box::new(series)),
        }
    }

    /// Appends this sample as one Graphite plaintext line, `name value timestamp\n`.
    pub fn write_plaintext(&self, out: &mut String) {
        out.push_str(&self.name);
        out.push(' ');
        write_value(out, self.value);
        out.push(' ');
        // Writing into a String cannot fail.
        let _ = write!(out, "{}", self.timestamp);
        out.push('\n');
    }

    /// The sample as one Graphite plaintext line (with the newline).
    pub fn to_plaintext(&self) -> String {
        let mut s = String::with_capacity(self.name.len() + 32);
        self.write_plaintext(&mut s);
        s
    }
}

/// Formats a value the way carbon reads it back without loss: integers
/// without a fractional part, everything else in the shortest form that
/// round-trips (Rust's `Display` for f64 never uses an exponent).
pub fn write_value(out: &mut String, v: f64) {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Builds full metric names for one collector, the way Diamond's
/// `Collector.get_metric_path` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricPath {
    /// Everything before the metric: `servers.web01.cpu.` (with the trailing dot),
    /// or empty when every part is empty.
    base: String,
}

impl MetricPath {
    /// `prefix` and `suffix` may be empty; `hostname` is `None` for
    /// `hostname_method = "none"`; `path = "."` means no collector segment.
    pub fn new(prefix: &str, hostname: Option<&str>, suffix: &str, path: &str) -> Self {
        let mut parts: Vec<&str> = Vec::with_capacity(4);
        if !prefix.is_empty() {
            parts.push(prefix);
        }
        if let Some(h) = hostname {
            if !h.is_empty() {
                parts.push(h);
            }
        }
        if !suffix.is_empty() {
            parts.push(suffix);
        }
        if !path.is_empty() && path != "." {
            parts.push(path);
        }
        let mut base = parts.join(".");
        if !base.is_empty() {
            base.push('.');
        }
        MetricPath { base }
    }

    /// Everything before a metric's name, with its trailing dot.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The full name of `metric` under this path.
    pub fn name(&self, metric: &str) -> String {
        let mut s = String::with_capacity(self.base.len() + metric.len());
        s.push_str(&self.base);
        s.push_str(metric);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_built_as_diamond_builds_them() {
        let p = MetricPath::new("servers", Some("web01"), "", "cpu");
        assert_eq!(p.name("total.user"), "servers.web01.cpu.total.user");
        let p = MetricPath::new("servers", Some("web01"), "dc1", "cpu");
        assert_eq!(p.name("total.user"), "servers.web01.dc1.cpu.total.user");
        let p = MetricPath::new("servers", None, "", "cpu");
        assert_eq!(p.name("cpu_count"), "servers.cpu.cpu_count");
        let p = MetricPath::new("", Some("web01"), "", ".");
        assert_eq!(p.name("x"), "web01.x");
    }

    #[test]
    fn plaintext_lines() {
        let s = Sample::new("a.b".into(), 42.0, 1700000000, Kind::Gauge);
        assert_eq!(s.to_plaintext(), "a.b 42 1700000000\n");
        let s = Sample::new("a.b".into(), 0.25, 1700000000, Kind::Rate);
        assert_eq!(s.to_plaintext(), "a.b 0.25 1700000000\n");
        let s = Sample::new("a.b".into(), -3.5, 1, Kind::Gauge);
        assert_eq!(s.to_plaintext(), "a.b -3.5 1\n");
        let s = Sample::new("a.b".into(), 1e20, 1, Kind::Gauge);
        assert_eq!(s.to_plaintext(), "a.b 100000000000000000000 1\n");
    }
}
