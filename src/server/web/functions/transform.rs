//! graphite-web's Transform group: each series changed point by point, or
//! moved in time.

use super::{agg_func, input, tag_number, Args, Context, Result, Value};
use crate::server::web::grammar::Call;
use crate::server::web::pyfmt;
use crate::server::web::series::Series;

pub const NAMES: &[&str] = &[
    "absolute",
    "consolidateBy",
    "constantLine",
    "delay",
    "derivative",
    "hitcount",
    "integral",
    "invert",
    "keepLastValue",
    "log",
    "nonNegativeDerivative",
    "offset",
    "perSecond",
    "pow",
    "scale",
    "scaleToSeconds",
    "squareRoot",
    "summarize",
    "timeShift",
    "timeStack",
    "transformNull",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "scale" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let (f, _) = a.number(1, "factor")?;
            Ok(map_named(
                list,
                |n| format!("scale({n},{})", pyfmt::g(f)),
                "scale",
                pyfmt::repr(f),
                |v| v.map(|x| x * f),
            ))
        },
        "offset" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let (f, _) = a.number(1, "factor")?;
            Ok(map_named(
                list,
                |n| format!("offset({n},{})", pyfmt::g(f)),
                "offset",
                pyfmt::repr(f),
                |v| v.map(|x| x + f),
            ))
        },
        "pow" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let (f, _) = a.number(1, "factor")?;
            Ok(map_named(
                list,
                |n| format!("pow({n},{})", pyfmt::g(f)),
                "pow",
                pyfmt::repr(f),
                |v| safe_pow(v, f),
            ))
        },
        "absolute" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            Ok(map_named(
                list,
                |n| format!("absolute({n})"),
                "absolute",
                "1".into(),
                |v| v.map(f64::abs),
            ))
        },
        "invert" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            Ok(map_named(
                list,
                |n| format!("invert({n})"),
                "invert",
                "1".into(),
                |v| safe_pow(v, -1.0),
            ))
        },
        "squareRoot" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            Ok(map_named(
                list,
                |n| format!("squareRoot({n})"),
                "squareRoot",
                "1".into(),
                |v| safe_pow(v, 0.5),
            ))
        },
        "log" => log,
        "scaleToSeconds" => scale_to_seconds,
        "derivative" => |a, _, _| deltas(a, "derivative", false),
        "nonNegativeDerivative" => |a, _, _| deltas(a, "nonNegativeDerivative", true),
        "perSecond" => |a, _, _| deltas(a, "perSecond", true),
        "integral" => integral,
        "keepLastValue" => keep_last_value,
        "transformNull" => transform_null,
        "delay" => delay,
        "timeShift" => time_shift,
        "summarize" => summarize,
        "consolidateBy" => consolidate_by,
        "constantLine" => |a, c, _| {
            // A float parameter in graphite-web: 42 is named "42.0".
            let (v, _) = a.number(0, "value")?;
            Ok(Value::List(vec![constant_line(c, v, false)]))
        },
        "timeStack" => time_stack,
        "hitcount" => hitcount,
        _ => return None,
    })
}

/// Python's `math.pow` kept to real results (graphite-web's `safePow`).
fn safe_pow(v: Option<f64>, e: f64) -> Option<f64> {
    let x = v?;
    if x == 0.0 && e < 0.0 {
        return None;
    }
    let r = x.powf(e);
    (r.is_finite() || !x.is_finite())
        .then_some(r)
        .filter(|r| !r.is_nan())
}

/// Renames each series (its tag set as graphite-web sets it) and maps its
/// values in place.
fn map_named(
    list: Vec<Series>,
    name: impl Fn(&str) -> String,
    tag: &str,
    tag_value: String,
    f: impl Fn(Option<f64>) -> Option<f64>,
) -> Value {
    Value::List(
        list.into_iter()
            .map(|mut s| {
                s.tags.insert(tag.into(), tag_value.clone());
                let n = name(&s.name);
                s.rename(n);
                s.values = s.points().into_iter().map(&f).collect();
                s.values_per_point = 1;
                s
            })
            .collect(),
    )
}

