//! Diamond's configuration files, in ConfigObj's format: `[section]`,
//! `[[subsection]]` (depth from the bracket count, not the indentation),
//! `key = value`, `#` comments (also after an unquoted value), a value
//! with an unquoted comma is a list (`a, b`; `a,` is a one-item list),
//! quotes keep commas and `#`, `'''`/`"""` values span lines. Duplicate
//! keys and sections are errors, as in ConfigObj.

/// A value: a string, or a list when it had an unquoted comma.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    List(Vec<String>),
}

impl Val {
    /// The value as one string (a list joined with `, `).
    pub fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::List(l) => l.join(", "),
        }
    }
}

/// A section: its keys and subsections, in file order, with their lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub keys: Vec<(String, Val, usize)>,
    pub subs: Vec<(String, Section, usize)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Val> {
        self.keys
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, _)| v)
    }

    pub fn sub(&self, name: &str) -> Option<&Section> {
        self.subs
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, _)| s)
    }

    /// The subsection `name`, made when absent.
    pub fn sub_mut(&mut self, name: &str) -> &mut Section {
        let i = match self.subs.iter().position(|(n, _, _)| n == name) {
            Some(i) => i,
            None => {
                self.subs.push((name.to_string(), Section::default(), 0));
                self.subs.len() - 1
            }
        };
        &mut self.subs[i].1
    }

    /// Sets `key` (replacing its value where it is).
    pub fn set(&mut self, key: &str, v: Val, line: usize) {
        match self.keys.iter_mut().find(|(k, _, _)| k == key) {
            Some(slot) => {
                slot.1 = v;
                slot.2 = line;
            }
            None => self.keys.push((key.to_string(), v, line)),
        }
    }

    /// ConfigObj's `merge`: `other`'s keys win, subsections merge deeply.
    pub fn merge(&mut self, other: Section) {
        for (k, v, l) in other.keys {
            self.set(&k, v, l);
        }
        for (n, s, _) in other.subs {
            self.sub_mut(&n).merge(s);
        }
    }
}

/// Deepest section nesting taken.
const MAX_DEPTH: usize = 16;

