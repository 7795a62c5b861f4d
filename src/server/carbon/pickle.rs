//! A safe reader for carbon's pickle protocol: the opcodes of lists,
//! tuples, dicts, strings, bytes, ints, floats and booleans (protocols 0 to
//! 5, with the memo), and nothing else. A pickle that names a global,
//! builds an object or calls anything is rejected; [`loads_with`] accepts
//! the plain-data classes a caller names (graphite-web's `IntervalSet` in
//! a cluster's find answers) as [`Value::Object`], their state as data: no
//! object is ever constructed from the wire and nothing is called. What it builds, memo copies included, is
//! weighed in bytes against a budget, so a small pickle cannot expand into a
//! huge value; values nest at most [`MAX_DEPTH`] deep, so dropping, cloning
//! or weighing one never recurses deeply; the memo is a map, so a huge memo
//! index costs nothing.

use std::collections::HashMap;

/// How deep values may nest: carbon's messages are three deep (a list of
/// `(path, (timestamp, value))`).
pub const MAX_DEPTH: u32 = 16;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Str(String),
    Int(i64),
    Float(f64),
    /// A dict's items in order (carbon's cache queries are dicts).
    Dict(Vec<(Value, Value)>),
    None,
    /// An instance of an allowed class (`module.Name`) and the state
    /// pickle gave it (its `__dict__`, a dict; None before BUILD).
    Object {
        class: String,
        state: Box<Value>,
    },
    /// An allowed class itself, before NEWOBJ makes an instance of it.
    Class(String),
}

impl Value {
    /// Bytes it holds, about: its own slot and what it points to.
    fn weight(&self) -> usize {
        let own = std::mem::size_of::<Value>();
        match self {
            Value::List(v) | Value::Tuple(v) => own + v.iter().map(Value::weight).sum::<usize>(),
            Value::Dict(v) => {
                own + v
                    .iter()
                    .map(|(k, x)| k.weight() + x.weight())
                    .sum::<usize>()
            }
            Value::Str(s) | Value::Class(s) => own + s.len(),
            Value::Object { class, state } => own + class.len() + state.weight(),
            _ => own,
        }
    }

