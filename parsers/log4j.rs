//! log4j: events per second for each log level, as Logster's Log4jLogster:
//! one metric per level in `log_levels` (default WARN, ERROR, FATAL).
//!
//! A line counts when it starts with a timestamp (one or more tokens of
//! digits and `-_:.,`) followed by the level, as in `13:55:36 WARN ...` or
//! log4j's default `2026-11-22 13:55:36,123 ERROR ...`; the level may be in
//! brackets (`[ERROR]`).

use super::{per, Parser};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};

/// `parser = "log4j"` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log4jConfig {
    /// Levels to count, each sent as its own metric.
    pub log_levels: Vec<String>,
}

impl Default for Log4jConfig {
    fn default() -> Self {
        Log4jConfig {
            log_levels: ["WARN", "ERROR", "FATAL"].map(String::from).to_vec(),
        }
    }
}

pub struct Log4j {
    levels: Vec<(String, u64)>,
}

impl Log4j {
    pub fn new(c: &Log4jConfig, key: &str) -> Result<Self, ConfigError> {
        if c.log_levels.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.log_levels"),
                "needs at least one level",
            ));
        }
        if let Some(bad) = c
            .log_levels
            .iter()
            .find(|l| l.is_empty() || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(ConfigError::new(
                format!("{key}.log_levels"),
                format!("{bad:?} is not a level name (letters, digits, _)"),
            ));
        }
        Ok(Log4j {
            levels: c.log_levels.iter().map(|l| (l.clone(), 0)).collect(),
        })
    }
}

fn is_timestamp(tok: &[u8]) -> bool {
    !tok.is_empty()
        && tok
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':' | b'.' | b','))
        && tok.iter().any(|b| b.is_ascii_digit())
}

impl Parser for Log4j {
    fn parse_line(&mut self, line: &[u8]) -> bool {
        let mut toks = line.split(|b| *b == b' ').filter(|t| !t.is_empty());
        let mut stamps = 0;
        for tok in toks.by_ref() {
            if is_timestamp(tok) {
                stamps += 1;
                continue;
            }
            if stamps == 0 {
                return false;
            }
            let level = tok.strip_prefix(b"[").unwrap_or(tok);
            let level = level.strip_suffix(b"]").unwrap_or(level);
            return match self.levels.iter_mut().find(|(l, _)| l.as_bytes() == level) {
                Some((_, n)) => {
                    *n += 1;
                    true
                }
                None => false,
            };
        }
        false
    }

    fn take_metrics(&mut self, duration: f64, out: &mut Vec<(String, f64)>) {
        for (level, n) in &mut self.levels {
            out.push((level.clone(), per(*n as f64, duration)));
            *n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parsers::testutil::run_fixture;

    #[test]
    fn fixture_worked_by_hand() {
        // app.log over 2 s: WARN 3, ERROR 2, FATAL 1, INFO/DEBUG/garbage not counted.
        let mut p = Log4j::new(&Log4jConfig::default(), "logs.app").expect("config");
        let (hit, miss, m) = run_fixture(&mut p, "app.log", 2.0);
        assert_eq!((hit, miss), (6, 6));
        assert_eq!(m["WARN"], 1.5);
        assert_eq!(m["ERROR"], 1.0);
        assert_eq!(m["FATAL"], 0.5);
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn configured_levels_only() {
        let c = Log4jConfig {
            log_levels: vec!["DEBUG".into()],
        };
        let mut p = Log4j::new(&c, "logs.app").expect("config");
        assert!(p.parse_line(b"13:55:36 DEBUG com.etsy.LogsterTest - This is a message"));
        assert!(!p.parse_line(b"13:55:36 WARN com.etsy.LogsterTest - This is a message"));
        assert!(!p.parse_line(b"DEBUG without a timestamp"));
        let bad = Log4jConfig {
            log_levels: vec!["WA RN".into()],
        };
        assert!(Log4j::new(&bad, "logs.app").is_err());
    }
}
