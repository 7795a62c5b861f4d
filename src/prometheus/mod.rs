//! Prometheus's exposition formats, text 0.0.4 and OpenMetrics 1.0: what a
//! scrape of carbyne's metrics endpoint reads. Names and label names are
//! made valid, label values and help texts escaped, values written as
//! Prometheus parses them, and each series written once, so the output is
//! never one that Prometheus refuses (the tests have `promtool check
//! metrics` judge the text format and a real Prometheus scrape both).

pub mod mapping;
pub mod naming;
pub mod remote;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A family's type, as `# TYPE` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
    /// Cumulative buckets, `_sum` and `_count` (a [`Distribution`]).
    Histogram,
    /// Quantiles, `_sum` and `_count` (a [`Distribution`]).
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }

    /// The sample names a family of this kind writes beside its own.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Histogram => &["_bucket", "_sum", "_count"],
            Kind::Summary => &["_sum", "_count"],
            _ => &[],
        }
    }
}

/// A histogram's or a summary's series: upper bounds (`le`) with the
/// cumulative count at or under each (the last `+Inf`), or quantiles with
/// their values; and the sum and count of the observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub points: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
enum Point {
    Scalar(f64),
    Distribution(Distribution),
}

/// `raw` as a metric name: `[a-zA-Z_][a-zA-Z0-9_]*`, each other character
/// (a Graphite name's dots, a dash) an underscore, and an underscore before a
/// leading digit. Colons are valid but kept for recording rules' names, so
/// they become underscores too (as promtool advises).
pub fn metric_name(raw: &str) -> String {
    sanitize(raw)
}

/// Whether `name` is a valid metric name as it is (no colon: those are
/// for recording rules).
pub fn valid_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Whether `name` is a valid label name as it is (`[a-zA-Z_][a-zA-Z0-9_]*`;
/// a leading `__` is valid but kept for Prometheus's own labels).
pub fn valid_label_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `raw` as a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, as [`metric_name`]. A
/// leading `__` (kept for Prometheus's own labels) becomes one underscore.
pub fn label_name(raw: &str) -> String {
    let mut name = sanitize(raw);
    while name.starts_with("__") {
        name.remove(0);
    }
    name
}

fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_';
        out.push(if ok { c } else { '_' });
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label value inside double quotes: backslash, quote and newline escaped.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A help text: backslash and newline escaped, and in OpenMetrics the
/// double quote too.
fn push_help(out: &mut String, help: &str, openmetrics: bool) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if openmetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A sample value as Prometheus parses it (`NaN`, `+Inf`, `-Inf`, or the
/// shortest decimal that reads back to the same number).
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Why a series could not join the exposition.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Conflict {
    #[error("{name} is a {had} family, and a {asked} series was given the same name")]
    Kind {
        name: String,
        had: &'static str,
        asked: &'static str,
    },
    #[error("the counter {counter} and the {kind} {name} would be one OpenMetrics family")]
    Family {
        counter: String,
        name: String,
        kind: &'static str,
    },
    #[error("no room for a new series")]
    Full,
    #[error("{name} and {other} would write the same sample names (a histogram or summary's _bucket, _sum, _count)")]
    Shadowed { name: String, other: String },
}

/// The two formats a scrape may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics 1.0 when it ranks
    /// it at least as high as anything else (Prometheus asks for it first),
    /// the text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut open, mut other) = (None::<f64>, None::<f64>);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0;
            let mut version = None;
            for p in parts {
                if let Some(v) = p.strip_prefix("q=") {
                    q = v.parse().unwrap_or(0.0);
                } else if let Some(v) = p.strip_prefix("version=") {
                    version = Some(v.to_string());
                }
            }
            if media == "application/openmetrics-text" {
                if version.as_deref().is_none_or(|v| v == "1.0.0") {
                    open = Some(open.map_or(q, |o: f64| o.max(q)));
                }
            } else {
                other = Some(other.map_or(q, |o: f64| o.max(q)));
            }
        }
        match (open, other) {
            (Some(o), Some(t)) if o > 0.0 && o >= t => Format::OpenMetrics,
            (Some(o), None) if o > 0.0 => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

#[derive(Debug, Clone)]
struct Family {
    help: String,
    kind: Kind,
    /// Each series by its labels as written (`{a="b",c="d"}`, or "" for
    /// none; names sorted): its value and when it was given.
    series: BTreeMap<String, (Point, i64)>,
}

/// Series gathered by family, written as one exposition.
#[derive(Debug, Default, Clone)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
    /// Series given twice (the later value is kept).
    pub duplicates: u64,
    /// Counters keep their names as given, without `_total`: the text
    /// format only, as statsd_exporter serves them.
    plain_counters: bool,
}

/// What [`Exposition::add_at`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The family's name as written (valid; `_total` on a counter).
    pub family: String,
    /// Bytes a new series holds (0 when the series was there).
    pub new_series: usize,
    /// Bytes a new family holds (0 when the family was there).
    pub new_family: usize,
}

