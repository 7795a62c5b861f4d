//! statsd_exporter's keys of the mapping format, beside the ones it shares
//! with graphite_exporter: which statsd type a rule is for
//! (`match_metric_type`), how a timer is observed (`observer_type`, or the
//! older `timer_type`: a summary by default, or a histogram; `buckets`,
//! `quantiles`, `summary_options`, `histogram_options`), how long an idle
//! series is kept (`ttl`), `scale` and `honor_labels`. Each may be set in
//! `defaults:` and overridden per rule.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// The statsd type a rule is for (`match_metric_type`); `timer` is the
/// older word for `observer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    #[serde(alias = "timer")]
    Observer,
}

/// What a timer's observations become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserverType {
    Summary,
    Histogram,
}

/// The client library's default histogram buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The default summary quantiles.
pub const DEFAULT_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(600);
const DEFAULT_AGE_BUCKETS: u32 = 5;

/// How a rule's (or the defaults') timers are observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observe {
    pub kind: ObserverType,
    /// Upper bounds, increasing and finite (`+Inf` is implied).
    pub buckets: Arc<[f64]>,
    pub quantiles: Arc<[f64]>,
    /// The window a summary's quantiles cover, in `age_buckets` slices.
    pub max_age: Duration,
    pub age_buckets: u32,
}

