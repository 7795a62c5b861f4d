//! carbon's `storage-schemas.conf` and `storage-aggregation.conf`, in its
//! own INI format, so an existing carbon setup's files work unchanged: the
//! first section whose `pattern` (a regex searched anywhere in the name)
//! matches wins; a name no section matches gets carbon's defaults (one
//! minute for a week; the file's xFilesFactor 0.5 and `average`).

use crate::whisper::{self, Aggregation};
use regex::Regex;
use std::path::Path;

/// A configuration file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub struct SchemaError {
    pub file: String,
    /// 1-based; 0 for the whole file (it cannot be read, say).
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.msg),
            n => write!(f, "{}:{n}: {}", self.file, self.msg),
        }
    }
}

impl SchemaError {
    /// The same, as a configuration error of `key` (the file's setting).
    pub fn at_key(self, key: &str) -> crate::config::ConfigError {
        crate::config::ConfigError {
            file: Some(self.file.into()),
            line: (self.line > 0).then_some(self.line),
            key: Some(key.to_string()),
            message: self.msg,
        }
    }
}

/// One `[section]` of an INI file: its name, line, and keys (lowercased, as
/// Python's ConfigParser does) with their values and lines.
#[derive(Debug)]
pub(crate) struct Section {
    pub name: String,
    pub line: usize,
    keys: Vec<(String, String, usize)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<(&str, usize)> {
        self.keys
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    /// Every `(key, value, line)`, in file order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str, usize)> {
        self.keys
            .iter()
            .map(|(k, v, l)| (k.as_str(), v.as_str(), *l))
    }
}

/// Python ConfigParser's reading: `key = value` or `key: value`, `#` and
/// `;` comment lines, indented lines continuing a value.
pub(crate) fn parse_ini(text: &str, file: &str) -> Result<Vec<Section>, SchemaError> {
    let err = |line: usize, msg: String| SchemaError {
        file: file.to_string(),
        line,
        msg,
    };
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let Some(last) = sections.last_mut().and_then(|s| s.keys.last_mut()) else {
                return Err(err(n, "continuation line before any key".into()));
            };
            last.1.push('\n');
            last.1.push_str(line);
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if sections.iter().any(|s| s.name == name) {
                return Err(err(n, format!("section [{name}] appears twice")));
            }
            sections.push(Section {
                name: name.to_string(),
                line: n,
                keys: Vec::new(),
            });
            continue;
        }
        let Some(at) = line.find(['=', ':']) else {
            return Err(err(n, format!("expected `key = value`, found {line:?}")));
        };
        let Some(section) = sections.last_mut() else {
            return Err(err(n, "a key before any [section]".into()));
        };
        let key = line[..at].trim().to_ascii_lowercase();
        section
            .keys
            .push((key, line[at + 1..].trim().to_string(), n));
    }
    Ok(sections)
}

fn read(path: &Path) -> Result<(String, String), SchemaError> {
    let file = path.display().to_string();
    match crate::config::read_text(path) {
        Ok(t) => Ok((t, file)),
        Err(e) => Err(SchemaError {
            file,
            line: e.line.unwrap_or(0),
            msg: e.message,
        }),
    }
}

fn pattern(s: &Section, file: &str) -> Result<Option<Regex>, SchemaError> {
    let Some((p, line)) = s.get("pattern") else {
        // carbon skips such a section (and logs it); so do we.
        log::warn!("{file}:{}: [{}] has no pattern, skipped", s.line, s.name);
        return Ok(None);
    };
    Regex::new(p).map(Some).map_err(|e| SchemaError {
        file: file.to_string(),
        line,
        msg: format!("[{}] pattern: {e}", s.name),
    })
}

/// A storage schema: names matching `pattern` get these archives.
#[derive(Debug, Clone)]
pub struct Schema {
    pub name: String,
    pattern: Option<Regex>,
    /// (seconds per point, points), finest first.
    pub archives: Vec<(u32, u32)>,
}

