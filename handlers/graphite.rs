//! graphite: Graphite plaintext (`name value timestamp\n`) over TCP or UDP,
//! as Diamond's GraphiteHandler, with batching, one kept-open connection,
//! and reconnects with exponential backoff and jitter.
//!
//! While the server cannot be reached, samples wait in the handler's bounded
//! queue (`max_queue`); nothing blocks collection.

use super::{brief, Backoff, Delivery, DeliveryError};
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Transport to the Graphite server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

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
        if self.host.trim().is_empty() {
            return Err(ConfigError::new(format!("{key}.host"), "must not be empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::new(
                format!("{key}.port"),
                "must be 1 to 65535",
            ));
        }
        for (k, v) in [("timeout", self.timeout), ("max_backoff", self.max_backoff)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    "must be a positive number of seconds",
                ));
            }
        }
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

    fn peer(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

async fn connect(cfg: &GraphiteConfig, peer: &str) -> std::io::Result<Conn> {
    let timeout = Duration::from_secs_f64(cfg.timeout);
    let fut = async {
        match cfg.proto {
            Proto::Tcp => {
                let s = TcpStream::connect(peer).await?;
                s.set_nodelay(true)?;
                Ok(Conn::Tcp(s))
            }
            Proto::Udp => {
                let addr = tokio::net::lookup_host(peer).await?.next().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                })?;
                let bind = if addr.is_ipv6() {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let s = UdpSocket::bind(bind).await?;
                s.connect(addr).await?;
                Ok(Conn::Udp(s))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Whether the server closed a TCP connection (read end at EOF or reset).
fn closed_by_peer(s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // carbon sends nothing; ignore whatever came
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

async fn send(conn: &mut Conn, payload: &str, timeout: Duration) -> std::io::Result<()> {
    let fut = async {
        match conn {
            Conn::Tcp(s) => s.write_all(payload.as_bytes()).await,
            Conn::Udp(s) => {
                // Whole lines per datagram, never over MAX_DATAGRAM unless one line is.
                let bytes = payload.as_bytes();
                let (mut start, mut end) = (0, 0);
                for (i, _) in payload.match_indices('\n') {
                    if i + 1 - start > MAX_DATAGRAM && end > start {
                        s.send(&bytes[start..end]).await?;
                        start = end;
                    }
                    end = i + 1;
                }
                if end > start {
                    s.send(&bytes[start..end]).await?;
                }
                Ok(())
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The handler task: sends until stopped, then delivers what it holds by
/// the deadline or reports what it could not.
pub async fn run(mut d: Delivery, cfg: GraphiteConfig) -> Result<(), DeliveryError> {
    let peer = cfg.peer();
    let timeout = Duration::from_secs_f64(cfg.timeout);
    let mut backoff = Backoff::new(Duration::from_secs_f64(cfg.max_backoff));
    let mut conn: Option<Conn> = None;
    let mut last_error: Option<String> = None;
    let mut buf = String::new();
    loop {
        if d.queue.is_empty() {
            if d.deadline().is_some() {
                if let Some(Conn::Tcp(s)) = conn.as_mut() {
                    let _ = s.shutdown().await;
                }
                return Ok(());
            }
            d.wait_for_work().await;
            continue;
        }
        if d.past_deadline() {
            return Err(d.undelivered(&peer, last_error.as_deref()));
        }
        if let Some(Conn::Tcp(s)) = &conn {
            if closed_by_peer(s) {
                conn = None;
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&cfg, &peer).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let msg = brief(&e);
                    d.failed(&format!("{peer}: {msg}"));
                    last_error = Some(msg);
                    d.pause(backoff.next_wait()).await;
                    continue;
                }
            },
        };
        let batch = d.queue.take(cfg.batch);
        buf.clear();
        for s in &batch {
            s.write_plaintext(&mut buf);
        }
        match send(c, &buf, timeout).await {
            Ok(()) => {
                d.sent(batch.len());
                backoff.reset();
                last_error = None;
            }
            Err(e) => {
                let msg = brief(&e);
                d.failed(&format!("{peer}: {msg}"));
                last_error = Some(msg);
                d.queue.put_back(batch);
                conn = None;
                d.pause(backoff.next_wait()).await;
            }
        }
    }
}
