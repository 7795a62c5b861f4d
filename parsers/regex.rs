//! regex: your own log format, no code needed. A regex with named captures,
//! and for each metric a name template and a kind:
//!
//! * `counter` — lines matched per second, or with `value` the sum of that
//!   capture per second;
//! * `gauge` — the last value of the `value` capture;
//! * `timer` — `count`, `mean`, `min`, `max` and `pNN` (each of
//!   `percentiles`) of the `value` capture over the interval.
//!
//! Names may use captures: `http.{status}`. A bad regex, or a template or
//! value naming a capture the regex does not have, fails when the config loads.

mod linear;

use super::{per, Parser};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Most distinct metric names one regex parser keeps in an interval; lines
/// that would add more are counted as unmatched (no unbounded memory).
pub const MAX_NAMES: usize = 10_000;

/// The kinds of metric a regex parser makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Timer,
}

/// One metric of a regex parser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Name template; `{capture}` is replaced by the capture's text.
    pub name: String,
    pub kind: Kind,
    /// The capture holding the number (needed for gauge and timer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Percentiles a timer sends.
    #[serde(default = "default_percentiles")]
    pub percentiles: Vec<f64>,
}

fn default_percentiles() -> Vec<f64> {
    vec![50.0, 90.0, 99.0]
}

/// `parser = "regex"` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    /// The regex, with named captures `(?P<name>...)`, searched in each line.
    pub regex: String,
    /// The metrics made from each matching line.
    pub metrics: Vec<MetricSpec>,
}

/// A name template split into literal text and capture indexes.
#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Capture(usize),
}

struct Metric {
    template: Vec<Part>,
    /// The name, when the template has no capture: kept in `fixed`, not
    /// rendered and looked up each line.
    fixed: Option<String>,
    kind: Kind,
    value: Option<usize>,
    /// An earlier metric with the same `value` capture, whose number this
    /// one takes instead of parsing it again.
    same_value: Option<usize>,
    percentiles: Vec<f64>,
}

/// The name maps' hasher: seeded per map (names come from log lines, and
/// a fixed seed would let a log writer pick colliding names) and several
/// times faster than std's SipHash on short names, which it looked up for
/// each metric of each line.
type Names = HashMap<String, Acc, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Acc {
    count: u64,
    sum: f64,
    last: f64,
    values: Vec<f64>,
}

pub struct RegexParser {
    re: regex::bytes::Regex,
    /// The same regex for the one-pass walk, when it is linear (most log
    /// formats are): the groups for less than half the regex crate's cost.
    linear: Option<linear::Linear>,
    /// Where the regex crate put the last match's groups.
    locs: regex::bytes::CaptureLocations,
    /// Where the last match's groups are, start and end of each (reused:
    /// no allocation a line).
    slots: Vec<Option<usize>>,
    metrics: Vec<Metric>,
    /// Per metric (by index): rendered name -> accumulated values.
    acc: Vec<Names>,
    /// Per metric with a fixed name: its accumulated values.
    fixed: Vec<Option<Acc>>,
    /// Names held across `acc`, bounded by MAX_NAMES.
    names: usize,
    /// The name being rendered and the line's values (reused buffers).
    name: String,
    values: Vec<Option<f64>>,
}

fn parse_template(
    t: &str,
    key: &str,
    index: &HashMap<&str, usize>,
) -> Result<Vec<Part>, ConfigError> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| c + open)
            .ok_or_else(|| ConfigError::new(key, format!("unclosed '{{' in {t:?}")))?;
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        let cap = &rest[open + 1..close];
        let i = index.get(cap).ok_or_else(|| {
            ConfigError::new(
                key,
                format!("{t:?} names {{{cap}}}, which the regex does not capture"),
            )
        })?;
        parts.push(Part::Capture(*i));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    if parts.is_empty() {
        return Err(ConfigError::new(key, "an empty name"));
    }
    Ok(parts)
}

