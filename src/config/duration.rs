//! Durations as people write them: plain seconds (`10`, `0.5`) or with
//! units (`"10s"`, `"1m"`, `"500ms"`, `"1h30m"`), for every key that asks
//! for a time. `config check` shows them normalised, in seconds.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Seconds in `text`: a number, or numbers each followed by a unit (`ms`,
/// `s`, `m`, `h`, `d`, `w`), added up.
pub fn parse(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let bad = || {
        format!("{text:?} is not a duration (seconds, or with a unit: \"500ms\", \"10s\", \"1m\", \"1h30m\", \"1d\")")
    };
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(v) = t.parse::<f64>() {
        return Ok(v);
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        let after = &rest[num_end..];
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let scale = match after[..unit_end].trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3_600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &after[unit_end..];
    }
    Ok(total)
}

struct Seconds;

impl Visitor<'_> for Seconds {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("seconds, or a duration such as \"10s\", \"1m\", \"500ms\"")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse(v).map_err(E::custom)
    }
}

/// A time in seconds, as a number.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(Seconds)
}

/// A time in whole seconds.
pub fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = d.deserialize_any(Seconds)?;
    whole(v).map_err(de::Error::custom)
}

/// An optional time in whole seconds (a key that may be left out).
pub fn opt_whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    whole_seconds(d).map(Some)
}

fn whole(v: f64) -> Result<u64, String> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(format!(
            "{v} s: must be a whole number of seconds (\"30s\", \"1m\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        for (text, want) in [
            ("10", 10.0),
            ("0.5", 0.5),
            ("10s", 10.0),
            ("1m", 60.0),
            ("500ms", 0.5),
            ("1h30m", 5_400.0),
            ("1.5m", 90.0),
            ("1d", 86_400.0),
            (" 2h ", 7_200.0),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for bad in ["", "s", "10x", "1m 2", "ten seconds", "-", "1..2s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(whole(1.5).is_err());
        assert_eq!(whole(60.0), Ok(60));
    }

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "seconds")]
        a: f64,
        #[serde(deserialize_with = "whole_seconds")]
        b: u64,
        #[serde(default, deserialize_with = "opt_whole_seconds")]
        c: Option<u64>,
    }

    #[test]
    fn keys_take_numbers_or_units() {
        let t: T = toml::from_str("a = \"250ms\"\nb = \"1m\"\nc = 5").expect("toml");
        assert_eq!((t.a, t.b, t.c), (0.25, 60, Some(5)));
        let t: T = toml::from_str("a = 3\nb = 10").expect("toml");
        assert_eq!((t.a, t.b, t.c), (3.0, 10, None));
        let e = toml::from_str::<T>("a = 1\nb = \"1.5s\"").expect_err("not whole");
        assert!(e.to_string().contains("whole number of seconds"), "{e}");
        let e = toml::from_str::<T>("a = \"soon\"\nb = 1").expect_err("not a duration");
        assert!(e.to_string().contains("is not a duration"), "{e}");
    }
}