/// An aggregation rule: names matching `pattern` get these settings
/// (`None`: whisper's default).
#[derive(Debug, Clone)]
pub struct AggregationRule {
    pub name: String,
    pattern: Option<Regex>,
    pub x_files_factor: Option<f64>,
    pub method: Option<Aggregation>,
}

/// The names etsy statsd writes with its default (legacy) namespace.
pub const STATSD_PATTERN: &str = r"^(stats|stats_counts|statsd)\.";

/// Both files, read once at start.
#[derive(Debug, Clone)]
pub struct Rules {
    pub schemas: Vec<Schema>,
    pub aggregation: Vec<AggregationRule>,
}

impl Rules {
    /// Reads the files the config names; without one, only carbon's default.
    pub fn load(schemas: Option<&Path>, aggregation: Option<&Path>) -> Result<Rules, SchemaError> {
        let mut out = Rules {
            schemas: Vec::new(),
            aggregation: Vec::new(),
        };
        match schemas {
            Some(path) => {
                let (text, file) = read(path)?;
                out.schemas = parse_schemas(&text, &file)?;
            }
            // Without a file, statsd's names get the rule Graphite's docs
            // give for them, so that 10 s flushes are not overwritten by
            // the next one in the same minute.
            None => out.schemas.push(Schema {
                name: "statsd".into(),
                pattern: Some(Regex::new(STATSD_PATTERN).map_err(|e| SchemaError {
                    file: "built-in".into(),
                    line: 0,
                    msg: e.to_string(),
                })?),
                archives: vec![(10, 6 * 360), (60, 6 * 1440), (600, 5 * 365 * 144)],
            }),
        }
        if let Some(path) = aggregation {
            let (text, file) = read(path)?;
            out.aggregation = parse_aggregation(&text, &file)?;
        }
        // carbon's defaults, always last: 7 days of minutely points.
        out.schemas.push(Schema {
            name: "default".into(),
            pattern: None,
            archives: vec![(60, 60 * 24 * 7)],
        });
        out.aggregation.push(AggregationRule {
            name: "default".into(),
            pattern: None,
            x_files_factor: None,
            method: None,
        });
        Ok(out)
    }

    /// The first schema matching `metric`.
    pub fn schema(&self, metric: &str) -> &Schema {
        let hit = self
            .schemas
            .iter()
            .find(|s| s.pattern.as_ref().is_none_or(|p| p.is_match(metric)));
        hit.unwrap_or(&self.schemas[self.schemas.len() - 1])
    }

    /// The first aggregation rule matching `metric`.
    pub fn aggregation(&self, metric: &str) -> &AggregationRule {
        let hit = self
            .aggregation
            .iter()
            .find(|s| s.pattern.as_ref().is_none_or(|p| p.is_match(metric)));
        hit.unwrap_or(&self.aggregation[self.aggregation.len() - 1])
    }
}

fn parse_schemas(text: &str, file: &str) -> Result<Vec<Schema>, SchemaError> {
    let mut out = Vec::new();
    for s in parse_ini(text, file)? {
        let Some((retentions, line)) = s.get("retentions") else {
            log::warn!("{file}:{}: [{}] has no retentions, skipped", s.line, s.name);
            continue;
        };
        let err = |msg: String| SchemaError {
            file: file.to_string(),
            line,
            msg: format!("[{}] retentions: {msg}", s.name),
        };
        let mut archives = retentions
            .split(',')
            .map(whisper::parse_retention_def)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(e.to_string()))?;
        whisper::validate_archive_list(&mut archives).map_err(|e| err(e.to_string()))?;
        let Some(pattern) = pattern(&s, file)? else {
            continue;
        };
        out.push(Schema {
            name: s.name.clone(),
            pattern: Some(pattern),
            archives,
        });
    }
    Ok(out)
}