    /// The value of a dict's string key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The `(a, b)` number pairs of a list or tuple of 2-item lists or
    /// tuples (carbonlink's datapoints, intervals); other items skipped.
    pub fn pairs(&self) -> Vec<(f64, f64)> {
        match self {
            Value::List(items) | Value::Tuple(items) => items
                .iter()
                .filter_map(|i| match i {
                    Value::List(p) | Value::Tuple(p) if p.len() == 2 => {
                        Some((p[0].as_f64()?, p[1].as_f64()?))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python's `float(x)` for ints and floats (and numeric strings).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    #[error("opcode {0:#04x} is not allowed")]
    Forbidden(u8),
    #[error("truncated pickle")]
    Truncated,
    #[error("malformed pickle: {0}")]
    Malformed(&'static str),
    #[error("pickle expands past its size budget")]
    TooBig,
    #[error("values nested more than {MAX_DEPTH} deep")]
    TooDeep,
}

enum Item {
    Mark,
    /// A value and how deep it nests (1 for a number or string).
    V(Value, u32),
}

fn container(items: Vec<(Value, u32)>, list: bool) -> Result<(Value, u32), PickleError> {
    let depth = 1 + items.iter().map(|i| i.1).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(PickleError::TooDeep);
    }
    let values = items.into_iter().map(|i| i.0).collect();
    Ok((
        if list {
            Value::List(values)
        } else {
            Value::Tuple(values)
        },
        depth,
    ))
}

/// Adds key/value pairs to a dict of nesting `depth`; its new depth.
fn set_items(
    dict: &mut Value,
    mut depth: u32,
    items: Vec<(Value, u32)>,
) -> Result<u32, PickleError> {
    if !items.len().is_multiple_of(2) {
        return Err(PickleError::Malformed("odd dict items"));
    }
    let Value::Dict(d) = dict else {
        return Err(PickleError::Malformed("setitem on a non-dict"));
    };
    let mut it = items.into_iter();
    while let (Some((k, kd)), Some((v, vd))) = (it.next(), it.next()) {
        depth = depth.max(kd.max(vd) + 1);
        if depth > MAX_DEPTH {
            return Err(PickleError::TooDeep);
        }
        match d.iter_mut().find(|(x, _)| *x == k) {
            Some(slot) => slot.1 = v,
            None => d.push((k, v)),
        }
    }
    Ok(depth)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).ok_or(PickleError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(PickleError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let end = memchr::memchr(b'\n', rest).ok_or(PickleError::Truncated)?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| PickleError::Malformed("text line"))
    }

    fn len(&mut self, n: usize) -> Result<usize, PickleError> {
        usize::try_from(self.le(n)?).map_err(|_| PickleError::Truncated)
    }
}

/// Python's quoted string literal of protocol 0's `S` opcode.
fn unquote(s: &str) -> Result<String, PickleError> {
    let inner = s
        .strip_prefix('\'')
        .and_then(|x| x.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
        .ok_or(PickleError::Malformed("string quotes"))?;
    unescape(inner)
}

/// Backslash escapes of Python's repr (and raw-unicode-escape's `\\uXXXX`).
fn unescape(s: &str) -> Result<String, PickleError> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or(PickleError::Malformed("escape"))?;
        let hex = |it: &mut std::str::Chars, n: usize| -> Result<char, PickleError> {
            let h: String = it.by_ref().take(n).collect();
            u32::from_str_radix(&h, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or(PickleError::Malformed("escape"))
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' | '\'' | '"' => out.push(e),
            'x' => out.push(hex(&mut it, 2)?),
            'u' => out.push(hex(&mut it, 4)?),
            'U' => out.push(hex(&mut it, 8)?),
            _ => {
                out.push('\\');
                out.push(e);
            }
        }
    }
    Ok(out)
}

fn text_int(s: &str) -> Result<i64, PickleError> {
    match s.trim_end_matches('L') {
        "00" => Ok(0),
        "01" => Ok(1),
        t => t.parse().map_err(|_| PickleError::Malformed("int")),
    }
}

/// Little-endian two's complement (LONG1/LONG4), within i64.
fn long(b: &[u8]) -> Result<i64, PickleError> {
    if b.is_empty() {
        return Ok(0);
    }
    if b.len() > 8 {
        return Err(PickleError::Malformed("long beyond 64 bits"));
    }
    let mut v: i64 = 0;
    for (i, x) in b.iter().enumerate() {
        v |= i64::from(*x) << (8 * i);
    }
    let bits = 8 * b.len();
    if bits < 64 && b[b.len() - 1] & 0x80 != 0 {
        v -= 1i64 << bits;
    }
    Ok(v)
}

/// What the values of a `len`-byte message may weigh, decoded: a carbon
/// message of protocol 2 weighs about 15 times its length (Python memoizes
/// every string and tuple, and each memo entry here is a copy).
pub fn budget(len: usize) -> usize {
    32 * len + (1 << 20)
}

/// Decodes one pickle. `budget`: the most bytes (about) its values may
/// hold, memo copies included.
pub fn loads(data: &[u8], budget: usize) -> Result<Value, PickleError> {
    loads_with(data, budget, &[])
}

/// As [`loads`], also accepting instances of `classes` (`module.Name`)
/// made by NEWOBJ and given their state by BUILD: graphite-web pickles its
/// find answers' `IntervalSet` so. An object taken from the memo is its
/// copy as memoized, before BUILD gave it its state (the shapes accepted
/// never refer back to an object).
pub fn loads_with(data: &[u8], budget: usize, classes: &[&str]) -> Result<Value, PickleError> {
    let mut r = Reader { data, pos: 0 };
    let mut stack: Vec<Item> = Vec::new();
    let mut memo: HashMap<usize, (Value, u32)> = HashMap::new();
    let mut used = 0usize;
    let pop = |stack: &mut Vec<Item>| -> Result<(Value, u32), PickleError> {
        match stack.pop() {
            Some(Item::V(v, d)) => Ok((v, d)),
            _ => Err(PickleError::Malformed("stack underflow")),
        }
    };
    let since_mark = |stack: &mut Vec<Item>| -> Result<Vec<(Value, u32)>, PickleError> {
        let at = stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or(PickleError::Malformed("no mark"))?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items
            .into_iter()
            .filter_map(|i| match i {
                Item::V(v, d) => Some((v, d)),
                Item::Mark => None,
            })
            .collect())
    };
    loop {
        let op = r.byte()?;
        let (value, depth) = match op {
            b'.' => return pop(&mut stack).map(|v| v.0),
            0x80 => {
                r.byte()?;
                continue;
            }
            0x95 => {
                r.take(8)?;
                continue;
            }
            b'(' => {
                stack.push(Item::Mark);
                continue;
            }
            b']' => (Value::List(Vec::new()), 1),
            b'}' => (Value::Dict(Vec::new()), 1),
            b'N' => (Value::None, 1),
            b'd' => {
                let items = since_mark(&mut stack)?;
                let mut dict = Value::Dict(Vec::new());
                let depth = set_items(&mut dict, 1, items)?;
                (dict, depth)
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    since_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Item::V(dict @ Value::Dict(_), depth)) => {
                        *depth = set_items(dict, *depth, items)?;
                    }
                    _ => return Err(PickleError::Malformed("setitem on a non-dict")),
                }
                continue;
            }
            b')' => (Value::Tuple(Vec::new()), 1),
            b'l' => container(since_mark(&mut stack)?, true)?,
            b't' => container(since_mark(&mut stack)?, false)?,
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return Err(PickleError::Malformed("stack underflow"));
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop(&mut stack)?);
                }
                items.reverse();
                container(items, false)?
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    since_mark(&mut stack)?
                };
                match stack.last_mut() {
                    Some(Item::V(Value::List(l), depth)) => {
                        for (v, d) in items {
                            if d + 1 > MAX_DEPTH {
                                return Err(PickleError::TooDeep);
                            }
                            *depth = (*depth).max(d + 1);
                            l.push(v);
                        }
                    }
                    _ => return Err(PickleError::Malformed("append to a non-list")),
                }
                continue;
            }
            b'p' | b'q' | b'r' | 0x94 => {
                let idx = match op {
                    b'p' => r
                        .line()?
                        .parse()
                        .map_err(|_| PickleError::Malformed("memo index"))?,
                    b'q' => r.len(1)?,
                    b'r' => r.len(4)?,
                    _ => memo.len(),
                };
                let top = match stack.last() {
                    Some(Item::V(v, d)) => (v.clone(), *d),
                    _ => return Err(PickleError::Malformed("memo of nothing")),
                };
                used += top.0.weight();
                if used > budget {
                    return Err(PickleError::TooBig);
                }
                memo.insert(idx, top);
                continue;
            }
            b'g' | b'h' | b'j' => {
                let idx: usize = match op {
                    b'g' => r
                        .line()?
                        .parse()
                        .map_err(|_| PickleError::Malformed("memo index"))?,
                    b'h' => r.len(1)?,
                    _ => r.len(4)?,
                };
                let v = memo
                    .get(&idx)
                    .cloned()
                    .ok_or(PickleError::Malformed("memo index"))?;
                used += v.0.weight();
                if used > budget {
                    return Err(PickleError::TooBig);
                }
                v
            }
            b'c' | 0x93 if !classes.is_empty() => {
                let (module, name) = if op == b'c' {
                    (r.line()?.to_string(), r.line()?.to_string())
                } else {
                    let name = pop(&mut stack)?.0;
                    let module = pop(&mut stack)?.0;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => (m, n),
                        _ => return Err(PickleError::Malformed("global of non-strings")),
                    }
                };
                let class = format!("{module}.{name}");
                if !classes.contains(&class.as_str()) {
                    return Err(PickleError::Malformed("a class not allowed"));
                }
                (Value::Class(class), 1)
            }
            0x81 if !classes.is_empty() => {
                let _args = pop(&mut stack)?;
                match pop(&mut stack)?.0 {
                    Value::Class(class) => (
                        Value::Object {
                            class,
                            state: Box::new(Value::None),
                        },
                        1,
                    ),
                    _ => return Err(PickleError::Malformed("NEWOBJ of a non-class")),
                }
            }
            b'b' if !classes.is_empty() => {
                let (st, d) = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Item::V(Value::Object { state, .. }, depth)) => {
                        if d + 1 > MAX_DEPTH {
                            return Err(PickleError::TooDeep);
                        }
                        *depth = (*depth).max(d + 1);
                        **state = st;
                    }
                    _ => return Err(PickleError::Malformed("BUILD of a non-object")),
                }
                continue;
            }
            _ => (scalar(op, &mut r)?, 1),
        };
        // A list or tuple holds values already weighed: only its own slot is new.
        used += match value {
            Value::List(_) | Value::Tuple(_) | Value::Dict(_) | Value::Object { .. } => {
                std::mem::size_of::<Value>()
            }
            _ => value.weight(),
        };
        if used > budget {
            return Err(PickleError::TooBig);
        }
        stack.push(Item::V(value, depth));
    }
}

