//! The line transport the Graphite, statsd and syslog handlers share: text
//! lines over TCP or a unix stream socket (one kept-open connection,
//! batches), or UDP or a unix datagram socket (lines packed into datagrams,
//! or one message per datagram), with reconnects under exponential backoff
//! and jitter.

use super::{brief, Backoff, Delivery, DeliveryError};
use crate::sample::Sample;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};

/// Transport to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    /// A local socket (`host` is its path): datagram, or stream if it is one.
    Unix,
}

/// How lines are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Newline-separated lines, packed into datagrams (Graphite, statsd).
    Lines,
    /// Each line one message: one datagram each, or on a stream RFC 6587
    /// octet counting (`LEN SP MSG`), as syslog wants.
    Messages,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Link {
    pub host: String,
    pub port: u16,
    pub proto: Proto,
    /// For connecting and for each write.
    pub timeout: Duration,
    /// Most samples per write.
    pub batch: usize,
    pub max_backoff: Duration,
    /// Largest UDP datagram (a single longer line is sent alone).
    pub max_datagram: usize,
    /// Leave the newline off the last line of a datagram (statsd), or keep
    /// every line newline-terminated (Graphite plaintext).
    pub trim_datagram: bool,
    pub framing: Framing,
}

impl Link {
    pub fn peer(&self) -> String {
        if self.proto == Proto::Unix {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Udp(UdpSocket),
    UnixStream(UnixStream),
    UnixDgram(UnixDatagram),
}

async fn connect(link: &Link, peer: &str) -> std::io::Result<Conn> {
    let timeout = link.timeout;
    let fut = async {
        match link.proto {
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
            Proto::Unix => {
                let s = UnixDatagram::unbound()?;
                match s.connect(&link.host) {
                    Ok(()) => Ok(Conn::UnixDgram(s)),
                    // EPROTOTYPE: the socket is a stream socket.
                    Err(e) if e.raw_os_error() == Some(91) => {
                        Ok(Conn::UnixStream(UnixStream::connect(&link.host).await?))
                    }
                    Err(e) => Err(e),
                }
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

/// RFC 6587 octet counting: each line (without its newline) as `LEN SP MSG`.
fn octet_counted(payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + payload.len() / 16);
    for msg in payload.split_terminator('\n') {
        out.push_str(&msg.len().to_string());
        out.push(' ');
        out.push_str(msg);
    }
    out
}

/// Whether the server closed a unix stream connection.
fn unix_closed_by_peer(s: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Sends whole lines; returns how many UDP lines were over the datagram limit.
async fn send(conn: &mut Conn, payload: &str, link: &Link) -> std::io::Result<u64> {
    let (timeout, max) = (link.timeout, link.max_datagram);
    let messages = link.framing == Framing::Messages;
    let fut = async {
        match conn {
            Conn::Tcp(s) if messages => s
                .write_all(octet_counted(payload).as_bytes())
                .await
                .map(|_| 0),
            Conn::UnixStream(s) if messages => s
                .write_all(octet_counted(payload).as_bytes())
                .await
                .map(|_| 0),
            Conn::Tcp(s) => s.write_all(payload.as_bytes()).await.map(|_| 0),
            Conn::UnixStream(s) => s.write_all(payload.as_bytes()).await.map(|_| 0),
            Conn::Udp(s) if messages => {
                for msg in payload.split_terminator('\n') {
                    s.send(msg.as_bytes()).await?;
                }
                Ok(0)
            }
            Conn::UnixDgram(s) => {
                for msg in payload.split_terminator('\n') {
                    s.send(msg.as_bytes()).await?;
                }
                Ok(0)
            }
            Conn::Udp(s) => {
                // Whole lines per datagram, never over `max` unless one line is.
                let bytes = payload.as_bytes();
                let trim = link.trim_datagram as usize;
                let (mut start, mut end, mut oversize) = (0, 0, 0);
                for (i, _) in payload.match_indices('\n') {
                    if i + 1 - end - trim > max {
                        oversize += 1;
                    }
                    if i + 1 - start - trim > max && end > start {
                        s.send(&bytes[start..end - trim]).await?;
                        start = end;
                    }
                    end = i + 1;
                }
                if end > start {
                    s.send(&bytes[start..end - trim]).await?;
                }
                Ok(oversize)
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// The handler task: sends each sample as the line `format` writes, until
/// stopped; then delivers what it holds by the deadline or reports what it
/// could not. UDP lines over the datagram limit are counted in `oversize`.
pub async fn run_lines(
    mut d: Delivery,
    link: Link,
    format: impl Fn(&Sample, &mut String),
) -> Result<(), DeliveryError> {
    let peer = link.peer();
    let mut backoff = Backoff::new(link.max_backoff);
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
        let closed = match &conn {
            Some(Conn::Tcp(s)) => closed_by_peer(s),
            Some(Conn::UnixStream(s)) => unix_closed_by_peer(s),
            _ => false,
        };
        if closed {
            conn = None;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&link, &peer).await {
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
        let batch = d.queue.take(link.batch);
        buf.clear();
        for s in &batch {
            format(s, &mut buf);
        }
        match send(c, &buf, &link).await {
            Ok(oversize) => {
                d.oversize(oversize);
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
