//! graphite-web's Graph group: options for drawing, kept on the series
//! (and in their names and tags where graphite-web puts them there).

use super::{Args, Result, Value};
use crate::server::web::pyfmt;

pub const NAMES: &[&str] = &[
    "alpha",
    "color",
    "dashed",
    "drawAsInfinite",
    "lineWidth",
    "secondYAxis",
    "stacked",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "color" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let c = a.string(1, "theColor")?;
            Ok(option(list, "color", c))
        },
        "alpha" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let (x, int) = a.number(1, "alpha")?;
            Ok(option(list, "alpha", pyfmt::number(x, int)))
        },
        "lineWidth" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let (x, int) = a.number(1, "width")?;
            Ok(option(list, "lineWidth", pyfmt::number(x, int)))
        },
        "dashed" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            let (x, int) = a.opt_number(1, "dashLength")?.unwrap_or((5.0, true));
            for s in &mut list {
                s.tags.insert("dashed".into(), pyfmt::number(x, int));
                s.name = format!("dashed({}, {})", s.name, pyfmt::g(x));
                s.options.insert("dashed".into(), pyfmt::number(x, int));
            }
            Ok(Value::List(list))
        },
        "secondYAxis" => |a, _, _| flagged(a, "secondYAxis"),
        "drawAsInfinite" => |a, _, _| flagged(a, "drawAsInfinite"),
        "stacked" => stacked,
        _ => return None,
    })
}

fn option(mut list: Vec<crate::server::web::series::Series>, key: &str, value: String) -> Value {
    for s in &mut list {
        s.options.insert(key.into(), value.clone());
    }
    Value::List(list)
}

fn flagged(a: &mut Args, flag: &str) -> Result<Value> {
    let mut list = a.series(0, "seriesList")?;
    for s in &mut list {
        s.options.insert(flag.into(), "true".into());
        s.tags.insert(flag.into(), "1".into());
        s.name = format!("{flag}({})", s.name);
    }
    Ok(Value::List(list))
}

/// graphite-web's `stacked`: each series the running total of those before
/// it (within one call; graphite-web also carries totals across targets).
fn stacked(
    a: &mut Args,
    _: &super::Context,
    _: &crate::server::web::grammar::Call,
) -> Result<Value> {
    let list = a.series(0, "seriesLists")?;
    let stack = a
        .opt_string(1, "stackName")?
        .unwrap_or_else(|| "__DEFAULT__".into());
    let mut total: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for mut s in list {
        let pts = s.points();
        let mut values = Vec::with_capacity(pts.len());
        for (i, v) in pts.iter().enumerate() {
            if total.len() <= i {
                total.push(0.0);
            }
            values.push(v.map(|x| {
                total[i] += x;
                total[i]
            }));
        }
        let name = if stack == "__DEFAULT__" {
            s.tags.insert("stacked".into(), stack.clone());
            format!("stacked({})", s.name)
        } else {
            s.name.clone()
        };
        let mut n = s.derive(name, values);
        n.options.insert("stacked".into(), "true".into());
        out.push(n);
    }
    Ok(Value::List(out))
}