/// The value of a number or string opcode; any other opcode is refused.
fn scalar(op: u8, r: &mut Reader<'_>) -> Result<Value, PickleError> {
    Ok(match op {
        b'I' => Value::Int(text_int(r.line()?)?),
        b'L' => Value::Int(text_int(r.line()?)?),
        b'F' => Value::Float(
            r.line()?
                .trim()
                .parse()
                .map_err(|_| PickleError::Malformed("float"))?,
        ),
        b'J' => Value::Int(i64::from(r.le(4)? as u32 as i32)),
        b'K' => Value::Int(r.le(1)? as i64),
        b'M' => Value::Int(r.le(2)? as i64),
        0x8a => {
            let n = r.len(1)?;
            Value::Int(long(r.take(n)?)?)
        }
        0x8b => {
            let n = r.len(4)?;
            Value::Int(long(r.take(n)?)?)
        }
        0x88 => Value::Int(1),
        0x89 => Value::Int(0),
        b'G' => {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Float(f64::from_be_bytes(a))
        }
        b'S' => Value::Str(unquote(r.line()?)?),
        b'V' => Value::Str(unescape(r.line()?)?),
        b'T' | b'U' | b'X' | 0x8c | 0x8d | b'B' | b'C' | 0x8e => {
            let n = match op {
                b'U' | 0x8c | b'C' => r.len(1)?,
                0x8d | 0x8e => r.len(8)?,
                _ => r.len(4)?,
            };
            Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned())
        }
        other => return Err(PickleError::Forbidden(other)),
    })
}

