//! graphite-web's Sorting group.

use super::{calculate, Args, Result, Value};
use crate::server::web::series::Series;

pub const NAMES: &[&str] = &["sortByMaxima", "sortByMinima", "sortByName", "sortByTotal"];

pub fn lookup(name: &str) -> Option<super::Function> {
    Some(match name {
        "sortByName" => |a, _, _| {
            let mut list = a.series(0, "seriesList")?;
            let natural = a.boolean(1, "natural", false)?;
            let reverse = a.boolean(2, "reverse", false)?;
            let key = |s: &Series| {
                if natural {
                    natural_key(&s.name)
                } else {
                    s.name.clone()
                }
            };
            sort_stable(&mut list, |s| key(s), reverse);
            Ok(Value::List(list))
        },
        "sortByTotal" => |a, _, _| by_summary(a, calculate::sum, true),
        "sortByMaxima" => |a, _, _| by_summary(a, calculate::max, true),
        "sortByMinima" => |a, _, _| {
            let list = a.series(0, "seriesList")?;
            let mut kept: Vec<Series> = list
                .into_iter()
                .filter(|s| calculate::max(&s.view()).unwrap_or(0.0) > 0.0)
                .collect();
            sort_numbers(&mut kept, calculate::min, false);
            Ok(Value::List(kept))
        },
        _ => return None,
    })
}

fn by_summary(a: &mut Args, f: super::Aggregation, reverse: bool) -> Result<Value> {
    let mut list = a.series(0, "seriesList")?;
    sort_numbers(&mut list, f, reverse);
    Ok(Value::List(list))
}

/// Python's `sort(key=..., reverse=...)` by a summary, None as -inf:
/// stable, equal keys keep their order even reversed.
fn sort_numbers(list: &mut Vec<Series>, f: super::Aggregation, reverse: bool) {
    let mut keyed: Vec<(f64, Series)> = list
        .drain(..)
        .map(|s| (f(&s.view()).unwrap_or(f64::NEG_INFINITY), s))
        .collect();
    keyed.sort_by(|a, b| {
        let o = a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal);
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
    list.extend(keyed.into_iter().map(|(_, s)| s));
}

fn sort_stable<K: Ord>(list: &mut [Series], key: impl Fn(&Series) -> K, reverse: bool) {
    list.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if reverse {
            o.reverse()
        } else {
            o
        }
    });
}

/// graphite-web's natural sort key: each run of digits zero-padded to 10.
fn natural_key(name: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in name.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            let trimmed = digits.trim_start_matches('0');
            let n = if trimmed.is_empty() { "0" } else { trimmed };
            out.push_str(&format!("{n:0>10}"));
            digits.clear();
        }
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn natural() {
        assert_eq!(super::natural_key("a2.b10"), "a0000000002.b0000000010");
    }
}
