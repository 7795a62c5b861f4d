//! The listeners: plaintext lines over TCP and UDP and pickle messages,
//! each connection on its own thread, read into batches for [`Shared::deliver`].

use super::*;
use std::io::{BufRead, BufReader};

/// Parses `lines` into the cache in one batch.
fn take_lines<'a>(s: &Shared, lines: impl Iterator<Item = &'a [u8]>) {
    let now = now_f64();
    let mut batch = Vec::new();
    for raw in lines {
        // Names stay borrowed from the buffer; a line that is not UTF-8 is
        // read as Python reads it (replacement characters) and owned.
        let parsed = match std::str::from_utf8(raw) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                parse_line(line, now, s.max_name).map_err(|why| (why, line.to_string()))
            }
            Err(_) => {
                let line = String::from_utf8_lossy(raw).trim().to_string();
                parse_line(&line, now, s.max_name)
                    .map(|(n, t, v)| (Cow::Owned(n.into_owned()), t, v))
                    .map_err(|why| (why, line.clone()))
            }
        };
        match parsed {
            Ok(p) => batch.push(p),
            Err((why, line)) => s.rejects.note(&s.cache, &line, &why),
        }
    }
    s.deliver(batch, now);
}

/// Whether a connection silent since `last` has passed the idle timeout
/// (logged at debug level: closing idle connections is routine).
fn idle_past(s: &Shared, last: Instant) -> bool {
    let idle = s.idle_ms.load(Ordering::Relaxed);
    let past = idle > 0 && last.elapsed() >= Duration::from_millis(idle);
    if past {
        log::debug!("carbon: a connection idle for {idle} ms closed");
    }
    past
}