impl RegexParser {
    pub fn new(c: &RegexConfig, key: &str) -> Result<Self, ConfigError> {
        let re = regex::bytes::Regex::new(&c.regex)
            .map_err(|e| ConfigError::new(format!("{key}.regex"), format!("invalid regex: {e}")))?;
        let index: HashMap<&str, usize> = re
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (n, i)))
            .collect();
        if c.metrics.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.metrics"),
                "needs at least one metric",
            ));
        }
        let mut metrics = Vec::new();
        for (n, m) in c.metrics.iter().enumerate() {
            let mkey = format!("{key}.metrics[{n}]");
            let template = parse_template(&m.name, &format!("{mkey}.name"), &index)?;
            let value = match &m.value {
                Some(v) => Some(*index.get(v.as_str()).ok_or_else(|| {
                    ConfigError::new(
                        format!("{mkey}.value"),
                        format!("{v:?} is not a capture of the regex"),
                    )
                })?),
                None if m.kind != Kind::Counter => {
                    return Err(ConfigError::new(
                        format!("{mkey}.value"),
                        "a gauge or timer needs the capture holding its number",
                    ))
                }
                None => None,
            };
            if let Some(p) = m.percentiles.iter().find(|p| !(**p > 0.0 && **p <= 100.0)) {
                return Err(ConfigError::new(
                    format!("{mkey}.percentiles"),
                    format!("{p} is not a percentile (0 < p <= 100)"),
                ));
            }
            let fixed = template
                .iter()
                .map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    Part::Capture(_) => None,
                })
                .collect::<Option<String>>();
            let same_value =
                value.and_then(|v| metrics.iter().position(|o: &Metric| o.value == Some(v)));
            metrics.push(Metric {
                template,
                fixed,
                kind: m.kind,
                value,
                same_value,
                percentiles: m.percentiles.clone(),
            });
        }
        let linear = linear::Linear::new(&c.regex).filter(|l| l.slots() == 2 * re.captures_len());
        Ok(RegexParser {
            locs: re.capture_locations(),
            slots: vec![None; 2 * re.captures_len()],
            linear,
            re,
            acc: metrics.iter().map(|_| Names::default()).collect(),
            fixed: metrics.iter().map(|_| None).collect(),
            metrics,
            names: 0,
            name: String::new(),
            values: Vec::new(),
        })
    }
}

/// Capture text made safe for a Graphite path segment.
fn push_segment(out: &mut String, text: &[u8]) {
    for &b in text {
        out.push(if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            b as char
        } else {
            '_'
        });
    }
}

/// A capture's number, as `str::parse::<f64>` reads it after trimming.
///
/// Plain decimals of at most 15 digits (`3000`, `0.010`, `-2.5`, nearly
/// every number in a log) are read here: such a mantissa and a power of
/// ten up to 10^15 are exact in an f64, so one division rounds as the full
/// parse does (Clinger's fast path). The rest goes through the full parse.
fn parse_number(text: &[u8]) -> Option<f64> {
    const SCALE: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0usize;
    let mut frac: Option<usize> = None;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
                if let Some(f) = &mut frac {
                    *f += 1;
                }
            }
            b'.' if frac.is_none() => frac = Some(0),
            _ => return slow_number(text),
        }
        if count > 15 {
            return slow_number(text);
        }
    }
    if count == 0 {
        return slow_number(text);
    }
    let v = mantissa as f64 / SCALE[frac.unwrap_or(0)];
    Some(if neg { -v } else { v })
}

fn slow_number(text: &[u8]) -> Option<f64> {
    std::str::from_utf8(text).ok()?.trim().parse::<f64>().ok()
}

/// The `p`th percentile of sorted values (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percentile_name(p: f64) -> String {
    let s = format!("{p}");
    format!("p{}", s.replace('.', "_"))
}

impl Parser for RegexParser {
    fn parse_line(&mut self, line: &[u8]) -> bool {
        let matched = match &self.linear {
            Some(linear) => linear.captures(line, &mut self.slots),
            None => {
                let found = self.re.captures_read(&mut self.locs, line).is_some();
                for (i, pair) in self.slots.chunks_exact_mut(2).enumerate() {
                    let g = self.locs.get(i);
                    pair[0] = g.map(|g| g.0);
                    pair[1] = g.map(|g| g.1);
                }
                found
            }
        };
        if !matched {
            return false;
        }
        let slots = &self.slots;
        let group = |i: usize| match (slots.get(2 * i), slots.get(2 * i + 1)) {
            (Some(&Some(a)), Some(&Some(b))) => line.get(a..b).unwrap_or(&[]),
            _ => &[][..],
        };
        // Every metric's value first. A value capture that is not a finite
        // number (nginx's `-` for no upstream time) is NaN here: that metric
        // leaves this line out, the line's other metrics count it.
        self.values.clear();
        for m in &self.metrics {
            if let Some(&v) = m.same_value.and_then(|j| self.values.get(j)) {
                self.values.push(v);
                continue;
            }
            let v = match m.value {
                None => None,
                Some(i) => match parse_number(group(i)) {
                    Some(v) if v.is_finite() => Some(v),
                    _ => Some(f64::NAN),
                },
            };
            self.values.push(v);
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if self.values[i].is_some_and(f64::is_nan) {
                continue;
            }
            let a = if m.fixed.is_some() {
                match &mut self.fixed[i] {
                    Some(a) => a,
                    None if self.names >= MAX_NAMES => return false,
                    slot => {
                        self.names += 1;
                        slot.insert(Acc::default())
                    }
                }
            } else {
                self.name.clear();
                for part in &m.template {
                    match part {
                        Part::Text(t) => self.name.push_str(t),
                        Part::Capture(c) => push_segment(&mut self.name, group(*c)),
                    }
                }
                // Looked up by the rendered text: a name is allocated once,
                // when it is first seen.
                match self.acc[i].get_mut(self.name.as_str()) {
                    Some(a) => a,
                    None if self.names >= MAX_NAMES => return false,
                    None => {
                        self.names += 1;
                        self.acc[i].entry(self.name.clone()).or_default()
                    }
                }
            };
            a.count += 1;
            if let Some(v) = self.values[i] {
                a.sum += v;
                a.last = v;
                if m.kind == Kind::Timer {
                    a.values.push(v);
                }
            }
        }
        true
    }

