//! The axes as graphite-web chooses them: the Y axis's limits, "nice" step
//! and labels (with SI or binary unit prefixes, or a log scale), and the X
//! axis's grid and label times for the seconds each pixel stands for.

use chrono::{DateTime, Duration, FixedOffset, Timelike};
use chrono_tz::Tz;

use crate::server::web::pyfmt;

const EPSILON: f64 = 0.0001;

/// `yUnitSystem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Units {
    #[default]
    Si,
    Binary,
    Sec,
    Msec,
    None,
}

impl Units {
    /// Unknown names are SI, as graphite-web takes them.
    pub fn parse(s: &str) -> Units {
        match s.to_ascii_lowercase().as_str() {
            "binary" => Units::Binary,
            "sec" => Units::Sec,
            "msec" => Units::Msec,
            "none" => Units::None,
            _ => Units::Si,
        }
    }

    fn prefixes(self) -> &'static [(&'static str, f64)] {
        const KI: f64 = 1024.0;
        match self {
            Units::Si => &[("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)],
            Units::Binary => &[
                ("Pi", KI * KI * KI * KI * KI),
                ("Ti", KI * KI * KI * KI),
                ("Gi", KI * KI * KI),
                ("Mi", KI * KI),
                ("Ki", KI),
            ],
            Units::Sec => &[
                ("Y", 31_536_000.0),
                ("M", 2_592_000.0),
                ("D", 86_400.0),
                ("H", 3_600.0),
                ("m", 60.0),
            ],
            Units::Msec => &[
                ("Y", 31_536_000_000.0),
                ("M", 2_592_000_000.0),
                ("D", 86_400_000.0),
                ("H", 3_600_000.0),
                ("m", 60_000.0),
                ("s", 1_000.0),
            ],
            Units::None => &[],
        }
    }
}

/// graphite-web's `format_units`: the value in the largest unit it reaches
/// (and, given a step, that the step reaches too), and the unit's prefix.
pub fn format_units(v: f64, step: Option<f64>, units: Units) -> (f64, &'static str) {
    let whole = |x: f64, v: f64| {
        if x - x.floor() < 1e-11 && v > 1.0 {
            x.floor()
        } else {
            x
        }
    };
    for &(prefix, size) in units.prefixes() {
        if v.abs() >= size && step.is_none_or(|s| s >= size) {
            return (whole(v / size, v), prefix);
        }
    }
    (whole(v, v), "")
}

/// `yMax=max`: the data's largest value, not rounded up to a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Max {
    Value(f64),
    Extremum,
}