/// Reads `text`; an error is `(line, why)`.
pub fn parse(text: &str) -> Result<Section, (usize, String)> {
    let mut root = Section::default();
    // The path of the section being filled.
    let mut path: Vec<String> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let n = i + 1;
        let line = lines[i].trim().trim_start_matches('\u{feff}');
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            let depth = line.chars().take_while(|c| *c == '[').count();
            let inner = line[depth..].trim_start();
            let close = inner
                .find(']')
                .ok_or((n, format!("bad section header {line:?}")))?;
            let name = inner[..close].trim();
            let rest = inner[close..].trim_start_matches(']');
            let closing = inner[close..].len() - rest.len();
            let rest = rest.trim();
            if closing != depth || !(rest.is_empty() || rest.starts_with('#')) || name.is_empty() {
                return Err((n, format!("bad section header {line:?}")));
            }
            if depth > path.len() + 1 {
                return Err((
                    n,
                    format!("section {line:?} is nested too deep for where it is"),
                ));
            }
            if depth > MAX_DEPTH {
                return Err((n, format!("sections nested more than {MAX_DEPTH} deep")));
            }
            path.truncate(depth - 1);
            let parent = path.iter().fold(&mut root, |s, p| s.sub_mut(p));
            if parent.sub(name).is_some() {
                return Err((n, format!("duplicate section {name:?}")));
            }
            parent
                .subs
                .push((unquote(name).to_string(), Section::default(), n));
            path.push(unquote(name).to_string());
            continue;
        }
        let Some(eq) = line.find('=') else {
            return Err((n, format!("expected `key = value`, found {line:?}")));
        };
        let key = unquote(line[..eq].trim()).to_string();
        if key.is_empty() {
            return Err((n, "a value without a key".into()));
        }
        let raw = line[eq + 1..].trim();
        let value = if let Some(q) = ["'''", "\"\"\""].into_iter().find(|q| raw.starts_with(q)) {
            // A triple-quoted value, maybe over several lines.
            let mut body = raw[3..].to_string();
            loop {
                if let Some(end) = body.find(q) {
                    body.truncate(end);
                    break;
                }
                let Some(next) = lines.get(i) else {
                    return Err((n, "a triple-quoted value that does not end".into()));
                };
                body.push('\n');
                body.push_str(next);
                i += 1;
            }
            Val::Str(body)
        } else {
            value(raw).map_err(|e| (n, e))?
        };
        let section = path.iter().fold(&mut root, |s, p| s.sub_mut(p));
        if section.get(&key).is_some() {
            return Err((n, format!("duplicate key {key:?}")));
        }
        section.keys.push((key, value, n));
    }
    Ok(root)
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// One line's value: items split at unquoted commas, up to a `#`.
fn value(raw: &str) -> Result<Val, String> {
    let mut items: Vec<String> = Vec::new();
    let mut comma = false;
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' if cur.trim().is_empty() => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(x) if x == c => break,
                        Some(x) => s.push(x),
                        None => return Err(format!("a quote that does not end in {raw:?}")),
                    }
                }
                cur = s;
                quoted = true;
                // Only spaces, a comma or a comment may follow.
                while chars.peek().is_some_and(|x| x.is_whitespace()) {
                    chars.next();
                }
                match chars.peek() {
                    None | Some(',') | Some('#') => {}
                    Some(_) => return Err(format!("text after a quoted value in {raw:?}")),
                }
            }
            ',' => {
                comma = true;
                items.push(if quoted {
                    cur.clone()
                } else {
                    cur.trim().to_string()
                });
                cur.clear();
                quoted = false;
            }
            '#' if !quoted => break,
            '#' => break,
            c => cur.push(c),
        }
    }
    let last = if quoted { cur } else { cur.trim().to_string() };
    if !comma {
        return Ok(Val::Str(last));
    }
    if !last.is_empty() || quoted {
        items.push(last);
    }
    // A lone `,` is the empty list.
    if items.len() == 1 && items[0].is_empty() && raw.trim() == "," {
        items.clear();
    }
    Ok(Val::List(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configobj_as_diamond_writes_it() {
        let s = parse(
            "[server]\nhandlers = a.B, c.D\npid_file = /run/x.pid # where\n\n[handlers]\n[[default]]\n[[GraphiteHandler]]\n  host = 127.0.0.1\n  one = x,\n  none = ,\n  q = \"a, b # c\"\n  multi = '''one\ntwo'''\n[collectors]\n[[NetworkCollector eth1]]\nenabled = True\n",
        )
        .expect("parse");
        let server = s.sub("server").expect("server");
        assert_eq!(
            server.get("handlers"),
            Some(&Val::List(vec!["a.B".into(), "c.D".into()]))
        );
        assert_eq!(server.get("pid_file"), Some(&Val::Str("/run/x.pid".into())));
        let g = s
            .sub("handlers")
            .and_then(|h| h.sub("GraphiteHandler"))
            .expect("g");
        assert_eq!(g.get("one"), Some(&Val::List(vec!["x".into()])));
        assert_eq!(g.get("none"), Some(&Val::List(vec![])));
        assert_eq!(g.get("q"), Some(&Val::Str("a, b # c".into())));
        assert_eq!(g.get("multi"), Some(&Val::Str("one\ntwo".into())));
        assert!(s
            .sub("collectors")
            .and_then(|c| c.sub("NetworkCollector eth1"))
            .is_some());
    }

    #[test]
    fn configobjs_errors_with_their_line() {
        assert_eq!(parse("[a]\nx = 1\nx = 2\n").expect_err("dup").0, 3);
        assert_eq!(parse("[a]\n[[[b]]]\n").expect_err("deep").0, 2);
        assert_eq!(parse("[a]\n[a]\n").expect_err("dup section").0, 2);
        assert_eq!(parse("[a\n").expect_err("header").0, 1);
        assert_eq!(parse("junk\n").expect_err("no =").0, 1);
        assert_eq!(parse("x = 'open\n").expect_err("quote").0, 1);
    }
}
