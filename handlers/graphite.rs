//! graphite: Graphite plaintext (`name value timestamp\n`) over TCP or UDP,
//! as Diamond's GraphiteHandler, with batching, one kept-open connection,
//! and reconnects with exponential backoff and jitter.
//!
//! While the server cannot be reached, samples wait in the handler's bounded
//! queue (`max_queue`); nothing blocks collection.

use super::transport::{run_lines, Link, Proto};
use super::{Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::sample::Sample;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[handlers.graphite]` options (Diamond's keys, plus `max_queue`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphiteConfig {
    /// Server name or address.
    pub host: String,
    /// Server port (carbon's plaintext listener).
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// Seconds allowed for connecting and for each write.
    pub timeout: f64,
    /// Most samples written at once.
    pub batch: usize,
    /// Most samples held while the server is unreachable; beyond it the oldest are dropped.
    pub max_queue: usize,
    /// Longest wait between reconnection attempts, in seconds.
    pub max_backoff: f64,
}

impl Default for GraphiteConfig {
    fn default() -> Self {
        GraphiteConfig {
            host: "127.0.0.1".into(),
            port: 2003,
            proto: Proto::Tcp,
            timeout: 15.0,
            batch: 500,
            max_queue: 100_000,
            max_backoff: 30.0,
        }
    }
}

/// Largest UDP datagram sent: fits a 1500-byte MTU with IP and UDP headers.
pub const MAX_DATAGRAM: usize = 1432;

impl GraphiteConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        super::check_inet_peer(key, &self.host, self.port, self.proto)?;
        super::check_seconds(
            key,
            &[("timeout", self.timeout), ("max_backoff", self.max_backoff)],
        )?;
        if self.batch == 0 {
            return Err(ConfigError::new(
                format!("{key}.batch"),
                "must be at least 1",
            ));
        }
        if self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_queue"),
                "must be at least 1",
            ));
        }
        Ok(())
    }

    fn link(&self) -> Link {
        Link {
            host: self.host.clone(),
            port: self.port,
            proto: self.proto,
            timeout: Duration::from_secs_f64(self.timeout),
            batch: self.batch,
            max_backoff: Duration::from_secs_f64(self.max_backoff),
            max_datagram: MAX_DATAGRAM,
            trim_datagram: false,
            framing: super::transport::Framing::Lines,
        }
    }
}

/// The handler task.
pub async fn run(d: Delivery, cfg: GraphiteConfig) -> Result<(), DeliveryError> {
    run_lines(d, cfg.link(), Sample::write_plaintext).await
}
