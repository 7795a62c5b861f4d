//! graphite-web's `attime`: the `from`, `until` and `now` of a render URL.
//!
//! Forms: Unix seconds, `now`, offsets (`-1h`, `-30min`, `now-7d`, `+2w`;
//! units s, min, h, d, w, mon = 30 d, y = 365 d, each also spelled out),
//! times of day (`HH:MM`, `6am`, `noon`, `midnight`, `teatime`) and days
//! (`today`, `yesterday`, `tomorrow`, `YYYYMMDD`, `MM/DD/YY`, `jan5`,
//! `monday`), combined as graphite-web combines them (`16:00_20261130`,
//! `midnight-1d`). Days and times of day are read in the request's time
//! zone (`tz=`, UTC by default).

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Seconds an offset may move a time at most: far beyond any retention,
/// small enough that no arithmetic overflows.
const MAX_OFFSET: i64 = 1 << 40;

/// The time zone `tz=` names; graphite-web keeps its default (UTC here)
/// when the name is unknown.
pub fn zone(name: Option<&str>) -> Tz {
    name.and_then(|n| n.parse::<Tz>().ok()).unwrap_or(Tz::UTC)
}

/// `s` as Unix seconds, relative to `now` (Unix seconds) in zone `tz`.
pub fn parse(s: &str, tz: Tz, now: i64) -> Result<i64, String> {
    let s: String = s
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let is_date = s.len() == 8
            && s[..4].parse::<u32>().is_ok_and(|y| y > 1900)
            && s[4..6].parse::<u32>().is_ok_and(|m| m < 13)
            && s[6..].parse::<u32>().is_ok_and(|d| d < 32);
        if !is_date {
            return s
                .parse::<i64>()
                .ok()
                .filter(|t| t.abs() < MAX_OFFSET)
                .ok_or_else(|| format!("Invalid time: {s}"));
        }
    }
    let (reference, offset) = match (s.find('+'), s.find('-')) {
        (Some(i), _) => (&s[..i], &s[i..]),
        (None, Some(i)) => (&s[..i], &s[i..]),
        (None, None) => (s.as_str(), ""),
    };
    let base = reference_time(reference, tz, now)?;
    let moved = base + offset_seconds(offset)?;
    if moved.abs() >= MAX_OFFSET {
        return Err(format!("Invalid time: {s}"));
    }
    Ok(moved)
}

/// The local date and time `now` is in `tz`.
fn local(now: i64, tz: Tz) -> Result<NaiveDateTime, String> {
    DateTime::from_timestamp(now, 0)
        .map(|t| t.with_timezone(&tz).naive_local())
        .ok_or_else(|| format!("Invalid time: {now}"))
}

fn number(s: &str) -> Result<u32, String> {
    s.parse::<u32>()
        .map_err(|_| format!("invalid literal for int() with base 10: '{s}'"))
}

fn reference_time(reference: &str, tz: Tz, now: i64) -> Result<i64, String> {
    if reference.is_empty() || reference == "now" {
        return Ok(now);
    }
    let raw = reference;
    let mut r = reference;
    let (mut hour, mut minute) = (0u32, 0u32);
    if let Some(i) = r.find(':').filter(|&i| i > 0 && i < 3) {
        hour = number(&r[..i])?;
        let end = (i + 3).min(r.len());
        minute = number(r.get(i + 1..end).unwrap_or(""))?;
        r = r.get(end..).unwrap_or("");
        if let Some(rest) = r.strip_prefix("am") {
            r = rest;
        } else if let Some(rest) = r.strip_prefix("pm") {
            hour = (hour + 12) % 24;
            r = rest;
        }
    }
    if let Some(i) = r.find("am").filter(|&i| i > 0 && i < 3) {
        hour = number(&r[..i])?;
        r = &r[i + 2..];
    }
    if let Some(i) = r.find("pm").filter(|&i| i > 0 && i < 3) {
        hour = (number(&r[..i])? + 12) % 24;
        r = &r[i + 2..];
    }
    if let Some(rest) = r.strip_prefix("noon") {
        (hour, minute, r) = (12, 0, rest);
    } else if let Some(rest) = r.strip_prefix("midnight") {
        (hour, minute, r) = (0, 0, rest);
    } else if let Some(rest) = r.strip_prefix("teatime") {
        (hour, minute, r) = (16, 0, rest);
    }
    let bad_time = || format!("Invalid time of day in {raw}");
    let today = local(now, tz)?.date();
    let at = |date: NaiveDate| date.and_hms_opt(hour, minute, 0).ok_or_else(bad_time);
    let date_of = |y: i32, m: u32, d: u32| {
        NaiveDate::from_ymd_opt(y, m, d)
            .ok_or_else(|| format!("day is out of range for month: {raw}"))
    };
    let when = if r.is_empty() || r == "today" {
        at(today)?
    } else if r == "yesterday" {
        at(today - Duration::days(1))?
    } else if r == "tomorrow" {
        at(today + Duration::days(1))?
    } else if r.matches('/').count() == 2 {
        let mut parts = r.split('/');
        let mut next = || number(parts.next().unwrap_or(""));
        let (m, d, mut y) = (next()?, next()?, next()? as i32);
        if y < 1900 {
            y += 1900;
        }
        if y < 1970 {
            y += 100;
        }
        at(date_of(y, m, d)?)?
    } else if r.len() == 8 && r.bytes().all(|b| b.is_ascii_digit()) {
        at(date_of(
            number(&r[..4])? as i32,
            number(&r[4..6])?,
            number(&r[6..])?,
        )?)?
    } else if let Some(m) = r.get(..3).and_then(|p| MONTHS.iter().position(|x| *x == p)) {
        let digits = r.len() - r.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let d = match digits {
            0 => return Err("Day of month required after month name".into()),
            1 => number(&r[r.len() - 1..])?,
            _ => number(&r[r.len() - 2..])?,
        };
        at(date_of(today.year(), m as u32 + 1, d)?)?
    } else if let Some(w) = r
        .get(..3)
        .and_then(|p| WEEKDAYS.iter().position(|x| *x == p))
    {
        let this = today.weekday().num_days_from_sunday() as i64;
        let back = (this - w as i64).rem_euclid(7);
        at(today - Duration::days(back))?
    } else {
        return Err(format!("Unknown day reference: {raw}"));
    };
    // As pytz's localize(is_dst=False): the later of two readings of an
    // ambiguous time, and a time skipped by a clock change read an hour on.
    let local = tz
        .from_local_datetime(&when)
        .latest()
        .or_else(|| {
            tz.from_local_datetime(&(when + Duration::hours(1)))
                .latest()
        })
        .ok_or_else(bad_time)?;
    Ok(local.timestamp())
}

