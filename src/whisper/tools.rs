//! The whisper command-line tools (`carbyne whisper info|fetch|dump|create|
//! update|set-aggregation-method|set-xfilesfactor`), printing exactly what
//! Graphite's `whisper-*.py` scripts print, so scripts that read their output
//! keep working.

use super::{parse_retention_def, Aggregation, Allocation, Result, Whisper, WhisperError};
use std::fmt::Write as _;
use std::path::Path;

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation
/// for exponents -4..16 (with `.0` on whole numbers), else `1.5e+16`.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let sci = format!("{x:e}"); // shortest digits: "-1.2345e-7"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let s = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{s}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits.clone()
        };
        format!(
            "{sign}{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// Python's `'%.{p}g' % x`.
pub fn py_g(x: f64, p: usize) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let p = p.max(1);
    let sci = format!("{:.*e}", p - 1, x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if exp < -4 || exp >= p as i32 {
        format!(
            "{}e{}{:02}",
            strip(mant.to_string()),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip(format!("{:.*}", decimals, x))
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `time.ctime(t)` in UTC: `Sun Nov 22 01:23:06 2026`.
pub fn ctime(t: i64) -> String {
    let (y, m, d, hh, mm, ss) = crate::handlers::syslog::civil(t);
    let wd = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd} {} {d:>2} {hh:02}:{mm:02}:{ss:02} {y}",
        MONTHS[(m - 1) as usize % 12]
    )
}

/// `whisper-info.py [--json] path [field]`.
pub fn info(path: &Path, json: bool, field: Option<&str>) -> Result<String> {
    let w = Whisper::open(path, false)?;
    let size = std::fs::metadata(path).map_err(super::io(path))?.len();
    let h = &w.header;
    let top: Vec<(&str, String)> = vec![
        ("aggregationMethod", h.aggregation.name().to_string()),
        ("maxRetention", h.max_retention.to_string()),
        ("xFilesFactor", py_repr(h.x_files_factor as f64)),
        ("fileSize", size.to_string()),
    ];
    let archive = |a: &super::ArchiveInfo| -> Vec<(&'static str, u64)> {
        vec![
            ("offset", a.offset as u64),
            ("secondsPerPoint", a.seconds_per_point as u64),
            ("points", a.points as u64),
            ("retention", a.retention()),
            ("size", a.size()),
        ]
    };
    let mut out = String::new();
    if let Some(f) = field {
        if f == "archives" {
            let list: Vec<String> = h
                .archives
                .iter()
                .map(|a| {
                    let kv: Vec<String> = archive(a)
                        .iter()
                        .map(|(k, v)| format!("'{k}': {v}"))
                        .collect();
                    format!("{{{}}}", kv.join(", "))
                })
                .collect();
            let _ = writeln!(out, "[{}]", list.join(", "));
            return Ok(out);
        }
        return match top.iter().find(|(k, _)| *k == f) {
            Some((_, v)) => Ok(format!("{v}\n")),
            None => Err(WhisperError::InvalidConfiguration(format!(
                "Unknown field \"{f}\". Valid fields are aggregationMethod,maxRetention,xFilesFactor,archives,fileSize"
            ))),
        };
    }
    if json {
        out.push_str("{\n");
        let _ = writeln!(
            out,
            "  \"aggregationMethod\": \"{}\",",
            h.aggregation.name()
        );
        let _ = writeln!(out, "  \"maxRetention\": {},", h.max_retention);
        let _ = writeln!(
            out,
            "  \"xFilesFactor\": {},",
            py_repr(h.x_files_factor as f64)
        );
        out.push_str("  \"archives\": [\n");
        for (i, a) in h.archives.iter().enumerate() {
            out.push_str("    {\n");
            let kv = archive(a);
            for (j, (k, v)) in kv.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "      \"{k}\": {v}{}",
                    if j + 1 < kv.len() { "," } else { "" }
                );
            }
            let _ = writeln!(
                out,
                "    }}{}",
                if i + 1 < h.archives.len() { "," } else { "" }
            );
        }
        out.push_str("  ],\n");
        let _ = writeln!(out, "  \"fileSize\": {size}");
        out.push_str("}\n");
        return Ok(out);
    }
    for (k, v) in &top {
        let _ = writeln!(out, "{k}: {v}");
    }
    out.push('\n');
    for (i, a) in h.archives.iter().enumerate() {
        let _ = writeln!(out, "Archive {i}");
        for (k, v) in archive(a) {
            let _ = writeln!(out, "{k}: {v}");
        }
        out.push('\n');
    }
    Ok(out)
}

