//! The target grammar of graphite-web: path expressions, calls with
//! positional and keyword arguments, pipes, strings, numbers, booleans,
//! `None` and `inf`. Parsed, never evaluated as code.
//!
//! `a.b|sumSeries()|alias("x")` is read as `alias(sumSeries(a.b), "x")`,
//! which is how graphite-web evaluates a pipe. Strings keep their text
//! between the quotes as written (graphite-web does not undo escapes:
//! `"\1 A"` is a backslash, a one, a space and an A).

/// Calls nest at most this deep (graphite-web's own targets rarely pass 5).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Path(String),
    Call(Call),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Node>,
    pub kwargs: Vec<(String, Node)>,
    /// The call's text as written (what graphite-web names a
    /// `seriesByTag` fetch by).
    pub raw: String,
}

/// Characters that end a path element unless escaped with a backslash.
const SYMBOLS: &[u8] = b"(){},.'\"\\|";

fn is_metric_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && (!c.is_ascii() || !SYMBOLS.contains(&(c as u8)))
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

/// Parses one target.
pub fn parse(target: &str) -> Result<Node, String> {
    let mut p = Parser { s: target, pos: 0 };
    let node = p.expression(0)?;
    p.skip_ws();
    if p.pos < p.s.len() {
        return Err(format!(
            "Invalid target {target:?}: unexpected {:?} at character {}",
            p.rest().chars().next().unwrap_or(' '),
            p.pos + 1
        ));
    }
    Ok(node)
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    fn error(&self, what: &str) -> String {
        format!(
            "Invalid target {:?}: {what} at character {}",
            self.s,
            self.pos + 1
        )
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`) at the cursor, not consumed.
    fn ident(&self) -> Option<&'a str> {
        let r = self.rest();
        let first = r.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let n = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        Some(&r[..n])
    }

    /// A call, a path expression, then any piped calls.
    fn expression(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("calls nest deeper than {MAX_DEPTH}")));
        }
        self.skip_ws();
        let mut node = match self.call(depth)? {
            Some(call) => Node::Call(call),
            None => Node::Path(self.path()?),
        };
        loop {
            let save = self.pos;
            self.skip_ws();
            if !self.rest().starts_with('|') {
                self.pos = save;
                break;
            }
            self.pos += 1;
            self.skip_ws();
            let Some(mut call) = self.call(depth)? else {
                return Err(self.error("a function call expected after '|'"));
            };
            call.args.insert(0, node);
            node = Node::Call(call);
        }
        Ok(node)
    }

    /// `name(args, kw=args)`, or `None` (cursor unmoved) when no call starts here.
    fn call(&mut self, depth: usize) -> Result<Option<Call>, String> {
        let start = self.pos;
        let Some(name) = self.ident() else {
            return Ok(None);
        };
        let after = self.pos + name.len();
        if !self.s[after..].starts_with('(') {
            return Ok(None);
        }
        self.pos = after + 1;
        let mut call = Call {
            name: name.to_string(),
            args: Vec::new(),
            kwargs: Vec::new(),
            raw: String::new(),
        };
        if !self.eat(')') {
            loop {
                self.skip_ws();
                let kw = self.ident().filter(|id| {
                    let r = self.s[self.pos + id.len()..].trim_start();
                    r.starts_with('=') && !r.starts_with("==")
                });
                if let Some(kw) = kw {
                    self.pos += kw.len();
                    self.eat('=');
                    let value = self.arg(depth)?;
                    call.kwargs.push((kw.to_string(), value));
                } else if call.kwargs.is_empty() {
                    let value = self.arg(depth)?;
                    call.args.push(value);
                } else {
                    return Err(self.error("a positional argument after a keyword argument"));
                }
                if self.eat(',') {
                    continue;
                }
                if self.eat(')') {
                    break;
                }
                return Err(self.error("',' or ')' expected"));
            }
        }
        call.raw = self.s[start..self.pos].to_string();
        Ok(Some(call))
    }

    /// Whether the cursor, after `n` bytes, is where an argument ends.
    fn ends_arg(&self, n: usize) -> bool {
        let r = self.s[self.pos + n..].trim_start();
        r.is_empty() || r.starts_with(',') || r.starts_with(')')
    }

    fn arg(&mut self, depth: usize) -> Result<Node, String> {
        self.skip_ws();
        let r = self.rest();
        if let Some(id) = self.ident() {
            let lower = id.to_ascii_lowercase();
            let keyword = match lower.as_str() {
                "true" => Some(Node::Bool(true)),
                "false" => Some(Node::Bool(false)),
                "none" => Some(Node::None),
                "inf" => Some(Node::Float(f64::INFINITY)),
                _ => None,
            };
            if let Some(k) = keyword.filter(|_| self.ends_arg(id.len())) {
                self.pos += id.len();
                return Ok(k);
            }
        }
        if let Some(n) = number_len(r).filter(|&n| self.ends_arg(n)) {
            let text = &r[..n];
            self.pos += n;
            return Ok(if text.contains(['.', 'e', 'E']) {
                Node::Float(text.parse().map_err(|_| self.error("a bad number"))?)
            } else {
                match text.parse::<i64>() {
                    Ok(i) => Node::Int(i),
                    Err(_) => Node::Float(text.parse().map_err(|_| self.error("a bad number"))?),
                }
            });
        }
        if r.starts_with('"') || r.starts_with('\'') {
            return self.string().map(Node::Str);
        }
        self.expression(depth + 1)
    }

    /// A quoted string: the text between the quotes, escapes kept as written.
    fn string(&mut self) -> Result<String, String> {
        let r = self.rest();
        let quote = r.as_bytes()[0];
        let bytes = r.as_bytes();
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'\n' | b'\r' => break,
                q if q == quote => {
                    let text = r[1..i].to_string();
                    self.pos += i + 1;
                    return Ok(text);
                }
                _ => i += 1,
            }
        }
        Err(self.error("an unterminated string"))
    }

    /// A path expression: elements of metric characters, `\`-escaped
    /// symbols and `{a,b}` lists, joined by dots.
    fn path(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let before = out.len();
            loop {
                let r = self.rest();
                let Some(c) = r.chars().next() else { break };
                if c == '\\' {
                    match r[1..].chars().next() {
                        Some(e) if e.is_ascii() && (SYMBOLS.contains(&(e as u8)) || e == '=') => {
                            out.push(e);
                            self.pos += 2;
                        }
                        _ => return Err(self.error("a bad escape")),
                    }
                } else if c == '{' {
                    let end = r.find('}').ok_or_else(|| self.error("an unclosed '{'"))?;
                    let inner = &r[1..end];
                    if inner.is_empty()
                        || !inner
                            .split(',')
                            .all(|p| !p.is_empty() && p.chars().all(is_metric_char))
                    {
                        return Err(self.error("a bad {…} list"));
                    }
                    out.push_str(&r[..=end]);
                    self.pos += end + 1;
                } else if is_metric_char(c) {
                    out.push(c);
                    self.pos += c.len_utf8();
                } else {
                    break;
                }
            }
            if out.len() == before {
                return Err(self.error(if before == 0 {
                    "a metric path or function expected"
                } else {
                    "an empty path element"
                }));
            }
            if self.rest().starts_with('.') {
                out.push('.');
                self.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }
}

/// Length of a number (`-?\d+(\.\d+)?([eE]-?\d+)?`) at the start of `s`.
fn number_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let n = digits(i);
    if n == 0 {
        return None;
    }
    i += n;
    if b.get(i) == Some(&b'.') && digits(i + 1) > 0 {
        i += 1 + digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let j = i + 1 + usize::from(b.get(i + 1) == Some(&b'-'));
        if digits(j) > 0 {
            i = j + digits(j);
        }
    }
    Some(i)
}

/// Every path expression in a target (what is fetched before evaluating).
pub fn paths(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::Path(p) => out.push(p.clone()),
        Node::Call(c) => {
            for a in c.args.iter().chain(c.kwargs.iter().map(|(_, v)| v)) {
                paths(a, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Vec<Node>) -> Node {
        Node::Call(Call {
            name: name.into(),
            args,
            kwargs: vec![],
            raw: String::new(),
        })
    }

    fn strip(n: Node) -> Node {
        match n {
            Node::Call(mut c) => {
                c.raw.clear();
                c.args = c.args.into_iter().map(strip).collect();
                c.kwargs = c.kwargs.into_iter().map(|(k, v)| (k, strip(v))).collect();
                Node::Call(c)
            }
            n => n,
        }
    }

    #[test]
    fn targets() {
        let p = |s: &str| parse(s).map(strip);
        assert_eq!(p("a.b.c"), Ok(Node::Path("a.b.c".into())));
        assert_eq!(
            p("a.{b,c}*.d[0-9]?"),
            Ok(Node::Path("a.{b,c}*.d[0-9]?".into()))
        );
        assert_eq!(p(r"a.b\(1\).c"), Ok(Node::Path("a.b(1).c".into())));
        assert_eq!(
            p("name=cpu;host=a"),
            Ok(Node::Path("name=cpu;host=a".into()))
        );
        assert_eq!(
            p("sumSeries(a.*, b)"),
            Ok(call(
                "sumSeries",
                vec![Node::Path("a.*".into()), Node::Path("b".into())]
            ))
        );
        assert_eq!(
            p(r#"aliasSub(a.b, "(^.*$)", "\1 A")"#),
            Ok(call(
                "aliasSub",
                vec![
                    Node::Path("a.b".into()),
                    Node::Str("(^.*$)".into()),
                    Node::Str(r"\1 A".into())
                ]
            ))
        );
        assert_eq!(
            p("a.b | scale(2) |alias('x')"),
            Ok(call(
                "alias",
                vec![
                    call("scale", vec![Node::Path("a.b".into()), Node::Int(2)]),
                    Node::Str("x".into())
                ]
            ))
        );
        assert_eq!(
            p("f(1, -2.5, 1e3, true, None, inf, 1h)"),
            Ok(call(
                "f",
                vec![
                    Node::Int(1),
                    Node::Float(-2.5),
                    Node::Float(1000.0),
                    Node::Bool(true),
                    Node::None,
                    Node::Float(f64::INFINITY),
                    Node::Path("1h".into()),
                ]
            ))
        );
        let Ok(Node::Call(c)) = parse("groupByNode(a.*, 1, callback='sum')") else {
            panic!("no call");
        };
        assert_eq!(
            c.kwargs,
            vec![("callback".to_string(), Node::Str("sum".into()))]
        );
        assert_eq!(c.raw, "groupByNode(a.*, 1, callback='sum')");
    }

    #[test]
    fn bad_targets_are_errors_not_panics() {
        for bad in [
            "",
            "sumSeries(a",
            "sumSeries(a,)",
            "a..b",
            "a.",
            "f(x=1, 2)",
            "'unterminated",
            "f('x)",
            "a.{b",
            "a.{}",
            "a|b",
            "a.b)",
            r"a\q",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = "f(".repeat(10_000) + "a" + &")".repeat(10_000);
        assert!(parse(&deep).is_err());
    }
}
