//! filestat: open file handles from `/proc/sys/fs/file-nr`, as Diamond's
//! FilestatCollector: `files.assigned`, `files.unused`, `files.max`.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.filestat]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilestatConfig {}

pub struct Filestat {
    file: PathBuf,
    missing: Missing,
    buf: String,
}

impl Filestat {
    pub fn new(_opts: &FilestatConfig, cfg: &Config) -> Self {
        Filestat {
            file: cfg.proc_root.join("sys/fs/file-nr"),
            missing: Missing::default(),
            buf: String::new(),
        }
    }
}

/// `assigned unused max` of a file-nr text.
pub fn parse(text: &str) -> Option<[u64; 3]> {
    let mut it = text.split_ascii_whitespace().map(|f| f.parse::<u64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

impl Collector for Filestat {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        let [assigned, unused, max] = parse(text).ok_or_else(|| CollectError::Parse {
            path: self.file.clone(),
            message: format!("not three counts: {:?}", text.trim()),
        })?;
        out.gauge("assigned", assigned as f64);
        out.gauge("unused", unused as f64);
        out.gauge("max", max as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn three_counts() {
        let cfg = Config {
            proc_root: fixture("proc/t0"),
            ..Config::default()
        };
        let mut c = Filestat::new(&FilestatConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(
            (v["assigned"], v["unused"], v["max"]),
            (211.0, 0.0, 2_466_161.0)
        );
        assert_eq!(parse("1 2"), None);
    }
}