/// What `--drop` removes from `whisper-fetch.py`'s output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Drop {
    Nulls,
    Zeroes,
    Empty,
}

/// A time as Graphite's `from` and `until` take it (graphite-web's
/// attime, its relative forms): Unix seconds, `now`, or an offset from now
/// such as `-1h`, `-10min`, `now-7d`, `+30s`. Units: s, min (or m), h, d, w,
/// mon (30 days), y (365 days), each also spelled out (`minutes`, `days`).
pub fn attime(s: &str, now: i64) -> std::result::Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    let rest = t.strip_prefix("now").unwrap_or(&t);
    if rest.is_empty() {
        return Ok(now);
    }
    let bad =
        || format!("{s:?}: expected Unix seconds, now, or an offset such as -1h, -10min, -7d");
    let (sign, body) = match rest.as_bytes()[0] {
        b'-' => (-1, &rest[1..]),
        b'+' => (1, &rest[1..]),
        _ => return Err(bad()),
    };
    let digits = body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let n: i64 = body[..digits].parse().map_err(|_| bad())?;
    let unit = body[digits..].trim();
    // graphite-web's order: "mon" before the "m" of minutes.
    let secs = if unit.starts_with('s') {
        1
    } else if unit.starts_with("min") {
        60
    } else if unit.starts_with('h') {
        3600
    } else if unit.starts_with('d') {
        86_400
    } else if unit.starts_with('w') {
        7 * 86_400
    } else if unit.starts_with("mon") {
        30 * 86_400
    } else if unit.starts_with('m') {
        60
    } else if unit.starts_with('y') {
        365 * 86_400
    } else {
        return Err(bad());
    };
    n.checked_mul(secs)
        .and_then(|d| now.checked_add(sign * d))
        .ok_or_else(bad)
}

/// `whisper-fetch.py [--from] [--until] [--json] [--pretty] [--drop] path`.
pub fn fetch(
    path: &Path,
    from: i64,
    until: i64,
    json: bool,
    pretty: bool,
    drop: Option<Drop>,
) -> Result<String> {
    let w = Whisper::open(path, false)?;
    let s = w
        .fetch(from, Some(until), None, None)?
        .ok_or_else(|| WhisperError::InvalidTimeInterval("No data in selected timerange".into()))?;
    // Each value keeps its own timestamp. whisper 1.1.10's script numbered
    // the values left after --drop from the window's start, as if none had
    // been dropped (fixed upstream later): the timestamps were wrong.
    let points: Vec<(i64, Option<f64>)> = s
        .values
        .iter()
        .copied()
        .enumerate()
        .map(|(i, v)| (s.from + i as i64 * s.step, v))
        .filter(|(_, v)| match drop {
            None => true,
            Some(Drop::Nulls) => v.is_some(),
            Some(Drop::Zeroes) => *v != Some(0.0),
            Some(Drop::Empty) => v.is_some() && *v != Some(0.0),
        })
        .collect();
    let mut out = String::new();
    if json {
        let list: Vec<String> = points
            .iter()
            .map(|(_, v)| v.map(py_repr).unwrap_or_else(|| "null".into()))
            .collect();
        let _ = writeln!(
            out,
            "{{\n    \"start\" : {},\n    \"end\" : {},\n    \"step\" : {},\n    \"values\" : [{}]\n  }}",
            s.from,
            s.until,
            s.step,
            list.join(", ")
        );
        return Ok(out);
    }
    for (t, v) in points {
        let ts = if pretty { ctime(t) } else { t.to_string() };
        match v {
            Some(v) => {
                let _ = writeln!(out, "{ts}\t{v:.6}");
            }
            None => {
                let _ = writeln!(out, "{ts}\tNone");
            }
        }
    }
    Ok(out)
}