/// Everything a rule (or the defaults) says beyond the name and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub observe: Observe,
    /// How long a series stays without an update; zero for ever.
    pub ttl: Duration,
    /// Each value is multiplied by it.
    pub scale: f64,
    /// Tags win over the rule's labels of the same name.
    pub honor_labels: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            observe: Observe {
                kind: ObserverType::Summary,
                buckets: Arc::from(DEFAULT_BUCKETS.as_slice()),
                quantiles: Arc::from(DEFAULT_QUANTILES.as_slice()),
                max_age: DEFAULT_MAX_AGE,
                age_buckets: DEFAULT_AGE_BUCKETS,
            },
            ttl: Duration::ZERO,
            scale: 1.0,
            honor_labels: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuantileSpec {
    quantile: f64,
    /// The rank error the client library allows; quantiles here are within
    /// 1% of the value instead (see the statsd server's exposition).
    #[serde(default)]
    #[allow(dead_code)]
    error: f64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SummarySpec {
    #[serde(default)]
    quantiles: Option<Vec<QuantileSpec>>,
    #[serde(default)]
    max_age: Option<String>,
    #[serde(default)]
    age_buckets: Option<u32>,
    /// The client library's stream buffer: nothing to size here.
    #[serde(default)]
    #[allow(dead_code)]
    buf_cap: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct HistogramSpec {
    #[serde(default)]
    buckets: Option<Vec<f64>>,
    #[serde(default)]
    native_histogram_bucket_factor: Option<f64>,
    #[serde(default)]
    native_histogram_max_buckets: Option<u32>,
}

/// The option keys as a rule or `defaults:` writes them (each optional:
/// a rule's unset keys take the defaults', the defaults' unset keys the
/// built-in ones).
#[derive(Debug, Default)]
pub(super) struct OptionSpec {
    pub observer_type: Option<String>,
    pub buckets: Option<Vec<f64>>,
    pub quantiles: Option<Vec<QuantileSpec>>,
    pub summary_options: Option<SummarySpec>,
    pub histogram_options: Option<HistogramSpec>,
    pub ttl: Option<String>,
    pub scale: Option<f64>,
    pub honor_labels: Option<bool>,
}

/// A Go duration (`300ms`, `1.5h`, `1h30m`, `0`), as the exporters write them.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 30s, 10m or 1h30m");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let mut secs = 0.0f64;
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        secs += value * unit;
        rest = &rest[unit_end..];
    }
    // A year at most: longer is a typo, and Duration refuses absurd ones.
    if !(secs.is_finite() && secs <= 366.0 * 86_400.0) {
        return Err(format!("{s:?} is longer than a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl OptionSpec {
    /// These keys over `base` (the defaults'), checked.
    pub fn resolve(self, base: &Options) -> Result<Options, String> {
        let mut o = base.clone();
        if let Some(t) = self.observer_type.as_deref() {
            o.observe.kind = match t {
                "summary" => ObserverType::Summary,
                "histogram" => ObserverType::Histogram,
                // The exporters' "not set": the defaults' type.
                "" | "default" => base.observe.kind,
                _ => {
                    return Err(format!(
                        "observer_type {t:?}: expected summary or histogram"
                    ))
                }
            };
        }
        let h = self.histogram_options.unwrap_or_default();
        if h.native_histogram_bucket_factor.is_some() || h.native_histogram_max_buckets.is_some() {
            return Err(
                "native histograms are not supported: the text format cannot carry them".into(),
            );
        }
        if let Some(b) = h.buckets.or(self.buckets) {
            o.observe.buckets = buckets(b)?;
        }
        let s = self.summary_options.unwrap_or_default();
        if let Some(q) = s.quantiles.or(self.quantiles) {
            let mut qs = Vec::with_capacity(q.len());
            for spec in q {
                if !(0.0..=1.0).contains(&spec.quantile) {
                    return Err(format!("quantile {} is not between 0 and 1", spec.quantile));
                }
                qs.push(spec.quantile);
            }
            qs.sort_by(f64::total_cmp);
            qs.dedup();
            o.observe.quantiles = qs.into();
        }
        if let Some(a) = s.max_age {
            let d = parse_go_duration(&a).map_err(|e| format!("max_age: {e}"))?;
            o.observe.max_age = if d.is_zero() { DEFAULT_MAX_AGE } else { d };
        }
        if let Some(n) = s.age_buckets {
            o.observe.age_buckets = match n {
                0 => DEFAULT_AGE_BUCKETS,
                1..=60 => n,
                _ => return Err(format!("age_buckets {n}: at most 60")),
            };
        }
        if let Some(t) = self.ttl {
            let d = parse_go_duration(&t).map_err(|e| format!("ttl: {e}"))?;
            // A rule's 0 is "not set": the defaults' ttl.
            if !d.is_zero() {
                o.ttl = d;
            }
        }
        if let Some(sc) = self.scale {
            if !sc.is_finite() {
                return Err(format!("scale {sc} is not a finite number"));
            }
            o.scale = sc;
        }
        if let Some(h) = self.honor_labels {
            o.honor_labels = h;
        }
        Ok(o)
    }
}

/// Histogram buckets: increasing, finite but for a last `+Inf` (implied
/// anyway), at most 1000.
fn buckets(mut b: Vec<f64>) -> Result<Arc<[f64]>, String> {
    if b.last() == Some(&f64::INFINITY) {
        b.pop();
    }
    if b.is_empty() || b.len() > 1000 {
        return Err("buckets: give 1 to 1000 upper bounds".into());
    }
    if b.iter().any(|v| !v.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "buckets {b:?}: upper bounds must be finite and increasing"
        ));
    }
    Ok(b.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (s, secs) in [
            ("0", 0.0),
            ("30s", 30.0),
            ("10m", 600.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("300ms", 0.3),
            ("2m0.5s", 120.5),
        ] {
            let d = parse_go_duration(s).expect(s);
            assert!((d.as_secs_f64() - secs).abs() < 1e-9, "{s}: {d:?}");
        }
        for s in ["", "10", "-1s", "1d", "s", "1e3s", "1.2.3s", "99999999h"] {
            assert!(parse_go_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn rule_options_over_defaults() {
        let base = Options::default();
        let o = OptionSpec {
            observer_type: Some("histogram".into()),
            buckets: Some(vec![0.1, 1.0, f64::INFINITY]),
            ttl: Some("1m".into()),
            ..Default::default()
        }
        .resolve(&base)
        .expect("options");
        assert_eq!(o.observe.kind, ObserverType::Histogram);
        assert_eq!(&*o.observe.buckets, &[0.1, 1.0]);
        assert_eq!(o.ttl, Duration::from_secs(60));
        // A rule's "default" type and 0 ttl keep the base's.
        let o2 = OptionSpec {
            observer_type: Some("default".into()),
            ttl: Some("0".into()),
            ..Default::default()
        }
        .resolve(&o)
        .expect("options");
        assert_eq!((o2.observe.kind, o2.ttl), (o.observe.kind, o.ttl));
        for (spec, word) in [
            (
                OptionSpec {
                    observer_type: Some("sumary".into()),
                    ..Default::default()
                },
                "sumary",
            ),
            (
                OptionSpec {
                    buckets: Some(vec![1.0, 0.5]),
                    ..Default::default()
                },
                "increasing",
            ),
            (
                OptionSpec {
                    histogram_options: Some(HistogramSpec {
                        native_histogram_bucket_factor: Some(1.1),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                "native",
            ),
            (
                OptionSpec {
                    quantiles: Some(vec![QuantileSpec {
                        quantile: 1.5,
                        error: 0.0,
                    }]),
                    ..Default::default()
                },
                "1.5",
            ),
            (
                OptionSpec {
                    scale: Some(f64::NAN),
                    ..Default::default()
                },
                "scale",
            ),
        ] {
            let e = spec.resolve(&base).expect_err(word);
            assert!(e.contains(word), "{e}");
        }
    }
}
