//! graphite-web's Alias group: series renamed, values untouched.

use super::{agg_key, filter::user_regex, input, Args, Result, Value};

pub const NAMES: &[&str] = &[
    "alias",
    "aliasByMetric",
    "aliasByNode",
    "aliasByTags",
    "aliasSub",
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