/// `whisper-dump.py [--pretty] [--raw] path`.
pub fn dump(path: &Path, pretty: bool, raw: bool) -> Result<String> {
    let w = Whisper::open(path, false)?;
    let h = &w.header;
    let mut out = String::new();
    if !raw {
        out.push_str("Meta data:\n");
        let _ = writeln!(out, "  aggregation method: {}", h.aggregation.name());
        let _ = writeln!(out, "  max retention: {}", h.max_retention);
        let _ = writeln!(out, "  xFilesFactor: {}", py_g(h.x_files_factor as f64, 6));
        out.push('\n');
        for (i, a) in h.archives.iter().enumerate() {
            let _ = writeln!(out, "Archive {i} info:");
            let _ = writeln!(out, "  offset: {}", a.offset);
            let _ = writeln!(out, "  seconds per point: {}", a.seconds_per_point);
            let _ = writeln!(out, "  points: {}", a.points);
            let _ = writeln!(out, "  retention: {}", a.retention());
            let _ = writeln!(out, "  size: {}", a.size());
            out.push('\n');
        }
    }
    for (i, a) in h.archives.iter().enumerate() {
        if !raw {
            let _ = writeln!(out, "Archive {i} data:");
        }
        for (n, (ts, v)) in w.dump_archive(a)?.into_iter().enumerate() {
            let tstr = if pretty {
                ctime(ts as i64)
            } else {
                ts.to_string()
            };
            if raw {
                let _ = writeln!(out, "{ts}:{}", py_g(v, 35));
            } else {
                let _ = writeln!(out, "{n}: {tstr}, {:>10}", py_g(v, 35));
            }
        }
    }
    Ok(out)
}

/// `whisper-create.py path retention... [--xFilesFactor] [--aggregationMethod]
/// [--overwrite] [--sparse] [--fallocate]`.
pub fn create(
    path: &Path,
    retentions: &[String],
    xff: f64,
    method: &str,
    overwrite: bool,
    allocation: Allocation,
) -> Result<String> {
    let archives = retentions
        .iter()
        .map(|r| parse_retention_def(r))
        .collect::<Result<Vec<_>>>()?;
    let mut out = String::new();
    if overwrite && path.exists() {
        let _ = writeln!(out, "Overwriting existing file: {}", path.display());
        std::fs::remove_file(path).map_err(super::io(path))?;
    }
    super::create(
        path,
        &archives,
        xff,
        Aggregation::from_name(method)?,
        allocation,
    )?;
    let size = std::fs::metadata(path).map_err(super::io(path))?.len();
    let _ = writeln!(out, "Created: {} ({size} bytes)", path.display());
    Ok(out)
}

/// `whisper-update.py path timestamp:value...` (`N:value` for now).
pub fn update(path: &Path, points: &[String]) -> Result<String> {
    let now = super::unix_now();
    let mut parsed = Vec::with_capacity(points.len());
    for p in points {
        let p = p.trim();
        let p = p
            .strip_prefix("N:")
            .map(|v| format!("{now}:{v}"))
            .unwrap_or_else(|| p.to_string());
        let (t, v) = p.split_once(':').ok_or_else(|| {
            WhisperError::InvalidConfiguration(format!("not enough values to unpack: {p:?}"))
        })?;
        let t: i64 = t.parse().map_err(|_| {
            WhisperError::InvalidConfiguration(format!(
                "invalid literal for int() with base 10: '{t}'"
            ))
        })?;
        let v: f64 = v.trim().parse().map_err(|_| {
            WhisperError::InvalidConfiguration(format!("could not convert string to float: '{v}'"))
        })?;
        parsed.push((t, v));
    }
    let w = Whisper::open(path, true)?;
    if parsed.len() == 1 {
        w.update(parsed[0].1, Some(parsed[0].0), Some(now))?;
    } else {
        w.update_many(&parsed, Some(now))?;
    }
    Ok(String::new())
}