fn log(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let (base, int) = a.opt_number(1, "base")?.unwrap_or((10.0, true));
    let text = tag_number(base, int);
    let out = list
        .into_iter()
        .map(|mut s| {
            s.tags.insert("log".into(), text.clone());
            let values = s
                .points()
                .into_iter()
                .map(|v| v.filter(|x| *x > 0.0).map(|x| x.ln() / base.ln()))
                .collect();
            s.derive(format!("log({}, {text})", s.name), values)
        })
        .collect();
    Ok(Value::List(out))
}

fn scale_to_seconds(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    // graphite-web reads `seconds` as a float: the tag says "1.0".
    let (seconds, _) = a.number(1, "seconds")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            s.tags.insert("scaleToSeconds".into(), pyfmt::repr(seconds));
            s.rename(format!(
                "scaleToSeconds({},{})",
                s.name,
                seconds.trunc() as i64
            ));
            let factor = seconds / s.step as f64;
            s.values = s
                .points()
                .into_iter()
                .map(|v| v.map(|x| round6(x * factor)))
                .collect();
            s.values_per_point = 1;
            s
        })
        .collect();
    Ok(Value::List(out))
}

/// Python's `round(x, 6)`, near enough (to the last bit but rare ties).
fn round6(x: f64) -> f64 {
    let r = (x * 1e6).round() / 1e6;
    if r.is_finite() {
        r
    } else {
        x
    }
}

/// derivative, nonNegativeDerivative and perSecond.
fn deltas(a: &mut Args, func: &str, non_negative: bool) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let (max_value, min_value) = if non_negative {
        (
            a.opt_number(1, "maxValue")?.map(|n| n.0),
            a.opt_number(2, "minValue")?.map(|n| n.0),
        )
    } else {
        (None, None)
    };
    let out = list
        .into_iter()
        .map(|mut s| {
            let mut prev: Option<f64> = None;
            let step = s.step as f64;
            let values = s
                .points()
                .into_iter()
                .map(|val| {
                    if !non_negative {
                        let d = match (prev, val) {
                            (Some(p), Some(v)) => Some(v - p),
                            _ => None,
                        };
                        prev = val;
                        return d;
                    }
                    let (d, p) = non_negative_delta(val, prev, max_value, min_value);
                    prev = p;
                    if func == "perSecond" {
                        d.map(|d| round6(d / step))
                    } else {
                        d
                    }
                })
                .collect();
            s.tags.insert(func.into(), "1".into());
            s.derive(format!("{func}({})", s.name), values)
        })
        .collect();
    Ok(Value::List(out))
}

fn non_negative_delta(
    val: Option<f64>,
    prev: Option<f64>,
    max: Option<f64>,
    min: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    if let (Some(m), Some(v)) = (max, val) {
        if v > m {
            return (None, None);
        }
    }
    if let (Some(m), Some(v)) = (min, val) {
        if v < m {
            return (None, None);
        }
    }
    let (Some(p), Some(v)) = (prev, val) else {
        return (None, val);
    };
    if v >= p {
        return (Some(v - p), val);
    }
    if let Some(m) = max {
        return (Some(m + 1.0 + v - p - min.unwrap_or(0.0)), val);
    }
    if let Some(m) = min {
        return (Some(v - m), val);
    }
    (None, val)
}

fn integral(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            let mut total = 0.0;
            let values = s
                .points()
                .into_iter()
                .map(|v| {
                    v.map(|x| {
                        total += x;
                        total
                    })
                })
                .collect();
            s.tags.insert("integral".into(), "1".into());
            s.derive(format!("integral({})", s.name), values)
        })
        .collect();
    Ok(Value::List(out))
}

