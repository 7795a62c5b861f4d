//! graphite-web's Filter Series group: series kept or dropped whole, or
//! points dropped by value.

use super::{agg_func, input, Args, Context, Result, Value};
use crate::server::web::grammar::Call;
use crate::server::web::pyfmt;
use crate::server::web::series::Series;

pub const NAMES: &[&str] = &[
    "averageAbove",
    "averageBelow",
    "currentAbove",
    "currentBelow",
    "exclude",
    "grep",
    "highest",
    "highestAverage",
    "highestCurrent",
    "highestMax",
    "limit",
    "lowest",
    "lowestAverage",
    "lowestCurrent",
    "maximumAbove",
    "maximumBelow",
    "minimumAbove",
    "minimumBelow",
    "mostDeviant",
    "removeAbovePercentile",
    "removeAboveValue",
    "removeBelowPercentile",
    "removeBelowValue",
    "removeEmptySeries",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "highest" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let n = a.opt_int(1, "n")?.unwrap_or(1);
            let func = a.opt_string(2, "func")?.unwrap_or_else(|| "average".into());
            ranked(list, n, &func, true)
        },
        "lowest" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let n = a.opt_int(1, "n")?.unwrap_or(1);
            let func = a.opt_string(2, "func")?.unwrap_or_else(|| "average".into());
            ranked(list, n, &func, false)
        },
        "highestCurrent" => |a, _, _| ranked_n(a, "current", true),
        "highestMax" => |a, _, _| ranked_n(a, "max", true),
        "highestAverage" => |a, _, _| ranked_n(a, "average", true),
        "lowestCurrent" => |a, _, _| ranked_n(a, "current", false),
        "lowestAverage" => |a, _, _| ranked_n(a, "average", false),
        "currentAbove" => |a, _, _| threshold(a, "last", |v, n| v > n),
        "currentBelow" => |a, _, _| threshold(a, "last", |v, n| v <= n),
        "averageAbove" => |a, _, _| threshold(a, "average", |v, n| v > n),
        "averageBelow" => |a, _, _| threshold(a, "average", |v, n| v <= n),
        "maximumAbove" => |a, _, _| threshold(a, "max", |v, n| v > n),
        "maximumBelow" => |a, _, _| threshold(a, "max", |v, n| v <= n),
        "minimumAbove" => |a, _, _| threshold(a, "min", |v, n| v > n),
        "minimumBelow" => |a, _, _| threshold(a, "min", |v, n| v <= n),
        "limit" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            let n = a.int(1, "n")?;
            list.truncate(py_index(n, list.len()));
            Ok(Value::List(list))
        },
        "exclude" => |a, _, _| by_regex(a, false),
        "grep" => |a, _, _| by_regex(a, true),
        "removeEmptySeries" => remove_empty,
        "removeAboveValue" => |a, _, _| remove_by_value(a, "removeAboveValue", |v, n| v > n, false),
        "removeBelowValue" => |a, _, _| remove_by_value(a, "removeBelowValue", |v, n| v < n, true),
        "mostDeviant" => most_deviant,
        "removeAbovePercentile" => |a, _, _| remove_by_percentile(a, "removeAbovePercentile", true),
        "removeBelowPercentile" => {
            |a, _, _| remove_by_percentile(a, "removeBelowPercentile", false)
        }
        _ => return None,
    })
}

/// Where Python's `list[:n]` stops for a list of `len` items.
fn py_index(n: i64, len: usize) -> usize {
    if n < 0 {
        (len as i64 + n).max(0) as usize
    } else {
        (n as usize).min(len)
    }
}

fn summary(s: &Series, func: &str) -> Option<f64> {
    agg_func(func).and_then(|f| f(&s.view()))
}

fn ranked_n(a: &mut Args, func: &str, highest: bool) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let n = a.opt_int(1, "n")?.unwrap_or(1);
    ranked(list, n, func, highest)
}

