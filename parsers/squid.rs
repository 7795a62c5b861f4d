//! squid: responses and bytes from squid's native `access.log`, per second,
//! as Logster's SquidLogster: `http_1xx` … `http_5xx`, `size`,
//! `squid_TCP_MISS`, `squid_TCP_DENIED`, `squid_TCP_HIT`, `squid_TCP_MEM_HIT`,
//! `squid_OTHER`.
//!
//! The native format is `time elapsed client code/status bytes method URL
//! ...`. `size` sums the `bytes` column (Logster's regex summed the
//! second column, the elapsed milliseconds, under that name).

use super::{per, Parser};
use serde::{Deserialize, Serialize};

/// `parser = "squid"` has no options of its own.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquidConfig {}

/// The squid result codes counted by name; any other is `OTHER`.
pub const CODES: [&str; 4] = ["TCP_MISS", "TCP_DENIED", "TCP_HIT", "TCP_MEM_HIT"];

#[derive(Debug, Default)]
pub struct Squid {
    classes: [u64; 5],
    codes: [u64; 5],
    bytes: u64,
}

fn all(s: &[u8], f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.iter().all(|&b| f(b))
}

fn number(s: &[u8]) -> Option<u64> {
    if !all(s, |b| b.is_ascii_digit()) || s.len() > 19 {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + (d - b'0') as u64))
}

/// `(code index, status, bytes)` of a native access.log line.
pub fn parse(line: &[u8]) -> Option<(usize, u16, u64)> {
    let mut f = line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|t| !t.is_empty());
    let time = f.next()?;
    if !all(time, |b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    number(f.next()?)?; // elapsed ms
    f.next()?; // client
    let result = f.next()?;
    let slash = memchr::memchr(b'/', result)?;
    let (code, status) = (&result[..slash], &result[slash + 1..]);
    if !all(code, |b| b.is_ascii_uppercase() || b == b'_') || status.len() != 3 {
        return None;
    }
    let status = number(status)? as u16;
    let bytes = number(f.next()?)?;
    let idx = CODES
        .iter()
        .position(|c| c.as_bytes() == code)
        .unwrap_or(CODES.len());
    Some((idx, status, bytes))
}

impl Parser for Squid {
    fn parse_line(&mut self, line: &[u8]) -> bool {
        let Some((code, status, bytes)) = parse(line) else {
            return false;
        };
        // Logster's classes: below 200 is 1xx (so 000 is too), 500 and up 5xx.
        let class = match status {
            0..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.classes[class] += 1;
        self.codes[code] += 1;
        self.bytes += bytes;
        true
    }

    fn take_metrics(&mut self, duration: f64, out: &mut Vec<(String, f64)>) {
        for (i, n) in self.classes.iter().enumerate() {
            out.push((format!("http_{}xx", i + 1), per(*n as f64, duration)));
        }
        out.push(("size".into(), per(self.bytes as f64, duration)));
        for (i, n) in self.codes.iter().enumerate() {
            let name = CODES.get(i).copied().unwrap_or("OTHER");
            out.push((format!("squid_{name}"), per(*n as f64, duration)));
        }
        *self = Squid::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::testutil::run_fixture;

    #[test]
    fn fixture_worked_by_hand() {
        // 10 s of access.log: 2xx: 4, 3xx: 1, 4xx: 2, 5xx: 1, 000: 1;
        // bytes 411 + 1523 + 9871 + 0 + 3456 + 1200 + 245 + 4096 + 512 = 21314.
        let mut p = Squid::default();
        let (hit, miss, m) = run_fixture(&mut p, "access.log", 10.0);
        assert_eq!((hit, miss), (9, 3));
        assert_eq!(m["http_1xx"], 0.1);
        assert_eq!(m["http_2xx"], 0.4);
        assert_eq!(m["http_3xx"], 0.1);
        assert_eq!(m["http_4xx"], 0.2);
        assert_eq!(m["http_5xx"], 0.1);
        assert_eq!(m["size"], 2131.4);
        assert_eq!(m["squid_TCP_MISS"], 0.4);
        assert_eq!(m["squid_TCP_HIT"], 0.1);
        assert_eq!(m["squid_TCP_MEM_HIT"], 0.1);
        assert_eq!(m["squid_TCP_DENIED"], 0.2);
        assert_eq!(m["squid_OTHER"], 0.1);
        assert_eq!(m.len(), 11);
    }

    #[test]
    fn bad_lines() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"invalid log entry"), None);
        assert_eq!(parse(b"1.2 5 1.1.1.1 TCP_MISS/2000 10 GET x"), None);
        assert_eq!(
            parse(b"1.2 5 1.1.1.1 TCP_MISS/200 99999999999999999999 GET x"),
            None
        );
        assert_eq!(parse(b"1.2 5 1.1.1.1 tcp_miss/200 1 GET x"), None);
        assert_eq!(
            parse(b"1.2 5 1.1.1.1 TCP_MISS/200 7 GET x"),
            Some((0, 200, 7))
        );
    }
}