fn keep_last_value(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let limit = a.opt_number(1, "limit")?.map_or(f64::INFINITY, |n| n.0);
    let out = list
        .into_iter()
        .map(|mut s| {
            s.rename(format!("keepLastValue({})", s.name));
            let mut v = s.points();
            let mut nones = 0usize;
            let mut last: Option<f64> = None;
            for i in 0..v.len() {
                match v[i] {
                    None => nones += 1,
                    Some(x) => {
                        if nones > 0 && nones as f64 <= limit {
                            if let Some(l) = last {
                                v[i - nones..i].iter_mut().for_each(|p| *p = Some(l));
                            }
                        }
                        nones = 0;
                        last = Some(x);
                    }
                }
            }
            if nones > 0 && nones as f64 <= limit {
                if let Some(l) = last {
                    let n = v.len();
                    v[n - nones..].iter_mut().for_each(|p| *p = Some(l));
                }
            }
            s.values = v;
            s.values_per_point = 1;
            s
        })
        .collect();
    Ok(Value::List(out))
}

fn transform_null(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    // Given, a float to graphite-web ("-1.0"); the default stays 0 ("0").
    let given = a.opt_number(1, "default")?;
    let (default, text) = match given {
        Some((x, _)) => (x, pyfmt::repr(x)),
        None => (0.0, "0".to_string()),
    };
    let reference = a
        .opt_series(2, "referenceSeries")?
        .filter(|r| !r.is_empty());
    let defaults: Option<Vec<Option<f64>>> = reference.as_ref().map(|r| {
        super::rows(r)
            .iter()
            .map(|row| row.iter().any(Option::is_some).then_some(default))
            .collect()
    });
    let out = list
        .into_iter()
        .map(|mut s| {
            s.tags.insert("transformNull".into(), text.clone());
            if defaults.is_some() {
                s.tags.insert("referenceSeries".into(), "1".into());
                s.rename(format!(
                    "transformNull({},{},referenceSeries)",
                    s.name,
                    pyfmt::g(default)
                ));
            } else {
                s.rename(format!("transformNull({},{})", s.name, pyfmt::g(default)));
            }
            let pts = s.points();
            s.values = match &defaults {
                Some(d) => (0..pts.len().max(d.len()))
                    .map(|i| {
                        pts.get(i)
                            .copied()
                            .flatten()
                            .or_else(|| d.get(i).copied().flatten())
                    })
                    .collect(),
                None => pts.into_iter().map(|v| v.or(Some(default))).collect(),
            };
            s.values_per_point = 1;
            s
        })
        .collect();
    Ok(Value::List(out))
}

fn delay(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let steps = a.int(1, "steps")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            let v = s.points();
            let n = v.len();
            let k = steps.unsigned_abs().min(n as u64) as usize;
            let values = if steps < 0 {
                let mut x = v[k..].to_vec();
                x.extend(std::iter::repeat_n(None, k));
                x
            } else if steps == 0 {
                // Python's series[:-0] is empty.
                Vec::new()
            } else {
                let mut x = vec![None; k];
                x.extend_from_slice(&v[..n - k]);
                x
            };
            s.tags.insert("delay".into(), steps.to_string());
            s.derive(format!("delay({},{steps})", s.name), values)
        })
        .collect();
    Ok(Value::List(out))
}

/// graphite-web's `parseTimeOffset`, in seconds.
pub fn offset_seconds(text: &str) -> Result<i64> {
    let t = text.trim().to_lowercase();
    let probe = 1_000_000_000;
    crate::server::web::attime::parse(
        &format!(
            "now{}{}",
            if t.starts_with(['+', '-']) { "" } else { "+" },
            t
        ),
        chrono_tz::Tz::UTC,
        probe,
    )
    .map(|t| t - probe)
    .map_err(|e| super::RenderError::Input(format!("Invalid offset {text:?}: {e}")))
}

fn time_shift(a: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let mut shift = a.string(1, "timeShift")?;
    let reset_end = a.boolean(2, "resetEnd", true)?;
    let _align_dst = a.boolean(3, "alignDST", false)?;
    if shift.starts_with(|c: char| c.is_ascii_digit()) {
        shift = format!("-{shift}");
    }
    let delta = offset_seconds(&shift)?;
    let Some(first) = list.first() else {
        return Ok(Value::List(Vec::new()));
    };
    let shifted_ctx = Context {
        start: ctx.start + delta,
        end: ctx.end + delta,
        ..*ctx
    };
    let Some(node) = call.args.first() else {
        return input("timeShift: missing seriesList");
    };
    let mut out = super::evaluate_target(node, &shifted_ctx)?;
    for s in &mut out {
        s.tags.insert("timeShift".into(), shift.clone());
        s.name = format!("timeShift({}, \"{shift}\")", s.name);
        if reset_end {
            s.end = first.end;
        } else {
            s.end = s.end - s.start + first.start;
        }
        s.start = first.start;
    }
    Ok(Value::List(out))
}

