//! statsd: every sample as a statsd gauge, `name:value|g`, over UDP (or TCP),
//! many lines per datagram but never over `max_datagram_bytes`.
//!
//! Rates derived from counters are sent as gauges too: the value is what
//! Graphite would show for them.

use super::transport::{run_lines, Link, Proto};
use super::{Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::sample::{write_value, Sample};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[handlers.statsd]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdConfig {
    /// statsd server name or address.
    pub host: String,
    /// statsd port.
    pub port: u16,
    /// `udp` (statsd's default) or `tcp`.
    pub proto: Proto,
    /// A segment put before every name.
    pub prefix: String,
    /// Rates derived from counters: `gauge` sends the rate as a gauge,
    /// `count` sends the counter's increase as a statsd count (`|c`), as
    /// Diamond's statsd handler did.
    pub counters_as: CountersAs,
    /// Largest datagram; a single longer line is sent alone (and counted).
    pub max_datagram_bytes: usize,
    /// Seconds allowed for connecting and for each write.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub timeout: f64,
    /// Most samples written at once.
    pub batch: usize,
    /// Most samples held while the server is unreachable.
    pub max_queue: usize,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            host: "127.0.0.1".into(),
            port: 8125,
            proto: Proto::Udp,
            prefix: String::new(),
            counters_as: CountersAs::Gauge,
            max_datagram_bytes: 1432,
            timeout: 15.0,
            batch: 500,
            max_queue: 100_000,
            max_backoff: 30.0,
        }
    }
}

/// How rates derived from counters are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountersAs {
    Gauge,
    Count,
}

impl StatsdConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        super::check_inet_peer(key, &self.host, self.port, self.proto)?;
        if !(64..=65507).contains(&self.max_datagram_bytes) {
            return Err(ConfigError::new(
                format!("{key}.max_datagram_bytes"),
                "must be 64 to 65507",
            ));
        }
        super::check_seconds(
            key,
            &[("timeout", self.timeout), ("max_backoff", self.max_backoff)],
        )?;
        if self.batch == 0 || self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.batch"),
                "batch and max_queue must be at least 1",
            ));
        }
        if self.prefix.contains([' ', ':', '|', '\n']) {
            return Err(ConfigError::new(
                format!("{key}.prefix"),
                "must not contain ' ', ':', '|'",
            ));
        }
        Ok(())
    }
}

/// One statsd gauge: `name:value|g\n`. statsd reads a leading `-` as "lower
/// the gauge by", so a negative value is set as `name:0|g` then `name:-v|g`.
pub fn write_gauge(prefix: &str, s: &Sample, out: &mut String) {
    if s.value < 0.0 {
        out.push_str(prefix);
        out.push_str(&s.name);
        out.push_str(":0|g\n");
    }
    out.push_str(prefix);
    out.push_str(&s.name);
    out.push(':');
    write_value(out, s.value);
    out.push_str("|g\n");
}

/// One statsd count: `name:delta|c\n`.
pub fn write_count(prefix: &str, name: &str, delta: f64, out: &mut String) {
    out.push_str(prefix);
    out.push_str(name);
    out.push(':');
    write_value(out, delta);
    out.push_str("|c\n");
}

/// The handler task.
pub async fn run(d: Delivery, cfg: StatsdConfig) -> Result<(), DeliveryError> {
    let link = Link {
        host: cfg.host.clone(),
        port: cfg.port,
        proto: cfg.proto,
        timeout: Duration::from_secs_f64(cfg.timeout),
        batch: cfg.batch,
        max_backoff: Duration::from_secs_f64(cfg.max_backoff),
        max_datagram: cfg.max_datagram_bytes,
        trim_datagram: true,
        framing: super::transport::Framing::Lines,
    };
    let prefix = if cfg.prefix.is_empty() {
        String::new()
    } else {
        format!("{}.", cfg.prefix.trim_end_matches('.'))
    };
    let counts = cfg.counters_as == CountersAs::Count;
    run_lines(d, link, move |s, out| match s.delta {
        Some(delta) if counts => write_count(&prefix, &s.name, delta, out),
        _ => write_gauge(&prefix, s, out),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind;

    #[test]
    fn gauge_lines() {
        let mut out = String::new();
        write_gauge("", &Sample::new("a.b".into(), 1.5, 1, Kind::Rate), &mut out);
        write_gauge(
            "p.",
            &Sample::new("c".into(), -2.0, 1, Kind::Gauge),
            &mut out,
        );
        assert_eq!(out, "a.b:1.5|g\np.c:0|g\np.c:-2|g\n");
    }
}
