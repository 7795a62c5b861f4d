//! entropy: the kernel's available entropy, as Diamond's
//! EntropyStatCollector: `entropy.available` (bits), from
//! `/proc/sys/kernel/random/entropy_avail`.
//!
//! For Prometheus, node_exporter's `node_entropy_available_bits` and
//! `node_entropy_pool_size_bits` (from `poolsize` beside it).

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.entropy]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntropyConfig {}

const AVAILABLE: Family =
    Family::gauge("node_entropy_available_bits", "Bits of available entropy.");
const POOL: Family = Family::gauge("node_entropy_pool_size_bits", "Bits of entropy pool.");

pub struct Entropy {
    file: PathBuf,
    pool: PathBuf,
    missing: Missing,
    pool_missing: Missing,
    buf: String,
}

impl Entropy {
    pub fn new(_opts: &EntropyConfig, cfg: &Config) -> Self {
        Entropy {
            file: cfg.proc_root.join("sys/kernel/random/entropy_avail"),
            pool: cfg.proc_root.join("sys/kernel/random/poolsize"),
            missing: Missing::default(),
            pool_missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Entropy {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        let bits: u64 = text.trim().parse().map_err(|_| CollectError::Parse {
            path: self.file.clone(),
            message: format!("not a number: {:?}", text.trim()),
        })?;
        out.gauge("available", bits as f64);
        out.series(&AVAILABLE, Vec::new(), bits as f64);
        if out.wants_series() {
            if let Some(text) = read_optional(&self.pool, &mut self.buf, &mut self.pool_missing)? {
                if let Ok(bits) = text.trim().parse::<u64>() {
                    out.series(&POOL, Vec::new(), bits as f64);
                }
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
    fn bits_as_they_are() {
        let cfg = Config {
            proc_root: fixture("proc/t0"),
            ..Config::default()
        };
        let mut c = Entropy::new(&EntropyConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert_eq!(values(&first)["available"], 256.0);
        c.file = fixture("proc/t0/stat");
        let (path, filter) = (
            crate::sample::MetricPath::new("s", None, "", "entropy"),
            crate::collectors::Filter::default(),
        );
        let mut e = crate::collectors::Emit::new(
            &path,
            &filter,
            0,
            crate::rates::Counters::begin(None, 0.0),
        );
        let err = c
            .collect(&mut e)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("t0/stat"), "names the file: {err}");
    }
}