fn summarize(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let interval_text = a.string(1, "intervalString")?;
    let func = a.opt_string(2, "func")?.unwrap_or_else(|| "sum".into());
    let align = a.boolean(3, "alignToFrom", false)?;
    let interval = offset_seconds(&interval_text)?.abs();
    if interval == 0 {
        return input("summarize: the interval must not be 0");
    }
    let Some(f) = agg_func(&func) else {
        return input(format!("Unsupported aggregation function: {func}"));
    };
    let mut out = Vec::new();
    for mut s in list {
        let (new_start, mut new_end) = if align {
            (s.start, s.end)
        } else {
            (
                s.start - s.start.rem_euclid(interval),
                s.end - s.end.rem_euclid(interval) + interval,
            )
        };
        let points = s.points();
        let step = s.step.max(1);
        let timestamps: Vec<i64> = (0..)
            .map(|i| s.start + i * step)
            .take_while(|t| *t < s.end)
            .collect();
        let n = timestamps.len().min(points.len());
        let per_interval = interval as f64 / step as f64;
        let mut values = Vec::new();
        let (mut i, mut t) = (0usize, new_start);
        while t < new_end {
            let mut first = i;
            let mut non_null = 0;
            while i < n && timestamps[i] < t + interval {
                if timestamps[i] <= t {
                    first = i;
                }
                if timestamps[i] >= t && points[i].is_some() {
                    non_null += 1;
                }
                i += 1;
            }
            let ok = non_null > 0 && non_null as f64 / per_interval >= s.xff;
            values.push(if ok { f(&points[first..i]) } else { None });
            t += interval;
            if values.len() > super::MAX_POINTS_MADE {
                return input("summarize: too many intervals");
            }
        }
        if align {
            new_end = t;
        }
        s.tags.insert("summarize".into(), interval_text.clone());
        s.tags.insert("summarizeFunction".into(), func.clone());
        let name = format!(
            "summarize({}, \"{interval_text}\", \"{func}\"{})",
            s.name,
            if align { ", true" } else { "" }
        );
        let mut n = s.derive(name, values);
        n.start = new_start;
        n.end = new_end;
        n.step = interval;
        out.push(n);
    }
    Ok(Value::List(out))
}

fn consolidate_by(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let func = a.string(1, "consolidationFunc")?;
    if ![
        "sum", "average", "avg", "avg_zero", "min", "max", "first", "last",
    ]
    .contains(&func.as_str())
    {
        return input(format!("Invalid consolidation function: '{func}'"));
    }
    let out = list
        .into_iter()
        .map(|mut s| {
            s.consolidation = if func == "avg" {
                "average".into()
            } else {
                func.clone()
            };
            s.tags.insert("consolidateBy".into(), func.clone());
            s.rename(format!("consolidateBy({},\"{func}\")", s.name));
            s
        })
        .collect();
    Ok(Value::List(out))
}

/// graphite-web's `constantLine`: three points over the request's range.
pub fn constant_line(ctx: &Context, value: f64, int: bool) -> Series {
    let text = pyfmt::number(value, int);
    let step = (ctx.end - ctx.start) / 2;
    let mut s = Series::new(
        text.clone(),
        ctx.start,
        ctx.end,
        step.max(1),
        vec![Some(value); 3],
        ctx.xff,
    );
    s.path_expression = format!("constantLine({text})");
    s
}

