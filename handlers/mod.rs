//! Handlers: where samples go. One file per handler type; this file is the
//! explicit list of types, the per-handler bounded queue and the shared
//! delivery bookkeeping.
//!
//! Every handler instance (`[handlers.NAME]`) owns a [`Queue`] and a tokio
//! task. The scheduler pushes each collector run's samples into every queue
//! and never waits for a handler: a full queue drops its oldest samples and
//! counts them.
//!
//! To add a handler type: write `handlers/TYPE.rs` with its options struct
//! and an `async fn run(Delivery, Options)`, add a variant to
//! [`HandlerConfig`] and a line to [`HandlerConfig::parse`] and [`spawn`],
//! and an example `conf.d/TYPE.toml`.

pub mod graphite;
pub mod http;
pub mod prometheus;
pub mod queue;
pub mod remote_write;
pub mod statsd;
pub mod stdout;
pub mod syslog;
pub mod transport;
pub mod zeromq;

use crate::buffer::BufferConfig;
use crate::config::{options_from_table, ConfigError};
pub use queue::{Queue, Stats, StatsSnapshot};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The handler types, each with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum HandlerConfig {
    Graphite(graphite::GraphiteConfig),
    Http(http::HttpConfig),
    Prometheus(prometheus::PrometheusConfig),
    RemoteWrite(remote_write::RemoteWriteConfig),
    Statsd(statsd::StatsdConfig),
    Stdout(stdout::StdoutConfig),
    Syslog(syslog::SyslogConfig),
    Zeromq(zeromq::ZeromqConfig),
}

/// A resolved `[handlers.NAME]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerSpec {
    pub name: String,
    pub enabled: bool,
    pub config: HandlerConfig,
    /// Where it keeps what it has not delivered.
    pub buffer: BufferConfig,
}

/// The handler types a section may name with `type = "..."`.
pub const TYPES: &[&str] = &[
    "graphite",
    "http",
    "prometheus",
    "remote_write",
    "statsd",
    "stdout",
    "syslog",
    "zeromq",
];

impl HandlerConfig {
    fn parse(kind: &str, key: &str, table: toml::Table) -> Result<Self, ConfigError> {
        Ok(match kind {
            "graphite" => {
                let c: graphite::GraphiteConfig = options_from_table(key, table)?;
                c.validate(key)?;
                HandlerConfig::Graphite(c)
            }
            "http" => {
                let c: http::HttpConfig = options_from_table(key, table)?;
                c.validate(key)?;
                HandlerConfig::Http(c)
            }
            "prometheus" => {
                let mut c: prometheus::PrometheusConfig = options_from_table(key, table)?;
                c.validate(key)?;
                c.mapping_digest = crate::prometheus::mapping::Mapper::file_digest(&c.mapping_file);
                HandlerConfig::Prometheus(c)
            }
            "remote_write" => {
                let mut c: remote_write::RemoteWriteConfig = options_from_table(key, table)?;
                c.validate(key)?;
                c.mapping_digest = crate::prometheus::mapping::Mapper::file_digest(&c.mapping_file);
                HandlerConfig::RemoteWrite(c)
            }
            "statsd" => {
                let c: statsd::StatsdConfig = options_from_table(key, table)?;
                c.validate(key)?;
                HandlerConfig::Statsd(c)
            }
            "stdout" => HandlerConfig::Stdout(options_from_table(key, table)?),
            "syslog" => {
                let c: syslog::SyslogConfig = options_from_table(key, table)?;
                c.validate(key)?;
                HandlerConfig::Syslog(c)
            }
            "zeromq" => {
                let c: zeromq::ZeromqConfig = options_from_table(key, table)?;
                c.validate(key)?;
                HandlerConfig::Zeromq(c)
            }
            other => {
                return Err(ConfigError::new(
                    format!("{key}.type"),
                    format!(
                        "unknown handler type {other:?} (one of: {})",
                        TYPES.join(", ")
                    ),
                ))
            }
        })
    }

    /// Whether the handler takes Prometheus series (and not the Graphite
    /// samples their collectors hide from Prometheus).
    pub fn takes_series(&self) -> bool {
        matches!(
            self,
            HandlerConfig::Prometheus(_) | HandlerConfig::RemoteWrite(_)
        )
    }

