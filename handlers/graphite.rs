//! graphite: Graphite plaintext (`name value timestamp\n`) over TCP or UDP,
//! as Diamond's GraphiteHandler, with batching, one kept-open connection,
//! and reconnects with exponential backoff and jitter.
//!
//! While the server cannot be reached, samples wait in the handler's bounded
//! queue (`max_queue`); nothing blocks collection.
//!
//! With `destinations` (`host:port[:instance]`, carbon's form) the handler
//! writes into a carbon cluster as carbon-relay would: each sample goes to
//! the destinations carbon's consistent-hash ring gives its name, so it
//! lands on the same carbon-cache as the cluster's own relays send it to.
//! Each destination has its own queue and connection: one that is down
//! holds only its own samples.

use super::transport::{run_lines, Link, Proto};
use super::{Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::sample::Sample;
use crate::server::carbon::ring::{Destination, Ring};
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
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub timeout: f64,
    /// Most samples written at once.
    pub batch: usize,
    /// Most samples held while the server is unreachable; beyond it the oldest are dropped.
    pub max_queue: usize,
    /// Longest wait between reconnection attempts, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
    /// Several carbon servers, `host:port[:instance]`, instead of
    /// `host`/`port`; each sample goes where `method` says.
    pub destinations: Vec<String>,
    /// How samples are spread over `destinations`: "consistent-hashing"
    /// (carbon's ring; the port takes no part in placement).
    pub method: String,
    /// Destinations each sample goes to (carbon's REPLICATION_FACTOR).
    pub replication_factor: usize,
    /// Replicas only on distinct hosts (carbon's DIVERSE_REPLICAS).
    pub diverse_replicas: bool,
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
            destinations: Vec::new(),
            method: "consistent-hashing".into(),
            replication_factor: 1,
            diverse_replicas: true,
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
        if self.method != "consistent-hashing" {
            return Err(ConfigError::new(
                format!("{key}.method"),
                format!("{:?}: must be \"consistent-hashing\"", self.method),
            ));
        }
        if self.replication_factor == 0 {
            return Err(ConfigError::new(
                format!("{key}.replication_factor"),
                "must be at least 1",
            ));
        }
        let dests = self.parsed_destinations(key)?;
        for (i, d) in dests.iter().enumerate() {
            if dests[..i]
                .iter()
                .any(|o| o.server == d.server && o.port == d.port)
            {
                return Err(ConfigError::new(
                    format!("{key}.destinations"),
                    format!("{}:{} is listed twice", d.server, d.port),
                ));
            }
        }
        Ok(())
    }

    fn parsed_destinations(&self, key: &str) -> Result<Vec<Destination>, ConfigError> {
        self.destinations
            .iter()
            .map(|s| {
                Destination::parse(s)
                    .and_then(|d| match d.port {
                        0 => Err(format!("{s:?}: port must be 1 to 65535")),
                        _ => Ok(d),
                    })
                    .map_err(|e| ConfigError::new(format!("{key}.destinations"), e))
            })
            .collect()
    }

    fn link(&self, host: &str, port: u16) -> Link {
        Link {
            host: host.to_string(),
            port,
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
    if cfg.destinations.is_empty() {
        return run_lines(d, cfg.link(&cfg.host, cfg.port), Sample::write_plaintext).await;
    }
    let dests = cfg
        .parsed_destinations("destinations")
        .map_err(|e| DeliveryError(format!("{}: {e}", d.name)))?;
    let ring = Ring::new(dests.clone(), cfg.replication_factor, cfg.diverse_replicas);
    spread(d, &cfg, &dests, |name| ring.place(name)).await
}

/// Hands each sample from the handler's queue to the queue of every
/// destination `place` gives its name, each destination sending on its own
/// connection; at the stop, hands over the rest, then lets each deliver by
/// the deadline.
async fn spread(
    mut d: Delivery,
    cfg: &GraphiteConfig,
    dests: &[Destination],
    place: impl Fn(&str) -> Vec<usize>,
) -> Result<(), DeliveryError> {
    let mut parts = Vec::new();
    for dest in dests {
        let label = match &dest.instance {
            Some(i) => format!("{}:{}:{i}", dest.server, dest.port),
            None => format!("{}:{}", dest.server, dest.port),
        };
        let (part, stop) = d.part(cfg.max_queue, &label);
        let queue = part.queue.clone();
        let task = tokio::spawn(run_lines(
            part,
            cfg.link(&dest.server, dest.port),
            Sample::write_plaintext,
        ));
        parts.push((queue, stop, task));
    }
    let route = |batch: Vec<Sample>| {
        let mut per: Vec<Vec<Sample>> = vec![Vec::new(); parts.len()];
        for s in batch {
            let to = place(&s.name);
            if let Some((&last, rest)) = to.split_last() {
                for &i in rest {
                    per[i].push(s.clone());
                }
                per[last].push(s);
            }
        }
        for ((queue, _, _), samples) in parts.iter().zip(per) {
            if !samples.is_empty() {
                queue.push(samples);
            }
        }
    };
    // The buffers of destinations no longer listed: their samples go where
    // the ring now places them, then the buffers go.
    if let Some(spec) = d.queue.buffer() {
        let mine: Vec<std::path::PathBuf> = parts
            .iter()
            .filter_map(|(q, _, _)| q.buffer().map(|b| b.dir.clone()))
            .collect();
        for orphan in crate::buffer::part_dirs(&spec.dir) {
            if mine.contains(&orphan) {
                continue;
            }
            let ospec = crate::buffer::Spec {
                dir: orphan.clone(),
                ..spec.clone()
            };
            match super::Queue::durable(&ospec, std::sync::Arc::default(), false) {
                Ok(q) => {
                    let mut moved = 0;
                    loop {
                        let batch = q.take(10_000);
                        if batch.is_empty() {
                            break;
                        }
                        moved += batch.len();
                        route(batch);
                        q.settle();
                    }
                    drop(q);
                    log::info!(
                        "{}: {moved} samples buffered for a destination no longer listed ({}) go where the ring places them now",
                        d.name,
                        orphan.display()
                    );
                    let _ = std::fs::remove_dir_all(&orphan);
                }
                Err(e) => log::warn!("{}: {e}", d.name),
            }
        }
    }
    loop {
        let batch = d.queue.take(cfg.batch.max(1000));
        if batch.is_empty() {
            if d.deadline().is_some() {
                break;
            }
            d.wait_for_work().await;
            continue;
        }
        route(batch);
        // Each destination's queue holds them now.
        d.settle();
    }
    let deadline = d.deadline();
    let mut failures = Vec::new();
    for (_, stop, task) in parts {
        let _ = stop.send(deadline);
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.0),
            Err(e) => failures.push(format!("{}: task failed: {e}", d.name)),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(DeliveryError(failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(destinations: &[&str]) -> GraphiteConfig {
        GraphiteConfig {
            destinations: destinations.iter().map(|s| s.to_string()).collect(),
            ..GraphiteConfig::default()
        }
    }

    #[test]
    fn destinations_are_checked_as_carbon_reads_them() {
        assert!(with(&["10.0.0.1:2003:a", "10.0.0.2:2003"])
            .validate("handlers.g")
            .is_ok());
        for (bad, why) in [
            (vec!["10.0.0.1"], "host:port"),
            (vec!["10.0.0.1:x"], "not a port"),
            (vec!["10.0.0.1:0"], "1 to 65535"),
            (vec!["a:2003:x", "a:2003:y"], "listed twice"),
        ] {
            let err = with(&bad).validate("handlers.g").expect_err("invalid");
            assert_eq!(
                err.key.as_deref(),
                Some("handlers.g.destinations"),
                "{bad:?}"
            );
            assert!(err.to_string().contains(why), "{err}");
        }
        let mut c = with(&["a:2003"]);
        c.method = "rules".into();
        assert_eq!(
            c.validate("handlers.g").expect_err("method").key.as_deref(),
            Some("handlers.g.method")
        );
        c.method = "consistent-hashing".into();
        c.replication_factor = 0;
        assert_eq!(
            c.validate("handlers.g").expect_err("factor").key.as_deref(),
            Some("handlers.g.replication_factor")
        );
    }
}