fn offset_seconds(offset: &str) -> Result<i64, String> {
    if offset.is_empty() {
        return Ok(0);
    }
    let (sign, mut rest) = match offset.as_bytes()[0] {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        b'0'..=b'9' => (1, offset),
        _ => return Err(format!("Invalid offset: {offset}")),
    };
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let num: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid literal for int() with base 10: '{rest}'"))?;
        rest = &rest[digits..];
        let letters = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let seconds = if unit.starts_with('s') {
            1
        } else if unit.starts_with("min") {
            60
        } else if unit.starts_with('h') {
            3600
        } else if unit.starts_with('d') {
            86400
        } else if unit.starts_with('w') {
            7 * 86400
        } else if unit.starts_with("mon") {
            30 * 86400
        } else if unit.starts_with('y') {
            365 * 86400
        } else {
            return Err(format!("Invalid offset unit '{unit}'"));
        };
        total = num
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .filter(|t| t.abs() < MAX_OFFSET)
            .ok_or_else(|| format!("Invalid offset: {offset}"))?;
    }
    Ok(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30 12:34:56 UTC, a Monday.
    const NOW: i64 = 1_796_042_096;

    #[test]
    fn forms() {
        let utc = Tz::UTC;
        let midnight = NOW - NOW % 86400;
        for (s, want) in [
            ("now", NOW),
            ("", NOW),
            ("-1h", NOW - 3600),
            ("-30min", NOW - 1800),
            ("-7d", NOW - 7 * 86400),
            ("now-2w", NOW - 14 * 86400),
            ("+1mon", NOW + 30 * 86400),
            ("-1y", NOW - 365 * 86400),
            ("-1h30min", NOW - 5400),
            ("1796000000", 1_796_000_000),
            ("midnight", midnight),
            ("midnight-1d", midnight - 86400),
            ("today", midnight),
            ("yesterday", midnight - 86400),
            ("noon", midnight + 12 * 3600),
            ("6pm", midnight + 18 * 3600),
            ("16:00_20261130", midnight + 16 * 3600),
            ("20261129", midnight - 86400),
            ("11/29/26", midnight - 86400),
            ("nov29", midnight - 86400),
            ("monday", midnight),
            ("sunday", midnight - 86400),
        ] {
            assert_eq!(parse(s, utc, NOW), Ok(want), "{s}");
        }
        assert_eq!(
            local(NOW, utc).map(|d| d.weekday()),
            Ok(chrono::Weekday::Mon)
        );
    }

    #[test]
    fn zones_move_days_not_offsets() {
        let ny = zone(Some("America/New_York"));
        // Midnight in New York is 05:00 UTC in winter.
        let midnight = NOW - NOW % 86400 + 5 * 3600;
        assert_eq!(parse("midnight", ny, NOW), Ok(midnight));
        assert_eq!(parse("-1h", ny, NOW), Ok(NOW - 3600));
        assert_eq!(zone(Some("Not/AZone")), Tz::UTC);
    }

    #[test]
    fn errors() {
        for bad in [
            "-1fortnight",
            "yester",
            "jan",
            "25:99",
            "-99999999999999999999d",
            "-9999999999y",
            "99999999999999",
            "02/30/2026",
        ] {
            assert!(parse(bad, Tz::UTC, NOW).is_err(), "{bad}");
        }
    }
}
