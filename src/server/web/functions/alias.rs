//! graphite-web's Alias group: series renamed, values untouched.

use super::{agg_key, filter::user_regex, input, Args, Result, Value};

pub const NAMES: &[&str] = &[
    "alias",
    "aliasByMetric",
    "aliasByNode",
    "aliasByTags",
    "aliasSub",
    "cactiStyle",
    "legendValue",
];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "alias" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            let new = a.string(1, "newName")?;
            list.iter_mut().for_each(|s| s.name = new.clone());
            Ok(Value::List(list))
        },
        "aliasByNode" | "aliasByTags" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            let nodes = a.rest_nodes(1)?;
            for s in &mut list {
                s.name = agg_key(s, &nodes);
            }
            Ok(Value::List(list))
        },
        "aliasByMetric" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            for s in &mut list {
                s.name = substr_last(&s.name);
            }
            Ok(Value::List(list))
        },
        "aliasSub" => alias_sub,
        "legendValue" => legend_value,
        "cactiStyle" => cacti_style,
        _ => return None,
    })
}

/// graphite-web's `substr(name, -1)`: the last node of the innermost
/// call's first argument.
fn substr_last(name: &str) -> String {
    let left = name.rfind('(').map_or(0, |i| i + 1);
    let right = name.find(')').unwrap_or(name.len());
    let clean = if left <= right {
        &name[left..right]
    } else {
        ""
    };
    let last = clean.rsplit('.').next().unwrap_or(clean);
    last.split(',').next().unwrap_or(last).to_string()
}

/// A Python `re.sub` replacement (`\1`, `\g<1>`, `\g<name>`, `\n`) in the
/// regex crate's syntax.
pub fn python_replacement(r: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = r.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let mut n = d.to_string();
                    if let Some(e) = chars.peek().filter(|e| e.is_ascii_digit()) {
                        n.push(*e);
                        chars.next();
                    }
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('g') if chars.peek() == Some(&'<') => {
                    chars.next();
                    let name: String = chars.by_ref().take_while(|c| *c != '>').collect();
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(other) if other.is_ascii_alphabetic() => {
                    return input(format!("bad escape \\{other} in the replacement {r:?}"))
                }
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return input(format!("a trailing backslash in the replacement {r:?}")),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

fn alias_sub(
    a: &mut Args,
    _: &super::Context,
    _: &crate::server::web::grammar::Call,
) -> Result<Value> {
    let mut list = a.series(0, "seriesList")?;
    let re = user_regex(&a.string(1, "search")?)?;
    let replace = python_replacement(&a.string(2, "replace")?)?;
    for s in &mut list {
        s.name = re.replace_all(&s.name, replace.as_str()).into_owned();
    }
    Ok(Value::List(list))
}

/// graphite-web's `format_units`: a value scaled to its SI or binary prefix.
pub fn format_units(v: f64, system: &str, units: Option<&str>) -> (f64, String) {
    const SI: &[(&str, f64)] = &[("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    const BINARY: &[(&str, f64)] = &[
        ("Pi", 1125899906842624.0),
        ("Ti", 1099511627776.0),
        ("Gi", 1073741824.0),
        ("Mi", 1048576.0),
        ("Ki", 1024.0),
    ];
    let table = if system == "binary" { BINARY } else { SI };
    let whole = |x: f64| {
        if x - x.floor() < 1e-11 && x > 1.0 {
            x.floor()
        } else {
            x
        }
    };
    for (prefix, size) in table {
        if v.abs() >= *size {
            return (whole(v / size), format!("{prefix}{}", units.unwrap_or("")));
        }
    }
    (whole(v), units.unwrap_or("").to_string())
}

/// Python's `str()` of a summary value: `None`, or the float's repr.
fn py_str(v: Option<f64>) -> String {
    v.map_or_else(|| "None".into(), crate::server::web::pyfmt::repr)
}

fn legend_value(
    a: &mut Args,
    _: &super::Context,
    _: &crate::server::web::grammar::Call,
) -> Result<Value> {
    let mut list = a.series(0, "seriesList")?;
    let mut types: Vec<String> = Vec::new();
    for i in 1.. {
        match a.take(i, "") {
            Some(Value::Str(s)) => types.push(s),
            Some(_) => return input("legendValue: value types must be strings"),
            None => break,
        }
    }
    let system = match types.last().map(String::as_str) {
        Some(s @ ("si" | "binary")) => {
            let s = s.to_string();
            types.pop();
            Some(s)
        }
        _ => None,
    };
    for t in &types {
        let f = super::agg_func(t.strip_suffix("Series").unwrap_or(t));
        for s in &mut list {
            let value = f.map(|f| f(&s.view()));
            match &system {
                None => {
                    let shown = if f.is_some() {
                        py_str(value.flatten())
                    } else {
                        "(?)".into()
                    };
                    s.name = format!("{} ({t}: {shown})", s.name);
                }
                Some(sys) => {
                    let shown = match (f, value.flatten()) {
                        (None, _) => "(?)".to_string(),
                        (Some(_), None) => "None".to_string(),
                        (Some(_), Some(v)) => {
                            let (x, p) = format_units(v, sys, None);
                            format!("{x:.2}{p}")
                        }
                    };
                    s.name = format!("{:<20}{t:<5}{shown:<10}", s.name);
                }
            }
        }
    }
    Ok(Value::List(list))
}

fn cacti_style(
    a: &mut Args,
    _: &super::Context,
    _: &crate::server::web::grammar::Call,
) -> Result<Value> {
    use super::calculate::{last, max, min};
    let mut list = a.series(0, "seriesList")?;
    let system = a.opt_string(1, "system")?;
    let units = a.opt_string(2, "units")?;
    if list.is_empty() {
        return Ok(Value::List(list));
    }
    let fmt = |x: f64| match (&system, &units) {
        (Some(sys), Some(u)) => {
            let (v, p) = format_units(x, sys, Some(u));
            format!("{v:.2} {p}")
        }
        (Some(sys), None) => {
            let (v, p) = format_units(x, sys, None);
            format!("{v:.2}{p}")
        }
        (None, Some(u)) => format!("{x:.2} {u}"),
        (None, None) => format!("{x:.2}"),
    };
    // Widths from int(value or 3), as graphite-web measures them.
    let width = |f: fn(&[Option<f64>]) -> Option<f64>| {
        list.iter()
            .map(|s| {
                fmt(f(&s.view()).filter(|v| *v != 0.0).unwrap_or(3.0).trunc())
                    .chars()
                    .count()
            })
            .max()
            .unwrap_or(0)
            + 3
    };
    let name_len = list
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let (last_len, max_len, min_len) = (width(last), width(max), width(min));
    let shown = |v: Option<f64>| v.map_or_else(|| "nan".to_string(), fmt);
    for s in &mut list {
        let pts = s.points();
        s.name = format!(
            "{:<name_len$} Current:{:<last_len$} Max:{:<max_len$} Min:{:<min_len$} ",
            s.name,
            shown(last(&pts)),
            shown(max(&pts)),
            shown(min(&pts)),
        );
    }
    Ok(Value::List(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements() {
        assert_eq!(python_replacement(r"\1 A").as_deref(), Ok("${1} A"));
        assert_eq!(
            python_replacement(r"\g<host>-$").as_deref(),
            Ok("${host}-$$")
        );
        assert!(python_replacement(r"\q").is_err());
        assert_eq!(substr_last("sumSeries(a.b.c)"), "c");
        assert_eq!(substr_last("a.b.c"), "c");
    }
}
