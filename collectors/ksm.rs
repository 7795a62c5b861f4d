//! ksm: kernel samepage merging from `/sys/kernel/mm/ksm`, as Diamond's
//! KSMCollector: `ksm.<file>` for each file holding a number
//! (`pages_shared`, `pages_sharing`, `full_scans`, `run`, ...), as it is.
//! Off by default, as in Diamond.

use super::{CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.ksm]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KsmConfig {}

/// The number on the first line of a sysfs file; None for words
/// (`advisor_mode`'s `[none] scan-time`).
pub fn parse(text: &str) -> Option<f64> {
    let v: f64 = text.lines().next()?.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

pub struct Ksm {
    dir: PathBuf,
    missing: Missing,
    buf: String,
}

impl Ksm {
    pub fn new(_opts: &KsmConfig, cfg: &Config) -> Self {
        Ksm {
            dir: cfg.sys_root.join("kernel/mm/ksm"),
            missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Ksm {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.missing.note(&self.dir);
                return Ok(());
            }
            Err(source) => {
                return Err(CollectError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.contains(['.', ' ']))
            .collect();
        names.sort_unstable();
        for name in names {
            // A file that cannot be read (write-only, or gone) is skipped.
            let Ok(text) = super::read(&self.dir.join(&name), &mut self.buf) else {
                continue;
            };
            if let Some(v) = parse(text) {
                out.gauge(&name, v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn every_number_as_it_is_on_a_real_capture() {
        let cfg = Config {
            sys_root: fixture("sys"),
            ..Config::default()
        };
        let mut c = Ksm::new(&KsmConfig {}, &cfg);
        let (first, second) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["pages_to_scan"], 100.0);
        assert_eq!(v["sleep_millisecs"], 20.0);
        assert_eq!(v["run"], 0.0);
        assert!(!v.contains_key("advisor_mode"), "a word, not a number");
        // 24 files, one of them words.
        assert_eq!(v.len(), 23);
        assert_eq!(second.len(), first.len());
    }

    #[test]
    fn no_ksm_sends_nothing() {
        let cfg = Config {
            sys_root: PathBuf::from("/nonexistent"),
            ..Config::default()
        };
        let mut c = Ksm::new(&KsmConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(first.is_empty());
        assert_eq!(parse("[none] scan-time\n"), None);
        assert_eq!(parse("42\n"), Some(42.0));
    }
}