/// `whisper-set-aggregation-method.py path method [xFilesFactor]`.
pub fn set_aggregation_method(path: &Path, method: &str, xff: Option<f64>) -> Result<String> {
    let agg = Aggregation::from_name(method)?;
    let mut w = Whisper::open(path, true)?;
    let (old, _) = w.set_aggregation(Some(agg), xff)?;
    Ok(format!(
        "Updated aggregation method: {} ({} -> {})\n",
        path.display(),
        old.name(),
        method
    ))
}

/// `whisper-set-xfilesfactor.py path xFilesFactor`.
pub fn set_xfilesfactor(path: &Path, xff: f64) -> Result<String> {
    let mut w = Whisper::open(path, true)?;
    let (_, old) = w.set_aggregation(None, Some(xff))?;
    Ok(format!(
        "Updated xFilesFactor: {} ({} -> {})\n",
        path.display(),
        py_repr(old as f64),
        py_repr(xff)
    ))
}

/// `whisper-resize.py` options.
#[derive(Debug, Clone, Default)]
pub struct ResizeOptions {
    pub x_files_factor: Option<f64>,
    pub aggregation_method: Option<String>,
    pub newfile: Option<std::path::PathBuf>,
    pub nobackup: bool,
    pub aggregate: bool,
}

/// Python's `repr(list_of_ints)`.
fn py_int_list(v: &[i64]) -> String {
    let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!("[{}]", items.join(", "))
}