/// The labels as written in the exposition: names made valid (`le` and
/// `quantile`, which only histograms and summaries have, become
/// `exported_le`/`exported_quantile`, as Prometheus renames a clash),
/// sorted, the first of two alike kept, values escaped.
fn label_block(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(Cow<str>, &str)> = labels
        .iter()
        .map(|(k, v)| {
            let mut k = if valid_label_name(k) && !k.starts_with("__") {
                Cow::Borrowed(*k)
            } else {
                Cow::Owned(label_name(k))
            };
            if k == "le" || k == "quantile" {
                k.to_mut().insert_str(0, "exported_");
            }
            (k, *v)
        })
        .collect();
    // Two raw names that sanitise alike: the first given stays (the sort
    // is stable).
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, first| later.0 == first.0);
    let mut out = String::with_capacity(
        2 + pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        push_label_value(&mut out, v);
        out.push('"');
    }
    out.push('}');
    out
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// An exposition whose counters keep their names as given (no
    /// `_total`), for the text format only.
    pub fn with_plain_counters() -> Self {
        Exposition {
            plain_counters: true,
            ..Self::default()
        }
    }

    /// Adds a series. `name` and the label names are made valid here (a
    /// label named `le` or `quantile` becomes `exported_le`, as Prometheus
    /// renames a clash); two series of one family with the same labels are
    /// one series, the later value kept (and counted in `duplicates`). A
    /// family keeps the type and help text it was first given; a series of
    /// another type under the same name is refused.
    pub fn add(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), Conflict> {
        self.add_at(name, kind, help, labels, value, 0, true)
            .map(|_| ())
    }

    /// [`Exposition::add`], remembering `ts` (unix seconds) with the value
    /// for [`Exposition::retain`]; with `allow_new` false only a series
    /// that is there already is updated (a new one is [`Conflict::Full`]).
    #[allow(clippy::too_many_arguments)]
    pub fn add_at(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
        ts: i64,
        allow_new: bool,
    ) -> Result<Added, Conflict> {
        if matches!(kind, Kind::Histogram | Kind::Summary) {
            return Err(Conflict::Kind {
                name: name.to_string(),
                had: kind.as_str(),
                asked: "single value",
            });
        }
        self.add_point(
            name,
            kind,
            help,
            labels,
            Point::Scalar(value),
            ts,
            allow_new,
        )
    }

    /// Adds a histogram's (`kind` [`Kind::Histogram`]: `points` are upper
    /// bounds with cumulative counts, a `+Inf` one added when missing) or a
    /// summary's series (`points` are quantiles with their values).
    #[allow(clippy::too_many_arguments)]
    pub fn add_distribution(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        mut value: Distribution,
        ts: i64,
        allow_new: bool,
    ) -> Result<Added, Conflict> {
        if !matches!(kind, Kind::Histogram | Kind::Summary) {
            return Err(Conflict::Kind {
                name: name.to_string(),
                had: kind.as_str(),
                asked: "distribution",
            });
        }
        if kind == Kind::Histogram
            && value
                .points
                .last()
                .is_none_or(|(le, _)| *le != f64::INFINITY)
        {
            value.points.push((f64::INFINITY, value.count));
        }
        self.add_point(
            name,
            kind,
            help,
            labels,
            Point::Distribution(value),
            ts,
            allow_new,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn add_point(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        labels: &[(&str, &str)],
        value: Point,
        ts: i64,
        allow_new: bool,
    ) -> Result<Added, Conflict> {
        let mut name: Cow<str> = if valid_metric_name(name) {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(metric_name(name))
        };
        // A counter's samples end in `_total` (OpenMetrics requires it, and
        // Prometheus's conventions ask it of the text format).
        if kind == Kind::Counter && !self.plain_counters && !name.ends_with("_total") {
            name.to_mut().push_str("_total");
        }
        let block = label_block(labels);
        let mut new_family = 0;
        if !self.families.contains_key(&*name) {
            if !allow_new {
                return Err(Conflict::Full);
            }
            // In OpenMetrics the counter `x_total` is the family `x`: a
            // gauge named `x` beside it would be the same family (text
            // only, with plain counters: two families).
            let clash = match kind {
                _ if self.plain_counters => None,
                Kind::Counter => name
                    .strip_suffix("_total")
                    .and_then(|base| Some((base, self.families.get(base)?)))
                    .filter(|(_, f)| f.kind != Kind::Counter)
                    .map(|(base, f)| (name.to_string(), base.to_string(), f.kind)),
                _ => self
                    .families
                    .get(&format!("{name}_total"))
                    .filter(|f| f.kind == Kind::Counter)
                    .map(|_| (format!("{name}_total"), name.to_string(), kind)),
            };
            if let Some((counter, name, kind)) = clash {
                return Err(Conflict::Family {
                    counter,
                    name,
                    kind: kind.as_str(),
                });
            }
            // A histogram or summary `x` writes `x_sum`, `x_count` (and
            // `x_bucket`): no family of those names beside it.
            if let Some(taken) = kind
                .suffixes()
                .iter()
                .map(|suffix| format!("{name}{suffix}"))
                .chain(
                    // A family whose samples this name would be: its name
                    // less a suffix (looked up, not scanned for).
                    ["_bucket", "_sum", "_count"].iter().filter_map(|suffix| {
                        let base = name.strip_suffix(suffix)?;
                        let f = self.families.get(base)?;
                        f.kind.suffixes().contains(suffix).then(|| base.to_string())
                    }),
                )
                .find(|n| self.families.contains_key(n))
            {
                return Err(Conflict::Shadowed {
                    name: name.into_owned(),
                    other: taken,
                });
            }
            // Prometheus wants a help text; the name stands in for none.
            let help = if help.trim().is_empty() {
                name.to_string()
            } else {
                help.to_string()
            };
            new_family = name.len() + help.len() + 64;
            self.families.insert(
                name.to_string(),
                Family {
                    help,
                    kind,
                    series: BTreeMap::new(),
                },
            );
        }
        let Some(family) = self.families.get_mut(&*name) else {
            unreachable!("the family was just found or made")
        };
        if family.kind != kind {
            return Err(Conflict::Kind {
                name: name.into_owned(),
                had: family.kind.as_str(),
                asked: kind.as_str(),
            });
        }
        let mut new_series = 0;
        match family.series.get_mut(&block) {
            Some(v) => {
                *v = (value, ts);
                self.duplicates += 1;
            }
            None if !allow_new => return Err(Conflict::Full),
            None => {
                new_series = block.len() + 64;
                family.series.insert(block, (value, ts));
            }
        }
        Ok(Added {
            family: name.into_owned(),
            new_series,
            new_family,
        })
    }

    /// Keeps the series `keep(family, ts)` says to keep; a family left
    /// without series goes. Returns the bytes freed.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, i64) -> bool) -> usize {
        let mut freed = 0;
        self.families.retain(|name, f| {
            f.series.retain(|block, (_, ts)| {
                let k = keep(name, *ts);
                if !k {
                    freed += block.len() + 64;
                }
                k
            });
            if f.series.is_empty() {
                freed += name.len() + f.help.len() + 64;
                return false;
            }
            true
        });
        freed
    }

    /// The number of series held.
    pub fn len(&self) -> usize {
        self.families.values().map(|f| f.series.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The exposition in `format`.
    pub fn write(&self, format: Format, out: &mut String) {
        match format {
            Format::Text => self.write_text(out),
            Format::OpenMetrics => self.write_openmetrics(out),
        }
    }

    /// The text format 0.0.4: per family `# HELP`, `# TYPE`, then one
    /// line per series, families by name and series by labels.
    pub fn write_text(&self, out: &mut String) {
        for (name, family) in &self.families {
            family.write(out, name, name, family.kind.as_str(), false);
        }
    }

    /// OpenMetrics 1.0: as the text format, but a counter's family is named
    /// without its samples' `_total`, an untyped family is `unknown`, and
    /// the exposition ends with `# EOF`.
    pub fn write_openmetrics(&self, out: &mut String) {
        for (name, family) in &self.families {
            let (family_name, kind) = match family.kind {
                Kind::Counter => (name.strip_suffix("_total").unwrap_or(name), "counter"),
                Kind::Untyped => (name.as_str(), "unknown"),
                k => (name.as_str(), k.as_str()),
            };
            family.write(out, family_name, name, kind, true);
        }
        out.push_str("# EOF\n");
    }
}

/// One sample line: `name` + `suffix`, the label block with `extra`
/// (`le` or `quantile`) added at its end, the value.
fn line(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    extra: Option<(&str, f64)>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    match extra {
        None => out.push_str(labels),
        Some((k, at)) => {
            match labels.strip_suffix('}') {
                Some(open) => {
                    out.push_str(open);
                    out.push(',');
                }
                None => out.push('{'),
            }
            out.push_str(k);
            out.push_str("=\"");
            push_value(out, at);
            out.push_str("\"}");
        }
    }
    out.push(' ');
    push_value(out, value);
    out.push('\n');
}

impl Family {
    /// `# HELP`, `# TYPE` under `family_name`, then one line per series
    /// under the sample name `name`.
    fn write(
        &self,
        out: &mut String,
        family_name: &str,
        name: &str,
        kind: &str,
        openmetrics: bool,
    ) {
        out.push_str("# HELP ");
        out.push_str(family_name);
        out.push(' ');
        push_help(out, &self.help, openmetrics);
        out.push_str("\n# TYPE ");
        out.push_str(family_name);
        out.push(' ');
        out.push_str(kind);
        out.push('\n');
        for (labels, (value, _)) in &self.series {
            match value {
                Point::Scalar(v) => line(out, name, "", labels, None, *v),
                Point::Distribution(d) => {
                    let (suffix, label) = match self.kind {
                        Kind::Histogram => ("_bucket", "le"),
                        _ => ("", "quantile"),
                    };
                    for (at, v) in &d.points {
                        line(out, name, suffix, labels, Some((label, *at)), *v);
                    }
                    line(out, name, "_sum", labels, None, d.sum);
                    line(out, name, "_count", labels, None, d.count);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid() {
        assert_eq!(
            metric_name("servers.web-1.cpu.total"),
            "servers_web_1_cpu_total"
        );
        assert_eq!(metric_name("node:load1"), "node_load1");
        assert_eq!(metric_name("5xx"), "_5xx");
        assert_eq!(metric_name(""), "_");
        assert_eq!(metric_name("h\u{e9}te"), "h_te");
        assert_eq!(label_name("mount:point"), "mount_point");
        assert_eq!(label_name("__name__"), "_name__");
        assert_eq!(label_name("0"), "_0");
    }

    #[test]
    fn lines_escape_and_values_read_back() {
        let mut e = Exposition::new();
        e.add("node_load1", Kind::Gauge, "1m load average.", &[], 0.25)
            .expect("add");
        e.add(
            "node_filesystem_avail_bytes",
            Kind::Gauge,
            "Free space\nfor users \\ root.",
            &[("mountpoint", "/mnt/a \"b\"\n\\c"), ("device", "/dev/sda1")],
            f64::INFINITY,
        )
        .expect("add");
        e.add("x_total", Kind::Counter, "x", &[("a", "1")], f64::NAN)
            .expect("add");
        e.add("x_total", Kind::Counter, "ignored", &[("a", "1")], 1e21)
            .expect("same series");
        assert_eq!(e.duplicates, 1);
        assert_eq!(e.len(), 3);
        let mut out = String::new();
        e.write_text(&mut out);
        assert_eq!(
            out,
            "# HELP node_filesystem_avail_bytes Free space\\nfor users \\\\ root.\n\
             # TYPE node_filesystem_avail_bytes gauge\n\
             node_filesystem_avail_bytes{device=\"/dev/sda1\",mountpoint=\"/mnt/a \\\"b\\\"\\n\\\\c\"} +Inf\n\
             # HELP node_load1 1m load average.\n\
             # TYPE node_load1 gauge\n\
             node_load1 0.25\n\
             # HELP x_total x\n\
             # TYPE x_total counter\n\
             x_total{a=\"1\"} 1000000000000000000000\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends() {
        let mut e = Exposition::new();
        e.add("lines", Kind::Counter, "Lines.", &[("f", "a")], 3.0)
            .expect("add");
        e.add("temp", Kind::Untyped, "T.", &[], -1.5).expect("add");
        let mut out = String::new();
        e.write(Format::OpenMetrics, &mut out);
        assert_eq!(
            out,
            "# HELP lines Lines.\n# TYPE lines counter\nlines_total{f=\"a\"} 3\n\
             # HELP temp T.\n# TYPE temp unknown\ntemp -1.5\n# EOF\n"
        );
        assert_eq!(
            e.add("lines", Kind::Gauge, "", &[], 1.0),
            Err(Conflict::Family {
                counter: "lines_total".into(),
                name: "lines".into(),
                kind: "gauge"
            })
        );
        e.add("temp", Kind::Untyped, "", &[], 1.0)
            .expect("same family");
        assert!(e.add("temp", Kind::Counter, "", &[], 1.0).is_err());
    }

    #[test]
    fn histograms_and_summaries_write_their_sample_lines() {
        let mut e = Exposition::new();
        let h = Distribution {
            points: vec![(0.1, 1.0), (1.0, 3.0)],
            sum: 2.5,
            count: 4.0,
        };
        e.add_distribution(
            "rpc_seconds",
            Kind::Histogram,
            "RPCs.",
            &[("m", "get")],
            h,
            1,
            true,
        )
        .expect("histogram");
        let q = Distribution {
            points: vec![(0.5, 0.2), (0.99, 0.9)],
            sum: 2.5,
            count: 4.0,
        };
        e.add_distribution("lat_seconds", Kind::Summary, "Latency.", &[], q, 1, true)
            .expect("summary");
        let mut t = String::new();
        e.write_text(&mut t);
        assert_eq!(
            t,
            "# HELP lat_seconds Latency.\n# TYPE lat_seconds summary\n\
             lat_seconds{quantile=\"0.5\"} 0.2\nlat_seconds{quantile=\"0.99\"} 0.9\n\
             lat_seconds_sum 2.5\nlat_seconds_count 4\n\
             # HELP rpc_seconds RPCs.\n# TYPE rpc_seconds histogram\n\
             rpc_seconds_bucket{m=\"get\",le=\"0.1\"} 1\nrpc_seconds_bucket{m=\"get\",le=\"1\"} 3\n\
             rpc_seconds_bucket{m=\"get\",le=\"+Inf\"} 4\n\
             rpc_seconds_sum{m=\"get\"} 2.5\nrpc_seconds_count{m=\"get\"} 4\n"
        );
        // The sample names they write are taken, both ways.
        assert!(matches!(
            e.add("rpc_seconds_count", Kind::Gauge, "", &[], 1.0),
            Err(Conflict::Shadowed { .. })
        ));
        e.add("x_sum", Kind::Gauge, "", &[], 1.0).expect("gauge");
        let d = Distribution {
            points: vec![],
            sum: 0.0,
            count: 0.0,
        };
        assert!(matches!(
            e.add_distribution("x", Kind::Summary, "", &[], d.clone(), 1, true),
            Err(Conflict::Shadowed { .. })
        ));
        assert!(e.add("y", Kind::Histogram, "", &[], 1.0).is_err());
        assert!(e
            .add_distribution("y", Kind::Gauge, "", &[], d, 1, true)
            .is_err());
    }

    #[test]
    fn openmetrics_escapes_quotes_in_help_and_the_text_format_does_not() {
        let mut e = Exposition::new();
        e.add("g", Kind::Gauge, "a \"quoted\" \\ word", &[], 1.0)
            .expect("add");
        let (mut t, mut o) = (String::new(), String::new());
        e.write_text(&mut t);
        e.write_openmetrics(&mut o);
        assert!(t.starts_with("# HELP g a \"quoted\" \\\\ word\n"), "{t}");
        assert!(
            o.starts_with("# HELP g a \\\"quoted\\\" \\\\ word\n"),
            "{o}"
        );
    }

    #[test]
    fn the_format_follows_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(
            Format::from_accept(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; version=0.0.1")),
            Format::Text
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn a_name_of_two_types_is_refused() {
        let mut e = Exposition::new();
        e.add("a.b_total", Kind::Gauge, "", &[], 1.0).expect("add");
        assert_eq!(
            e.add("a_b", Kind::Counter, "", &[], 1.0),
            Err(Conflict::Kind {
                name: "a_b_total".into(),
                had: "gauge",
                asked: "counter"
            })
        );
        assert!(!e.is_empty());
    }
}
