//! The relay: points forwarded to other carbon daemons, as carbon-relay
//! does. Each point goes where the consistent-hash ring ([`super::ring`])
//! or carbon's `relay-rules.conf` says; each destination has a queue
//! drained by its own thread, which sends carbon pickle messages and
//! reconnects with backoff. Full queues drop points and count them. With
//! `buffer = "disk"` each destination's queue is a disk buffer
//! ([`crate::buffer`]): points wait there across restarts.

use super::pickle::{self, Point};
use super::ring::{Destination, Ring};
use super::schemas::{parse_ini, SchemaError};
use crate::buffer::{self, Fsync};
use crate::config::ConfigError;
use crate::handlers::transport::{unacknowledged_bytes, Unconfirmed};
use crate::handlers::Queue;
use crate::sample::{Kind, Sample};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// `[server.carbon.relay]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// `host:port[:instance]` of carbon's pickle listeners.
    pub destinations: Vec<String>,
    /// "consistent-hashing" or "rules".
    pub method: String,
    /// carbon's relay-rules.conf, for `method = "rules"`.
    pub rules: Option<PathBuf>,
    /// Destinations per point (consistent-hashing).
    pub replication_factor: usize,
    /// Replicas on distinct servers (consistent-hashing).
    pub diverse_replicas: bool,
    /// Points held per destination while it is down.
    pub max_queue_size: usize,
    /// Points per pickle message.
    pub max_datapoints_per_message: usize,
    /// "memory" (max_queue_size points per destination) or "disk".
    pub buffer: buffer::Kind,
    /// With "disk": most bytes kept per destination.
    pub max_buffer_bytes: u64,
    /// With "disk": where; empty: state_dir/relay-buffers. Each
    /// destination has a directory of its own in it.
    pub buffer_dir: String,
    pub fsync: Fsync,
    /// The agent's state_dir (set when the configuration is loaded).
    #[serde(skip)]
    pub state_dir: PathBuf,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            destinations: Vec::new(),
            method: "consistent-hashing".into(),
            rules: None,
            replication_factor: 1,
            diverse_replicas: true,
            max_queue_size: 100_000,
            max_datapoints_per_message: 500,
            buffer: buffer::Kind::Memory,
            max_buffer_bytes: 256 << 20,
            buffer_dir: String::new(),
            fsync: Fsync::Batch,
            state_dir: PathBuf::new(),
        }
    }
}

