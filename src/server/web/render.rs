//! A render's answer in graphite-web's data formats: json (with
//! `maxDataPoints` consolidation and `noNullPoints`), csv, raw and pickle
//! (what graphite-web cluster peers ask for with `local=1`).

use std::fmt::Write;

use chrono::{DateTime, TimeZone};
use chrono_tz::Tz;

use super::pyfmt;
use super::series::Series;
pub use crate::server::carbon::pickle::Pickler;

/// graphite-web's JSON number: `null` for None and NaN, `1e9999` for
/// infinity (Python's `Infinity`, as graphite-web rewrites it).
fn json_number(v: Option<f64>, out: &mut String) {
    match v {
        None => out.push_str("null"),
        Some(x) if x.is_nan() => out.push_str("null"),
        Some(x) if x.is_infinite() => out.push_str(if x > 0.0 { "1e9999" } else { "-1e9999" }),
        Some(x) => pyfmt::repr_into(out, x),
    }
}

pub(super) fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

/// graphite-web's `maxDataPoints`: fewer points per series, the start
/// nudged so that bands line up from one call to the next.
pub fn consolidate_for(series: &mut [Series], max_points: usize) {
    if series.is_empty() {
        return;
    }
    let start = series.iter().map(|s| s.start).min().unwrap_or(0);
    let end = series.iter().map(|s| s.end).max().unwrap_or(0);
    let range = end - start;
    for s in series.iter_mut() {
        if max_points == 1 {
            s.values_per_point = s.values.len().max(1);
            continue;
        }
        let step = s.step.max(1);
        let points = range as f64 / step as f64;
        if (max_points as f64) < points {
            let per_point = (points / max_points as f64).ceil() as i64;
            let seconds_per_point = per_point * step;
            let nudge = seconds_per_point + s.start.rem_euclid(step)
                - s.start.rem_euclid(seconds_per_point);
            s.start += nudge;
            // graphite-web drops `lose - 1` leading values (all there are
            // when fewer), one by one; here at once, whatever `lose` is.
            let lose = usize::try_from(nudge / step - 1).unwrap_or(0);
            s.values.drain(..lose.min(s.values.len()));
            s.values_per_point = per_point.max(1) as usize;
        }
    }
}

pub fn json(series: &[Series], no_null_points: bool) -> String {
    let mut out = String::from("[");
    let mut first = true;
    for s in series {
        let mut points = s.datapoints();
        if no_null_points {
            points.retain(|(v, _)| v.is_some_and(|x| !x.is_nan()));
            if points.is_empty() {
                continue;
            }
        }
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str("{\"target\": ");
        json_string(&s.name, &mut out);
        out.push_str(", \"tags\": {");
        for (i, (k, v)) in s.tags.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            json_string(k, &mut out);
            out.push_str(": ");
            json_string(v, &mut out);
        }
        out.push_str("}, \"datapoints\": [");
        for (i, (v, t)) in points.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push('[');
            json_number(*v, &mut out);
            let _ = write!(out, ", {t}]");
        }
        out.push_str("]}");
    }
    out.push(']');
    out
}

/// Python's `repr` of a value in a series (`None`, `1.0`).
fn py_value(v: Option<f64>) -> String {
    match v {
        None => "None".into(),
        Some(x) => pyfmt::repr(x),
    }
}

pub fn raw(series: &[Series]) -> String {
    let mut out = String::new();
    for s in series {
        out.push_str(&format!("{},{},{},{}|", s.name, s.start, s.end, s.step));
        let vals: Vec<String> = s.view().iter().copied().map(py_value).collect();
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out
}

/// Python's csv (excel dialect): quoted only when needed, CRLF line ends.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn csv(series: &[Series], tz: Tz) -> String {
    let mut out = String::new();
    for s in series {
        for (i, &v) in s.view().iter().enumerate() {
            let t = s.start + i as i64 * s.step;
            let when = DateTime::from_timestamp(t, 0)
                .map(|d| {
                    tz.from_utc_datetime(&d.naive_utc())
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default();
            let value = v.map(pyfmt::repr).unwrap_or_default();
            out.push_str(&format!("{},{},{}\r\n", csv_field(&s.name), when, value));
        }
    }
    out
}

/// graphite-web's `getInfo` of each series, pickled.
pub fn pickle(series: &[Series]) -> Vec<u8> {
    let mut p = Pickler::default();
    p.list_start();
    for s in series {
        p.dict_start();
        p.string("name");
        p.string(&s.name);
        p.string("start");
        p.int(s.start);
        p.string("end");
        p.int(s.end);
        p.string("step");
        p.int(s.step);
        p.string("values");
        p.list_start();
        for &v in s.view().iter() {
            match v {
                Some(x) => p.float(x),
                None => p.none(),
            }
        }
        p.list_end();
        p.string("pathExpression");
        p.string(&s.path_expression);
        p.string("valuesPerPoint");
        p.int(s.values_per_point as i64);
        p.string("consolidationFunc");
        p.string(&s.consolidation);
        p.string("xFilesFactor");
        p.float(s.xff);
        p.dict_end();
    }
    p.list_end();
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series::new(
            "a.b".into(),
            60,
            240,
            60,
            vec![Some(1.0), None, Some(f64::INFINITY)],
            0.0,
        )
    }

    #[test]
    fn formats() {
        assert_eq!(
            json(&[series()], false),
            r#"[{"target": "a.b", "tags": {"name": "a.b"}, "datapoints": [[1.0, 60], [null, 120], [1e9999, 180]]}]"#
        );
        assert_eq!(
            json(&[series()], true),
            r#"[{"target": "a.b", "tags": {"name": "a.b"}, "datapoints": [[1.0, 60], [1e9999, 180]]}]"#
        );
        assert_eq!(raw(&[series()]), "a.b,60,240,60|1.0,None,inf\n");
        assert_eq!(
            csv(&[series()], Tz::UTC),
            "a.b,1970-01-01 00:01:00,1.0\r\na.b,1970-01-01 00:02:00,\r\na.b,1970-01-01 00:03:00,inf\r\n"
        );
        let p = pickle(&[series()]);
        assert_eq!(&p[..2], &[0x80, 2]);
        assert_eq!(p.last(), Some(&b'.'));
    }

    #[test]
    fn max_data_points() {
        let mut s = vec![Series::new(
            "a".into(),
            60,
            660,
            60,
            (0..10).map(|i| Some(i as f64)).collect(),
            0.0,
        )];
        consolidate_for(&mut s, 5);
        // 10 points into 5: two per point, start nudged by one band.
        assert_eq!(s[0].values_per_point, 2);
        assert_eq!(s[0].start, 120);
    }
}