/// graphite-web's `highest`/`lowest`: a stable sort by the summary
/// (None ranks as -inf), the first `n`.
fn ranked(list: Vec<Series>, n: i64, func: &str, highest: bool) -> Result<Value> {
    if agg_func(func).is_none() {
        return input(format!("Unsupported aggregation function: {func}"));
    }
    let mut keyed: Vec<(f64, Series)> = list
        .into_iter()
        .map(|s| (summary(&s, func).unwrap_or(f64::NEG_INFINITY), s))
        .collect();
    if highest {
        // Python's sort(reverse=True) keeps equal keys in their order.
        keyed.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    } else {
        keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    }
    let keep = py_index(n, keyed.len());
    Ok(Value::List(
        keyed.into_iter().take(keep).map(|(_, s)| s).collect(),
    ))
}

fn threshold(a: &mut Args, func: &str, op: fn(f64, f64) -> bool) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let (n, _) = a.number(1, "n")?;
    Ok(Value::List(
        list.into_iter()
            .filter(|s| summary(s, func).is_some_and(|v| op(v, n)))
            .collect(),
    ))
}

/// A user's regex, compiled with a bound on its size.
pub fn user_regex(pattern: &str) -> Result<regex::Regex> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| super::RenderError::Input(format!("bad regular expression {pattern:?}: {e}")))
}

fn by_regex(a: &mut Args, keep: bool) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let re = user_regex(&a.string(1, "pattern")?)?;
    Ok(Value::List(
        list.into_iter()
            .filter(|s| re.is_match(&s.name) == keep)
            .collect(),
    ))
}

fn remove_empty(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let xff = a.opt_number(1, "xFilesFactor")?.map_or(0.0, |n| n.0);
    Ok(Value::List(
        list.into_iter()
            .filter(|s| super::combine::xff_ok(&s.points(), xff))
            .collect(),
    ))
}

fn remove_by_value(
    a: &mut Args,
    func: &str,
    drop: fn(f64, f64) -> bool,
    nulls_too: bool,
) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let (n, _) = a.number(1, "n")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            s.rename(format!("{func}({}, {})", s.name, pyfmt::g(n)));
            s.values = s
                .points()
                .into_iter()
                .map(|v| match v {
                    Some(x) if drop(x, n) => None,
                    None if nulls_too => None,
                    v => v,
                })
                .collect();
            s.values_per_point = 1;
            s
        })
        .collect();
    Ok(Value::List(out))
}

/// graphite-web's `_getPercentile` (not interpolated).
pub fn percentile(points: &[Option<f64>], n: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = points.iter().filter_map(|v| *v).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let fractional = n / 100.0 * (sorted.len() + 1) as f64;
    let mut rank = fractional.trunc() as i64;
    rank += (fractional - rank as f64).ceil() as i64;
    let len = sorted.len() as i64;
    Some(if rank <= 0 {
        sorted[0]
    } else if rank > len {
        sorted[sorted.len() - 1]
    } else {
        sorted[(rank - 1) as usize]
    })
}

fn remove_by_percentile(a: &mut Args, func: &str, above: bool) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let (n, _) = a.number(1, "n")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            s.rename(format!("{func}({}, {})", s.name, pyfmt::g(n)));
            // graphite-web computes it with nPercentile, which tags the series.
            s.tags.insert("nPercentile".into(), pyfmt::repr(n));
            let pts = s.points();
            if let Some(p) = percentile(&pts, n) {
                s.values = pts
                    .into_iter()
                    .map(|v| match v {
                        Some(x) if (above && x > p) || (!above && x < p) => None,
                        v => v,
                    })
                    .collect();
                s.values_per_point = 1;
            }
            s
        })
        .collect();
    Ok(Value::List(out))
}

fn most_deviant(a: &mut Args, _: &Context, _: &Call) -> Result<Value> {
    let list = a.series(0, "seriesList")?;
    let n = a.int(1, "n")?;
    let mut deviants: Vec<(f64, Series)> = Vec::new();
    for s in list {
        let pts = s.points();
        let Some(mean) = super::calculate::avg(&pts) else {
            continue;
        };
        let known: Vec<f64> = pts.iter().filter_map(|v| *v).collect();
        let square_sum = known.iter().fold(0.0, |acc, v| acc + (v - mean).powi(2));
        deviants.push((square_sum / known.len() as f64, s));
    }
    deviants.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    let keep = py_index(n, deviants.len());
    Ok(Value::List(
        deviants.into_iter().take(keep).map(|(_, s)| s).collect(),
    ))
}