impl RelayConfig {
    /// The disk buffer of each destination, when there is one.
    pub fn buffer_spec(&self, dest: &Destination) -> Option<buffer::Spec> {
        if self.buffer != buffer::Kind::Disk {
            return None;
        }
        let dir = if self.buffer_dir.is_empty() {
            // Apart from the handlers' buffers (state_dir/buffers/<name>).
            self.state_dir.join("relay-buffers")
        } else {
            PathBuf::from(&self.buffer_dir)
        };
        let label = match &dest.instance {
            Some(i) => format!("{}:{}:{i}", dest.server, dest.port),
            None => format!("{}:{}", dest.server, dest.port),
        };
        let spec = buffer::Spec {
            dir,
            max_bytes: self.max_buffer_bytes,
            fsync: self.fsync,
        };
        Some(spec.part(&label))
    }

    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !self.buffer_dir.is_empty() && !std::path::Path::new(&self.buffer_dir).is_absolute() {
            return Err(ConfigError::new(
                format!("{key}.buffer_dir"),
                "must be an absolute path",
            ));
        }
        if self.max_buffer_bytes < buffer::MIN_BYTES {
            return Err(ConfigError::new(
                format!("{key}.max_buffer_bytes"),
                format!("must be at least {} bytes", buffer::MIN_BYTES),
            ));
        }
        if self.destinations.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.destinations"),
                "no destination",
            ));
        }
        for d in &self.destinations {
            Destination::parse(d)
                .map_err(|e| ConfigError::new(format!("{key}.destinations"), e))?;
        }
        match (self.method.as_str(), &self.rules) {
            ("consistent-hashing", _) => {}
            ("rules", Some(path)) => {
                let dests: Vec<Destination> = self
                    .destinations
                    .iter()
                    .filter_map(|d| Destination::parse(d).ok())
                    .collect();
                let text = crate::config::read_text(path)?;
                load_rules(&text, &path.display().to_string(), &dests)
                    .map_err(|e| e.at_key(&format!("{key}.rules")))?;
            }
            ("rules", None) => {
                return Err(ConfigError::new(
                    format!("{key}.rules"),
                    "method \"rules\" needs the path of a relay-rules.conf",
                ))
            }
            (m, _) => {
                return Err(ConfigError::new(
                    format!("{key}.method"),
                    format!("{m:?}: expected \"consistent-hashing\" or \"rules\""),
                ))
            }
        }
        if self.replication_factor == 0
            || self.max_queue_size == 0
            || self.max_datapoints_per_message == 0
        {
            return Err(ConfigError::new(
                format!("{key}.replication_factor"),
                "replication_factor, max_queue_size and max_datapoints_per_message must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A relay-rules.conf rule; `pattern` is `None` for the default.
struct Rule {
    pattern: Option<Regex>,
    destinations: Vec<usize>,
    continue_matching: bool,
}

enum Router {
    Ring(Ring),
    Rules(Vec<Rule>),
}

/// Python's `getboolean`.
fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// carbon's relay-rules.conf: rules in order, `continue` to go on past a
/// match, exactly one `default = true` rule, tried last. Destinations not
/// in `known` are left out, as carbon leaves them out.
fn load_rules(text: &str, file: &str, known: &[Destination]) -> Result<Vec<Rule>, SchemaError> {
    let err = |line: usize, msg: String| SchemaError {
        file: file.to_string(),
        line,
        msg,
    };
    let mut rules = Vec::new();
    let mut default: Option<Rule> = None;
    for s in parse_ini(text, file)? {
        let Some((dests, line)) = s.get("destinations") else {
            return Err(err(s.line, format!("[{}] has no destinations", s.name)));
        };
        let mut destinations = Vec::new();
        for d in dests.split(',') {
            let d = Destination::parse(d).map_err(|e| err(line, e))?;
            match known.iter().position(|k| *k == d) {
                Some(i) => destinations.push(i),
                None => log::warn!(
                    "{file}:{line}: {}:{} is not among the relay's destinations; left out",
                    d.server,
                    d.port
                ),
            }
        }
        let flag = |key: &str| -> Result<Option<bool>, SchemaError> {
            match s.get(key) {
                None => Ok(None),
                Some((v, l)) => boolean(v)
                    .map(Some)
                    .ok_or_else(|| err(l, format!("[{}] {key} = {v:?}: not a boolean", s.name))),
            }
        };
        match (s.get("pattern"), flag("default")?) {
            (Some(_), Some(_)) => {
                return Err(err(
                    s.line,
                    format!("[{}] has both pattern and default", s.name),
                ))
            }
            (Some((p, l)), None) => {
                let pattern = RegexBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| err(l, format!("[{}] pattern: {e}", s.name)))?;
                rules.push(Rule {
                    pattern: Some(pattern),
                    destinations,
                    continue_matching: flag("continue")?.unwrap_or(false),
                });
            }
            (None, Some(true)) => {
                if default.is_some() {
                    return Err(err(s.line, "a second default rule".into()));
                }
                default = Some(Rule {
                    pattern: None,
                    destinations,
                    continue_matching: false,
                });
            }
            (None, _) => {}
        }
    }
    let Some(d) = default else {
        return Err(err(0, "no rule with `default = true`".into()));
    };
    rules.push(d);
    Ok(rules)
}

/// The destinations and the router of a relay configuration.
fn routing(cfg: &RelayConfig) -> Result<(Vec<Destination>, Router), String> {
    let dests: Vec<Destination> = cfg
        .destinations
        .iter()
        .map(|d| Destination::parse(d))
        .collect::<Result<_, _>>()?;
    let router = match (cfg.method.as_str(), &cfg.rules) {
        ("rules", Some(path)) => {
            let file = path.display().to_string();
            let text = crate::config::read_text(path).map_err(|e| e.to_string())?;
            Router::Rules(load_rules(&text, &file, &dests).map_err(|e| e.to_string())?)
        }
        _ => Router::Ring(Ring::new(
            dests.clone(),
            cfg.replication_factor,
            cfg.diverse_replicas,
        )),
    };
    Ok((dests, router))
}

/// One destination's queue and counters.
struct Outbox {
    dest: Destination,
    /// In memory (bounded by `max_queue_size` in [`Relay::send`]) or a
    /// disk buffer.
    queue: Arc<Queue>,
    wake: Mutex<()>,
    ready: Condvar,
    sent: AtomicU64,
    dropped: AtomicU64,
}

impl Outbox {
    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.queue.stats.dropped.load(Ordering::Relaxed)
    }
}

fn to_sample((name, ts, value): Point) -> Sample {
    Sample::new(name, value, ts as i64, Kind::Gauge)
}

fn to_point(s: Sample) -> Point {
    (s.name, s.timestamp as f64, s.value)
}

/// The running relay.
pub struct Relay {
    /// Replaced whole when the configuration is read again.
    router: std::sync::RwLock<Router>,
    outboxes: Vec<Arc<Outbox>>,
    max_queue: std::sync::atomic::AtomicUsize,
    stopping: Arc<AtomicBool>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Relay {
    /// Reads the rules (if any) and starts one sender thread per destination.
    pub fn start(cfg: &RelayConfig) -> Result<Relay, String> {
        let (dests, router) = routing(cfg)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let mut outboxes = Vec::new();
        for dest in dests {
            let queue = match cfg.buffer_spec(&dest) {
                Some(spec) => Queue::durable(&spec, Arc::default(), false)
                    .map_err(|e| format!("relay {}:{}: {e}", dest.server, dest.port))?,
                None => Queue::new(usize::MAX),
            };
            outboxes.push(Arc::new(Outbox {
                dest,
                queue,
                wake: Mutex::new(()),
                ready: Condvar::new(),
                sent: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            }));
        }
        let mut threads = Vec::new();
        for o in &outboxes {
            let (o, stop, per) = (o.clone(), stopping.clone(), cfg.max_datapoints_per_message);
            let t = std::thread::Builder::new()
                .name(format!("relay-{}:{}", o.dest.server, o.dest.port))
                .spawn(move || sender(&o, &stop, per))
                .map_err(|e| e.to_string())?;
            threads.push(t);
        }
        Ok(Relay {
            router: std::sync::RwLock::new(router),
            outboxes,
            max_queue: cfg.max_queue_size.into(),
            stopping,
            threads: Mutex::new(threads),
        })
    }

    /// Takes a changed configuration: the method, rules file, replication
    /// and queue size; the destinations themselves need a restart.
    pub fn reload(&self, cfg: &RelayConfig) -> Result<(), String> {
        let (dests, router) = routing(cfg)?;
        if dests.len() != self.outboxes.len()
            || dests.iter().zip(&self.outboxes).any(|(d, o)| *d != o.dest)
        {
            return Err("relay destinations changed: they take effect on restart".into());
        }
        if dests
            .iter()
            .zip(&self.outboxes)
            .any(|(d, o)| cfg.buffer_spec(d).as_ref() != o.queue.buffer())
        {
            return Err("relay buffer settings changed: they take effect on restart".into());
        }
        *self.router.write().unwrap_or_else(|p| p.into_inner()) = router;
        self.max_queue.store(cfg.max_queue_size, Ordering::Relaxed);
        Ok(())
    }

    fn route(&self, router: &Router, metric: &str, out: &mut Vec<usize>) {
        out.clear();
        match router {
            Router::Ring(ring) => {
                for d in ring.destinations(metric) {
                    if let Some(i) = self.outboxes.iter().position(|o| o.dest == *d) {
                        out.push(i);
                    }
                }
            }
            Router::Rules(rules) => {
                for r in rules {
                    if r.pattern.as_ref().is_none_or(|p| p.is_match(metric)) {
                        for d in &r.destinations {
                            if !out.contains(d) {
                                out.push(*d);
                            }
                        }
                        if !r.continue_matching {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Queues each point for its destinations.
    pub fn send(&self, points: &[super::Parsed<'_>]) {
        let mut to = Vec::new();
        let mut per: Vec<Vec<Point>> = vec![Vec::new(); self.outboxes.len()];
        let router = self.router.read().unwrap_or_else(|p| p.into_inner());
        for (name, ts, value) in points {
            self.route(&router, name, &mut to);
            for &i in &to {
                per[i].push((name.to_string(), *ts, *value));
            }
        }
        for (o, batch) in self.outboxes.iter().zip(per) {
            if batch.is_empty() {
                continue;
            }
            // A disk buffer is bounded in bytes, by itself.
            let room = if o.queue.is_durable() {
                usize::MAX
            } else {
                self.max_queue
                    .load(Ordering::Relaxed)
                    .saturating_sub(o.queue.len())
            };
            let dropped = batch.len().saturating_sub(room);
            o.queue.push(batch.into_iter().take(room).map(to_sample));
            if dropped > 0 {
                o.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            }
            o.ready.notify_one();
        }
    }

    /// (destination, sent, dropped, queued) for each destination.
    pub fn stats(&self) -> Vec<(String, u64, u64, usize)> {
        self.outboxes
            .iter()
            .map(|o| {
                (
                    format!("{}:{}", o.dest.server, o.dest.port),
                    o.sent.load(Ordering::Relaxed),
                    o.dropped(),
                    o.queue.len(),
                )
            })
            .collect()
    }

    /// Delivers what is queued (each destination gets up to 5 s more), then
    /// stops the senders.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        for o in &self.outboxes {
            o.ready.notify_all();
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        for ((d, _, dropped, queued), o) in self.stats().into_iter().zip(&self.outboxes) {
            if o.queue.is_durable() && queued > 0 {
                log::warn!("relay {d}: {queued} points kept in the disk buffer for the next start");
            } else if dropped > 0 || queued > 0 {
                log::warn!("relay {d}: {dropped} points dropped, {queued} not delivered");
            }
        }
    }
}

/// Whether the peer closed (or reset) a connection it never writes on.
fn closed_by_peer(c: &std::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match rustix::net::recv(c, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((0, _)) => return true,
            Ok(_) => continue,
            Err(rustix::io::Errno::AGAIN) => return false,
            Err(_) => return true,
        }
    }
}

/// Closes our side at the stop and waits (2 s at most) for the peer to
/// close its own: it read everything. A reset says it did not.
fn close(c: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    if c.shutdown(std::net::Shutdown::Write).is_err() {
        return false;
    }
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 512];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if crate::server::read_timed_out(&e) => return true,
            Err(_) => return false,
        }
    }
}

/// One destination's thread: pickle messages over one connection,
/// reconnecting with exponential backoff (0.5 s to 30 s, with jitter).
/// What was written counts as delivered once the connection stayed up
/// after it ([`Unconfirmed`]); a reset before sends it again.
fn sender(o: &Outbox, stopping: &AtomicBool, per_message: usize) {
    use std::os::fd::AsFd;
    let mut conn: Option<std::net::TcpStream> = None;
    let mut backoff = Duration::from_millis(500);
    let mut give_up: Option<Instant> = None;
    let mut pending = Unconfirmed::default();
    // Set while the destination cannot be reached, so a streak is said once.
    let mut failing = false;
    loop {
        let stop = stopping.load(Ordering::Relaxed);
        if stop && give_up.is_none() {
            give_up = Some(Instant::now() + Duration::from_secs(5));
        }
        if conn.as_ref().is_some_and(closed_by_peer) {
            conn = None;
            pending.resend(&o.queue, Vec::new());
        }
        if let Some(c) = &conn {
            pending.confirm(&o.queue, Some(unacknowledged_bytes(c.as_fd())), false);
        }
        let batch: Vec<Point> = o
            .queue
            .take(per_message)
            .into_iter()
            .map(to_point)
            .collect();
        if batch.is_empty() {
            if stop {
                let closed = conn.as_mut().is_none_or(close);
                if closed || give_up.is_some_and(|t| Instant::now() >= t) {
                    if closed {
                        pending.confirm(&o.queue, None, true);
                    }
                    return;
                }
                conn = None;
                pending.resend(&o.queue, Vec::new());
                continue;
            }
            let guard = o.wake.lock().unwrap_or_else(|p| p.into_inner());
            let wait = if pending.is_empty() { 200 } else { 50 };
            let _ = o.ready.wait_timeout(guard, Duration::from_millis(wait));
            continue;
        }
        if give_up.is_some_and(|t| Instant::now() >= t) {
            if o.queue.is_durable() {
                // Kept on disk for the next start.
                pending.resend(&o.queue, batch.into_iter().map(to_sample).collect());
                return;
            }
            let left = o.queue.len() + batch.len() + pending.len();
            o.dropped.fetch_add(left as u64, Ordering::Relaxed);
            while !o.queue.take(usize::MAX).is_empty() {}
            return;
        }
        if conn.is_none() {
            let addr = format!("{}:{}", o.dest.server, o.dest.port);
            let c = std::net::ToSocketAddrs::to_socket_addrs(&addr)
                .ok()
                .and_then(|mut a| a.next())
                .and_then(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(5)).ok()
                });
            match c {
                Some(c) => {
                    let _ = c.set_write_timeout(Some(Duration::from_secs(10)));
                    conn = Some(c);
                    backoff = Duration::from_millis(500);
                    if std::mem::take(&mut failing) {
                        log::info!("relay {addr}: delivering again");
                    }
                }
                None => {
                    if !std::mem::replace(&mut failing, true) {
                        let held = if o.queue.is_durable() {
                            "in its disk buffer"
                        } else {
                            "in memory (max_queue_size)"
                        };
                        log::warn!(
                            "relay {addr}: cannot connect; holding points {held} and retrying"
                        );
                    }
                    o.queue.put_back(batch.into_iter().map(to_sample).collect());
                    let jitter = fastrand::f64() * 0.2 + 0.9;
                    std::thread::sleep(backoff.mul_f64(jitter).min(Duration::from_secs(1)));
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        let frame = pickle::dumps(&batch);
        let samples: Vec<Sample> = batch.into_iter().map(to_sample).collect();
        match conn.as_mut().map(|c| c.write_all(&frame)) {
            Some(Ok(())) => {
                o.sent.fetch_add(samples.len() as u64, Ordering::Relaxed);
                pending.wrote(samples, frame.len());
            }
            _ => {
                conn = None;
                pending.resend(&o.queue, samples);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dests() -> Vec<Destination> {
        ["a:2004:1", "b:2004:1", "c:2004"]
            .iter()
            .map(|d| Destination::parse(d).expect("parse"))
            .collect()
    }

    #[test]
    fn rules_in_order_with_continue_and_a_default() {
        let text = "[web]\npattern = ^WEB\\.\ndestinations = a:2004:1\ncontinue = true\n\n\
                    [web2]\npattern = ^web\\.x\ndestinations = b:2004:1, z:1:1\n\n\
                    [rest]\ndefault = true\ndestinations = c:2004\n";
        let rules = load_rules(text, "relay-rules.conf", &dests()).expect("rules");
        let relay = Relay {
            router: Router::Rules(rules).into(),
            outboxes: Vec::new(),
            max_queue: 1.into(),
            stopping: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
        };
        let mut to = Vec::new();
        let router = relay.router.read().expect("router");
        relay.route(&router, "web.x.hits", &mut to);
        assert_eq!(to, [0, 1]);
        relay.route(&router, "web.y", &mut to);
        assert_eq!(to, [0, 2]);
        relay.route(&router, "db.q", &mut to);
        assert_eq!(to, [2]);
    }

    #[test]
    fn rules_errors_name_the_line() {
        for (text, want) in [
            (
                "[a]\npattern = x\ndestinations = a:2004:1\n",
                "no rule with `default = true`",
            ),
            ("[a]\npattern = x\n", "no destinations"),
            (
                "[a]\npattern = x\ndefault = true\ndestinations = a:2004:1\n",
                "both",
            ),
            (
                "[a]\ndefault = maybe\ndestinations = a:2004:1\n",
                "not a boolean",
            ),
        ] {
            let e = load_rules(text, "relay-rules.conf", &dests())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("relay-rules.conf:") && e.contains(want), "{e}");
        }
    }
}
