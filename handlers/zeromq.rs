//! zeromq: publishes samples on a ZeroMQ socket, one Graphite plaintext line
//! per message (as Diamond's zmq handler), or a batch of lines per message
//! with `batch = true`; `topic` is put in front of every message so
//! subscribers can filter on it.
//!
//! The socket is an XPUB (a PUB that hears its subscribers' subscriptions),
//! from the pure-Rust `zeromq` crate: at the start the handler waits up to
//! `subscriber_wait` seconds for a first subscription, so the samples of an
//! `agent --once` run are not published to nobody (ZeroMQ's "slow joiner").
//! Like any PUB socket it drops what no subscriber wants.

use super::{brief_zmq, Backoff, Delivery, DeliveryError};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use zeromq::{Socket, SocketRecv, SocketSend, XPubSocket, ZmqMessage};

/// `[handlers.zeromq]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZeromqConfig {
    /// A ZeroMQ TCP endpoint.
    pub endpoint: String,
    /// Bind the endpoint (subscribers connect to carbyne), or connect to it.
    pub bind: bool,
    /// Put in front of every message (subscribers filter on it); "" for none.
    pub topic: String,
    /// One message per batch of lines instead of one per line.
    pub batch: bool,
    /// Seconds to wait at the start for a first subscriber.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub subscriber_wait: f64,
    /// Most samples held before they can be published.
    pub max_queue: usize,
    /// Longest wait between attempts to bind or connect, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
}

impl Default for ZeromqConfig {
    fn default() -> Self {
        ZeromqConfig {
            endpoint: "tcp://127.0.0.1:5556".into(),
            bind: true,
            topic: String::new(),
            batch: false,
            subscriber_wait: 1.0,
            max_queue: 100_000,
            max_backoff: 30.0,
        }
    }
}

impl ZeromqConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let rest = self.endpoint.strip_prefix("tcp://").ok_or_else(|| {
            ConfigError::new(
                format!("{key}.endpoint"),
                format!("{:?}: expected tcp://host:port", self.endpoint),
            )
        })?;
        let port = rest
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        if port.is_none_or(|p| p == 0 && !self.bind) {
            return Err(ConfigError::new(
                format!("{key}.endpoint"),
                format!("{:?}: expected tcp://host:port", self.endpoint),
            ));
        }
        for (k, v) in [
            ("subscriber_wait", self.subscriber_wait),
            ("max_backoff", self.max_backoff),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    "must be a number of seconds, 0 or more",
                ));
            }
        }
        if self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_queue"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The handler task.
pub async fn run(mut d: Delivery, cfg: ZeromqConfig) -> Result<(), DeliveryError> {
    let mut backoff = Backoff::new(Duration::from_secs_f64(cfg.max_backoff.max(0.1)));
    let mut sock = loop {
        let mut s = XPubSocket::new();
        let res = if cfg.bind {
            s.bind(&cfg.endpoint).await.map(|_| ())
        } else {
            s.connect(&cfg.endpoint).await
        };
        match res {
            Ok(()) => break s,
            Err(e) => {
                let msg = brief_zmq(&e);
                d.failed(&format!("{}: {msg}", cfg.endpoint));
                if d.past_deadline() {
                    return Err(d.undelivered(&cfg.endpoint, Some(&msg)));
                }
                d.pause(backoff.next_wait()).await;
            }
        }
    };
    // The first subscription, or the wait runs out.
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(cfg.subscriber_wait);
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, sock.recv()).await {
            Ok(Ok(m)) if m.get(0).is_some_and(|f| f.first() == Some(&1)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => break,
        }
    }
    let mut buf = String::new();
    loop {
        // The XPUB applies (un)subscriptions as they are read: read them.
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, sock.recv()).await {}
        if d.queue.is_empty() {
            if d.deadline().is_some() {
                return Ok(());
            }
            tokio::select! {
                _ = d.wait_for_work() => {}
                r = sock.recv() => {
                    if r.is_err() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            continue;
        }
        let batch = d.queue.take(500);
        let mut messages = Vec::new();
        for s in &batch {
            if !cfg.batch || buf.is_empty() {
                buf.push_str(&cfg.topic);
                if !cfg.topic.is_empty() {
                    buf.push(' ');
                }
            }
            s.write_plaintext(&mut buf);
            if !cfg.batch {
                buf.pop(); // one line, no newline
                messages.push(std::mem::take(&mut buf));
            }
        }
        if cfg.batch {
            messages.push(std::mem::take(&mut buf));
        }
        let mut sent_all = true;
        for m in messages {
            if let Err(e) = sock.send(ZmqMessage::from(m)).await {
                d.failed(&format!("{}: {}", cfg.endpoint, brief_zmq(&e)));
                sent_all = false;
                break;
            }
        }
        if sent_all {
            d.sent(batch.len());
            d.settle();
        } else {
            d.queue.put_back(batch);
            d.pause(backoff.next_wait()).await;
        }
    }
}
