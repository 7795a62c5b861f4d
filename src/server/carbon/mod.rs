//! The carbon receiver: Graphite's plaintext line protocol (TCP and UDP)
//! into whisper files, where and how carbon-cache 1.1 writes them.
//!
//! Receiver threads parse `name value timestamp` lines into the write
//! [`cache::Cache`]; writer threads drain it, creating files as carbon's
//! `storage-schemas.conf` and `storage-aggregation.conf` say
//! ([`schemas`]), at the paths carbon uses ([`names`]).

pub mod cache;
mod config;
pub mod names;
pub mod pickle;
pub mod query;
mod receive;
pub mod relay;
pub mod ring;
pub mod rules;
pub mod schemas;

use cache::{Cache, Store};
pub use config::CarbonServerConfig;
use receive::{accept_loop, connection, pickle_connection, udp_loop};
use std::borrow::Cow;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Python's `float()` on a field: numbers, `inf`, `nan`.
fn py_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// One line as carbon's line receiver reads it: `(name, timestamp, value)`
/// (a NaN value too: the lists count it before it is dropped silently, as
/// carbon does), or why it is rejected. `max_name`: the longest name whose file path the system takes.
pub fn parse_line(line: &str, now: f64, max_name: usize) -> Result<Parsed<'_>, String> {
    let mut f = line.split_whitespace();
    let (Some(name), Some(value), Some(ts), None) = (f.next(), f.next(), f.next(), f.next()) else {
        return Err("not `name value timestamp`".into());
    };
    let (Some(value), Some(ts)) = (py_float(value), py_float(ts)) else {
        return Err("value or timestamp is not a number".into());
    };
    accept(name, ts, value, now, max_name)
}

/// An accepted point: normalized name (borrowed from the line when it needs
/// no change), timestamp, value.
pub type Parsed<'a> = (Cow<'a, str>, f64, f64);

/// carbon's `metricReceived`: a point as stored (or, with a NaN value, as
/// the lists see it before it is dropped).
/// A timestamp whisper cannot store (before 1970, or from 2106 on: it keeps
/// seconds in 32 bits) is rejected, as Python whisper refuses it.
fn accept(
    name: &str,
    mut ts: f64,
    value: f64,
    now: f64,
    max_name: usize,
) -> Result<Parsed<'_>, String> {
    // carbon: a timestamp whose integer part is -1 means now.
    if ts.trunc() == -1.0 {
        ts = now;
    }
    if !(0.0..4_294_967_296.0).contains(&ts) {
        return Err("timestamp outside whisper's range (1970 to 2106)".into());
    }
    if name.len() > max_name {
        return Err(format!(
            "a name of {} bytes: its file path would pass the system's limit",
            name.len()
        ));
    }
    let name = names::normalize(name).map_err(|e| format!("{name:?}: {e}"))?;
    Ok((name, ts, value))
}

/// The longest name whose whisper file path under `root` stays within the
/// system's PATH_MAX (4096 bytes, its terminating NUL included).
fn max_name_bytes(root: &std::path::Path) -> usize {
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    4095usize.saturating_sub(root.as_os_str().len() + "/".len() + ".wsp".len())
}

/// Logs a rejected line, at most once a second (the count goes on).
struct Rejects {
    log: crate::server::Throttle,
}

impl Rejects {
    fn note(&self, cache: &Cache, line: &str, why: &str) {
        cache.counters.rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.log.ready() {
            let shown: String = line.chars().take(200).collect();
            log::warn!(
                "carbon: line rejected ({why}): {shown:?}{}",
                crate::server::held_note(held)
            );
        }
    }
}

struct Shared {
    cache: Arc<Cache>,
    /// Where the whisper files are (the cache query's metadata requests).
    root: std::path::PathBuf,
    /// Points go to the cache when storing.
    store: bool,
    relay: Option<relay::Relay>,
    /// carbon's whitelist and blacklist.
    filters: rules::filters::Filters,
    /// carbon's rewrite and aggregation rules, and the aggregator's buffers.
    rules: rules::Rules,
    rejects: Rejects,
    stopping: AtomicBool,
    /// Connections open on every listener (shutdown waits for them).
    connections: AtomicUsize,
    /// The longest name accepted (see [`max_name_bytes`]).
    max_name: usize,
    /// Milliseconds a connection may stay silent (0: for ever).
    idle_ms: AtomicU64,
    /// Connections each listener may hold.
    max_connections: AtomicUsize,
    decoding: Decoding,
}

