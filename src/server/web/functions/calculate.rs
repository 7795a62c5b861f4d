//! graphite-web's Calculate group (moving windows) and the null-safe
//! aggregations every group uses (graphite-web's `safe` module): Python's
//! left-to-right sums, so totals match to the last bit.

use super::{agg_func, input, Args, Context, Result, Value};
use crate::server::web::grammar::Call;
use crate::server::web::series::{py_max, py_min};

pub const NAMES: &[&str] = &[
    "movingAverage",
    "movingMax",
    "movingMedian",
    "movingMin",
    "movingSum",
    "movingWindow",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "movingWindow" => |a, c, call| {
            let func = a.opt_string(2, "func")?.unwrap_or_else(|| "average".into());
            let xff = a.opt_number(3, "xFilesFactor")?.map(|n| n.0);
            moving(a, c, call, &func, xff)
        },
        "movingAverage" => |a, c, call| moving_fixed(a, c, call, "average"),
        "movingMedian" => |a, c, call| moving_fixed(a, c, call, "median"),
        "movingSum" => |a, c, call| moving_fixed(a, c, call, "sum"),
        "movingMin" => |a, c, call| moving_fixed(a, c, call, "min"),
        "movingMax" => |a, c, call| moving_fixed(a, c, call, "max"),
        _ => return None,
    })
}

fn known(values: &[Option<f64>]) -> impl Iterator<Item = f64> + '_ {
    values.iter().filter_map(|v| *v)
}

pub fn sum(values: &[Option<f64>]) -> Option<f64> {
    let mut it = known(values).peekable();
    it.peek()?;
    Some(it.fold(0.0, |a, b| a + b))
}

pub fn count(values: &[Option<f64>]) -> Option<f64> {
    Some(known(values).count() as f64)
}

pub fn avg(values: &[Option<f64>]) -> Option<f64> {
    let n = known(values).count();
    sum(values).map(|s| s / n as f64)
}

pub fn avg_zero(values: &[Option<f64>]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(
        values
            .iter()
            .map(|v| v.unwrap_or(0.0))
            .fold(0.0, |a, b| a + b)
            / values.len() as f64,
    )
}

pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = known(values).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

pub fn min(values: &[Option<f64>]) -> Option<f64> {
    known(values).reduce(py_min)
}

pub fn max(values: &[Option<f64>]) -> Option<f64> {
    known(values).reduce(py_max)
}

pub fn diff(values: &[Option<f64>]) -> Option<f64> {
    let mut it = known(values);
    let first = it.next()?;
    // sum([first, -x1, -x2, ...]) from 0, as Python adds them.
    Some(it.fold(0.0 + first, |a, b| a + (-b)))
}

pub fn stddev(values: &[Option<f64>]) -> Option<f64> {
    let n = known(values).count();
    if n == 0 {
        return None;
    }
    let mean = sum(values)? / n as f64;
    let sq = known(values).fold(0.0, |a, v| a + (v - mean) * (v - mean));
    Some((sq / n as f64).sqrt())
}

pub fn range(values: &[Option<f64>]) -> Option<f64> {
    Some(max(values)? - min(values)?)
}

pub fn multiply(values: &[Option<f64>]) -> Option<f64> {
    if values.iter().any(Option::is_none) {
        return None;
    }
    known(values).reduce(|a, b| a * b)
}

pub fn last(values: &[Option<f64>]) -> Option<f64> {
    values.iter().rev().find_map(|v| *v)
}

fn moving_fixed(args: &mut Args, ctx: &Context, call: &Call, func: &str) -> Result<Value> {
    let xff = args.opt_number(2, "xFilesFactor")?.map(|n| n.0);
    moving(args, ctx, call, func, xff)
}

/// graphite-web's `movingWindow`: the series fetched again from a window
/// earlier, each point the aggregate of the window before it.
fn moving(
    args: &mut Args,
    ctx: &Context,
    call: &Call,
    func: &str,
    xff: Option<f64>,
) -> Result<Value> {
    let list = args.series(0, "seriesList")?;
    let window = args.take(1, "windowSize");
    if list.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    let Some(f) = agg_func(func) else {
        return input(format!("Unsupported aggregation function: {func}"));
    };
    let (preview, by_time) = match &window {
        Some(Value::Str(s)) => {
            let offset = super::transform::offset_seconds(s)?;
            (offset.abs(), Some(s.clone()))
        }
        Some(Value::Int(n)) => (max_step(&list).saturating_mul(*n), None),
        Some(Value::Float(f)) => (max_step(&list).saturating_mul(*f as i64), None),
        _ => {
            return input(format!(
                "moving{}: windowSize must be a number or a time string",
                capitalize(func)
            ))
        }
    };
    // A window longer than ten years reads nothing any archive keeps.
    if !(0..=10 * 365 * 86400).contains(&preview) {
        return input("windowSize must be between 0 and ten years");
    }
    let earlier = Context {
        start: ctx.start - preview,
        ..*ctx
    };
    let Some(first) = call.args.first() else {
        return input("missing seriesList");
    };
    let fetched = super::evaluate_target(first, &earlier)?;
    let tag = format!("moving{}", capitalize(func));
    let mut out = Vec::new();
    for mut s in fetched {
        let (name, points, tag_value) = match (&by_time, &window) {
            (Some(text), _) => (
                format!("{tag}({},\"{text}\")", s.name),
                (preview / s.step.max(1)) as usize,
                text.clone(),
            ),
            (None, Some(Value::Int(n))) => (
                format!("{tag}({},{n})", s.name),
                (*n).max(0) as usize,
                n.to_string(),
            ),
            (None, Some(Value::Float(x))) => {
                let text = crate::server::web::pyfmt::repr(*x);
                (
                    format!("{tag}({},{text})", s.name),
                    (*x).max(0.0) as usize,
                    text,
                )
            }
            _ => unreachable_window()?,
        };
        s.tags.insert(tag.clone(), tag_value);
        let effective = xff.unwrap_or(s.xff);
        let pts = s.points();
        let mut values = Vec::new();
        for i in points + 1..=pts.len() {
            let win = &pts[i - points..i];
            let non_null: Vec<Option<f64>> = win.iter().filter(|v| v.is_some()).copied().collect();
            let ok = !non_null.is_empty()
                && points > 0
                && non_null.len() as f64 / points as f64 >= effective;
            values.push(if ok { f(&non_null) } else { None });
        }
        let mut n = s.derive(name, values);
        n.start = s.start + preview;
        out.push(n);
    }
    Ok(Value::List(out))
}

fn max_step(list: &[crate::server::web::series::Series]) -> i64 {
    list.iter().map(|s| s.step).max().unwrap_or(1)
}

fn unreachable_window<T>() -> Result<T> {
    input("windowSize must be a number or a time string")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_safe() {
        let v = [Some(1.0), None, Some(3.0), Some(2.0)];
        assert_eq!(sum(&v), Some(6.0));
        assert_eq!(avg(&v), Some(2.0));
        assert_eq!(median(&v), Some(2.0));
        assert_eq!(diff(&v), Some(-4.0));
        assert_eq!(range(&v), Some(2.0));
        assert_eq!(multiply(&v), None);
        assert_eq!(last(&v), Some(2.0));
        assert_eq!(count(&v), Some(3.0));
        assert_eq!(sum(&[None, None]), None);
        assert_eq!(avg_zero(&[Some(4.0), None]), Some(2.0));
        assert_eq!(capitalize("average"), "Average");
    }
}