/// What the request says about one Y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub min: Option<f64>,
    pub max: Option<Max>,
    pub limit: Option<f64>,
    pub step: Option<f64>,
    pub divisors: Vec<u32>,
    pub units: Units,
    pub log_base: Option<f64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            min: None,
            max: None,
            limit: None,
            step: None,
            divisors: vec![4, 5, 6],
            units: Units::Si,
            log_base: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct YAxis {
    pub bottom: f64,
    pub top: f64,
    pub step: Option<f64>,
    pub log_base: Option<f64>,
    /// Each label's value and text (empty when the axes are hidden).
    pub labels: Vec<(f64, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Data,
    User,
}

/// The step among 1, 2, 5 × 10^n (or 2^n for binary units) that fits the
/// range into one of `divisors` divisions with the least slack.
fn choose_step(min: f64, max: f64, divisors: &[u32], binary: bool) -> f64 {
    let (mut min, mut max) = (min, max);
    if min == max {
        if min == 0.0 {
            max = 1.0;
        } else if min < 0.0 {
            min *= 1.1;
            max *= 0.9;
        } else {
            min *= 0.9;
            max *= 1.1;
        }
    }
    let variance = max - min;
    if !variance.is_finite() || variance <= 0.0 {
        return f64::NAN;
    }
    let most = f64::from(divisors.iter().copied().max().unwrap_or(1).max(1));
    let least = f64::from(divisors.iter().copied().min().unwrap_or(1).max(1));
    let min_step = variance / most;
    let mut best: Option<(f64, f64)> = None;
    let (base, mantissas): (f64, &[f64]) = if binary {
        (2.0, &[1.0])
    } else {
        (10.0, &[1.0, 2.0, 5.0])
    };
    let mut e = (min_step.log(base) - EPSILON).floor().clamp(-400.0, 400.0) as i32;
    // Bounded: the slack test ends the search within a few decades.
    for _ in 0..400 {
        for &m in mantissas {
            let step = m * base.powi(e);
            if step < min_step * (1.0 - EPSILON) {
                continue;
            }
            if let Some((_, slop)) = best {
                if step * least >= 2.0 * slop + variance {
                    return best.map_or(step, |b| b.0);
                }
            }
            for &d in divisors {
                let bottom = step * (min / step + EPSILON).floor();
                let top = bottom + step * f64::from(d);
                if top >= max - EPSILON * step {
                    let slop = (top - max).max(min - bottom);
                    if best.is_none_or(|(_, b)| slop < b) {
                        best = Some((step, slop));
                    }
                }
            }
        }
        e += 1;
    }
    best.map_or(min_step.max(1.0), |b| b.0)
}

impl YAxis {
    /// The axis for data from `data_min` to `data_max` (already without
    /// nulls and infinities; 0 and 1 when there are none). `labels`: false
    /// when the axes are hidden.
    pub fn new(data_min: f64, data_max: f64, s: &Settings, labels: bool) -> Result<YAxis, String> {
        let (mut min, mut min_src) = (data_min, Source::Data);
        let (mut max, mut max_src) = (data_max, Source::Data);
        let mut max_fixed = false;
        if let Some(m) = s.min.filter(|m| !m.is_nan()) {
            min = m;
            min_src = Source::User;
        }
        match s.max {
            Some(Max::Extremum) => max_src = Source::User,
            Some(Max::Value(m)) if !m.is_nan() => {
                max = m;
                max_src = Source::User;
                max_fixed = true;
            }
            _ => {}
        }
        let mut axis_limit = None;
        if let Some(l) = s.limit.filter(|l| !l.is_nan() && *l != f64::INFINITY) {
            if l < max {
                max = l;
                max_src = Source::User;
                max_fixed = true;
            } else {
                axis_limit = Some(l);
            }
        }
        if min >= max {
            let delta = |x: f64| if x.abs() < 1e-9 { 1.0 } else { 0.1 * x.abs() };
            match (min_src == Source::User, max_fixed) {
                (true, true) => return Err("The min must be less than the max".into()),
                (true, false) => max = min + delta(min),
                (false, true) => min = max - delta(max),
                (false, false) => {
                    let c = (min + max) / 2.0;
                    let d = delta(min.abs().max(max.abs()));
                    (min, max) = (c - d, c + d);
                }
            }
        }
        if !min.is_finite() || !max.is_finite() {
            return Err("The Y axis limits must be finite numbers".into());
        }
        if let Some(base) = s.log_base {
            return Self::log(min, max, base, s.units, labels);
        }
        let mut step = match s.step {
            Some(st) => st,
            None => choose_step(min, max, &s.divisors, s.units == Units::Binary),
        };
        if !step.is_finite() || step <= 0.0 {
            return Err("yStep must be a positive number".into());
        }
        let bottom = if min_src == Source::Data {
            step * (min / step + EPSILON).floor()
        } else {
            min
        };
        let mut top = if max_src == Source::Data {
            let t = step * (max / step - EPSILON).ceil();
            match axis_limit {
                Some(l) if t > l + EPSILON * step => l,
                _ => t,
            }
        } else {
            max
        };
        let mut span = top - bottom;
        if span == 0.0 {
            top += 1.0;
            span = 1.0;
        }
        if !(bottom.is_finite() && top.is_finite() && span.is_finite()) {
            return Err(format!(
                "The Y axis cannot be drawn from {min} to {max} in steps of {step}"
            ));
        }
        let mut axis = YAxis {
            bottom,
            top,
            step: Some(step),
            log_base: None,
            labels: Vec::new(),
        };
        if labels {
            if span > 1000.0 * step {
                step = choose_step(bottom, top, &[4, 5, 6], false);
            }
            let start = step * (bottom / step - EPSILON).ceil();
            // At most a few thousand labels: the span is within 1000 steps.
            let mut i = 0.0;
            while i < 5000.0 {
                let v = start + i * step;
                if v > top + EPSILON * step {
                    break;
                }
                axis.labels.push((v, label(v, Some(step), span, s.units)));
                i += 1.0;
            }
        }
        Ok(axis)
    }

    fn log(min: f64, max: f64, base: f64, units: Units, labels: bool) -> Result<YAxis, String> {
        if base <= 1.0 || base.is_nan() {
            return Err("logBase must be greater than 1".into());
        }
        if min <= 0.0 {
            return Err(
                "Logarithmic scale specified with a dataset with a minimum value less than or equal to zero"
                    .into(),
            );
        }
        let bottom = base.powf(min.log(base).floor());
        let mut top = base.powf(max.log(base).ceil());
        if top == bottom {
            top *= base;
        }
        let mut axis = YAxis {
            bottom,
            top,
            step: None,
            log_base: Some(base),
            labels: Vec::new(),
        };
        if labels {
            let span = top - bottom;
            let mut v = base.powf((bottom.log(base) - EPSILON).ceil());
            while v < top * (1.0 + EPSILON) && axis.labels.len() < 2000 {
                axis.labels.push((v, label(v, None, span, units)));
                v *= base;
            }
        }
        Ok(axis)
    }

    /// The pixel row of `value` between `ymin` (top) and `ymax` (bottom):
    /// scaled between the lowest and highest label, as graphite-web does.
    pub fn coord(&self, value: f64, ymin: f64, ymax: f64) -> Option<f64> {
        let (lo, hi) = if self.labels.is_empty() {
            (self.bottom, self.top)
        } else {
            let lo = self
                .labels
                .iter()
                .map(|l| l.0)
                .fold(f64::INFINITY, f64::min);
            let hi = self
                .labels
                .iter()
                .map(|l| l.0)
                .fold(f64::NEG_INFINITY, f64::max);
            (lo, hi)
        };
        let range = ymax - ymin;
        match self.log_base {
            Some(b) => {
                if value <= 0.0 {
                    return None;
                }
                let d = hi.log(b) - lo.log(b);
                Some(ymax - (value.log(b) - lo.log(b)) * range / if d == 0.0 { 1.0 } else { d })
            }
            None => {
                let d = if hi == lo { 1.0 } else { hi - lo };
                Some(ymax - (value - lo) * range / d)
            }
        }
    }
}

/// graphite-web's `makeLabel`: every label ends in a space.
pub fn label(value: f64, step: Option<f64>, span: f64, units: Units) -> String {
    let (v, prefix) = format_units(value, step, units);
    let (span_v, span_prefix) = format_units(span, step, units);
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix} ")
    };
    if v < 0.1 {
        format!("{} {prefix}", pyfmt::g(v))
    } else if v < 1.0 {
        format!("{v:.2} {prefix}")
    } else if span_v > 10.0 || span_prefix != prefix || span_v > 3.0 {
        format!("{v:.1} {prefix}")
    } else if span_v > 0.1 {
        format!("{v:.2} {prefix}")
    } else {
        format!("{} {prefix}", pyfmt::g(v))
    }
}

