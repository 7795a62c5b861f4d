//! The line transport the Graphite, statsd and syslog handlers share: text
//! lines over TCP or a unix stream socket (one kept-open connection,
//! batches), or UDP or a unix datagram socket (lines packed into datagrams,
//! or one message per datagram), with reconnects under exponential backoff
//! and jitter.

use super::{brief, Backoff, Delivery, DeliveryError, Queue};
use crate::sample::Sample;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
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

/// The length of [`octet_counted`]'s output, without making it.
fn octet_counted_len(payload: &str) -> usize {
    payload
        .split_terminator('\n')
        .map(|m| m.len().to_string().len() + 1 + m.len())
        .sum()
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

/// How long a connection must stay up after a write, with the peer's TCP
/// having acknowledged its bytes, before what was written is taken as
/// received (and a disk buffer forgets it): a peer that resets the
/// connection mid-batch, having read only part of what its kernel took,
/// makes its writer send again what it may have lost.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(50);

/// Most samples written and not yet confirmed: beyond, sending waits for
/// the peer to catch up.
const MAX_UNCONFIRMED: usize = 100_000;

/// Bytes written to a stream connection the peer's TCP has not
/// acknowledged yet; `None` for datagrams, which nothing acknowledges.
fn unacknowledged(conn: &Conn) -> Option<usize> {
    use std::os::fd::AsFd;
    match conn {
        Conn::Tcp(s) => Some(unacknowledged_bytes(s.as_fd())),
        Conn::UnixStream(s) => Some(unacknowledged_bytes(s.as_fd())),
        _ => None,
    }
}

/// Bytes written to stream socket `fd` that its peer has not
/// acknowledged (`usize::MAX` when the kernel does not say).
pub fn unacknowledged_bytes(fd: std::os::fd::BorrowedFd<'_>) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer, which lives
    // for the call; the descriptor is open (borrowed).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        usize::MAX
    }
}

/// Samples written on the current stream connection and not yet
/// confirmed, write by write: a write is confirmed once the peer's TCP
/// acknowledged its last byte and the connection stayed up
/// [`CONFIRM_AFTER`] after it (or closed cleanly); the queue then settles
/// it. When the connection fails first, all of them are sent again.
#[derive(Default)]
pub struct Unconfirmed {
    writes: VecDeque<Write>,
    /// Bytes written on this connection.
    written: u64,
    samples: usize,
}

struct Write {
    samples: Vec<Sample>,
    /// `written` after it.
    end: u64,
    at: std::time::Instant,
}

impl Unconfirmed {
    pub fn len(&self) -> usize {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Notes a batch written, of `bytes` on the wire.
    pub fn wrote(&mut self, batch: Vec<Sample>, bytes: usize) {
        self.written += bytes as u64;
        self.samples += batch.len();
        self.writes.push_back(Write {
            samples: batch,
            end: self.written,
            at: std::time::Instant::now(),
        });
    }

    /// Since the oldest write not yet confirmed.
    pub fn age(&self) -> Duration {
        self.writes
            .front()
            .map_or(Duration::ZERO, |w| w.at.elapsed())
    }

    /// Confirms the writes the peer acknowledged (`unacked`: the bytes it
    /// has not, `None` for datagrams) that are old enough (any age when the
    /// connection was closed cleanly, `at_end`); the queue settles them.
    /// True when nothing is left unconfirmed.
    pub fn confirm(&mut self, queue: &Queue, unacked: Option<usize>, at_end: bool) -> bool {
        let acked = self.written.saturating_sub(unacked.unwrap_or(0) as u64);
        let mut n = 0;
        while let Some(w) = self.writes.front() {
            if w.end > acked || !(at_end || w.at.elapsed() >= CONFIRM_AFTER) {
                break;
            }
            n += w.samples.len();
            self.writes.pop_front();
        }
        if n > 0 {
            self.samples -= n;
            queue.settle_first(n);
        }
        self.writes.is_empty()
    }

    /// The connection failed: what it may have lost goes back in front of
    /// `batch`, to be sent again on a new connection.
    pub fn resend(&mut self, queue: &Queue, batch: Vec<Sample>) {
        let mut all: Vec<Sample> = self.writes.drain(..).flat_map(|w| w.samples).collect();
        all.extend(batch);
        self.written = 0;
        self.samples = 0;
        if !all.is_empty() {
            queue.put_back(all);
        }
    }
}

/// At the stop: closes our side and waits (briefly, within the deadline)
/// for the peer to close its own, which says it read everything; a reset
/// says it did not.
async fn close(conn: &mut Conn, d: &Delivery) -> bool {
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let until = d.deadline().map_or(until, |dl| until.min(dl));
    match conn {
        Conn::Tcp(s) => close_stream(s, until).await,
        Conn::UnixStream(s) => close_stream(s, until).await,
        _ => true,
    }
}

async fn close_stream<S>(s: &mut S, until: tokio::time::Instant) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    if s.shutdown().await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(_)) => return false,
        }
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
    let mut pending = Unconfirmed::default();
    loop {
        let closed = match &conn {
            Some(Conn::Tcp(s)) => closed_by_peer(s),
            Some(Conn::UnixStream(s)) => unix_closed_by_peer(s),
            _ => false,
        };
        if closed {
            conn = None;
            pending.resend(&d.queue, Vec::new());
        }
        if d.queue.is_empty() {
            if d.deadline().is_some() {
                let Some(c) = conn.as_mut() else {
                    if pending.is_empty() {
                        d.settle();
                        return Ok(());
                    }
                    pending.resend(&d.queue, Vec::new());
                    continue;
                };
                if close(c, &d).await {
                    pending.confirm(&d.queue, unacknowledged(c), true);
                    return Ok(());
                }
                conn = None;
                pending.resend(&d.queue, Vec::new());
                if d.past_deadline() {
                    return Err(d.undelivered(&peer, Some("connection reset before it was read")));
                }
                continue;
            }
            if let Some(c) = &conn {
                if !pending.confirm(&d.queue, unacknowledged(c), false) {
                    // Look again once it may be confirmed, or at new work.
                    tokio::select! {
                        _ = d.wait_for_work() => {}
                        _ = tokio::time::sleep(CONFIRM_AFTER / 2) => {}
                    }
                    continue;
                }
            }
            d.wait_for_work().await;
            continue;
        }
        if d.past_deadline() {
            return Err(d.undelivered(&peer, last_error.as_deref()));
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
        if !pending.confirm(&d.queue, unacknowledged(c), false) && pending.len() >= MAX_UNCONFIRMED
        {
            // The peer is behind: let it read before writing more.
            d.pause(Duration::from_millis(20)).await;
            if pending.age() > link.timeout + CONFIRM_AFTER {
                d.failed(&format!("{peer}: not reading"));
                conn = None;
                pending.resend(&d.queue, Vec::new());
            }
            continue;
        }
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
                if unacknowledged(c).is_none() {
                    // Datagrams: nothing will say more.
                    d.settle();
                } else {
                    let bytes = if link.framing == Framing::Messages {
                        octet_counted_len(&buf)
                    } else {
                        buf.len()
                    };
                    pending.wrote(batch, bytes);
                }
            }
            Err(e) => {
                let msg = brief(&e);
                d.failed(&format!("{peer}: {msg}"));
                last_error = Some(msg);
                pending.resend(&d.queue, batch);
                conn = None;
                d.pause(backoff.next_wait()).await;
            }
        }
    }
}