    fn take_metrics(&mut self, duration: f64, out: &mut Vec<(String, f64)>) {
        self.names = 0;
        let metrics = &self.metrics;
        let mut acc: Vec<_> = self
            .acc
            .iter_mut()
            .enumerate()
            .flat_map(|(i, names)| names.drain().map(move |(name, a)| ((i, name), a)))
            .chain(self.fixed.iter_mut().enumerate().filter_map(|(i, slot)| {
                let a = slot.take()?;
                Some(((i, metrics[i].fixed.clone()?), a))
            }))
            .collect();
        acc.sort_by(|a, b| a.0.cmp(&b.0));
        for ((i, name), mut a) in acc {
            let m = &self.metrics[i];
            match m.kind {
                Kind::Counter if m.value.is_some() => out.push((name, per(a.sum, duration))),
                Kind::Counter => out.push((name, per(a.count as f64, duration))),
                Kind::Gauge => out.push((name, a.last)),
                Kind::Timer => {
                    a.values.sort_by(|x, y| x.total_cmp(y));
                    out.push((format!("{name}.count"), a.count as f64));
                    if let (Some(min), Some(max)) = (a.values.first(), a.values.last()) {
                        out.push((format!("{name}.mean"), a.sum / a.count as f64));
                        out.push((format!("{name}.min"), *min));
                        out.push((format!("{name}.max"), *max));
                        for p in &m.percentiles {
                            out.push((
                                format!("{name}.{}", percentile_name(*p)),
                                percentile(&a.values, *p),
                            ));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_the_full_parse_reads_them() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut cases: Vec<String> = [
            "0",
            "3000",
            "0.010",
            "-2.5",
            "1.",
            ".5",
            ".",
            "-",
            "",
            "1e3",
            " 42 ",
            "1.2.3",
            "+1",
            "999999999999999",
            "9999999999999999",
            "0.123456789012345",
            "12345678901234567890",
            "-0",
            "0x10",
            "NaN",
            "inf",
            "\u{e9}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..20000 {
            let digits = rng.u32(1..17);
            let int = rng.u64(..10u64.pow(digits));
            let text = match rng.u8(..3) {
                0 => int.to_string(),
                1 => {
                    let s = int.to_string();
                    let at = rng.usize(..=s.len());
                    format!("{}.{}", &s[..at], &s[at..])
                }
                _ => format!("-{int}.{}", rng.u32(..1000)),
            };
            cases.push(text);
        }
        for c in &cases {
            let full = std::str::from_utf8(c.as_bytes())
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok());
            let ours = parse_number(c.as_bytes());
            assert_eq!(
                ours.map(f64::to_bits),
                full.map(f64::to_bits),
                "{c:?}: {ours:?} against {full:?}"
            );
        }
    }
    use crate::parsers::testutil::run_fixture;

    fn nginx() -> RegexConfig {
        RegexConfig {
            regex: r#"^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) (?P<rt>[0-9.]+)$"#.into(),
            metrics: vec![
                MetricSpec {
                    name: "http.{status}".into(),
                    kind: Kind::Counter,
                    value: None,
                    percentiles: default_percentiles(),
                },
                MetricSpec {
                    name: "bytes".into(),
                    kind: Kind::Counter,
                    value: Some("bytes".into()),
                    percentiles: default_percentiles(),
                },
                MetricSpec {
                    name: "last_bytes".into(),
                    kind: Kind::Gauge,
                    value: Some("bytes".into()),
                    percentiles: default_percentiles(),
                },
                MetricSpec {
                    name: "request_time.{method}".into(),
                    kind: Kind::Timer,
                    value: Some("rt".into()),
                    percentiles: vec![50.0, 99.9],
                },
            ],
        }
    }

    #[test]
    fn fixture_worked_by_hand() {
        let mut p = RegexParser::new(&nginx(), "logs.web").expect("config");
        // nginx.log over 4 s: 200 x4, 404 x1, 500 x1; GET times 0.010,
        // 0.020, 0.030, 0.300, 0.040 and POST 0.500; bytes sum 16000.
        let (hit, miss, m) = run_fixture(&mut p, "nginx.log", 4.0);
        assert_eq!((hit, miss), (6, 2));
        assert_eq!(m["http.200"], 1.0);
        assert_eq!(m["http.404"], 0.25);
        assert_eq!(m["http.500"], 0.25);
        assert_eq!(m["bytes"], 4000.0);
        assert_eq!(m["last_bytes"], 2000.0);
        assert_eq!(m["request_time.GET.count"], 5.0);
        assert!((m["request_time.GET.mean"] - 0.08).abs() < 1e-12);
        assert_eq!(m["request_time.GET.min"], 0.010);
        assert_eq!(m["request_time.GET.max"], 0.300);
        assert_eq!(m["request_time.GET.p50"], 0.030);
        assert_eq!(m["request_time.GET.p99_9"], 0.300);
        assert_eq!(m["request_time.POST.count"], 1.0);
        assert_eq!(m["request_time.POST.p50"], 0.5);
    }

    #[test]
    fn a_value_that_is_no_number_leaves_out_only_its_metric() {
        let mut c = nginx();
        c.regex = c.regex.replace("(?P<rt>[0-9.]+)", "(?P<rt>\\S+)");
        let mut p = RegexParser::new(&c, "logs.web").expect("config");
        assert!(p.parse_line(b"h - - [t] \"GET / HTTP/1.1\" 304 0 -"));
        assert!(p.parse_line(b"h - - [t] \"GET / HTTP/1.1\" 200 10 0.5"));
        assert!(p.parse_line(b"h - - [t] \"GET / HTTP/1.1\" 200 10 NaN"));
        let mut out = Vec::new();
        p.take_metrics(1.0, &mut out);
        let m: HashMap<String, f64> = out.into_iter().collect();
        assert_eq!((m["http.304"], m["http.200"]), (1.0, 2.0));
        assert_eq!((m["bytes"], m["last_bytes"]), (20.0, 10.0));
        assert_eq!(m["request_time.GET.count"], 1.0);
        assert_eq!(m["request_time.GET.max"], 0.5);
    }

    #[test]
    fn config_errors_name_the_key() {
        let mut c = nginx();
        c.regex = "(?P<status>".into();
        let e = RegexParser::new(&c, "logs.web")
            .err()
            .expect("bad regex")
            .to_string();
        assert!(e.contains("logs.web.regex"), "{e}");
        let mut c = nginx();
        c.metrics[0].name = "http.{code}".into();
        let e = RegexParser::new(&c, "logs.web")
            .err()
            .expect("bad template")
            .to_string();
        assert!(
            e.contains("logs.web.metrics[0].name") && e.contains("{code}"),
            "{e}"
        );
        let mut c = nginx();
        c.metrics[2].value = None;
        let e = RegexParser::new(&c, "logs.web")
            .err()
            .expect("no value")
            .to_string();
        assert!(e.contains("logs.web.metrics[2].value"), "{e}");
        let mut c = nginx();
        c.metrics[3].value = Some("nope".into());
        assert!(RegexParser::new(&c, "logs.web").is_err());
    }

    #[test]
    fn captures_are_made_safe_and_names_bounded() {
        let c = RegexConfig {
            regex: r"user=(?P<u>\S+)".into(),
            metrics: vec![MetricSpec {
                name: "logins.{u}".into(),
                kind: Kind::Counter,
                value: None,
                percentiles: vec![],
            }],
        };
        let mut p = RegexParser::new(&c, "logs.auth").expect("config");
        assert!(p.parse_line(b"user=a.b/c"));
        let mut out = Vec::new();
        p.take_metrics(1.0, &mut out);
        assert_eq!(out, vec![("logins.a_b_c".to_string(), 1.0)]);
        for i in 0..MAX_NAMES {
            assert!(p.parse_line(format!("user=u{i}").as_bytes()));
        }
        assert!(!p.parse_line(b"user=one-too-many"));
    }
}