/// `whisper-resize.py path retention... [--xFilesFactor] [--aggregationMethod]
/// [--newfile F] [--nobackup] [--aggregate]`: a new file with the new
/// archives, filled from the old one, then put in its place (the old one kept
/// as `path.bak` unless `--nobackup`).
pub fn resize(path: &Path, retentions: &[String], o: &ResizeOptions) -> Result<String> {
    let now = super::unix_now();
    let mut out = String::new();
    let new_archives = retentions
        .iter()
        .map(|r| parse_retention_def(r))
        .collect::<Result<Vec<_>>>()?;
    let old = Whisper::open(path, false)?;
    let mut old_archives = old.header.archives.clone();
    old_archives.sort_by_key(|a| std::cmp::Reverse(a.seconds_per_point));
    let xff = o.x_files_factor.unwrap_or(old.header.x_files_factor as f64);
    let method = match &o.aggregation_method {
        Some(m) => Aggregation::from_name(m)?,
        None => old.header.aggregation,
    };
    out.push_str("Retrieving all data from the archives\n");
    let mut data = Vec::new();
    for a in &old_archives {
        let from = now - a.retention() as i64 + a.seconds_per_point as i64;
        let s = old
            .fetch(from, Some(now), Some(now), None)?
            .ok_or_else(|| {
                WhisperError::InvalidTimeInterval("No data in selected timerange".into())
            })?;
        data.push((a.seconds_per_point, s));
    }
    let tmp = std::path::PathBuf::from(format!("{}.tmp", path.display()));
    let newfile = match &o.newfile {
        Some(f) => f.clone(),
        None => {
            if tmp.exists() {
                let _ = writeln!(
                    out,
                    "Removing previous temporary database file: {}",
                    tmp.display()
                );
                std::fs::remove_file(&tmp).map_err(super::io(&tmp))?;
            }
            tmp.clone()
        }
    };
    let _ = writeln!(out, "Creating new whisper database: {}", newfile.display());
    super::create(&newfile, &new_archives, xff, method, Allocation::Zeroed)?;
    let size = std::fs::metadata(&newfile)
        .map_err(super::io(&newfile))?
        .len();
    let _ = writeln!(out, "Created: {} ({size} bytes)", newfile.display());
    let new = Whisper::open(&newfile, true)?;
    if o.aggregate {
        out.push_str("Migrating data with aggregation...\n");
        // Every old point, finest archive first, coarser ones only before it.
        let mut all: Vec<(i64, Option<f64>)> = Vec::new();
        let mut by_step = data.clone();
        by_step.sort_by_key(|(spp, _)| *spp);
        for (_, s) in &by_step {
            let mut pts: Vec<(i64, Option<f64>)> = s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (s.from + i as i64 * s.step, *v))
                .collect();
            pts.reverse();
            match all.last() {
                Some(&(last, _)) => {
                    let cut = pts.iter().position(|(t, _)| *t < last).unwrap_or(0);
                    all.extend_from_slice(&pts[cut..]);
                }
                None => all.extend(pts),
            }
        }
        all.reverse();
        let times: Vec<i64> = all.iter().map(|p| p.0).collect();
        let values: Vec<Option<f64>> = all.iter().map(|p| p.1).collect();
        let _ = writeln!(out, "oldtimestamps: {}", py_int_list(&times));
        for a in new.header.archives.clone() {
            let step = a.seconds_per_point as i64;
            let from = now - a.retention() as i64 + now.rem_euclid(step);
            let until = now + now.rem_euclid(step) + step;
            let _ = writeln!(out, "({from},{until},{step})");
            let _ = writeln!(out, "timepoints_to_update: range({from}, {until}, {step})");
            let points: Vec<i64> = (from..until).step_by(step as usize).collect();
            let mut update = Vec::new();
            for w in points.windows(2) {
                let l = times.partition_point(|t| *t < w[0]);
                let r = l + times[l..].partition_point(|t| *t < w[1]);
                let slice = &values[l..r];
                let known: Vec<f64> = slice.iter().flatten().copied().collect();
                if !known.is_empty() && known.len() as f64 / slice.len() as f64 >= xff {
                    update.push((w[0], method.aggregate(&known, slice)));
                }
            }
            new.update_many(&update, None)?;
        }
    } else {
        out.push_str("Migrating data without aggregation...\n");
        for (_, s) in &data {
            let pts = s.known_points();
            new.update_many(&pts, None)?;
        }
    }
    if o.newfile.is_some() {
        return Ok(out);
    }
    let backup = std::path::PathBuf::from(format!("{}.bak", path.display()));
    let _ = writeln!(out, "Renaming old database to: {}", backup.display());
    std::fs::rename(path, &backup).map_err(super::io(path))?;
    let _ = writeln!(out, "Renaming new database to: {}", path.display());
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::rename(&backup, path);
        return Err(super::io(path)(e));
    }
    if o.nobackup {
        let _ = writeln!(out, "Unlinking backup: {}", backup.display());
        std::fs::remove_file(&backup).map_err(super::io(&backup))?;
    }
    Ok(out)
}