/// The bytes that pickle messages being read and decoded may hold at once.
struct Decoding {
    max: usize,
    used: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Decoding {
    /// Waits until `n` more bytes fit (one message alone always fits).
    fn reserve(&self, n: usize) -> Reserved<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used > 0 && *used + n > self.max {
            used = self
                .freed
                .wait_timeout(used, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *used += n;
        Reserved(self, n)
    }
}

/// Bytes reserved for one message, given back when dropped.
struct Reserved<'a>(&'a Decoding, usize);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.1;
        self.0.freed.notify_one();
    }
}

impl Shared {
    /// Accepted points: those the white- and blacklist keep, through the
    /// rewrite and aggregation rules, to the relay, and to the cache when
    /// storing.
    fn deliver(&self, mut batch: Vec<Parsed<'_>>, now: f64) {
        // carbon asks the lists first, then drops NaN values.
        batch.retain(|(name, _, value)| self.filters.admits(name) && !value.is_nan());
        let batch = self.rules.process(batch, now, self.max_name, &|name, why| {
            self.rejects.note(&self.cache, name, why)
        });
        self.pass(batch);
    }

    /// Points past the lists (the receiver's own, as carbon stores its own
    /// straight into its cache): to the relay, and to the cache when storing.
    fn pass(&self, batch: Vec<Parsed<'_>>) {
        if let Some(r) = &self.relay {
            r.send(&batch);
        }
        if self.store {
            self.cache.store(batch);
        } else {
            self.cache
                .counters
                .metrics_received
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    }
}

fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// carbon's own metrics, stored (and relayed) like any others: the
/// cache's under `prefix`, the aggregator's under `aggregator` (as
/// carbon-aggregator names them).
fn self_metrics(s: &Shared, prefix: &str, aggregator: &str) {
    let c = &s.cache.counters;
    let take = |a: &AtomicU64| a.swap(0, Ordering::Relaxed) as f64;
    let received = take(&c.metrics_received);
    let committed = take(&c.committed_points);
    let ops = take(&c.update_operations);
    let time_us = take(&c.update_time_us);
    let mut out: Vec<(String, f64)> = vec![
        ("metricsReceived".into(), received),
        ("committedPoints".into(), committed),
        ("updateOperations".into(), ops),
        ("creates".into(), take(&c.creates)),
        ("droppedCreates".into(), take(&c.dropped_creates)),
        ("errors".into(), take(&c.errors)),
        ("rejectedLines".into(), take(&c.rejected)),
        (
            "blacklistMatches".into(),
            take(&s.filters.blacklist_matches),
        ),
        (
            "whitelistRejects".into(),
            take(&s.filters.whitelist_rejects),
        ),
    ];
    if ops > 0.0 {
        out.push(("pointsPerUpdate".into(), committed / ops));
        out.push(("avgUpdateTime".into(), time_us / 1e6 / ops));
    }
    let (size, queues) = s.cache.size();
    out.push(("cache.size".into(), size as f64));
    out.push(("cache.queues".into(), queues as f64));
    if let Some(r) = &s.relay {
        for (dest, sent, dropped, queued) in r.stats() {
            let d = dest.replace(['.', ':'], "_");
            out.push((format!("destinations.{d}.sent"), sent as f64));
            out.push((format!("destinations.{d}.fullQueueDrops"), dropped as f64));
            out.push((format!("destinations.{d}.queued"), queued as f64));
        }
    }
    let now = now_f64();
    let own = out
        .into_iter()
        .map(|(k, v)| (Cow::Owned(format!("{prefix}.{k}")), now, v));
    let aggregated = s
        .rules
        .own_metrics()
        .into_iter()
        .map(|(k, v)| (Cow::Owned(format!("{aggregator}.{k}")), now, v));
    s.pass(own.chain(aggregated).collect());
}

/// Open files each writer may keep: what the config asks, within the
/// process's file limit (raised to its hard limit first), leaving room for
/// connections and for the files the web server keeps open.
fn open_files(want: usize, writers: usize) -> usize {
    let soft = crate::server::raise_open_file_limit();
    let others = 2048 + crate::server::reserved_open_files();
    let room = (soft.saturating_sub(others) / writers.max(1) as u64) as usize;
    if want > room {
        // Only a warning once a writer has more metrics than that (cache.rs).
        log::info!("carbon: open_files {want} lowered to {room} by the open file limit ({soft})");
    }
    want.min(room)
}

/// Takes a configuration read again (SIGHUP): the schemas and aggregation
/// files, the limits and the relay's routing change at once; what needs new
/// listeners, files or threads is said to take effect on restart. A file
/// that does not load keeps the rules in force.
fn reload(s: &Shared, store: &Store, old: &mut CarbonServerConfig, new: CarbonServerConfig) {
    match schemas::Rules::load(new.schemas.as_deref(), new.aggregation.as_deref()) {
        Ok(rules) => *store.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules),
        Err(e) => log::error!("carbon: {e}; the rules in force stay"),
    }
    if let Err(e) = s
        .filters
        .set(new.whitelist.as_deref(), new.blacklist.as_deref())
    {
        log::error!("carbon: {e}; the lists in force stay");
    }
    let rules_taken = match s.rules.set(&new.rules()) {
        Ok(()) => true,
        Err(e) => {
            log::error!("carbon: {e}; the rules in force stay");
            false
        }
    };
    s.cache
        .set_limits(Some(new.max_cache_size), Some(new.max_cache_bytes));
    s.idle_ms
        .store((new.idle_timeout * 1000.0) as u64, Ordering::Relaxed);
    s.max_connections
        .store(new.max_connections, Ordering::Relaxed);
    let relay_taken = match (&s.relay, &new.relay) {
        (Some(r), Some(c)) => r.reload(c).map_err(|e| log::warn!("carbon: {e}")).is_ok(),
        _ => false,
    };
    // What runs now: the keys above from the new configuration, the rest
    // as started; the keys that still differ need a restart.
    let mut running = old.clone();
    running.schemas.clone_from(&new.schemas);
    running.aggregation.clone_from(&new.aggregation);
    running.whitelist.clone_from(&new.whitelist);
    running.blacklist.clone_from(&new.blacklist);
    if rules_taken {
        running.rewrite_rules.clone_from(&new.rewrite_rules);
        running.aggregation_rules.clone_from(&new.aggregation_rules);
        running.forward_all = new.forward_all;
        running.max_aggregation_intervals = new.max_aggregation_intervals;
        running.write_back_frequency = new.write_back_frequency;
        running.max_aggregation_bytes = new.max_aggregation_bytes;
    }
    running.max_cache_size = new.max_cache_size;
    running.max_cache_bytes = new.max_cache_bytes;
    running.idle_timeout = new.idle_timeout;
    running.max_connections = new.max_connections;
    if relay_taken {
        running.relay.clone_from(&new.relay);
    }
    let changed = crate::server::changed_keys(&running, &new);
    if !changed.is_empty() {
        log::warn!("carbon: {changed:?} changed; that takes effect on restart");
    }
    *old = running;
    log::info!("carbon: configuration reloaded");
}

