//! HTTP/1 serving with bounds, for endpoints that face the network: at
//! most `max_connections` open at once (one more is closed at once, said
//! once in the log), a request's headers read within `header_timeout`, and a
//! connection closed after `max_lifetime` (keep-alive scrapers simply
//! connect again). A slow or idle client can hold one slot, never the
//! process's file descriptors, which its collectors need.
//!
//! `axum::serve` has none of these bounds; this is its accept loop with
//! them, over hyper's own HTTP/1 connection.

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub max_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            max_lifetime: Duration::from_secs(300),
        }
    }
}

/// Serves `router` on `listener` within `limits` until `stop` becomes true;
/// the connections open then finish their request (within their bounds).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut said_full = false;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, or the peer gone before accept: wait a
                // little rather than spin.
                log::debug!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !said_full {
                said_full = true;
                log::warn!(
                    "{} connections open on {}: new ones are closed (said once)",
                    limits.max_connections,
                    listener
                        .local_addr()
                        .map(|a| a.to_string())
                        .unwrap_or_default()
                );
            }
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.max_lifetime, conn).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn start(
        limits: Limits,
    ) -> (
        u16,
        tokio::sync::watch::Sender<bool>,
        tokio::runtime::Runtime,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        rt.spawn(serve(listener, router, limits, rx));
        (port, tx, rt)
    }

    fn get(port: u16) -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn idle_and_half_sent_connections_are_bounded() {
        let (port, stop, _rt) = start(Limits {
            max_connections: 4,
            header_timeout: Duration::from_millis(500),
            max_lifetime: Duration::from_secs(60),
        });
        assert!(get(port).expect("get").ends_with("hello"));
        // Four clients that send half a request and wait: the slots are
        // full, a fifth connection is closed at once.
        let mut slow: Vec<std::net::TcpStream> = (0..4)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                s.write_all(b"GET / HTTP/1.1\r\nHost:").expect("half");
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let r = get(port).unwrap_or_default();
        assert!(!r.contains("hello"), "{r}");
        // Past the header timeout the slow ones are closed, and their
        // slots serve again.
        std::thread::sleep(Duration::from_millis(900));
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            let mut buf = [0u8; 256];
            // Closed (0 bytes) or answered with an error, never left open.
            let n = s.read(&mut buf).unwrap_or(0);
            assert!(
                n == 0 || buf.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                &buf[..n]
            );
        }
        assert!(get(port).expect("get").ends_with("hello"));
        let _ = stop.send(true);
    }
}