/// `whisper-fill.py [--lock] src dst`: copies into `dst`'s gaps (missing or
/// zero values, as whisper-fill sees them) what `src` has there.
pub fn fill(src: &Path, dst: &Path, lock: bool) -> Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let s = Whisper::open(src, false)?;
    let d = Whisper::open(dst, true)?;
    if lock {
        d.lock()?;
    }
    let mut archives = d.header.archives.clone();
    archives.sort_by_key(|a| a.retention());
    let mut start_from = now;
    for a in archives {
        let from_time = now - a.retention() as f64;
        if from_time >= start_from {
            continue;
        }
        let Some(series) = d.fetch(
            from_time as i64,
            Some(start_from as i64),
            Some(now as i64),
            None,
        )?
        else {
            start_from = from_time;
            continue;
        };
        let (mut start, end, step) = (series.from, series.until, series.step);
        let mut gap: Option<i64> = None;
        for v in series.values {
            let missing = v.is_none_or(|x| x == 0.0);
            match gap {
                None if missing => gap = Some(start),
                Some(g) if !missing => {
                    if start - g > a.seconds_per_point as i64 {
                        fill_range(&s, &d, (g - step) as f64, start as f64, now)?;
                    }
                    gap = None;
                }
                Some(g) if start == end - step => {
                    fill_range(&s, &d, (g - step) as f64, start as f64, now)?;
                }
                _ => {}
            }
            start += step;
        }
        start_from = from_time;
    }
    Ok(String::new())
}

/// whisper-fill's `fill`: copies `src`'s known points between two times
/// into `dst`, finest archive first.
fn fill_range(src: &Whisper, dst: &Whisper, tstart: f64, mut tstop: f64, now: f64) -> Result<()> {
    let src_time = now - src.header.max_retention as f64;
    if tstart < src_time && tstop < src_time {
        return Ok(());
    }
    let mut archives = src.header.archives.clone();
    archives.sort_by_key(|a| a.retention());
    for a in archives {
        let rtime = now - a.retention() as f64;
        if tstop <= rtime {
            continue;
        }
        let from = if rtime > tstart { rtime } else { tstart };
        if let Some(s) = src.fetch(from as i64, Some(tstop as i64), Some(now as i64), None)? {
            let points = s.known_points();
            dst.update_many(&points, Some(now as i64))?;
        }
        tstop = from;
        if tstart == tstop {
            return Ok(());
        }
    }
    Ok(())
}

/// `whisper-merge.py [--from T] [--until T] from_path to_path`.
pub fn merge(from: &Path, to: &Path, time_from: Option<i64>, until: Option<i64>) -> Result<String> {
    for f in [from, to] {
        if !f.exists() {
            return Err(WhisperError::InvalidConfiguration(format!(
                "File \"{}\" does not exist!",
                f.display()
            )));
        }
    }
    let src = Whisper::open(from, false)?;
    let dst = Whisper::open(to, true)?;
    dst.merge_from(&src, time_from, until, None)?;
    Ok(String::new())
}

fn py_opt(v: Option<f64>) -> String {
    v.map(py_repr).unwrap_or_else(|| "None".into())
}

fn json_opt(v: Option<f64>) -> String {
    v.map(py_repr).unwrap_or_else(|| "null".into())
}

/// How `whisper-diff.py` prints.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    pub summary: bool,
    pub ignore_empty: bool,
    pub columns: bool,
    pub no_headers: bool,
    pub json: bool,
    pub until: Option<i64>,
}

