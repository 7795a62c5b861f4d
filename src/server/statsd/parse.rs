//! statsd's line format: what one line does to which keys.

use crate::server::js;
use std::borrow::Cow;

/// What one line does to one key.
pub(super) enum Update<'a> {
    Count(f64),
    /// A timing and its weight in the count (1 / sample rate).
    Time(f64, f64),
    /// A value; `true` when it is a `+`/`-` delta.
    Gauge(f64, bool),
    Set(&'a str),
}

pub(super) struct Op<'a> {
    pub key: Cow<'a, str>,
    pub update: Update<'a>,
}

fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_space = false;
    for c in key.chars() {
        if c.is_whitespace() || c == '\u{feff}' {
            if !in_space {
                out.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        match c {
            '/' => out.push('-'),
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' | ';' | '=' => out.push(c),
            _ => {}
        }
    }
    out
}

/// True when [`sanitize`] would leave `key` as it is.
fn is_clean(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b';' | b'='))
}

/// statsd's `isNumber`: not empty and not NaN.
fn is_number(s: &str) -> bool {
    !s.is_empty() && !js::number(s).is_nan()
}

/// statsd's `is_valid_packet` over the `|`-separated fields of one value;
/// `num` is `Number(fields[0])`.
fn valid(fields: &[&str], num: f64) -> bool {
    let Some(kind) = fields.get(1) else {
        return false;
    };
    if let Some(rate) = fields.get(2) {
        let ok = rate.len() > 1 && rate.starts_with('@') && {
            let n = &rate[1..];
            is_number(n) && !n.starts_with('-')
        };
        if !ok {
            return false;
        }
    }
    let number = !fields[0].is_empty() && !num.is_nan();
    match *kind {
        "s" => true,
        "ms" => number && num >= 0.0,
        _ => number,
    }
}

/// `s` split at each `sep` byte (an ASCII byte, so every piece is a str).
pub(super) fn split_on(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(sep, s.as_bytes())
        .chain(std::iter::once(s.len()))
        .map(move |end| {
            let piece = &s[start..end];
            start = end + 1;
            piece
        })
}

/// Where the first `|#` starts.
fn tags_at(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    memchr::memchr_iter(b'#', b)
        .find(|&i| i > 0 && b[i - 1] == b'|')
        .map(|i| i - 1)
}

/// Reads one line as statsd's `handlePacket` does: the updates it makes,
/// in order; `bad` counts the values statsd rejects.
pub(super) fn parse_line<'a>(
    line: &'a str,
    sanitizing: bool,
    out: &mut Vec<Op<'a>>,
    bad: &mut u64,
) {
    let (head, tags) = match tags_at(line) {
        // Only the text up to a second `|#` counts, as with split("|#")[1].
        Some(i) => {
            let t = &line[i + 2..];
            (&line[..i], &t[..tags_at(t).unwrap_or(t.len())])
        }
        None => (line, ""),
    };
    // A key sent alone gets the value "1", as statsd pushes it.
    let (raw, values) = head.split_once(':').unwrap_or((head, "1"));
    let mut key: Cow<'a, str> = if tags.is_empty() {
        Cow::Borrowed(raw)
    } else {
        // JavaScript's replace with a string changes the first match only.
        let tags: Vec<String> = tags
            .split(',')
            .map(|t| t.replacen(';', "_", 1).replacen(':', "=", 1))
            .collect();
        Cow::Owned(format!("{raw};{}", tags.join(";")))
    };
    if sanitizing && !is_clean(&key) {
        key = Cow::Owned(sanitize(&key));
    }
    for bit in split_on(values, b':') {
        let mut fields = [""; 3];
        let mut n = 0;
        for (slot, f) in fields.iter_mut().zip(split_on(bit, b'|')) {
            *slot = f;
            n += 1;
        }
        let fields = &fields[..n];
        let num = if fields.get(1) == Some(&"s") {
            f64::NAN
        } else {
            js::number(fields[0])
        };
        if !valid(fields, num) {
            *bad += 1;
            continue;
        }
        let rate = match fields.get(2) {
            Some(r) => {
                let digits = r[1..]
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .map_or(&r[1..], |end| &r[1..1 + end]);
                js::number(digits)
            }
            None => 1.0,
        };
        let value = |default: f64| if fields[0].is_empty() { default } else { num };
        let update = match fields[1].trim() {
            "ms" => Update::Time(value(0.0), 1.0 / rate),
            "g" => Update::Gauge(value(0.0), fields[0].starts_with(['-', '+'])),
            "s" => Update::Set(if fields[0].is_empty() { "0" } else { fields[0] }),
            _ => Update::Count(value(1.0) * (1.0 / rate)),
        };
        out.push(Op {
            key: key.clone(),
            update,
        });
    }
}