/// One TCP connection: lines until the peer closes or stays silent for the
/// idle timeout; after SIGTERM, until it has been quiet for 200 ms (what it
/// already sent is read), at most 5 s.
pub(super) fn connection(stream: std::net::TcpStream, s: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut stop_at: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        if s.stopping.load(Ordering::Relaxed) && stop_at.is_none() {
            stop_at = Some(Instant::now() + Duration::from_secs(5));
        }
        if stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let buf = match r.fill_buf() {
            Ok([]) => break,
            Ok(b) => {
                last = Instant::now();
                b
            }
            Err(e) if crate::server::read_timed_out(&e) => {
                if stop_at.is_some() || idle_past(&s, last) {
                    break;
                }
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        // Whole lines now; a partial last line waits for the rest.
        let n = buf.len();
        match memchr::memrchr(b'\n', buf) {
            Some(end) => {
                pending.extend_from_slice(&buf[..=end]);
                r.consume(end + 1);
                take_lines(&s, pending.split(|b| *b == b'\n'));
                pending.clear();
            }
            None => {
                pending.extend_from_slice(buf);
                r.consume(n);
                if pending.len() > 1 << 20 {
                    s.rejects.note(&s.cache, "", "a line longer than 1 MiB");
                    pending.clear();
                }
            }
        }
    }
    // A last line without its newline still counts (carbon's LineReceiver drops it).
    if !pending.is_empty() {
        take_lines(&s, std::iter::once(&pending[..]));
    }
}

/// Largest pickle message taken, as carbon's PICKLE_RECEIVER_MAX_LENGTH.
const PICKLE_MAX: usize = 1 << 20;

/// Reads exactly `buf.len()` bytes; false at the end of the stream, on an
/// error, when the peer stays silent for the idle timeout, or when stopping
/// and the peer has gone quiet.
pub(super) fn read_full(r: &mut impl std::io::Read, buf: &mut [u8], s: &Shared) -> bool {
    let mut got = 0;
    let mut stop_at: Option<Instant> = None;
    let mut last = Instant::now();
    while got < buf.len() {
        if s.stopping.load(Ordering::Relaxed) && stop_at.is_none() {
            stop_at = Some(Instant::now() + Duration::from_secs(5));
        }
        match r.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => {
                got += n;
                last = Instant::now();
            }
            Err(e) if crate::server::read_timed_out(&e) => {
                if stop_at.is_some() && (got == 0 || stop_at.is_some_and(|t| Instant::now() >= t))
                    || idle_past(s, last)
                {
                    return false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// One pickle connection: `!L` length-prefixed messages, each a list of
/// `(path, (timestamp, value))`, read by the safe decoder.
pub(super) fn pickle_connection(mut stream: std::net::TcpStream, s: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut head = [0u8; 4];
    while read_full(&mut stream, &mut head, &s) {
        let len = u32::from_be_bytes(head) as usize;
        if len > PICKLE_MAX {
            // As carbon: the connection is dropped.
            s.rejects.note(
                &s.cache,
                "",
                &format!("a pickle of {len} bytes, over 1 MiB"),
            );
            return;
        }
        let budget = pickle::budget(len);
        let _reserved = s.decoding.reserve(len + budget);
        let mut body = vec![0u8; len];
        if !read_full(&mut stream, &mut body, &s) {
            return;
        }
        let decoded = pickle::loads(&body, budget).and_then(pickle::datapoints);
        let (points, skipped) = match decoded {
            Ok(x) => x,
            Err(e) => {
                s.rejects.note(&s.cache, "", &format!("pickle: {e}"));
                continue;
            }
        };
        for _ in 0..skipped {
            s.rejects.note(
                &s.cache,
                "",
                "pickle entry is not (path, (timestamp, value))",
            );
        }
        let now = now_f64();
        let mut batch = Vec::with_capacity(points.len());
        for (name, ts, value) in &points {
            match accept(name, *ts, *value, now, s.max_name) {
                Ok(p) => batch.push(p),
                Err(why) => s.rejects.note(&s.cache, name, &why),
            }
        }
        s.deliver(batch, now);
    }
}

/// Accepts connections on one listener until stopping, each read by
/// `handler` on a thread of its own; at most `max` at once on this
/// listener (more are closed at once), refusals and errors logged at most
/// once a second.
pub(super) fn accept_loop(
    l: std::net::TcpListener,
    s: Arc<Shared>,
    what: &'static str,
    handler: fn(std::net::TcpStream, Arc<Shared>),
) {
    use crate::server::{held_note, Throttle};
    let _ = l.set_nonblocking(true);
    let open = Arc::new(AtomicUsize::new(0));
    let (refused, failed) = (Throttle::new(), Throttle::new());
    let mut last_round = false;
    loop {
        // Once stopping, the connections already in the listen backlog
        // (statsd's last flush, say) are still taken; then no more.
        last_round |= s.stopping.load(Ordering::Relaxed);
        match l.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let max = s.max_connections.load(Ordering::Relaxed);
                if open.load(Ordering::Relaxed) >= max {
                    drop(stream);
                    if let Some(held) = refused.ready() {
                        log::warn!(
                            "carbon {what}: {max} connections open (max_connections); one refused{}",
                            held_note(held)
                        );
                    }
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                s.connections.fetch_add(1, Ordering::Relaxed);
                let (s2, open2) = (s.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name("carbon-conn".into())
                    .spawn(move || {
                        handler(stream, s2.clone());
                        s2.connections.fetch_sub(1, Ordering::Relaxed);
                        open2.fetch_sub(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    s.connections.fetch_sub(1, Ordering::Relaxed);
                    open.fetch_sub(1, Ordering::Relaxed);
                    if let Some(held) = failed.ready() {
                        log::warn!(
                            "carbon {what}: no thread for a connection: {e}{}",
                            held_note(held)
                        );
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if last_round {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                if last_round {
                    return;
                }
                if let Some(held) = failed.ready() {
                    log::warn!("carbon {what}: accept: {e}{}", held_note(held));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

pub(super) fn udp_loop(sock: std::net::UdpSocket, s: Arc<Shared>) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 65_536];
    while !s.stopping.load(Ordering::Relaxed) {
        if let Ok(n) = sock.recv(&mut buf) {
            take_lines(&s, buf[..n].split(|b| *b == b'\n'));
        }
    }
    // What is queued in the socket still counts.
    let _ = sock.set_nonblocking(true);
    while let Ok(n) = sock.recv(&mut buf) {
        take_lines(&s, buf[..n].split(|b| *b == b'\n'));
    }
}