/// A point as received: name, timestamp, value.
pub type Point = (String, f64, f64);

/// carbon's pickle message: a list of `(path, (timestamp, value))`. Entries
/// of another shape are skipped, as carbon skips them; returns the points
/// and how many were skipped.
pub fn datapoints(v: Value) -> Result<(Vec<Point>, usize), PickleError> {
    let (Value::List(items) | Value::Tuple(items)) = v else {
        return Err(PickleError::Malformed("not a list"));
    };
    let mut out = Vec::with_capacity(items.len());
    let mut skipped = 0;
    for item in items {
        let point = match item {
            Value::List(p) | Value::Tuple(p) if p.len() == 2 => {
                let mut p = p.into_iter();
                match (p.next(), p.next()) {
                    (Some(Value::Str(name)), Some(Value::List(tv) | Value::Tuple(tv)))
                        if tv.len() == 2 =>
                    {
                        match (tv[0].as_f64(), tv[1].as_f64()) {
                            (Some(t), Some(v)) => Some((name, t, v)),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match point {
            Some(p) => out.push(p),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// A pickle (protocol 2) writer for the shapes carbon and graphite-web
/// exchange: cache-query answers, render and find answers of a cluster.
pub struct Pickler(Vec<u8>);

impl Default for Pickler {
    fn default() -> Self {
        Pickler(vec![0x80, 2])
    }
}

impl Pickler {
    pub fn none(&mut self) {
        self.0.push(b'N');
    }
    pub fn boolean(&mut self, b: bool) {
        self.0.push(if b { 0x88 } else { 0x89 });
    }
    pub fn int(&mut self, i: i64) {
        if let Ok(small) = i32::try_from(i) {
            self.0.push(b'J');
            self.0.extend_from_slice(&small.to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, 8 bytes.
            self.0.push(0x8a);
            self.0.push(8);
            self.0.extend_from_slice(&i.to_le_bytes());
        }
    }
    pub fn float(&mut self, f: f64) {
        self.0.push(b'G');
        self.0.extend_from_slice(&f.to_be_bytes());
    }
    pub fn string(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    /// Starts a list (or, with `tuple_end`, a tuple) of items that follow.
    pub fn list_start(&mut self) {
        self.0.extend_from_slice(b"]("); // EMPTY_LIST, MARK
    }
    pub fn list_end(&mut self) {
        self.0.push(b'e'); // APPENDS
    }
    pub fn tuple_start(&mut self) {
        self.0.push(b'('); // MARK
    }
    pub fn tuple_end(&mut self) {
        self.0.push(b't'); // TUPLE
    }
    pub fn dict_start(&mut self) {
        self.0.extend_from_slice(b"}("); // EMPTY_DICT, MARK
    }
    pub fn dict_end(&mut self) {
        self.0.push(b'u'); // SETITEMS
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(b'.');
        self.0
    }
}

/// One carbon pickle message for `points`, `!L` length prefix included,
/// as a carbon relay sends it: protocol 2, `[(path, (timestamp, value))]`.
pub fn dumps(points: &[Point]) -> Vec<u8> {
    let mut body = vec![0x80, 2, b']', b'('];
    for (name, ts, value) in points {
        body.push(b'X');
        body.extend_from_slice(&(name.len() as u32).to_le_bytes());
        body.extend_from_slice(name.as_bytes());
        for x in [ts, value] {
            body.push(b'G');
            body.extend_from_slice(&x.to_be_bytes());
        }
        body.extend_from_slice(&[0x86, 0x86]);
    }
    body.extend_from_slice(b"e.");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Python 3.11's pickle.dumps wrote (protocols 0 and 2) for `[("a.b", (1700000000, 1.5)), ("c;t=1", (1700000060.5, -2))]`.
    const PROTO0: &[u8] = b"(lp0\n(Va.b\np1\n(I1700000000\nF1.5\ntp2\ntp3\na(Vc;t=1\np4\n(F1700000060.5\nI-2\ntp5\ntp6\na.";
    const PROTO2: &[u8] = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.bq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03X\x05\x00\x00\x00c;t=1q\x04GA\xd9T\xfcO \x00\x00J\xfe\xff\xff\xff\x86q\x05\x86q\x06e.";

    /// graphite-web 1.1.10's find answer as Python 3.11 pickles it (protocol
    /// 5): `[{"path": "a.b", "is_leaf": True, "intervals":
    /// IntervalSet([Interval(1700000000.0, 1700086400)])}, {"path": "a.c",
    /// "is_leaf": False}]`.
    const FIND5: &[u8] = b"\x80\x05\x95\xd4\x00\x00\x00\x00\x00\x00\x00]\x94(}\x94(\x8c\x04path\x94\x8c\x03a.b\x94\x8c\x07is_leaf\x94\x88\x8c\x09intervals\x94\x8c\x12graphite.intervals\x94\x8c\x0bIntervalSet\x94\x93\x94)\x81\x94}\x94(h\x05]\x94h\x06\x8c\x08Interval\x94\x93\x94)\x81\x94}\x94(\x8c\x05start\x94GA\xd9T\xfc@\x00\x00\x00\x8c\x03end\x94J\x80BUe\x8c\x05tuple\x94GA\xd9T\xfc@\x00\x00\x00J\x80BUe\x86\x94\x8c\x04size\x94G@\xf5\x18\x00\x00\x00\x00\x00ubah\x14G@\xf5\x18\x00\x00\x00\x00\x00ubu}\x94(h\x02\x8c\x03a.c\x94h\x04\x89ue.";

    #[test]
    fn objects_only_of_allowed_classes() {
        // carbon's reader refuses any class.
        assert!(loads(FIND5, budget(FIND5.len())).is_err());
        let only_set = loads_with(
            FIND5,
            budget(FIND5.len()),
            &["graphite.intervals.IntervalSet"],
        );
        assert!(only_set.is_err(), "Interval is not allowed: {only_set:?}");
        let v = loads_with(
            FIND5,
            budget(FIND5.len()),
            &[
                "graphite.intervals.IntervalSet",
                "graphite.intervals.Interval",
            ],
        )
        .expect("graphite-web's find answer");
        let Value::List(nodes) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(nodes[0].get("path").and_then(Value::as_str), Some("a.b"));
        let Some(Value::Object { class, state }) = nodes[0].get("intervals") else {
            panic!("{v:?}")
        };
        assert_eq!(class, "graphite.intervals.IntervalSet");
        let Some(Value::List(intervals)) = state.get("intervals") else {
            panic!("{state:?}")
        };
        let Value::Object { state: one, .. } = &intervals[0] else {
            panic!("{intervals:?}")
        };
        assert_eq!(
            one.get("start").and_then(Value::as_f64),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            one.get("end").and_then(Value::as_f64),
            Some(1_700_086_400.0)
        );
        assert_eq!(nodes[1].get("is_leaf"), Some(&Value::Int(0)));
        // BUILD on anything but an object, NEWOBJ of a non-class: refused.
        for bad in [&b"\x80\x02}}b."[..], b"\x80\x02})\x81."] {
            assert!(loads_with(bad, 1 << 20, &["x.Y"]).is_err());
        }
    }

    #[test]
    fn python_pickles_of_carbon_messages() {
        for p in [PROTO0, PROTO2] {
            let v = loads(p, budget(p.len())).expect("loads");
            let (points, skipped) = datapoints(v).expect("points");
            assert_eq!(skipped, 0);
            assert_eq!(
                points,
                [
                    ("a.b".to_string(), 1_700_000_000.0, 1.5),
                    ("c;t=1".to_string(), 1_700_000_060.5, -2.0)
                ]
            );
        }
    }

    #[test]
    fn what_we_send_reads_back() {
        let points = vec![
            ("a.b".to_string(), 1_700_000_000.0, 1.5),
            ("x;t=é".to_string(), 1_700_000_060.5, -2.0),
        ];
        let frame = dumps(&points);
        assert_eq!(
            u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize,
            frame.len() - 4
        );
        let back =
            datapoints(loads(&frame[4..], budget(frame.len())).expect("loads")).expect("points");
        assert_eq!(back, (points, 0));
    }

    #[test]
    fn objects_globals_and_calls_are_refused() {
        // What Python wrote for an object whose __reduce__ calls os.system("id"),
        // protocols 0, 2 and 4.
        for p in [
            &b"cposix\nsystem\np0\n(Vid\np1\ntp2\nRp3\n."[..],
            b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
            b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x02id\x94\x85\x94R\x94.",
        ] {
            assert!(
                matches!(loads(p, budget(p.len())), Err(PickleError::Forbidden(_))),
                "{p:?}"
            );
        }
        // Dicts and None read (cache queries are dicts) but are no message.
        for p in [&b"(dp0\nVa\nI1\ns."[..], b"N."] {
            let v = loads(p, budget(p.len())).expect("loads");
            assert!(datapoints(v).is_err(), "{p:?}");
        }
    }

    #[test]
    fn memo_copies_cannot_blow_up() {
        // A list memoized and fetched over and over doubles each time.
        let mut p = b"\x80\x02]q\x00K\x01a".to_vec();
        for _ in 0..40 {
            p.extend_from_slice(b"h\x00h\x00\x86q\x00");
        }
        p.push(b'.');
        assert_eq!(loads(&p, 100_000), Err(PickleError::TooBig));
    }

    #[test]
    fn truncated_and_malformed_pickles_are_errors() {
        for p in [
            &b""[..],
            b"\x80",
            b"(lp0\n",
            b"X\xff\xff\xff\x7fab",
            b"a.",
            b"t.",
            b"J\x01\x02",
        ] {
            assert!(loads(p, budget(p.len())).is_err(), "{p:?}");
        }
        let (points, skipped) = datapoints(
            loads(b"(lp0\n(Va\nI1\ntp1\na(Vb\n(Vx\nI1\nttp2\na.", 10_000).expect("loads"),
        )
        .expect("list");
        assert_eq!((points.len(), skipped), (0, 2));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        // 60 000 lists, each appended to the one before it: enough to
        // overflow the stack of the old decoder when dropped or weighed.
        let n = 60_000;
        let mut p = b"\x80\x02".to_vec();
        p.extend(std::iter::repeat_n(b']', n));
        p.extend(std::iter::repeat_n(b'a', n - 1));
        p.push(b'.');
        assert_eq!(loads(&p, budget(p.len())), Err(PickleError::TooDeep));
        // The same through MARK/LIST and tuples.
        let mut p = b"(".repeat(n);
        p.extend(b"l".repeat(n));
        p.push(b'.');
        assert_eq!(loads(&p, budget(p.len())), Err(PickleError::TooDeep));
        let mut p = b"K\x01".to_vec();
        p.extend(std::iter::repeat_n(0x85, n));
        p.push(b'.');
        assert_eq!(loads(&p, budget(p.len())), Err(PickleError::TooDeep));
        // carbon's own depth, and more, is fine.
        let mut p = b"K\x01".to_vec();
        p.extend(std::iter::repeat_n(0x85, MAX_DEPTH as usize - 1));
        p.push(b'.');
        assert!(loads(&p, budget(p.len())).is_ok());
    }

    #[test]
    fn huge_memo_indices_cost_nothing() {
        // LONG_BINPUT at index 2^32-1, then read back.
        let p = b"\x80\x02K\x07r\xff\xff\xff\xffj\xff\xff\xff\xff\x86.";
        assert_eq!(
            loads(p, budget(p.len())),
            Ok(Value::Tuple(vec![Value::Int(7), Value::Int(7)]))
        );
        let p = b"\x80\x02K\x07p99999999999999\n.";
        assert_eq!(loads(p, budget(p.len())), Ok(Value::Int(7)));
    }

    #[test]
    fn memo_copies_of_long_strings_are_weighed_by_their_bytes() {
        // One 100 kB string, then 50 000 two-byte copies of it: 5 GB if built.
        let mut p = b"\x80\x02](X".to_vec();
        p.extend_from_slice(&100_000u32.to_le_bytes());
        p.extend(std::iter::repeat_n(b'x', 100_000));
        p.extend_from_slice(b"q\x01");
        for _ in 0..50_000 {
            p.extend_from_slice(b"h\x01");
        }
        p.extend_from_slice(b"e.");
        assert_eq!(loads(&p, budget(p.len())), Err(PickleError::TooBig));
    }
}