fn parse_aggregation(text: &str, file: &str) -> Result<Vec<AggregationRule>, SchemaError> {
    let mut out = Vec::new();
    for s in parse_ini(text, file)? {
        let x_files_factor = match s.get("xfilesfactor") {
            None => None,
            Some((v, line)) => match v.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Some(x),
                _ => {
                    return Err(SchemaError {
                        file: file.to_string(),
                        line,
                        msg: format!("[{}] xFilesFactor {v:?}: not a number in [0, 1]", s.name),
                    })
                }
            },
        };
        let method = match s.get("aggregationmethod") {
            None => None,
            Some((v, line)) => Some(Aggregation::from_name(v).map_err(|e| SchemaError {
                file: file.to_string(),
                line,
                msg: format!("[{}] aggregationMethod: {e}", s.name),
            })?),
        };
        let Some(pattern) = pattern(&s, file)? else {
            continue;
        };
        out.push(AggregationRule {
            name: s.name.clone(),
            pattern: Some(pattern),
            x_files_factor,
            method,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMAS: &str = "\
# Schema definitions for Whisper files.
[carbon]
pattern = ^carbon\\.
retentions = 60:90d

[web]
PATTERN = ^web\\.
retentions = 10s:6h, 1m:7d,
  10m:5y

[default_1min_for_1day]
pattern = .*
retentions = 60s:1d
";

    #[test]
    fn first_match_wins_and_keys_are_case_insensitive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("storage-schemas.conf");
        let a = dir.path().join("storage-aggregation.conf");
        std::fs::write(&s, SCHEMAS).expect("write");
        std::fs::write(
            &a,
            "[min]\npattern = \\.min$\nxFilesFactor = 0.1\naggregationMethod = min\n\n[sum]\npattern = \\.count$\naggregationMethod = sum\n",
        )
        .expect("write");
        let r = Rules::load(Some(&s), Some(&a)).expect("load");
        assert_eq!(r.schema("carbon.agents.x").archives, [(60, 129_600)]);
        assert_eq!(
            r.schema("web.hits").archives,
            [(10, 2160), (60, 10_080), (600, 262_800)]
        );
        assert_eq!(r.schema("db.q").name, "default_1min_for_1day");
        let m = r.aggregation("x.latency.min");
        assert_eq!(
            (m.x_files_factor, m.method),
            (Some(0.1), Some(Aggregation::Min))
        );
        let c = r.aggregation("x.count");
        assert_eq!((c.x_files_factor, c.method), (None, Some(Aggregation::Sum)));
        assert_eq!(r.aggregation("x.y").name, "default");
    }

    #[test]
    fn without_files_carbon_defaults_apply() {
        let r = Rules::load(None, None).expect("load");
        assert_eq!(r.schema("anything").archives, [(60, 10_080)]);
        // Graphite's recommended rule for statsd's names.
        for name in ["stats.hits", "stats_counts.hits", "statsd.numStats"] {
            assert_eq!(
                r.schema(name).archives,
                [(10, 2160), (60, 8640), (600, 262_800)],
                "{name}"
            );
        }
        assert_eq!(r.schema("statsdx.y").archives, [(60, 10_080)]);
        assert_eq!(r.aggregation("anything").method, None);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = dir.path().join("storage-schemas.conf");
        for (text, line, what) in [
            (
                "[a]\npattern = x\nretentions = 10s:6h,bogus\n",
                3,
                "retentions",
            ),
            ("[a]\npattern = (\nretentions = 60:1d\n", 2, "pattern"),
            (
                "[a]\npattern = x\nretentions = 60:1d,90:2d\n",
                3,
                "retentions",
            ),
            ("pattern = x\n", 1, "before any"),
            ("[a]\nnonsense\n", 2, "key = value"),
        ] {
            std::fs::write(&s, text).expect("write");
            let e = Rules::load(Some(&s), None).expect_err(text).to_string();
            assert!(e.contains(&format!("storage-schemas.conf:{line}:")), "{e}");
            assert!(e.contains(what), "{e}");
        }
        let e = Rules::load(Some(&dir.path().join("missing.conf")), None).expect_err("missing");
        assert!(e.to_string().contains("missing.conf"), "{e}");
    }
}
