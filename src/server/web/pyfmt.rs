//! Numbers written as graphite-web (Python) writes them, so series names
//! (`scale(a,2.5)`), tags and CSV/raw values read the same.

/// Python's `repr(float)`: the shortest text that reads back the same,
/// in exponent form below 1e-4 and from 1e16 up (`1e-05`, `1e+16`, `2.0`).
pub fn repr(x: f64) -> String {
    if let Some(s) = special(x, "0.0") {
        return s;
    }
    // Shortest round-trip digits and exponent, from Rust's `{:e}`.
    let e = format!("{x:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { "-" } else { "+" };
        return format!("{sign}{m}e{es}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let body = if exp >= n - 1 {
        format!("{digits}{}.0", "0".repeat((exp - n + 1) as usize))
    } else if exp >= 0 {
        let point = (exp + 1) as usize;
        format!("{}.{}", &digits[..point], &digits[point..])
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    format!("{sign}{body}")
}

/// [`repr`] written onto `out` (no allocation in the common range).
pub fn repr_into(out: &mut String, x: f64) {
    use std::fmt::Write;
    if x != 0.0 && (1e-4..1e16).contains(&x.abs()) {
        let at = out.len();
        let _ = write!(out, "{x}");
        if !out[at..].contains('.') {
            out.push_str(".0");
        }
    } else {
        out.push_str(&repr(x));
    }
}

/// Python's `%g`: six significant digits, trailing zeros dropped.
pub fn g(x: f64) -> String {
    general(x, 6)
}

/// NaN, infinities and zeros as Python writes them (`zero`: "0.0" for
/// repr, "0" for %g).
fn special(x: f64, zero: &str) -> Option<String> {
    if x.is_nan() {
        Some("nan".into())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" }.into())
    } else if x == 0.0 {
        Some(if x.is_sign_negative() {
            format!("-{zero}")
        } else {
            zero.to_string()
        })
    } else {
        None
    }
}

fn general(x: f64, precision: usize) -> String {
    if let Some(s) = special(x, "0") {
        return s;
    }
    let p = precision.max(1);
    let e = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(mantissa);
        let es = if exp < 0 { "-" } else { "+" };
        format!("{m}e{es}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Python's `str()` of an argument value as a function saw it: integers
/// without a point, floats as `repr`.
pub fn number(x: f64, was_int: bool) -> String {
    if was_int && x.fract() == 0.0 && x.abs() < 1e18 {
        format!("{}", x as i64)
    } else {
        repr(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_python() {
        for (x, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (2.5, "2.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (-3.25, "-3.25"),
            (1.0 / 3.0, "0.3333333333333333"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(repr(x), want, "{x}");
        }
        for (x, want) in [
            (2.0, "2"),
            (2.5, "2.5"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1234567.0, "1.23457e+06"),
            (100000.0, "100000"),
            (-0.5, "-0.5"),
            (1.0 / 3.0, "0.333333"),
        ] {
            assert_eq!(g(x), want, "{x}");
        }
        assert_eq!(number(3.0, true), "3");
        for x in [1.0, 0.1, 1e-5, 1e16, 123456.789, -3.25, 0.0, 1e300] {
            let mut s = String::from("[");
            repr_into(&mut s, x);
            assert_eq!(s, format!("[{}", repr(x)));
        }
        assert_eq!(number(3.0, false), "3.0");
    }
}
