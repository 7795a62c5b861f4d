//! Receivers for single-box setups: `carbyne server` runs what `[server.*]`
//! configures.

pub mod carbon;
pub mod http;
pub mod js;
pub mod statsd;
pub mod web;

use serde::{Deserialize, Serialize};

/// `[server.*]`: the receivers `carbyne server` runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The statsd server (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statsd: Option<statsd::StatsdServerConfig>,
    /// The carbon receiver (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carbon: Option<carbon::CarbonServerConfig>,
    /// graphite-web's HTTP API over the whisper files (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web: Option<web::WebServerConfig>,
}

/// The top-level keys whose values differ between two configurations of
/// one receiver, each once, in order: what a reload says needs a restart.
pub fn changed_keys<T: serde::Serialize>(running: &T, new: &T) -> Vec<String> {
    let (Ok(a), Ok(b)) = (toml::Table::try_from(running), toml::Table::try_from(new)) else {
        return Vec::new();
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// When statsd flushes into the carbon receiver of the same process more
/// often than carbon keeps points for statsd's names, each flush overwrites
/// the one before in the same slot (20 increments read back as 0): the
/// warning to give, or `None`.
pub fn statsd_overwrites(
    statsd: &statsd::StatsdServerConfig,
    carbon: &carbon::CarbonServerConfig,
) -> Option<String> {
    if statsd.graphite != carbon.listen {
        return None;
    }
    let rules = carbon::schemas::Rules::load(carbon.schemas.as_deref(), None).ok()?;
    // A counter's name as statsd writes it.
    let probe = if statsd.legacy_namespace {
        "stats_counts.probe".to_string()
    } else {
        [
            statsd.global_prefix.as_str(),
            statsd.prefix_counter.as_str(),
            "probe.count",
        ]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(".")
    };
    let schema = rules.schema(&probe);
    let step = schema.archives.first()?.0;
    (f64::from(step) > statsd.flush_interval).then(|| {
        format!(
            "statsd flushes every {} s into carbon, which keeps one point per {step} s for \
             {probe} (schema {:?}): each flush overwrites the one before in its slot. Give \
             statsd's names a {} s step in storage-schemas.conf (Graphite's docs: \
             pattern = ^stats, retentions = 10s:6h,1m:6d,10m:5y), or flush less often.",
            statsd.flush_interval, schema.name, statsd.flush_interval
        )
    })
}

/// Lets a log line through at most once a second; the lines held back in
/// between are counted and said with the next one that goes through.
#[derive(Debug, Default)]
pub struct Throttle {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    held: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            last: std::sync::Mutex::new(None),
            held: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this one may be
    /// logged, `None` (and counted) when it is held back.
    pub fn ready(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            Some(self.held.swap(0, Ordering::Relaxed))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Open files one part of `carbyne server` keeps for as long as it runs
/// (the web server's `keep_open_files`), which the carbon receiver's own
/// budget leaves out. Set before either starts.
static RESERVED_OPEN_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn reserve_open_files(n: u64) {
    RESERVED_OPEN_FILES.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

pub fn reserved_open_files() -> u64 {
    RESERVED_OPEN_FILES.load(std::sync::atomic::Ordering::Relaxed)
}

/// The process's soft limit on open files, raised to its hard limit first
/// (the receivers and the web server keep files open).
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A read on a socket with a read timeout that ended because the timeout
/// passed (Linux reports it as WouldBlock), not because the peer failed.
pub fn read_timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// ` (N more since ...)` for a throttled log line, or nothing.
pub fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more since the last such message)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statsd_flushing_faster_than_carbon_keeps_points_is_said() {
        let s = statsd::StatsdServerConfig::default();
        let c = carbon::CarbonServerConfig::default();
        // The single-box defaults: 10 s flushes, 10 s points for stats*.
        assert_eq!(statsd_overwrites(&s, &c), None);
        let fast = statsd::StatsdServerConfig {
            flush_interval: 5.0,
            ..s.clone()
        };
        assert!(statsd_overwrites(&fast, &c).is_some_and(|w| w.contains("stats_counts.probe")));
        // Elsewhere than this carbon: nothing known, nothing said.
        let other = statsd::StatsdServerConfig {
            graphite: "10.0.0.1:2003".into(),
            ..fast
        };
        assert_eq!(statsd_overwrites(&other, &c), None);
        // A schemas file with minutely points for everything.
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("storage-schemas.conf");
        std::fs::write(&f, "[all]\npattern = .*\nretentions = 60s:7d\n").expect("write");
        let c = carbon::CarbonServerConfig {
            schemas: Some(f),
            ..c
        };
        assert!(statsd_overwrites(&s, &c).is_some_and(|w| w.contains("one point per 60 s")));
        let modern = statsd::StatsdServerConfig {
            legacy_namespace: false,
            ..s
        };
        assert!(statsd_overwrites(&modern, &c)
            .is_some_and(|w| w.contains("stats.counters.probe.count")));
    }

    #[test]
    fn changed_keys_are_named_once() {
        let a = carbon::CarbonServerConfig::default();
        let b = carbon::CarbonServerConfig {
            listen: "127.0.0.1:1".into(),
            writers: 2,
            ..a.clone()
        };
        assert_eq!(changed_keys(&a, &b), ["listen", "writers"]);
        assert!(changed_keys(&a, &a).is_empty());
    }
}
