//! The statsd server: etsy statsd 0.9.0's line protocol in, its Graphite
//! backend's flush out, same names and values.
//!
//! [`Aggregator`] holds the counters, timers, gauges and sets between
//! flushes and reads lines exactly as statsd does (JavaScript number rules
//! included); [`Aggregator::flush`] writes what statsd's Graphite backend
//! writes. [`run`] puts it behind UDP and TCP listeners and a flush timer.

mod admin;
mod aggregate;
mod exposition;
mod flush;
mod parse;
mod scrape;
mod tcp;
mod udp;

pub use aggregate::Aggregator;
pub use exposition::{escape_name, Exporter};
pub use flush::{timer_stats, Update};

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A `histogram` entry: timers whose name contains `metric` get `bins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramSpec {
    pub metric: String,
    /// Upper bounds of the bins; `"inf"` for the last, open one.
    pub bins: Vec<toml::Value>,
}

/// `[server.statsd]` options (statsd's keys in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdServerConfig {
    /// Address of the UDP and TCP listeners.
    pub listen: String,
    /// Address of the management interface.
    pub admin: String,
    /// Where flushes go (Graphite plaintext over TCP); "" for nowhere
    /// (a server scraped by Prometheus only).
    pub graphite: String,
    /// Seconds between flushes.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub flush_interval: f64,
    pub legacy_namespace: bool,
    pub global_prefix: String,
    pub prefix_counter: String,
    pub prefix_timer: String,
    pub prefix_gauge: String,
    pub prefix_set: String,
    /// Appended to every name ("" for none).
    pub global_suffix: String,
    /// statsd's own metrics' prefix (`prefixStats`).
    pub prefix_stats: String,
    pub percent_threshold: Vec<f64>,
    pub histogram: Vec<HistogramSpec>,
    /// Also send `stats_counts.*` (or `.count`).
    pub flush_counts: bool,
    /// Delete every kind of idle stat after a flush.
    pub delete_idle_stats: bool,
    pub delete_counters: bool,
    pub delete_timers: bool,
    pub delete_gauges: bool,
    pub delete_sets: bool,
    /// Clean key names (whitespace to `_`, `/` to `-`, other odd characters removed).
    pub key_name_sanitize: bool,
    /// Most distinct keys held; lines for new keys past it are dropped and counted.
    pub max_keys: usize,
    /// Flushes held while Graphite is down.
    pub max_pending_flushes: usize,
    /// UDP sockets sharing `listen` (SO_REUSEPORT), one receiving thread
    /// each; 0 for one per core.
    pub udp_sockets: usize,
    /// Most connections at once on the TCP listener, and on the admin one.
    pub max_connections: usize,
    /// Seconds a TCP or admin connection may stay silent before it is
    /// closed (0: never).
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub idle_timeout: f64,
    /// Longest TCP or admin line; a longer one is skipped and counted as a
    /// bad line (as long as the largest UDP datagram by default).
    pub max_line_bytes: usize,
    /// Most members one set holds between flushes; more are dropped and
    /// counted in `<prefix_stats>.dropped_set_members`.
    pub max_set_members: usize,
    /// Longest set member; a longer one is dropped and counted likewise.
    pub max_set_member_bytes: usize,
    /// Where Prometheus scrapes the aggregated metrics, as statsd_exporter
    /// serves them ("" for nowhere; statsd_exporter's port is 9102).
    pub prometheus_listen: String,
    pub prometheus_path: String,
    /// statsd_exporter's mapping rules (YAML); "" for none.
    pub mapping_file: String,
    /// Most bytes of Prometheus series held; past it new series are
    /// dropped and counted.
    pub prometheus_max_bytes: usize,
}

impl Default for StatsdServerConfig {
    fn default() -> Self {
        StatsdServerConfig {
            listen: "127.0.0.1:8125".into(),
            admin: "127.0.0.1:8126".into(),
            graphite: "127.0.0.1:2003".into(),
            flush_interval: 10.0,
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: String::new(),
            prefix_stats: "statsd".into(),
            percent_threshold: vec![90.0],
            histogram: Vec::new(),
            flush_counts: true,
            delete_idle_stats: false,
            delete_counters: false,
            delete_timers: false,
            delete_gauges: false,
            delete_sets: false,
            key_name_sanitize: true,
            max_keys: 1_000_000,
            max_pending_flushes: 60,
            udp_sockets: 0,
            max_connections: 1024,
            idle_timeout: 300.0,
            max_line_bytes: 65_536,
            max_set_members: 100_000,
            max_set_member_bytes: 1024,
            prometheus_listen: String::new(),
            prometheus_path: "/metrics".into(),
            mapping_file: String::new(),
            prometheus_max_bytes: 64 << 20,
        }
    }
}

impl StatsdServerConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (k, v) in [
            ("listen", &self.listen),
            ("admin", &self.admin),
            ("graphite", &self.graphite),
        ] {
            // No Graphite: the Prometheus page only.
            if k == "graphite" && v.is_empty() {
                continue;
            }
            let ok = v
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    format!("{v:?}: expected host:port"),
                ));
            }
        }
        if !(self.flush_interval.is_finite() && self.flush_interval >= 0.01) {
            return Err(ConfigError::new(
                format!("{key}.flush_interval"),
                "must be at least 0.01 seconds",
            ));
        }
        for h in &self.histogram {
            for b in &h.bins {
                let ok =
                    b.as_float().is_some() || b.as_integer().is_some() || b.as_str() == Some("inf");
                if !ok {
                    return Err(ConfigError::new(
                        format!("{key}.histogram"),
                        format!("bin {b} is not a number or \"inf\""),
                    ));
                }
            }
        }
        for (k, v) in [
            ("max_keys", self.max_keys),
            ("max_pending_flushes", self.max_pending_flushes),
            ("max_connections", self.max_connections),
            ("max_line_bytes", self.max_line_bytes),
            ("max_set_members", self.max_set_members),
            ("max_set_member_bytes", self.max_set_member_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("{key}.{k}"), "must be at least 1"));
            }
        }
        if !self.prometheus_listen.is_empty()
            && self
                .prometheus_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(ConfigError::new(
                format!("{key}.prometheus_listen"),
                format!(
                    "{:?} is not an address and port such as 127.0.0.1:9102 (or \"\" for none)",
                    self.prometheus_listen
                ),
            ));
        }
        crate::handlers::prometheus::check_path(
            &format!("{key}.prometheus_path"),
            &self.prometheus_path,
        )?;
        self.mapper(key)?;
        if self.prometheus_max_bytes < 4096 {
            return Err(ConfigError::new(
                format!("{key}.prometheus_max_bytes"),
                "must be at least 4096",
            ));
        }
        if !(self.idle_timeout.is_finite() && self.idle_timeout >= 0.0) {
            return Err(ConfigError::new(
                format!("{key}.idle_timeout"),
                "must be a number of seconds, 0 for none",
            ));
        }
        Ok(())
    }
}

impl StatsdServerConfig {
    /// The rules of `mapping_file` (none when it is ""); an error names the
    /// key, the file and the line.
    pub fn mapper(&self, key: &str) -> Result<crate::prometheus::mapping::Mapper, ConfigError> {
        use crate::prometheus::mapping::Mapper;
        if self.mapping_file.is_empty() {
            return Ok(Mapper::default());
        }
        Mapper::load(std::path::Path::new(&self.mapping_file)).map_err(|e| {
            ConfigError::new(
                format!("{key}.mapping_file"),
                format!("{}: {e}", self.mapping_file),
            )
        })
    }
}

/// The running statsd server's state shared by its tasks.
struct Shared {
    agg: Aggregator,
    healthy: AtomicBool,
    started: i64,
    last_flush: AtomicI64,
    last_exception: AtomicI64,
    flush_time: AtomicI64,
    flush_length: AtomicI64,
}

/// Runs the statsd server until `shutdown` resolves, taking the limits of
/// each configuration of `reloads` (the rest takes effect on restart);
/// then flushes once more.
pub async fn run(
    cfg: StatsdServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<StatsdServerConfig>,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let now = crate::whisper::unix_now();
    udp::return_freed_memory();
    let receivers = match cfg.udp_sockets {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let shared = Arc::new(Shared {
        agg: Aggregator::new(cfg.clone(), receivers),
        healthy: AtomicBool::new(true),
        started: now,
        last_flush: AtomicI64::new(now),
        last_exception: AtomicI64::new(now),
        flush_time: AtomicI64::new(0),
        flush_length: AtomicI64::new(0),
    });
    let udp = udp::udp_sockets(&cfg.listen, receivers)?;
    let tcp = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let admin = tokio::net::TcpListener::bind(&cfg.admin).await?;
    log::info!(
        "statsd server on {} (udp x{receivers}, tcp), admin {}",
        cfg.listen,
        cfg.admin
    );

    // The Prometheus side, when asked for: rendered at each flush.
    let page = Arc::new(scrape::Page::default());
    let (scrape_stop, scrape_stopped) = tokio::sync::watch::channel(false);
    let mut exporter = if cfg.prometheus_listen.is_empty() {
        None
    } else {
        // Checked with the configuration; a file broken since is said here.
        let mapper = cfg.mapper("server.statsd").unwrap_or_else(|e| {
            log::error!("{e}; statsd names are exposed escaped");
            Default::default()
        });
        let mut ex = Exporter::new(mapper, cfg.prometheus_max_bytes);
        let listener = tokio::net::TcpListener::bind(&cfg.prometheus_listen).await?;
        page.set(ex.render(unix_ms()));
        log::info!(
            "statsd server: Prometheus scrapes http://{}{}",
            cfg.prometheus_listen,
            cfg.prometheus_path
        );
        tokio::spawn(scrape::serve(
            listener,
            cfg.prometheus_path.clone(),
            page.clone(),
            scrape_stopped,
        ));
        Some(ex)
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (i, sock) in udp.into_iter().enumerate() {
        let (s, stop) = (shared.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("statsd-udp-{i}"))
                .spawn(move || udp::receive(sock, s, stop))?,
        );
    }
    let bounds = tcp::Bounds {
        max_connections: cfg.max_connections,
        idle_timeout: (cfg.idle_timeout > 0.0).then(|| Duration::from_secs_f64(cfg.idle_timeout)),
        max_line_bytes: cfg.max_line_bytes,
    };
    let s = shared.clone();
    tokio::spawn(tcp::serve(
        tcp,
        "tcp",
        bounds.max_connections,
        move |conn| {
            let s = s.clone();
            async move {
                let mut lines = tcp::Lines::new(conn, bounds);
                while let Some(line) = lines.next().await {
                    match line {
                        tcp::Line::Ok(l) => s.agg.packet(l),
                        tcp::Line::TooLong => s.agg.count_long_line(bounds.max_line_bytes),
                    }
                }
            }
        },
    ));
    let s = shared.clone();
    let admin_cfg = cfg.clone();
    tokio::spawn(tcp::serve(
        admin,
        "admin",
        bounds.max_connections,
        move |conn| {
            let (s, c) = (s.clone(), admin_cfg.clone());
            async move {
                let (r, mut w) = conn.into_split();
                let mut lines = tcp::Lines::new(r, bounds);
                while let Some(line) = lines.next().await {
                    let reply = match line {
                        tcp::Line::Ok(l) => {
                            let l = String::from_utf8_lossy(l);
                            let words: Vec<&str> = l.split_whitespace().collect();
                            let Some(cmd) = words.first() else { continue };
                            if *cmd == "quit" {
                                return;
                            }
                            admin::admin_command(&s, &c, cmd, &words[1..])
                        }
                        tcp::Line::TooLong => "ERROR\n".into(),
                    };
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        },
    ));

    // Flushes, kept (bounded) while Graphite is down.
    let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let period = std::time::Duration::from_secs_f64(cfg.flush_interval);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tokio::pin!(shutdown);
    let mut last_ts: Option<i64> = None;
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut shutdown => true,
            Some(new) = reloads.recv() => {
                shared.agg.set_limits(&new);
                // The mapping file is read again, as statsd_exporter does
                // at SIGHUP (the configuration check has read it).
                if let Some(ex) = exporter.as_mut() {
                    match new.mapper("server.statsd") {
                        Ok(m) => ex.set_mapper(m),
                        Err(e) => log::error!("{e}; the rules before stay"),
                    }
                }
                // The limits and mapping apply at once; the rest as started.
                let running = StatsdServerConfig {
                    max_keys: new.max_keys,
                    max_set_members: new.max_set_members,
                    max_set_member_bytes: new.max_set_member_bytes,
                    mapping_file: new.mapping_file.clone(),
                    ..cfg.clone()
                };
                let changed = crate::server::changed_keys(&running, &new);
                if !changed.is_empty() {
                    log::warn!("statsd: {changed:?} changed; that takes effect on restart");
                }
                log::info!("statsd: configuration reloaded");
                continue;
            }
        };
        if last {
            // What the receivers hold goes into the last flush.
            stop.store(true, Ordering::Relaxed);
            for t in threads.drain(..) {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        }
        let now = crate::whisper::unix_now();
        // The last flush (at SIGTERM) is stamped with the time the next
        // regular one would have had: stamped now, it would fall in the
        // slot of the flush before and overwrite it in whisper.
        let ts = match last_ts {
            Some(prev) if last => now.max(prev + cfg.flush_interval.ceil() as i64),
            _ => now,
        };
        last_ts = Some(ts);
        let lines = match exporter.as_mut() {
            Some(ex) => {
                let now_ms = unix_ms();
                let lines = shared
                    .agg
                    .flush_into(ts, Some(&mut |u| ex.apply(u, now_ms)));
                ex.expire(now_ms);
                page.set(ex.render(now_ms));
                lines
            }
            None => shared.agg.flush(ts),
        };
        if !cfg.graphite.is_empty() {
            pending.push_back(lines);
            while pending.len() > cfg.max_pending_flushes {
                pending.pop_front();
            }
            send_pending(&cfg, &shared, &mut pending).await;
        }
        if last {
            let _ = scrape_stop.send(true);
            return Ok(());
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends held flushes to Graphite, each followed by statsd's graphiteStats.
async fn send_pending(
    cfg: &StatsdServerConfig,
    s: &Shared,
    pending: &mut std::collections::VecDeque<String>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(&cfg.graphite),
    )
    .await;
    let mut conn = match connect {
        Ok(Ok(c)) => c,
        _ => {
            s.last_exception
                .store(crate::whisper::unix_now(), Ordering::Relaxed);
            log::warn!(
                "statsd: graphite {} unreachable; {} flushes held",
                cfg.graphite,
                pending.len()
            );
            return;
        }
    };
    while let Some(mut payload) = pending.pop_front() {
        let held = payload.len();
        let ts = crate::whisper::unix_now();
        let ns = if cfg.legacy_namespace || !cfg.global_prefix.is_empty() {
            let g = if cfg.legacy_namespace {
                "stats"
            } else {
                cfg.global_prefix.as_str()
            };
            format!("{g}.{}", cfg.prefix_stats)
        } else {
            cfg.prefix_stats.clone()
        };
        let suffix = if cfg.global_suffix.is_empty() {
            String::new()
        } else {
            format!(".{}", cfg.global_suffix)
        };
        for (k, a) in [
            ("last_exception", &s.last_exception),
            ("last_flush", &s.last_flush),
            ("flush_time", &s.flush_time),
            ("flush_length", &s.flush_length),
        ] {
            use std::fmt::Write;
            let _ = writeln!(
                payload,
                "{ns}.graphiteStats.{k}{suffix} {} {ts}",
                a.load(Ordering::Relaxed)
            );
        }
        let start = std::time::Instant::now();
        if conn.write_all(payload.as_bytes()).await.is_err() {
            s.last_exception.store(ts, Ordering::Relaxed);
            payload.truncate(held);
            pending.push_front(payload);
            return;
        }
        s.flush_time
            .store(start.elapsed().as_millis() as i64, Ordering::Relaxed);
        s.flush_length
            .store(payload.len() as i64, Ordering::Relaxed);
        s.last_flush
            .store(crate::whisper::unix_now(), Ordering::Relaxed);
    }
    let _ = conn.shutdown().await;
}
