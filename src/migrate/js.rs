//! etsy statsd's config.js read as the JavaScript object literal it is,
//! never run: objects, arrays, strings in either quote, numbers (hex,
//! `Infinity`, `NaN`), `true`, `false`, `null`, `undefined`, `//` and
//! `/* */` comments, unquoted keys, trailing commas, a closing `;`.
//! Anything else (a `require(...)`, arithmetic) is code: refused with its
//! line and column, since carbyne does not run the file.

/// A literal value; object keys keep their order and line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Undefined,
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value, usize)>),
}

impl Value {
    /// JavaScript's truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// An object's member (`undefined` when absent or not an object).
    pub fn get(&self, key: &str) -> &Value {
        match self {
            Value::Object(members) => members
                .iter()
                .rev()
                .find(|(k, _, _)| k == key)
                .map_or(&Value::Undefined, |(_, v, _)| v),
            _ => &Value::Undefined,
        }
    }

    /// JavaScript's `Number(x)`.
    pub fn number(&self) -> f64 {
        match self {
            Value::Undefined => f64::NAN,
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => crate::server::js::number(s),
            Value::Array(a) if a.is_empty() => 0.0,
            Value::Array(a) if a.len() == 1 => a[0].number(),
            _ => f64::NAN,
        }
    }

    /// JavaScript's `String(x)`, for strings and numbers.
    pub fn text(&self) -> String {
        match self {
            Value::String(s) => s.clone(),
            Value::Number(n) => crate::server::js::to_string(*n),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            Value::Undefined => "undefined".into(),
            Value::Array(a) => a.iter().map(Value::text).collect::<Vec<_>>().join(","),
            Value::Object(_) => "[object Object]".into(),
        }
    }

    /// The literal, short, for messages.
    pub fn show(&self) -> String {
        match self {
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!(
                "[{}]",
                a.iter().map(Value::show).collect::<Vec<_>>().join(", ")
            ),
            Value::Object(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, v, _)| format!("{k}: {}", v.show()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.text(),
        }
    }
}

/// Deepest nesting taken (a config is a few levels deep).
const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    /// The line at a position already counted, so counting goes on from
    /// there (a file of many keys is not counted from its start each time).
    counted: std::cell::Cell<(usize, usize)>,
}