fn time_stack(a: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let mut unit = a
        .opt_string(1, "timeShiftUnit")?
        .unwrap_or_else(|| "1d".into());
    let from = a.opt_int(2, "timeShiftStart")?.unwrap_or(0);
    let to = a.opt_int(3, "timeShiftEnd")?.unwrap_or(7);
    if unit.starts_with(|c: char| c.is_ascii_digit()) {
        unit = format!("-{unit}");
    }
    let delta = offset_seconds(&unit)?;
    let Some(first) = list.first() else {
        return Ok(Value::List(Vec::new()));
    };
    if to.saturating_sub(from) > 1000 {
        return input("timeStack: at most 1000 shifts");
    }
    let Some(node) = call.args.first() else {
        return input("timeStack: missing seriesList");
    };
    let mut out = Vec::new();
    for shift in from..to {
        let Some(by) = delta.checked_mul(shift).filter(|b| b.abs() < 1 << 40) else {
            return input("timeStack: the shift is out of range");
        };
        let moved = Context {
            start: ctx.start + by,
            end: ctx.end + by,
            ..*ctx
        };
        for mut s in super::evaluate_target(node, &moved)? {
            s.tags.insert("timeShiftUnit".into(), unit.clone());
            s.tags.insert("timeShift".into(), shift.to_string());
            s.rename(format!("timeShift({}, {unit}, {shift})", s.name));
            s.start = first.start;
            s.end = first.end;
            out.push(s);
        }
    }
    Ok(Value::List(out))
}

fn hitcount(a: &mut Args, ctx: &Context, call: &Call) -> Result<Value> {
    let mut list = a.series(0, "seriesList")?;
    let text = a.string(1, "intervalString")?;
    let align = a.boolean(2, "alignToInterval", false)?;
    let interval = offset_seconds(&text)?.abs();
    if interval == 0 {
        return input("hitcount: the interval must not be 0");
    }
    if align {
        // The request's start moved back to the whole day, hour or minute.
        let unit = [86400, 3600, 60]
            .into_iter()
            .find(|u| interval >= *u)
            .unwrap_or(1);
        let moved = Context {
            start: ctx.start - ctx.start.rem_euclid(unit),
            ..*ctx
        };
        let Some(node) = call.args.first() else {
            return input("hitcount: missing seriesList");
        };
        list = super::evaluate_target(node, &moved)?;
        for s in &mut list {
            let count = (s.end - s.start).div_euclid(interval);
            s.end = s.start + count * interval + interval;
        }
    }
    let mut out = Vec::new();
    for mut s in list {
        let step = s.step;
        let buckets_n = ((s.end - s.start) as f64 / interval as f64).ceil().max(0.0) as usize;
        if buckets_n > super::MAX_POINTS_MADE {
            return input("hitcount: too many intervals");
        }
        let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); buckets_n];
        let new_start = s.end - buckets_n as i64 * interval;
        for (i, v) in s.points().into_iter().enumerate() {
            let Some(v) = v else { continue };
            let start_time = s.start + i as i64 * step;
            let (start_bucket, start_mod) = (
                (start_time - new_start).div_euclid(interval),
                (start_time - new_start).rem_euclid(interval),
            );
            let end_time = start_time + step;
            let (mut end_bucket, mut end_mod) = (
                (end_time - new_start).div_euclid(interval),
                (end_time - new_start).rem_euclid(interval),
            );
            if end_bucket >= buckets_n as i64 {
                end_bucket = buckets_n as i64 - 1;
                end_mod = interval;
            }
            let mut put = |b: i64, x: f64| {
                if b >= 0 && (b as usize) < buckets.len() {
                    buckets[b as usize].push(x);
                }
            };
            if start_bucket == end_bucket {
                put(start_bucket, v * (end_mod - start_mod) as f64);
            } else {
                put(start_bucket, v * (interval - start_mod) as f64);
                for j in start_bucket + 1..end_bucket {
                    put(j, v * interval as f64);
                }
                if end_mod > 0 {
                    put(end_bucket, v * end_mod as f64);
                }
            }
        }
        let values = buckets
            .iter()
            .map(|b| (!b.is_empty()).then(|| b.iter().fold(0.0, |acc, x| acc + x)))
            .collect();
        s.tags.insert("hitcount".into(), text.clone());
        let name = format!(
            "hitcount({}, \"{text}\"{})",
            s.name,
            if align { ", true" } else { "" }
        );
        let mut n = s.derive(name, values);
        n.start = new_start;
        n.step = interval;
        out.push(n);
    }
    Ok(Value::List(out))
}
