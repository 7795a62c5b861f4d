//! uptime: time since boot, as Diamond's UptimeCollector:
//! `uptime.minutes` (or another unit, `metric_name`), from `/proc/uptime`.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::{Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.uptime]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UptimeConfig {
    /// The unit, which is also the metric's name: `minutes` (default),
    /// `seconds`, `hours`, `days`, `years` (365 days), `milliseconds`,
    /// `microseconds`, `nanoseconds`, or their short forms (`m`, `s`, `h`,
    /// `d`, `y`, `ms`, `us`, `ns`).
    pub metric_name: String,
}

impl Default for UptimeConfig {
    fn default() -> Self {
        UptimeConfig {
            metric_name: "minutes".into(),
        }
    }
}

/// Seconds in one of Diamond's time units (case-insensitive).
pub fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ns" | "nanosecond" | "nanoseconds" => 1e-9,
        "us" | "microsecond" | "microseconds" => 1e-6,
        "ms" | "millisecond" | "milliseconds" => 1e-3,
        "s" | "second" | "seconds" => 1.0,
        "m" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "y" | "year" | "years" => 365.0 * 86_400.0,
        _ => return None,
    })
}

pub struct Uptime {
    file: PathBuf,
    name: String,
    unit: f64,
    missing: Missing,
    buf: String,
}

impl Uptime {
    pub fn new(opts: &UptimeConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let unit = unit_seconds(&opts.metric_name).ok_or_else(|| {
            ConfigError::new(
                "collectors.uptime.metric_name",
                format!(
                    "{:?} is not a time unit (seconds, minutes, hours, days, ...)",
                    opts.metric_name
                ),
            )
        })?;
        Ok(Uptime {
            file: cfg.proc_root.join("uptime"),
            name: opts.metric_name.clone(),
            unit,
            missing: Missing::default(),
            buf: String::new(),
        })
    }
}

/// Seconds since boot: the first field of `/proc/uptime`.
pub fn parse(text: &str) -> Option<f64> {
    let secs: f64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs)
}

impl Collector for Uptime {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        let secs = parse(text).ok_or_else(|| CollectError::Parse {
            path: self.file.clone(),
            message: format!("not seconds: {:?}", text.trim()),
        })?;
        out.gauge(&self.name, secs / self.unit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    #[test]
    fn minutes_and_other_units() {
        let cfg = Config {
            proc_root: fixture("proc/t0"),
            ..Config::default()
        };
        let mut c = Uptime::new(&UptimeConfig::default(), &cfg).expect("uptime");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        // 33297.41 s
        assert_eq!(values(&first)["minutes"], 33_297.41 / 60.0);
        let hours = UptimeConfig {
            metric_name: "hours".into(),
        };
        let mut c = Uptime::new(&hours, &cfg).expect("uptime");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert_eq!(values(&first)["hours"], 33_297.41 / 3600.0);
        let weeks = UptimeConfig {
            metric_name: "weeks".into(),
        };
        let e = Uptime::new(&weeks, &cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("collectors.uptime.metric_name"), "{e}");
        assert_eq!(parse("x 1"), None);
        assert_eq!(parse("-5 1"), None);
    }
}