/// `whisper-diff.py [--summary] [--ignore-empty] [--columns] [--no-headers]
/// [--until T] [--json] path_a path_b`.
pub fn diff(a: &Path, b: &Path, o: DiffOptions) -> Result<String> {
    let (wa, wb) = (Whisper::open(a, false)?, Whisper::open(b, false)?);
    let diffs = wa.diff(&wb, o.ignore_empty, o.until, None)?;
    let mut out = String::new();
    let (pa, pb) = (a.display().to_string(), b.display().to_string());
    if o.json {
        // json.dumps(sort_keys=True, indent=2, separators=(',', ' : '))
        let _ = writeln!(out, "{{\n  \"archives\" : [");
        for (i, d) in diffs.iter().enumerate() {
            out.push_str("    {\n");
            let _ = writeln!(out, "      \"archive\" : {},", d.archive);
            if !o.summary {
                if d.diffs.is_empty() {
                    out.push_str("      \"datapoint\" : [],\n");
                } else {
                    out.push_str("      \"datapoint\" : [\n");
                    for (j, (t, x, y)) in d.diffs.iter().enumerate() {
                        let _ = write!(
                            out,
                            "        {{\n          \"timestamp\" : {t},\n          \"value_a\" : {},\n          \"value_b\" : {}\n        }}",
                            json_opt(*x),
                            json_opt(*y)
                        );
                        out.push_str(if j + 1 < d.diffs.len() { ",\n" } else { "\n" });
                    }
                    out.push_str("      ],\n");
                }
            }
            let _ = writeln!(out, "      \"points\" : {},", d.diffs.len());
            let _ = writeln!(out, "      \"total\" : {}", d.total);
            out.push_str(if i + 1 < diffs.len() {
                "    },\n"
            } else {
                "    }\n"
            });
        }
        let _ = writeln!(
            out,
            "  ],\n  \"path_a\" : \"{pa}\",\n  \"path_b\" : \"{pb}\"\n}}"
        );
        return Ok(out);
    }
    let pretty = !o.columns;
    if o.summary {
        let row = |a: &str, b: &str, c: &str| {
            if pretty {
                format!("{a:>7} {b:>9} {c:>9}\n")
            } else {
                format!("{a} {b} {c}\n")
            }
        };
        if !o.no_headers {
            out.push_str(&row("archive", "total", "differing"));
        }
        for d in &diffs {
            out.push_str(&row(
                &d.archive.to_string(),
                &d.total.to_string(),
                &d.diffs.len().to_string(),
            ));
        }
        return Ok(out);
    }
    let head = |a: &str| {
        if pretty {
            format!(
                "{a:>7} {:>11} {:>13} {:>13}\n",
                "timestamp", "value_a", "value_b"
            )
        } else {
            format!("{a} timestamp value_a value_b\n")
        }
    };
    if !o.no_headers {
        out.push_str(&head("archive"));
    }
    for d in &diffs {
        if pretty {
            let _ = writeln!(
                out,
                "Archive {} ({} of {} datapoints differ)",
                d.archive,
                d.diffs.len(),
                d.total
            );
            out.push_str(&head(""));
        }
        for (t, x, y) in &d.diffs {
            if pretty {
                let _ = writeln!(
                    out,
                    "{:>7} {t:>11} {:>13} {:>13}",
                    "",
                    py_opt(*x),
                    py_opt(*y)
                );
            } else {
                let _ = writeln!(out, "{} {t} {} {}", d.archive, py_opt(*x), py_opt(*y));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_formats() {
        for (x, want) in [
            (0.5, "0.5"),
            (2.0, "2.0"),
            (0.33000001311302185, "0.33000001311302185"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(py_repr(x), want, "{x}");
        }
        assert_eq!(py_g(0.5, 6), "0.5");
        assert_eq!(py_g(0.0, 35), "0");
        assert_eq!(py_g(1.5, 35), "1.5");
        assert_eq!(py_g(0.1, 35), "0.1000000000000000055511151231257827");
        assert_eq!(py_g(1e40, 35), "1.0000000000000000303786028427003667e+40");
        assert_eq!(ctime(1_795_310_586), "Sun Nov 22 01:23:06 2026");
    }

    #[test]
    fn times_as_graphite_takes_them() {
        let now = 1_700_000_000;
        for (s, want) in [
            ("1699990000", 1_699_990_000),
            ("now", now),
            ("-1h", now - 3600),
            ("-10min", now - 600),
            ("-10m", now - 600),
            ("now-7d", now - 7 * 86_400),
            ("-2weeks", now - 14 * 86_400),
            ("-1mon", now - 30 * 86_400),
            ("-1y", now - 365 * 86_400),
            ("+30s", now + 30),
            ("-5 minutes", now - 300),
        ] {
            assert_eq!(attime(s, now), Ok(want), "{s}");
        }
        for bad in [
            "yesterday",
            "-h",
            "-1fortnight",
            "--1h",
            "-99999999999999999y",
        ] {
            assert!(attime(bad, now).is_err(), "{bad}");
        }
    }
}