/// Reads `text` as one literal; errors say `line L, column C: why`.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        counted: std::cell::Cell::new((0, 1)),
    };
    p.space()?;
    // `config = (...)` is as good as `config = ...`.
    let v = p.value(0)?;
    p.space()?;
    if p.peek() == Some(b';') {
        p.i += 1;
        p.space()?;
    }
    if p.i < p.s.len() {
        return Err(p.err(
            "code after the object (carbyne reads one literal object and does not run the file)",
        ));
    }
    Ok(v)
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn line(&self) -> usize {
        let at = self.i.min(self.text.len());
        let (from, line) = match self.counted.get() {
            (pos, line) if pos <= at => (pos, line),
            _ => (0, 1),
        };
        let line = line + self.text[from..at].matches('\n').count();
        self.counted.set((at, line));
        line
    }

    fn err(&self, why: &str) -> String {
        let before = &self.text[..self.i.min(self.text.len())];
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        let at: String = self.text[self.i.min(self.text.len())..]
            .chars()
            .take(30)
            .take_while(|c| *c != '\n')
            .collect();
        format!("line {}, column {col}: {why} (at {at:?})", self.line())
    }

    /// Whitespace and comments.
    fn space(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_whitespace() => self.i += 1,
                Some(b'/') if self.s.get(self.i + 1) == Some(&b'/') => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                Some(b'/') if self.s.get(self.i + 1) == Some(&b'*') => {
                    match self.text[self.i + 2..].find("*/") {
                        Some(end) => self.i += 2 + end + 2,
                        None => return Err(self.err("a /* comment that does not end")),
                    }
                }
                // A byte-order mark or non-breaking space.
                Some(0xC2 | 0xEF) => {
                    let rest = &self.text[self.i..];
                    match rest.chars().next() {
                        Some(c) if c.is_whitespace() || c == '\u{feff}' => self.i += c.len_utf8(),
                        _ => return Ok(()),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested more than 64 deep"));
        }
        self.space()?;
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'(') => {
                self.i += 1;
                let v = self.value(depth + 1)?;
                self.space()?;
                if self.peek() != Some(b')') {
                    return Err(self.err("expected `)`"));
                }
                self.i += 1;
                Ok(v)
            }
            Some(q @ (b'"' | b'\'' | b'`')) => self.string(q).map(Value::String),
            Some(c) if c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.') => self.number(),
            Some(_) => {
                let word = self.word();
                let v = match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    "undefined" => Value::Undefined,
                    "Infinity" => Value::Number(f64::INFINITY),
                    "NaN" => Value::Number(f64::NAN),
                    _ => {
                        self.i -= word.len();
                        return Err(self.err(
                            "code, not a value: carbyne does not run config.js; write the value it gives",
                        ));
                    }
                };
                self.after_value()?;
                Ok(v)
            }
            None => Err(self.err("the file ends where a value should be")),
        }
    }

    /// After a value: a `,`, `}`, `]`, `)` or `;` must come (else it is an
    /// expression such as `8125 + 1`).
    fn after_value(&mut self) -> Result<(), String> {
        self.space()?;
        match self.peek() {
            None | Some(b',' | b'}' | b']' | b')' | b';') => Ok(()),
            Some(_) => Err(self.err(
                "code, not a value: carbyne does not run config.js; write the value it gives",
            )),
        }
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80)
        {
            self.i += 1;
        }
        self.text[start..self.i].to_string()
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut members = Vec::new();
        loop {
            self.space()?;
            match self.peek() {
                Some(b'}') => {
                    self.i += 1;
                    break;
                }
                None => return Err(self.err("an object that does not end")),
                _ => {}
            }
            let line = self.line();
            let key = match self.peek() {
                Some(q @ (b'"' | b'\'')) => self.string(q)?,
                // A number as a key (`1: "x"`), kept as written.
                Some(c) if c.is_ascii_digit() => self.word(),
                _ => {
                    let w = self.word();
                    if w.is_empty() {
                        return Err(self.err("expected a key"));
                    }
                    w
                }
            };
            self.space()?;
            if self.peek() != Some(b':') {
                return Err(self.err(&format!("expected `:` after the key {key:?}")));
            }
            self.i += 1;
            let v = self.value(depth + 1)?;
            members.push((key, v, line));
            self.space()?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
        self.after_value()?;
        Ok(Value::Object(members))
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.space()?;
            match self.peek() {
                Some(b']') => {
                    self.i += 1;
                    break;
                }
                None => return Err(self.err("an array that does not end")),
                _ => {}
            }
            items.push(self.value(depth + 1)?);
            self.space()?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {}
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
        self.after_value()?;
        Ok(Value::Array(items))
    }

    fn string(&mut self, quote: u8) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.i..];
            let Some(c) = rest.chars().next() else {
                self.i = start;
                return Err(self.err("a string that does not end"));
            };
            self.i += c.len_utf8();
            match c {
                c if c as u32 == u32::from(quote) => break,
                '$' if quote == b'`' && self.peek() == Some(b'{') => {
                    self.i -= 1;
                    return Err(self.err(
                        "code, not a value: carbyne does not run config.js; write the value it gives",
                    ));
                }
                '\n' if quote != b'`' => {
                    self.i = start;
                    return Err(self.err("a string that does not end on its line"));
                }
                '\\' => {
                    let Some(e) = self.text[self.i..].chars().next() else {
                        continue;
                    };
                    self.i += e.len_utf8();
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'v' => out.push('\u{b}'),
                        '0' => out.push('\0'),
                        '\n' => {}
                        'x' | 'u' => {
                            let hex = if e == 'x' {
                                self.text.get(self.i..self.i + 2)
                            } else if self.peek() == Some(b'{') {
                                let end = self.text[self.i..].find('}').unwrap_or(0);
                                let h = self.text.get(self.i + 1..self.i + end);
                                self.i += 2; // the braces
                                h
                            } else {
                                self.text.get(self.i..self.i + 4)
                            };
                            let Some(ch) = hex
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                            else {
                                return Err(self.err("a bad \\x or \\u escape"));
                            };
                            self.i += hex.map_or(0, str::len);
                            out.push(ch);
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Ok(out)
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        let mut sign = 1.0;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            if c == b'-' {
                sign = -sign;
            }
            self.i += 1;
        }
        if self.text[self.i..].starts_with("Infinity") {
            self.i += "Infinity".len();
            self.after_value()?;
            return Ok(Value::Number(sign * f64::INFINITY));
        }
        let body_start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
            || (matches!(self.peek(), Some(b'-' | b'+'))
                && matches!(self.s.get(self.i - 1), Some(b'e' | b'E'))
                && !self.text[body_start..self.i].starts_with("0x"))
        {
            self.i += 1;
        }
        let body = self.text[body_start..self.i].replace('_', "");
        let lower = body.to_ascii_lowercase();
        let n = if let Some(h) = lower.strip_prefix("0x") {
            u64::from_str_radix(h, 16).ok().map(|n| n as f64)
        } else if let Some(o) = lower.strip_prefix("0o") {
            u64::from_str_radix(o, 8).ok().map(|n| n as f64)
        } else if let Some(b) = lower.strip_prefix("0b") {
            u64::from_str_radix(b, 2).ok().map(|n| n as f64)
        } else {
            body.parse::<f64>()
                .ok()
                .filter(|_| !lower.contains("inf") && !lower.contains("nan"))
        };
        let Some(n) = n else {
            self.i = start;
            return Err(self.err("not a number"));
        };
        self.after_value()?;
        Ok(Value::Number(sign * n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsds_own_styles() {
        let v = parse(
            "/* a comment\n with lines */\n{\n  graphitePort: 2003\n, graphiteHost: \"graphite.example.com\"\n, port: 8125\n, backends: [ \"./backends/graphite\" ]\n}\n",
        )
        .expect("parse");
        assert_eq!(v.get("graphitePort"), &Value::Number(2003.0));
        assert_eq!(v.get("graphiteHost").text(), "graphite.example.com");
        assert_eq!(v.get("backends").show(), "[\"./backends/graphite\"]");
        let v = parse(
            "{ nodes: [ {host: '127.0.0.1', port: 8127, adminport: 8128}, ],\n udp_version:'udp4', // trailing\n 'quoted key': 0x1F, n: -.5e1, i: -Infinity, u: undefined, }",
        )
        .expect("parse");
        assert_eq!(v.get("udp_version").text(), "udp4");
        assert_eq!(v.get("quoted key"), &Value::Number(31.0));
        assert_eq!(v.get("n"), &Value::Number(-5.0));
        assert_eq!(v.get("i"), &Value::Number(f64::NEG_INFINITY));
        assert_eq!(v.get("u"), &Value::Undefined);
        assert!(matches!(v.get("nodes"), Value::Array(a) if a.len() == 1));
        assert_eq!(
            parse("({a: 'x\\u0041\\x42\\n'});")
                .expect("parse")
                .get("a")
                .text(),
            "xAB\n"
        );
    }

    #[test]
    fn code_is_refused_with_its_place() {
        for (text, line) in [
            (
                "{\n  globalSuffix: require('os').hostname().split('.')[0]\n}",
                2,
            ),
            ("{ port: 8125 + 1 }", 1),
            ("{ a: `x${b}` }", 1),
            ("{ a: 1 }\nconsole.log(1)", 2),
            ("{ a: 'open }", 1),
            ("{ a: 1", 1),
            ("{ a: 1, /* }", 1),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.starts_with(&format!("line {line},")), "{text}: {e}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).expect_err("deep").contains("64 deep"));
    }
}
