//! The TCP listeners (statsd lines and the management interface): each
//! keeps accepting through errors such as running out of file descriptors,
//! holds at most `max_connections` connections, closes those idle for
//! `idle_timeout`, and reads lines of at most `max_line_bytes`.

use crate::server::{held_note, Throttle};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What every connection of one listener may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub max_connections: usize,
    /// `None`: connections may stay idle for ever.
    pub idle_timeout: Option<Duration>,
    pub max_line_bytes: usize,
}

/// Accepts connections on `listener` for ever, each handled by `handle`.
/// An accept error is logged (at most once a second) and retried after a
/// pause that grows to one second, so the listener outlives a shortage of
/// file descriptors; a connection past the limit is closed at once.
pub(super) async fn serve<F, Fut>(listener: TcpListener, what: &'static str, max: usize, handle: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    struct Open(Arc<AtomicUsize>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let open = Arc::new(AtomicUsize::new(0));
    let (refused, failed) = (Throttle::new(), Throttle::new());
    let mut pause = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                pause = Duration::from_millis(10);
                if open.load(Ordering::Relaxed) >= max {
                    drop(conn);
                    if let Some(held) = refused.ready() {
                        log::warn!(
                            "statsd {what}: {max} connections open (max_connections); one refused{}",
                            held_note(held)
                        );
                    }
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let guard = Open(open.clone());
                let work = handle(conn);
                tokio::spawn(async move {
                    work.await;
                    drop(guard);
                });
            }
            Err(e) => {
                if let Some(held) = failed.ready() {
                    log::warn!("statsd {what}: accept: {e}; retrying{}", held_note(held));
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// One line as read: its bytes (no newline), or the length it had reached
/// when it passed the bound (the rest of it, up to its newline, is skipped).
#[derive(Debug, PartialEq)]
pub(super) enum Line<'a> {
    Ok(&'a [u8]),
    TooLong,
}

/// Reads newline-ended lines of at most `max` bytes from a stream; bytes
/// are never taken as text here, so invalid UTF-8 ends nothing.
pub(super) struct Lines<R> {
    r: BufReader<R>,
    max: usize,
    idle: Option<Duration>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    pub fn new(r: R, b: Bounds) -> Self {
        Lines {
            r: BufReader::new(r),
            max: b.max_line_bytes,
            idle: b.idle_timeout,
            buf: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the stream, on an error, or
    /// when nothing came for the idle timeout. A last line without its
    /// newline counts.
    pub async fn next(&mut self) -> Option<Line<'_>> {
        self.buf.clear();
        let mut too_long = false;
        loop {
            let filled = match self.idle {
                Some(t) => tokio::time::timeout(t, self.r.fill_buf()).await.ok()?,
                None => self.r.fill_buf().await,
            };
            let avail = filled.ok()?;
            if avail.is_empty() {
                return match (too_long, self.buf.is_empty()) {
                    (true, _) => Some(Line::TooLong),
                    (false, true) => None,
                    (false, false) => Some(Line::Ok(&self.buf)),
                };
            }
            let (take, end) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > self.max {
                    too_long = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.r.consume(take + usize::from(end));
            if end {
                return Some(if too_long {
                    Line::TooLong
                } else {
                    Line::Ok(&self.buf)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_bounded_and_bytes_are_kept() {
        let data: &[u8] = b"a:1|c\n\xff\xfe:2|c\nxxxxxxxxxxxxxxxxxxxx\nb:3|c\nlast";
        let mut l = Lines::new(
            data,
            Bounds {
                max_connections: 1,
                idle_timeout: None,
                max_line_bytes: 10,
            },
        );
        assert_eq!(l.next().await, Some(Line::Ok(b"a:1|c")));
        assert_eq!(l.next().await, Some(Line::Ok(b"\xff\xfe:2|c")));
        assert_eq!(l.next().await, Some(Line::TooLong));
        assert_eq!(l.next().await, Some(Line::Ok(b"b:3|c")));
        assert_eq!(l.next().await, Some(Line::Ok(b"last")));
        assert_eq!(l.next().await, None);
    }
}