    /// Whether the handler only serves what the daemon collects (a scrape
    /// endpoint), so that `agent --once` has nothing to deliver to it.
    pub fn serves_scrapes(&self) -> bool {
        matches!(self, HandlerConfig::Prometheus(_))
    }

    fn type_name(&self) -> &'static str {
        match self {
            HandlerConfig::Graphite(_) => "graphite",
            HandlerConfig::Http(_) => "http",
            HandlerConfig::Prometheus(_) => "prometheus",
            HandlerConfig::RemoteWrite(_) => "remote_write",
            HandlerConfig::Statsd(_) => "statsd",
            HandlerConfig::Stdout(_) => "stdout",
            HandlerConfig::Syslog(_) => "syslog",
            HandlerConfig::Zeromq(_) => "zeromq",
        }
    }

    fn options_table(&self) -> Result<toml::Table, toml::ser::Error> {
        match self {
            HandlerConfig::Graphite(c) => toml::Table::try_from(c),
            HandlerConfig::Http(c) => toml::Table::try_from(c),
            HandlerConfig::Prometheus(c) => toml::Table::try_from(c),
            HandlerConfig::RemoteWrite(c) => toml::Table::try_from(c),
            HandlerConfig::Statsd(c) => toml::Table::try_from(c),
            HandlerConfig::Stdout(c) => toml::Table::try_from(c),
            HandlerConfig::Syslog(c) => toml::Table::try_from(c),
            HandlerConfig::Zeromq(c) => toml::Table::try_from(c),
        }
    }

    /// Resolves every `[handlers.NAME]` section. A section's type is its
    /// `type` key, or its name when that is a type. With `partial` (one file
    /// of several), a section with neither is left for the merged check.
    pub fn resolve_all(
        sections: &BTreeMap<String, toml::Table>,
        partial: bool,
    ) -> Result<Vec<HandlerSpec>, ConfigError> {
        let mut out = Vec::new();
        for (name, table) in sections {
            let key = format!("handlers.{name}");
            let mut table = table.clone();
            let kind = match table.remove("type") {
                Some(toml::Value::String(s)) => s,
                Some(other) => {
                    return Err(ConfigError::new(
                        format!("{key}.type"),
                        format!("expected a string, found {}", other.type_str()),
                    ))
                }
                None if TYPES.contains(&name.as_str()) => name.clone(),
                None if partial => continue,
                None => {
                    return Err(ConfigError::new(
                        format!("{key}.type"),
                        format!("missing (one of: {})", TYPES.join(", ")),
                    ))
                }
            };
            let enabled = match table.remove("enabled") {
                None => true,
                Some(toml::Value::Boolean(b)) => b,
                Some(other) => {
                    return Err(ConfigError::new(
                        format!("{key}.enabled"),
                        format!("expected a boolean, found {}", other.type_str()),
                    ))
                }
            };
            let buffer = BufferConfig::take_from(&key, &mut table)?;
            let config = HandlerConfig::parse(&kind, &key, table).map_err(|mut e| {
                // serde lists the handler's own keys; these are taken first.
                if e.message.contains("unknown field") {
                    e.message.push_str(&format!(
                        ", or one of the buffer keys: {}",
                        crate::buffer::KEYS.join(", ")
                    ));
                }
                e
            })?;
            if buffer.buffer == crate::buffer::Kind::Disk && config.serves_scrapes() {
                return Err(ConfigError::new(
                    format!("{key}.buffer"),
                    "a scrape endpoint keeps nothing to deliver: \"disk\" is for handlers that send",
                ));
            }
            if buffer.buffer == crate::buffer::Kind::Disk && !buffer.buffer_dir.is_empty() {
                if !Path::new(&buffer.buffer_dir).is_absolute() {
                    return Err(ConfigError::new(
                        format!("{key}.buffer_dir"),
                        "must be an absolute path (the daemon and `carbyne buffer` run from different folders)",
                    ));
                }
                let theirs = out.iter().find(|h: &&HandlerSpec| {
                    h.buffer.buffer == crate::buffer::Kind::Disk
                        && h.buffer.buffer_dir.trim_end_matches('/')
                            == buffer.buffer_dir.trim_end_matches('/')
                });
                if let Some(h) = theirs {
                    return Err(ConfigError::new(
                        format!("{key}.buffer_dir"),
                        format!(
                            "handlers.{} keeps its buffer there too: each handler needs its own",
                            h.name
                        ),
                    ));
                }
            }
            out.push(HandlerSpec {
                name: name.clone(),
                enabled,
                config,
                buffer,
            });
        }
        Ok(out)
    }
}