/// What a running receiver shares with the web server of its process: the
/// points not written yet, and where and how they will be written.
#[derive(Clone)]
pub struct Published {
    pub cache: Arc<Cache>,
    pub store: Arc<Store>,
}

/// Runs the carbon receiver until `shutdown`, taking each configuration
/// of `reloads`; then stops taking connections, reads what the open ones
/// already sent, and writes every cached point before returning. Its cache
/// and its rules go to `publish` once made (the web server of the same
/// process reads them).
pub async fn run(
    cfg: CarbonServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<CarbonServerConfig>,
    publish: Option<tokio::sync::oneshot::Sender<Published>>,
) -> std::io::Result<()> {
    let rules = schemas::Rules::load(cfg.schemas.as_deref(), cfg.aggregation.as_deref())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::create_dir_all(&cfg.storage_dir)?;
    let store = Arc::new(Store {
        root: cfg.storage_dir.clone(),
        rules: std::sync::RwLock::new(Arc::new(rules)),
        allocation: cfg.allocation().unwrap_or_default(),
    });
    let shared = Arc::new(Shared {
        cache: Arc::new(
            Cache::new(
                cfg.max_cache_size,
                cfg.cache_write_strategy,
                cfg.max_updates_per_second,
                cfg.max_creates_per_minute,
                cfg.writers,
            )
            .max_bytes(cfg.max_cache_bytes),
        ),
        root: cfg.storage_dir.clone(),
        rejects: Rejects {
            log: crate::server::Throttle::new(),
        },
        store: cfg.store,
        relay: match &cfg.relay {
            Some(r) => Some(
                relay::Relay::start(r)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        },
        filters: rules::filters::Filters::new(cfg.whitelist.as_deref(), cfg.blacklist.as_deref())
            .map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
        })?,
        rules: rules::Rules::new(&cfg.rules())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?,
        stopping: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        max_name: max_name_bytes(&cfg.storage_dir),
        idle_ms: AtomicU64::new((cfg.idle_timeout * 1000.0) as u64),
        max_connections: AtomicUsize::new(cfg.max_connections),
        decoding: Decoding {
            max: cfg.max_decode_bytes,
            used: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
        },
    });
    if let Some(p) = publish {
        let _ = p.send(Published {
            cache: shared.cache.clone(),
            store: store.clone(),
        });
    }
    let tcp = std::net::TcpListener::bind(&cfg.listen)?;
    let pickle_tcp = if cfg.pickle_listen.is_empty() {
        None
    } else {
        Some(std::net::TcpListener::bind(&cfg.pickle_listen)?)
    };
    let query_tcp = if cfg.cache_query_listen.is_empty() {
        None
    } else {
        Some(std::net::TcpListener::bind(&cfg.cache_query_listen)?)
    };
    let udp = if cfg.udp {
        Some(std::net::UdpSocket::bind(&cfg.listen)?)
    } else {
        None
    };
    log::info!(
        "carbon receiver on {} (tcp{}), pickle on {}, storing in {}",
        cfg.listen,
        if cfg.udp { ", udp" } else { "" },
        if cfg.pickle_listen.is_empty() {
            "none"
        } else {
            cfg.pickle_listen.as_str()
        },
        cfg.storage_dir.display()
    );
    let spawn =
        |name: String, f: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name).spawn(f);
    let mut readers = Vec::new();
    let s = shared.clone();
    readers.push(spawn(
        "carbon-accept".into(),
        Box::new(move || accept_loop(tcp, s, "lines", connection)),
    )?);
    if let Some(l) = pickle_tcp {
        let s = shared.clone();
        readers.push(spawn(
            "carbon-pickle".into(),
            Box::new(move || accept_loop(l, s, "pickle", pickle_connection)),
        )?);
    }
    if let Some(l) = query_tcp {
        log::info!(
            "carbon cache queries (carbonlink) on {}",
            cfg.cache_query_listen
        );
        let s = shared.clone();
        readers.push(spawn(
            "carbon-query".into(),
            Box::new(move || accept_loop(l, s, "cache query", query::connection)),
        )?);
    }
    if let Some(sock) = udp {
        let s = shared.clone();
        readers.push(spawn(
            "carbon-udp".into(),
            Box::new(move || udp_loop(sock, s)),
        )?);
    }
    let mut writers = Vec::new();
    let (parts, open) = (cfg.writers, open_files(cfg.open_files, cfg.writers));
    for i in 0..if cfg.store { parts } else { 0 } {
        let (s, st) = (shared.clone(), store.clone());
        writers.push(spawn(
            format!("carbon-writer-{i}"),
            Box::new(move || s.cache.writer(&st, i, open)),
        )?);
    }

    let host = crate::hostname::HostNames::from_system()
        .uname
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix = format!(
        "{}.agents.{host}-{}",
        cfg.carbon_metric_prefix, cfg.instance
    );
    let aggregator = format!(
        "{}.aggregator.{host}-{}",
        cfg.carbon_metric_prefix, cfg.instance
    );
    let interval = cfg.carbon_metric_interval;
    let s = shared.clone();
    let own = async move {
        if interval == 0 {
            return std::future::pending::<()>().await;
        }
        let period = Duration::from_secs(interval);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            let s = s.clone();
            let (p, a) = (prefix.clone(), aggregator.clone());
            let _ = tokio::task::spawn_blocking(move || self_metrics(&s, &p, &a)).await;
        }
    };
    // Changed rule files are read again, as carbon does every 10 s.
    let s = shared.clone();
    let lists = async move {
        let mut ticker = tokio::time::interval(rules::RECHECK);
        loop {
            ticker.tick().await;
            let s = s.clone();
            let _ = tokio::task::spawn_blocking(move || {
                s.filters.refresh();
                s.rules.refresh();
            })
            .await;
        }
    };
    // The aggregator's output metrics compute when their time comes.
    let s = shared.clone();
    let aggregate = async move {
        let mut ticker = tokio::time::interval(Duration::from_millis(250));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let s = s.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let points = s.rules.aggregated(now_f64(), false);
                if !points.is_empty() {
                    s.pass(points);
                }
            })
            .await;
        }
    };
    tokio::pin!(shutdown, own, lists, aggregate);
    let mut running = cfg.clone();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut own => break,
            _ = &mut lists => break,
            _ = &mut aggregate => break,
            Some(new) = reloads.recv() => reload(&shared, &store, &mut running, new),
        }
    }
    log::info!("carbon: stopping; writing every cached point");
    shared.stopping.store(true, Ordering::Relaxed);
    let s = shared.clone();
    let drained = tokio::task::spawn_blocking(move || {
        for r in readers {
            let _ = r.join();
        }
        // Connections still reading finish within their 5 s.
        let start = Instant::now();
        while s.connections.load(Ordering::Relaxed) > 0 && start.elapsed() < Duration::from_secs(6)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // What the aggregator holds is computed now, not lost with it.
        let points = s.rules.aggregated(now_f64(), true);
        if !points.is_empty() {
            s.pass(points);
        }
        if let Some(r) = &s.relay {
            r.stop();
        }
        s.cache.close();
        for w in writers {
            let _ = w.join();
        }
    });
    let _ = drained.await;
    let (left, _) = shared.cache.size();
    if left > 0 {
        log::error!("carbon: {left} points could not be written");
    }
    let c = &shared.cache.counters;
    log::info!(
        "carbon: {} points written in {} updates since start",
        c.total_points.load(Ordering::Relaxed),
        c.total_updates.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_carbon_reads_them() {
        let now = 1_700_000_000.5;
        assert_eq!(
            parse_line("a.b 1.5 1700000000", now, 4000),
            Ok(("a.b".into(), 1_700_000_000.0, 1.5))
        );
        assert!(matches!(
            parse_line("a.b 1 1", now, 4000),
            Ok((Cow::Borrowed(_), _, _))
        ));
        assert_eq!(
            parse_line("  a.b\t2  -1  ", now, 4000),
            Ok(("a.b".into(), now, 2.0))
        );
        assert!(
            matches!(parse_line("a.b nan 1700000000", now, 4000), Ok((_, _, v)) if v.is_nan()),
            "NaN reaches the lists, which count it before it is dropped"
        );
        assert_eq!(
            parse_line("x;b=1;a=2 inf 1700000000.7", now, 4000),
            Ok(("x;a=2;b=1".into(), 1_700_000_000.7, f64::INFINITY))
        );
        for bad in [
            "a.b 1",
            "a.b 1 2 3",
            "a.b x 1700000000",
            "a.b 1 nan",
            "../../etc/passwd 1 1700000000",
            "a..b 1 1700000000",
            // whisper's 32-bit seconds: these would wrap onto 1970.
            "a.b 1 4294967296",
            "a.b 1 99999999999",
            "a.b 1 -5",
        ] {
            assert!(parse_line(bad, now, 4000).is_err(), "{bad}");
        }
        assert!(parse_line("a.b 1 4294967295", now, 4000).is_ok());
        let long = format!("{} 1 1700000000", "a.".repeat(30).trim_end_matches('.'));
        assert!(parse_line(&long, now, 59).is_ok());
        assert!(parse_line(&long, now, 58).is_err());
    }
}