const SEC: i64 = 1;
const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86400;

/// One row of graphite-web's table of X axis layouts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XConfig {
    pub seconds: f64,
    pub minor: (i64, f64),
    pub major: (i64, f64),
    pub label: (i64, f64),
    pub format: &'static str,
    pub max_interval: Option<i64>,
}

const fn row(
    seconds: f64,
    minor: (i64, f64),
    major: (i64, f64),
    label: (i64, f64),
    format: &'static str,
    max_interval: Option<i64>,
) -> XConfig {
    XConfig {
        seconds,
        minor,
        major,
        label,
        format,
        max_interval,
    }
}

/// `%m/%d`: graphite-web's DATE_FORMAT.
const X_CONFIGS: [XConfig; 23] = [
    row(
        0.00,
        (SEC, 5.),
        (MIN, 1.),
        (SEC, 5.),
        "%H:%M:%S",
        Some(10 * MIN),
    ),
    row(
        0.07,
        (SEC, 10.),
        (MIN, 1.),
        (SEC, 10.),
        "%H:%M:%S",
        Some(20 * MIN),
    ),
    row(
        0.14,
        (SEC, 15.),
        (MIN, 1.),
        (SEC, 15.),
        "%H:%M:%S",
        Some(30 * MIN),
    ),
    row(
        0.27,
        (SEC, 30.),
        (MIN, 2.),
        (MIN, 1.),
        "%H:%M",
        Some(2 * HOUR),
    ),
    row(
        0.5,
        (MIN, 1.),
        (MIN, 2.),
        (MIN, 1.),
        "%H:%M",
        Some(2 * HOUR),
    ),
    row(
        1.2,
        (MIN, 1.),
        (MIN, 4.),
        (MIN, 2.),
        "%H:%M",
        Some(3 * HOUR),
    ),
    row(
        2.0,
        (MIN, 1.),
        (MIN, 10.),
        (MIN, 5.),
        "%H:%M",
        Some(6 * HOUR),
    ),
    row(
        5.0,
        (MIN, 2.),
        (MIN, 10.),
        (MIN, 10.),
        "%H:%M",
        Some(12 * HOUR),
    ),
    row(10.0, (MIN, 5.), (MIN, 20.), (MIN, 20.), "%H:%M", Some(DAY)),
    row(
        30.0,
        (MIN, 10.),
        (HOUR, 1.),
        (HOUR, 1.),
        "%H:%M",
        Some(2 * DAY),
    ),
    row(
        60.0,
        (MIN, 30.),
        (HOUR, 2.),
        (HOUR, 2.),
        "%H:%M",
        Some(2 * DAY),
    ),
    row(
        100.0,
        (HOUR, 2.),
        (HOUR, 4.),
        (HOUR, 4.),
        "%a %H:%M",
        Some(6 * DAY),
    ),
    row(
        255.0,
        (HOUR, 6.),
        (HOUR, 12.),
        (HOUR, 12.),
        "%m/%d %H:%M",
        Some(10 * DAY),
    ),
    row(
        600.0,
        (HOUR, 6.),
        (DAY, 1.),
        (DAY, 1.),
        "%m/%d",
        Some(14 * DAY),
    ),
    row(
        1000.0,
        (HOUR, 12.),
        (DAY, 1.),
        (DAY, 1.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        2000.0,
        (DAY, 1.),
        (DAY, 2.),
        (DAY, 2.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        4000.0,
        (DAY, 2.),
        (DAY, 4.),
        (DAY, 4.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        8000.0,
        (DAY, 3.5),
        (DAY, 7.),
        (DAY, 7.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        16000.0,
        (DAY, 7.),
        (DAY, 14.),
        (DAY, 14.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        32000.0,
        (DAY, 15.),
        (DAY, 30.),
        (DAY, 30.),
        "%m/%d",
        Some(365 * DAY),
    ),
    row(
        64000.0,
        (DAY, 30.),
        (DAY, 60.),
        (DAY, 60.),
        "%m/%d %Y",
        None,
    ),
    row(
        100000.0,
        (DAY, 60.),
        (DAY, 120.),
        (DAY, 120.),
        "%m/%d %Y",
        None,
    ),
    row(
        120000.0,
        (DAY, 120.),
        (DAY, 240.),
        (DAY, 240.),
        "%m/%d %Y",
        None,
    ),
];

/// The layout for `seconds_per_pixel` over `time_range` seconds: the last
/// row that fits, or the last row.
pub fn x_config(seconds_per_pixel: f64, time_range: i64) -> XConfig {
    X_CONFIGS
        .iter()
        .rev()
        .find(|c| c.seconds <= seconds_per_pixel && c.max_interval.is_none_or(|m| m >= time_range))
        .copied()
        .unwrap_or(X_CONFIGS[X_CONFIGS.len() - 1])
}

/// The times of one kind of tick from `start` (aligned to the unit and
/// step as graphite-web aligns them) to before `end`, all on the UTC
/// offset in force at `start` (as graphite-web's). Bounded in count.
pub fn x_times(
    start: DateTime<Tz>,
    end: DateTime<Tz>,
    (unit, step): (i64, f64),
) -> Vec<DateTime<FixedOffset>> {
    let fixed = start.fixed_offset();
    let (h, m, s) = (
        i64::from(fixed.hour()),
        i64::from(fixed.minute()),
        i64::from(fixed.second()),
    );
    let whole = step.max(1.0) as i64;
    let mut t = match unit {
        SEC => fixed - Duration::seconds(s % whole),
        MIN => fixed - Duration::seconds(s + 60 * (m % whole)),
        HOUR => fixed - Duration::seconds(s + 60 * m + 3600 * (h % whole)),
        _ => fixed - Duration::seconds(s + 60 * m + 3600 * h),
    };
    let delta = Duration::milliseconds((unit as f64 * step * 1000.0).max(1000.0) as i64);
    while t < fixed {
        t += delta;
    }
    let mut out = Vec::new();
    while t < end && out.len() < 10_000 {
        out.push(t);
        t += delta;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(min: f64, max: f64, s: &Settings) -> Vec<String> {
        YAxis::new(min, max, s, true)
            .expect("axis")
            .labels
            .into_iter()
            .map(|l| l.1)
            .collect()
    }

    #[test]
    fn steps_and_labels_as_graphite_web() {
        let s = Settings::default();
        assert_eq!(
            labels(0.0, 100.0, &s),
            ["0 ", "20.0 ", "40.0 ", "60.0 ", "80.0 ", "100.0 "]
        );
        assert_eq!(
            labels(0.0, 0.0, &s),
            ["-1 ", "-0.5 ", "0 ", "0.50 ", "1.00 "]
        );
        let a = YAxis::new(5.0, 5.0, &s, true).expect("axis");
        // All values 5: 4.5 to 5.5, then out to the steps of 0.2.
        assert!(
            (a.bottom - 4.4).abs() < 1e-9 && (a.top - 5.6).abs() < 1e-9,
            "{a:?}"
        );
        // A prefix only where the step reaches it too.
        let k = labels(0.0, 3000.0, &s);
        assert_eq!(k.last().map(String::as_str), Some("3000.0 "), "{k:?}");
        let k = labels(0.0, 30000.0, &s);
        assert_eq!(k.last().map(String::as_str), Some("30.0 k "), "{k:?}");
        let b = labels(
            0.0,
            4096.0,
            &Settings {
                units: Units::Binary,
                ..Settings::default()
            },
        );
        assert_eq!(b.last().map(String::as_str), Some("4.0 Ki "), "{b:?}");
        let n = labels(
            0.0,
            30000.0,
            &Settings {
                units: Units::None,
                ..Settings::default()
            },
        );
        assert_eq!(n.last().map(String::as_str), Some("30000.0 "), "{n:?}");
    }

    #[test]
    fn user_limits_and_errors() {
        let s = Settings {
            min: Some(10.0),
            max: Some(Max::Value(5.0)),
            ..Settings::default()
        };
        assert!(YAxis::new(0.0, 1.0, &s, true).is_err());
        let s = Settings {
            max: Some(Max::Extremum),
            ..Settings::default()
        };
        assert_eq!(YAxis::new(0.0, 93.0, &s, true).expect("axis").top, 93.0);
        let s = Settings {
            step: Some(0.0),
            ..Settings::default()
        };
        assert!(YAxis::new(0.0, 1.0, &s, true).is_err());
        let s = Settings {
            log_base: Some(10.0),
            ..Settings::default()
        };
        let a = YAxis::new(3.0, 2000.0, &s, true).expect("log axis");
        assert_eq!((a.bottom, a.top), (1.0, 10000.0));
        assert_eq!(a.labels.len(), 5);
        assert!(YAxis::new(0.0, 10.0, &s, true).is_err(), "log of zero");
        // Steps and ranges no axis can be drawn with: refused, never looped on.
        for (lo, hi, step) in [
            (0.0, 1e10, Some(1e-300)),
            (0.0, 1.0, Some(f64::INFINITY)),
            (-1e308, 1e308, None),
        ] {
            let s = Settings {
                step,
                ..Settings::default()
            };
            assert!(YAxis::new(lo, hi, &s, true).is_err(), "{lo} {hi} {step:?}");
        }
        // Coordinates: the labels' range spans the pixels.
        let a = YAxis::new(0.0, 100.0, &Settings::default(), true).expect("axis");
        assert_eq!(a.coord(100.0, 10.0, 210.0), Some(10.0));
        assert_eq!(a.coord(50.0, 10.0, 210.0), Some(110.0));
    }

    #[test]
    fn x_layouts() {
        // One day over 300 pixels: 288 s a pixel.
        let c = x_config(288.0, 86400);
        assert_eq!(c.format, "%m/%d %H:%M");
        let c = x_config(12.0, 3600);
        assert_eq!((c.label, c.format), ((MIN, 20.0), "%H:%M"));
        use chrono::TimeZone;
        let tz: Tz = "UTC".parse().expect("tz");
        let start = tz.timestamp_opt(1_700_000_123, 0).single().expect("time");
        let end = tz.timestamp_opt(1_700_003_723, 0).single().expect("time");
        let ticks = x_times(start, end, (MIN, 20.0));
        assert_eq!(ticks.len(), 3, "{ticks:?}");
        assert!(ticks
            .iter()
            .all(|t| t.minute() % 20 == 0 && t.second() == 0));
        assert_eq!(ticks[0].format("%H:%M").to_string(), "22:20");
    }
}