impl HandlerSpec {
    /// The section with every default filled in, for `config check`.
    pub fn to_table(&self) -> Result<toml::Table, ConfigError> {
        let mut t = toml::Table::new();
        t.insert("type".into(), self.config.type_name().into());
        t.insert("enabled".into(), self.enabled.into());
        let opts = self
            .config
            .options_table()
            .map_err(|e| ConfigError::new(format!("handlers.{}", self.name), e.to_string()))?;
        t.extend(opts);
        if !self.config.serves_scrapes() {
            t.extend(self.buffer.to_table());
        }
        Ok(t)
    }

    /// The disk buffer to open, when the section asks for one; its
    /// directory defaults to `state_dir/buffers/<name>`.
    pub fn buffer_spec(&self, state_dir: &Path) -> Option<crate::buffer::Spec> {
        (self.buffer.buffer == crate::buffer::Kind::Disk).then(|| crate::buffer::Spec {
            dir: self.buffer.dir(state_dir, &self.name),
            max_bytes: self.buffer.max_buffer_bytes,
            fsync: self.buffer.fsync,
        })
    }
}

/// What a handler task works with: its queue, its name for messages, and
/// the stop signal (a deadline by which to have delivered everything).
pub struct Delivery {
    pub name: String,
    pub queue: Arc<Queue>,
    stop: watch::Receiver<Option<Instant>>,
    failing: AtomicBool,
}

/// Why a handler could not deliver everything before its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryError(pub String);

impl Delivery {
    /// The deadline once stopping was asked for.
    pub fn deadline(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// Waits for new samples or a stop request.
    pub async fn wait_for_work(&mut self) {
        if self.deadline().is_some() {
            return;
        }
        tokio::select! {
            _ = self.queue.notified() => {}
            _ = self.stop.changed() => {}
        }
    }

    /// Sleeps `d`, or less when stopping and the deadline comes first; wakes
    /// early when stopping is asked for.
    pub async fn pause(&mut self, d: Duration) {
        let until = Instant::now() + d;
        let until = match self.deadline() {
            Some(dl) => until.min(dl),
            None => until,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = self.stop.changed() => {}
        }
    }

    /// Between two batches of a handler that sends requests: waits for
    /// samples; `Some` when the handler is done: stopping with nothing
    /// left (an error when the peer refused `rejected` samples), or past
    /// its deadline with samples left.
    pub async fn ready(
        &mut self,
        peer: &str,
        last_error: Option<&str>,
        rejected: u64,
    ) -> Option<Result<(), DeliveryError>> {
        loop {
            if !self.queue.is_empty() {
                if self.past_deadline() {
                    return Some(Err(self.undelivered(peer, last_error)));
                }
                return None;
            }
            if self.deadline().is_some() {
                if rejected > 0 {
                    return Some(Err(DeliveryError(format!(
                        "{} {peer}: {} ({rejected} samples rejected)",
                        self.name,
                        last_error.unwrap_or_default()
                    ))));
                }
                return Some(Ok(()));
            }
            self.wait_for_work().await;
        }
    }

    /// [`Delivery::pause`] for work that runs beside other work of the same
    /// handler (its shards), through a shared reference.
    pub async fn pause_shared(&self, d: Duration) {
        let until = Instant::now() + d;
        if let Some(dl) = self.deadline() {
            // Stopping already: the request is no news (a clone of the
            // receiver would see it as new on every call and never wait).
            tokio::time::sleep_until(until.min(dl)).await;
            return;
        }
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep_until(until) => {}
            _ = stop.changed() => {}
        }
    }

