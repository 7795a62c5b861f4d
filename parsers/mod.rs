//! Log parsers (Logster's): one file each, turning log lines into metrics.
//! This file is the explicit list of them.
//!
//! A parser sees every line (bytes, without its newline) through
//! [`Parser::parse_line`] and, at the end of each interval, gives its
//! metrics over the interval's real duration through [`Parser::take_metrics`],
//! which also resets it.
//!
//! To add one: write `parsers/NAME.rs` (options struct, a type implementing
//! [`Parser`], tests on `tests/fixtures/logs/`), add a variant to
//! [`ParserConfig`] and a line to [`ParserConfig::build`], and an example
//! `conf.d/NAME.toml`.

pub mod log4j;
pub mod postfix;
pub mod regex;
pub mod squid;

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};

/// A log parser.
pub trait Parser: Send {
    /// Reads one line; returns whether it was one the parser understands.
    fn parse_line(&mut self, line: &[u8]) -> bool;
    /// Appends the metrics of the lines read since the last call, over
    /// `duration` seconds, and starts counting afresh.
    fn take_metrics(&mut self, duration: f64, out: &mut Vec<(String, f64)>);
}

/// Which parser a `[logs.NAME]` section uses, with its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "parser", rename_all = "lowercase")]
pub enum ParserConfig {
    /// Logster's names work too, as on `carbyne logster`'s command line.
    #[serde(alias = "PostfixLogster")]
    Postfix(postfix::PostfixConfig),
    #[serde(alias = "SquidLogster")]
    Squid(squid::SquidConfig),
    #[serde(alias = "Log4jLogster")]
    Log4j(log4j::Log4jConfig),
    Regex(regex::RegexConfig),
}

impl ParserConfig {
    /// Builds the parser; `key` names the section in errors.
    pub fn build(&self, key: &str) -> Result<Box<dyn Parser>, ConfigError> {
        Ok(match self {
            ParserConfig::Postfix(_) => Box::new(postfix::Postfix::default()),
            ParserConfig::Squid(_) => Box::new(squid::Squid::default()),
            ParserConfig::Log4j(c) => Box::new(log4j::Log4j::new(c, key)?),
            ParserConfig::Regex(c) => Box::new(regex::RegexParser::new(c, key)?),
        })
    }

    /// The parser's name, as `--parser` and `parser = "..."` spell it.
    pub fn name(&self) -> &'static str {
        match self {
            ParserConfig::Postfix(_) => "postfix",
            ParserConfig::Squid(_) => "squid",
            ParserConfig::Log4j(_) => "log4j",
            ParserConfig::Regex(_) => "regex",
        }
    }
}

/// `n / d`, or 0 when `d` is 0 (an interval with no time).
pub fn per(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Parser;
    use std::collections::BTreeMap;

    /// Feeds every line of a fixture log; returns (matched, unmatched, metrics).
    pub fn run_fixture(
        p: &mut dyn Parser,
        rel: &str,
        duration: f64,
    ) -> (usize, usize, BTreeMap<String, f64>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/logs")
            .join(rel);
        let data = std::fs::read(&path).expect("fixture log");
        let (mut hit, mut miss) = (0, 0);
        for line in data.split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if p.parse_line(line) {
                hit += 1;
            } else {
                miss += 1;
            }
        }
        let mut out = Vec::new();
        p.take_metrics(duration, &mut out);
        (hit, miss, out.into_iter().collect())
    }
}
