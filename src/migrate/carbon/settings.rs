//! carbon.conf's values as carbon reads them: Python's float and
//! getboolean, ConfigParser's interpolation, carbon's paths.

use crate::config::ConfigError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The daemon's settings: upper-cased keys with their value and line.
pub(super) struct Settings {
    pub(super) file: PathBuf,
    pub(super) keys: BTreeMap<String, (String, usize)>,
    pub(super) used: std::collections::BTreeSet<String>,
}

impl Settings {
    pub(super) fn err(&self, line: usize, msg: String) -> ConfigError {
        ConfigError {
            file: Some(self.file.clone()),
            line: (line > 0).then_some(line),
            key: None,
            message: msg,
        }
    }

    /// The value of `key` (marked as carried over) and its line.
    pub(super) fn get(&mut self, key: &str) -> Option<(String, usize)> {
        self.used.insert(key.to_string());
        self.keys.get(key).cloned()
    }

    /// Where `key` is set: ` (line N)`, or ` (carbon's default)`.
    pub(super) fn at(&self, key: &str) -> String {
        match self.keys.get(key) {
            Some((_, line)) => format!(" (line {line})"),
            None => " (carbon's default)".into(),
        }
    }

    /// A string, or carbon's default.
    pub(super) fn string(&mut self, key: &str, default: &str) -> String {
        self.get(key).map_or_else(|| default.to_string(), |v| v.0)
    }

    /// A number as carbon reads one (int, then float: `inf` too).
    pub(super) fn number(&mut self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((v, line)) => {
                python_float(&v).ok_or_else(|| self.err(line, format!("{key} = {v}: not a number")))
            }
        }
    }

    /// `None` (carbon's way of saying "not set") or a number.
    pub(super) fn optional_number(&mut self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some((v, _)) if v == "None" || v.is_empty() => Ok(None),
            Some((v, line)) => python_float(&v)
                .map(Some)
                .ok_or_else(|| self.err(line, format!("{key} = {v}: not a number or None"))),
        }
    }

    /// Python's `getboolean`.
    pub(super) fn boolean(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((v, line)) => match v.to_ascii_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => Ok(true),
                "0" | "no" | "false" | "off" => Ok(false),
                _ => Err(self.err(line, format!("{key} = {v}: not a boolean"))),
            },
        }
    }

    /// `INTERFACE:PORT` for carbyne's listen keys; "" when the port is 0
    /// (carbon's way of turning a listener off).
    pub(super) fn address(
        &mut self,
        iface: &str,
        port: &str,
        default: u16,
    ) -> Result<String, ConfigError> {
        let host = self.string(iface, "0.0.0.0");
        let p = self.number(port, f64::from(default))?;
        if !(0.0..=65535.0).contains(&p) || p.fract() != 0.0 {
            let line = self.keys.get(port).map_or(0, |v| v.1);
            return Err(self.err(line, format!("{port} = {p}: not a port")));
        }
        if p == 0.0 {
            return Ok(String::new());
        }
        crate::migrate::host_port(&host, p as u16, "0.0.0.0").map_err(|m| {
            let line = self.keys.get(iface).map_or(0, |v| v.1);
            self.err(line, format!("{iface}: {m}"))
        })
    }

    /// A count carbyne takes as a whole number: `inf` (or more than any
    /// count) is `unlimited`; below `min` is an error, since carbon would
    /// not run as carbyne does.
    pub(super) fn count(
        &mut self,
        key: &str,
        default: f64,
        min: f64,
        unlimited: Option<i64>,
    ) -> Result<toml::Value, ConfigError> {
        let n = self.number(key, default)?;
        let line = self.keys.get(key).map_or(0, |v| v.1);
        if n.is_nan() || n < min {
            return Err(self.err(
                line,
                format!("{key} = {n}: carbon needs at least {min} (carbyne will not guess what was meant)"),
            ));
        }
        if n >= 1e15 {
            return unlimited.map(toml::Value::Integer).ok_or_else(|| {
                self.err(line, format!("{key} = {n}: carbyne needs a whole number"))
            });
        }
        Ok(toml::Value::Integer(n.floor() as i64))
    }
}

/// A path as carbon takes it: `~` expanded, relative to where it runs
/// (written out absolute, since carbyne runs elsewhere).
pub(super) fn local_path(p: &str) -> PathBuf {
    let expanded = match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if p == "~" => std::env::var_os("HOME").map_or_else(|| PathBuf::from(p), PathBuf::from),
        _ => PathBuf::from(p),
    };
    std::path::absolute(&expanded).unwrap_or(expanded)
}

/// Python's `float()` of a carbon.conf value (its `int()` first gives the
/// same number).
pub(super) fn python_float(v: &str) -> Option<f64> {
    let t = v.trim();
    match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "nan" => return None,
        _ => {}
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// ConfigParser's `%(name)s` and `%%` in `value`, from `keys`.
pub(super) fn interpolate(
    value: &str,
    keys: &BTreeMap<String, (String, usize)>,
    depth: usize,
) -> Result<String, String> {
    if !value.contains('%') {
        return Ok(value.to_string());
    }
    if depth > 10 {
        return Err("interpolation nested more than 10 deep".into());
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        if out.len() > MAX_VALUE {
            return Err(format!(
                "interpolation makes a value over {MAX_VALUE} bytes"
            ));
        }
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('(') {
            let Some(end) = r.find(")s") else {
                return Err(format!("bad interpolation in {value:?}"));
            };
            let name = r[..end].to_ascii_uppercase();
            let Some((v, _)) = keys.get(&name) else {
                return Err(format!("%({}) names no key", &r[..end]));
            };
            out.push_str(&interpolate(v, keys, depth + 1)?);
            rest = &r[end + 2..];
        } else {
            return Err(format!("'%' must be followed by '%' or '(' in {value:?}"));
        }
    }
    out.push_str(rest);
    if out.len() > MAX_VALUE {
        return Err(format!(
            "interpolation makes a value over {MAX_VALUE} bytes"
        ));
    }
    Ok(out)
}

/// Longest value interpolation may make (carbon's values are short).
pub(super) const MAX_VALUE: usize = 64 << 10;