    /// A delivery for one part of this handler's work (one destination of
    /// several, named `label`): its own queue, bounded in memory or a disk
    /// buffer of its own when the handler has one, counting into this
    /// handler's counters, and its own stop signal, which the caller sends
    /// once it has handed over everything.
    pub fn part(&self, capacity: usize, label: &str) -> (Delivery, watch::Sender<Option<Instant>>) {
        let (stop, rx) = watch::channel(None);
        let stats = self.queue.stats.clone();
        let queue = match self.queue.buffer() {
            Some(spec) => {
                Queue::durable(&spec.part(label), stats.clone(), false).unwrap_or_else(|e| {
                    log::error!("{}: {e}; {label} keeps its samples in memory", self.name);
                    Queue::counting_into(capacity, stats)
                })
            }
            None => Queue::counting_into(capacity, stats),
        };
        self.queue
            .parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&queue));
        let d = Delivery {
            name: self.name.clone(),
            queue,
            stop: rx,
            failing: AtomicBool::new(false),
        };
        (d, stop)
    }

    /// Records a failed attempt: logged once per failure streak, always counted.
    pub fn failed(&self, what: &str) {
        self.queue.stats.errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            log::warn!("{}: {what}; holding samples and retrying", self.name);
        } else {
            log::debug!("{}: {what}", self.name);
        }
    }

    /// Everything taken and not put back has reached the receiver (or
    /// was refused for good): a disk buffer may forget it.
    pub fn settle(&self) {
        self.queue.settle();
    }

    /// Records delivered samples.
    pub fn sent(&self, n: usize) {
        self.queue.stats.sent.fetch_add(n as u64, Ordering::Relaxed);
        if self.failing.swap(false, Ordering::Relaxed) {
            log::info!("{}: delivering again", self.name);
        }
    }

    /// Records lines that did not fit a datagram and went alone.
    pub fn oversize(&self, n: u64) {
        if n > 0 {
            self.queue.stats.oversize.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Whether the deadline has passed.
    pub fn past_deadline(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// The error for what is still queued at the deadline.
    pub fn undelivered(&self, peer: &str, last_error: Option<&str>) -> DeliveryError {
        DeliveryError(format!(
            "{} {peer}: {} ({} samples not delivered)",
            self.name,
            last_error.unwrap_or("not delivered in time"),
            self.queue.len()
        ))
    }
}

/// Exponential backoff with jitter: 100 ms doubling up to `max`, each wait
/// drawn between half and all of the current step.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    max: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(100);

    pub fn new(max: Duration) -> Self {
        Backoff {
            step: Self::FIRST,
            max: max.max(Self::FIRST),
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = self.step.mul_f64(0.5 + fastrand::f64() * 0.5);
        self.step = (self.step * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.step = Self::FIRST;
    }
}

/// Checks that each `(name, seconds)` of a handler's section is a positive,
/// finite number of seconds (`timeout`, `max_backoff`, ...).
pub fn check_seconds(key: &str, values: &[(&str, f64)]) -> Result<(), ConfigError> {
    for (k, v) in values {
        // A year at most: beyond, a Duration overflows soon after.
        if !(v.is_finite() && *v > 0.0 && *v <= MAX_SECONDS) {
            return Err(ConfigError::new(
                format!("{key}.{k}"),
                "must be a positive number of seconds, at most a year (31536000)",
            ));
        }
    }
    Ok(())
}

/// The longest time a handler setting may name.
pub const MAX_SECONDS: f64 = 31_536_000.0;

/// Checks a handler's `url`: http or https, with a host. The message
/// shows it without credentials.
pub fn check_http_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let bad = |why: String| {
        ConfigError::new(format!("{key}.url"), format!("{:?}: {why}", shown_url(url)))
    };
    let u = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad("not an http(s) URL".into()));
    }
    Ok(())
}

/// A URL as messages show it: without a user name, password or query
/// (where tokens go), so that logs never carry credentials.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            if u.query().is_some() {
                u.set_query(Some("..."));
            }
            u.to_string()
        }
        Err(_) => url
            .split(['@', '?'])
            .next_back()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Checks a network peer given as `host`, `port` and a TCP/UDP `proto`.
pub fn check_inet_peer(
    key: &str,
    host: &str,
    port: u16,
    proto: transport::Proto,
) -> Result<(), ConfigError> {
    if host.trim().is_empty() {
        return Err(ConfigError::new(format!("{key}.host"), "must not be empty"));
    }
    if proto == transport::Proto::Unix {
        return Err(ConfigError::new(
            format!("{key}.proto"),
            "must be \"tcp\" or \"udp\"",
        ));
    }
    if port == 0 {
        return Err(ConfigError::new(
            format!("{key}.port"),
            "must be 1 to 65535",
        ));
    }
    Ok(())
}

/// A short description of a ZeroMQ error.
pub fn brief_zmq(e: &::zeromq::ZmqError) -> String {
    match e {
        ::zeromq::ZmqError::Network(io) => brief(io),
        e => e.to_string(),
    }
}

/// A short description of a failed HTTP request, without its URL (which
/// may carry credentials).
pub fn brief_http(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.without_url().to_string()
    }
}

/// A short description of an I/O error: `connection refused`, `timed out`, ...
pub fn brief(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
        | TimedOut | AddrNotAvailable | HostUnreachable | NetworkUnreachable => {
            e.kind().to_string()
        }
        _ => e.to_string(),
    }
}

/// A running handler: its queue, and how to stop it and learn the outcome.
pub struct Running {
    pub name: String,
    pub queue: Arc<Queue>,
    stop: watch::Sender<Option<Instant>>,
    task: tokio::task::JoinHandle<Result<(), DeliveryError>>,
}

/// How a handler ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Everything delivered.
    Delivered,
    /// What it could not deliver is in its disk buffer, for the next run:
    /// why, and how many samples wait there.
    Buffered(String),
}

impl Running {
    /// Asks the handler to deliver what it holds by `deadline`, and waits
    /// (a little past the deadline at most) for the outcome. A handler
    /// with a disk buffer that could write everything it was given loses
    /// nothing undelivered: that is [`Stopped::Buffered`], not an error.
    pub async fn stop(self, deadline: Instant) -> Result<Stopped, DeliveryError> {
        let _ = self.stop.send(Some(deadline));
        let grace = deadline + Duration::from_secs(1);
        let r = match tokio::time::timeout_at(grace, self.task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(DeliveryError(format!("{}: task failed: {e}", self.name))),
            Err(_) => Err(DeliveryError(format!(
                "{}: did not finish in time ({} samples not delivered)",
                self.name,
                self.queue.len()
            ))),
        };
        match r {
            Ok(()) => Ok(Stopped::Delivered),
            // Unless some could not be written and only memory holds them.
            Err(e) if self.queue.is_durable() && self.queue.spilled() == 0 => {
                let held = self.queue.snapshot().buffered.unwrap_or(0);
                Ok(Stopped::Buffered(format!(
                    "{e}; {held} samples kept in the disk buffer for the next run"
                )))
            }
            Err(e) => Err(e),
        }
    }
}

/// Starts the task of one handler; `host` is the agent's hostname (for
/// handlers whose messages carry it).
pub fn spawn(spec: &HandlerSpec, host: &str, state_dir: &Path) -> Running {
    spawn_after(spec, host, state_dir, None)
}

/// The task of a handler, started once `gate` opens (when given).
fn start<F>(
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
    task: F,
) -> tokio::task::JoinHandle<Result<(), DeliveryError>>
where
    F: std::future::Future<Output = Result<(), DeliveryError>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Some(gate) = gate {
            let _ = gate.await;
        }
        task.await
    })
}

/// [`spawn`], its queue taking samples at once but its task starting when
/// `gate` opens: a handler that takes over from one a reload replaced sends
/// what that one left first.
pub fn spawn_after(
    spec: &HandlerSpec,
    host: &str,
    state_dir: &Path,
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Running {
    let capacity = match &spec.config {
        HandlerConfig::Graphite(c) => c.max_queue,
        HandlerConfig::Http(c) => c.max_queue,
        // Taken whole at each wake-up; the cache behind it has its own bound.
        HandlerConfig::Prometheus(_) => 1_000_000,
        HandlerConfig::RemoteWrite(c) => c.max_queue,
        HandlerConfig::Statsd(c) => c.max_queue,
        HandlerConfig::Stdout(_) => usize::MAX,
        HandlerConfig::Syslog(c) => c.max_queue,
        HandlerConfig::Zeromq(c) => c.max_queue,
    };
    let series = spec.config.takes_series();
    let memory = || {
        if series {
            Queue::for_series(capacity)
        } else {
            Queue::new(capacity)
        }
    };
    let queue = match spec.buffer_spec(state_dir) {
        // A Graphite handler with several destinations keeps one buffer
        // for each, under its own, and one for what it has yet to route.
        Some(b) => Queue::durable(&b, Arc::default(), series).unwrap_or_else(|e| {
            log::error!(
                "handlers.{}: cannot open its disk buffer: {e}; samples are kept in memory (max_queue)",
                spec.name
            );
            memory()
        }),
        None => memory(),
    };
    let (tx, rx) = watch::channel(None);
    let delivery = Delivery {
        name: spec.name.clone(),
        queue: queue.clone(),
        stop: rx,
        failing: AtomicBool::new(false),
    };
    let task = match spec.config.clone() {
        HandlerConfig::Graphite(c) => start(gate, graphite::run(delivery, c)),
        HandlerConfig::Http(c) => start(gate, http::run(delivery, c, host.to_string())),
        HandlerConfig::Prometheus(c) => start(gate, prometheus::run(delivery, c)),
        HandlerConfig::RemoteWrite(c) => {
            start(gate, remote_write::run(delivery, c, host.to_string()))
        }
        HandlerConfig::Statsd(c) => start(gate, statsd::run(delivery, c)),
        HandlerConfig::Stdout(c) => start(gate, stdout::run(delivery, c)),
        HandlerConfig::Syslog(c) => start(gate, syslog::run(delivery, c)),
        HandlerConfig::Zeromq(c) => start(gate, zeromq::run(delivery, c)),
    };
    Running {
        name: spec.name.clone(),
        queue,
        stop: tx,
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind;
    use crate::sample::Sample;

    fn s(i: i64) -> Sample {
        Sample::new(format!("m{i}"), i as f64, i, Kind::Gauge)
    }

    #[tokio::test]
    async fn a_shared_pause_waits_until_stop_is_asked() {
        let (tx, rx) = watch::channel(None);
        let d = Delivery {
            name: "t".into(),
            queue: Queue::new(1),
            stop: rx,
            failing: AtomicBool::new(false),
        };
        let t = Instant::now();
        d.pause_shared(Duration::from_millis(150)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(140),
            "{:?}",
            t.elapsed()
        );
        // A stop request wakes it at once.
        let t = Instant::now();
        let wake = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Some(Instant::now() + Duration::from_secs(5)));
        };
        tokio::join!(d.pause_shared(Duration::from_secs(10)), wake);
        assert!(t.elapsed() < Duration::from_secs(2));
        // Stopping, a pause still waits (up to the deadline): retries do
        // not storm while the handler delivers what it holds.
        let t = Instant::now();
        d.pause_shared(Duration::from_millis(150)).await;
        d.pause_shared(Duration::from_millis(150)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(280),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn an_edited_mapping_file_makes_a_changed_handler() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("m.yml");
        std::fs::write(&f, "mappings:\n- match: a.*\n  name: a\n").expect("write");
        let sections = || {
            let t: toml::Table = toml::from_str(&format!(
                "[prom]\ntype = \"prometheus\"\nmapping_file = {:?}\n",
                f.display().to_string()
            ))
            .expect("toml");
            let mut m = BTreeMap::new();
            m.insert(
                "prom".to_string(),
                t["prom"].as_table().expect("table").clone(),
            );
            HandlerConfig::resolve_all(&m, false).expect("resolve")
        };
        let (a, b) = (sections(), sections());
        assert_eq!(a, b, "the same file: the same handler");
        std::fs::write(&f, "mappings:\n- match: a.*\n  name: b\n").expect("write");
        assert_ne!(a, sections(), "an edited file: a handler to restart");
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            shown_url("https://user:s3cret@rw.example.com:8443/api/v1/write?token=abc"),
            "https://rw.example.com:8443/api/v1/write?..."
        );
        assert_eq!(
            shown_url("http://127.0.0.1:9090/w"),
            "http://127.0.0.1:9090/w"
        );
    }

    #[test]
    fn parts_count_into_their_handler() {
        let queue = Queue::new(10);
        let (_stop, rx) = watch::channel(None);
        let d = Delivery {
            name: "g".into(),
            queue: queue.clone(),
            stop: rx,
            failing: AtomicBool::new(false),
        };
        let (a, _) = d.part(2, "a");
        let (b, _) = d.part(5, "b");
        a.queue.push((0..3).map(s)); // one over its bound
        b.queue.push((0..4).map(s));
        b.sent(1);
        queue.push([s(9)]);
        let snap = queue.snapshot();
        assert_eq!((snap.queue, snap.dropped, snap.sent), (2 + 4 + 1, 1, 1));
        drop(a);
        drop(b);
        assert_eq!(queue.snapshot().queue, 1);
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1));
        let w: Vec<_> = (0..8).map(|_| b.next_wait()).collect();
        assert!(w[0] >= Duration::from_millis(50) && w[0] <= Duration::from_millis(100));
        assert!(w[3] >= Duration::from_millis(400) && w[3] <= Duration::from_millis(800));
        assert!(w.iter().all(|d| *d <= Duration::from_secs(1)));
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn handler_sections_resolve_by_name_or_type() {
        let mut m = BTreeMap::new();
        m.insert("graphite".to_string(), toml::Table::new());
        let mut second = toml::Table::new();
        second.insert("type".into(), "graphite".into());
        second.insert("host".into(), "10.1.1.1".into());
        second.insert("enabled".into(), false.into());
        m.insert("backup".to_string(), second);
        let specs = HandlerConfig::resolve_all(&m, false).expect("resolve");
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].name, "backup");
        assert!(!specs[0].enabled);
        let HandlerConfig::Graphite(g) = &specs[0].config else {
            panic!("graphite expected")
        };
        assert_eq!(g.host, "10.1.1.1");
        let mut bad = BTreeMap::new();
        bad.insert("x".to_string(), toml::Table::new());
        let e = HandlerConfig::resolve_all(&bad, false)
            .expect_err("no type")
            .to_string();
        assert!(e.contains("handlers.x.type"), "{e}");
        assert!(HandlerConfig::resolve_all(&bad, true)
            .expect("partial")
            .is_empty());
    }

    #[test]
    fn disk_buffers_are_checked_with_the_configuration() {
        let resolve = |text: &str| {
            let t: toml::Table = toml::from_str(text).expect("toml");
            let m: BTreeMap<String, toml::Table> = t
                .into_iter()
                .map(|(k, v)| (k, v.as_table().cloned().unwrap_or_default()))
                .collect();
            HandlerConfig::resolve_all(&m, false)
        };
        let two = "[a]\ntype = \"graphite\"\nbuffer = \"disk\"\nbuffer_dir = \"/var/tmp/b\"\n\
                   [b]\ntype = \"http\"\nurl = \"http://x/\"\nbuffer = \"disk\"\nbuffer_dir = \"/var/tmp/b/\"\n";
        let e = resolve(two).expect_err("shared");
        assert_eq!(e.key.as_deref(), Some("handlers.b.buffer_dir"), "{e}");
        assert!(
            e.to_string()
                .contains("handlers.a keeps its buffer there too"),
            "{e}"
        );
        let e = resolve("[g]\ntype = \"graphite\"\nbuffer = \"disk\"\nbuffer_dir = \"rel/dir\"\n")
            .expect_err("relative");
        assert!(e.to_string().contains("absolute"), "{e}");
        let e = resolve("[prometheus]\nbuffer = \"disk\"\n").expect_err("scrape");
        assert_eq!(e.key.as_deref(), Some("handlers.prometheus.buffer"), "{e}");
        let e = resolve("[graphite]\nbuffer_size = 1\n").expect_err("unknown");
        assert!(e.to_string().contains("max_buffer_bytes"), "{e}");
        let e = resolve("[graphite]\nmax_buffer_bytes = 10\n").expect_err("small");
        assert_eq!(
            e.key.as_deref(),
            Some("handlers.graphite.max_buffer_bytes"),
            "{e}"
        );
        let ok = resolve("[graphite]\nbuffer = \"disk\"\nfsync = \"always\"\n").expect("valid");
        let spec = ok[0]
            .buffer_spec(Path::new("/var/lib/carbyne"))
            .expect("disk");
        assert_eq!(spec.dir, Path::new("/var/lib/carbyne/buffers/graphite"));
    }
}
