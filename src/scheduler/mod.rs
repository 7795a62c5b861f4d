//! The scheduler: runs the collectors on wall-clock-aligned intervals (or
//! all of them once), off the async threads and under a timeout, and fans
//! every run's samples out to the handlers' queues.
//!
//! In the daemon, the collectors that share an interval share a thread that
//! runs them in turn at each tick; a watchdog gives that thread's work to a
//! new thread when one collector hangs, so the others are never held up.

use crate::collectors::{self, Instance};
use crate::config::{Config, ConfigError};
use crate::handlers::{self, HandlerConfig, HandlerSpec, Queue, Running};
use crate::hostname::HostNames;
use crate::rates::{boot_id, CounterState, StateFile};
use crate::sample::{Kind, MetricPath, Sample};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod daemon;
mod tick;

pub use daemon::run_daemon;
pub use tick::{next_tick, unix_now, Ticker};

/// What one run of one collector produced.
struct Outcome {
    result: Result<(), String>,
    samples: Vec<Sample>,
    /// `None` after a panic: the next run starts without previous counters.
    state: Option<CounterState>,
    took: Duration,
}

fn outcome(
    r: std::thread::Result<(
        Result<(), collectors::CollectError>,
        Vec<Sample>,
        CounterState,
    )>,
    took: Duration,
) -> Outcome {
    match r {
        Ok((res, samples, state)) => Outcome {
            result: res.map_err(|e| e.to_string()),
            samples,
            state: Some(state),
            took,
        },
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Outcome {
                result: Err(format!("panicked: {msg}")),
                samples: Vec::new(),
                state: None,
                took,
            }
        }
    }
}

/// A lock that a panic while it was held does not make unusable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs one collector on this thread; a panic becomes its failure.
fn run_in_place(inst: &mut Instance, ts: i64, prev: Option<CounterState>) -> Outcome {
    let start = std::time::Instant::now();
    let now = unix_now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| inst.run(ts, now, prev)));
    outcome(r, start.elapsed())
}

fn run_blocking(mut inst: Instance, ts: i64, prev: Option<CounterState>) -> (Instance, Outcome) {
    let o = run_in_place(&mut inst, ts, prev);
    (inst, o)
}

/// Counters of one collector, read by the self-metrics.
#[derive(Debug, Default)]
pub struct CollectorStats {
    pub errors: AtomicU64,
    pub samples: AtomicU64,
    pub run_time_us: AtomicU64,
}

/// Everything an agent run needs, resolved from the configuration.
pub struct Plan {
    pub collectors: Vec<Instance>,
    /// `[logs.*]` jobs.
    pub logs: Vec<crate::logs::LogJob>,
    /// Print instead of sending; log positions are not moved.
    pub dry_run: bool,
    pub handlers: Vec<HandlerSpec>,
    /// `<prefix>.<host>[.<suffix>].carbyne.` for the agent's own metrics.
    pub self_path: Option<MetricPath>,
    /// The agent's hostname, for handlers whose messages carry it.
    pub host: String,
    /// Where handlers' disk buffers go by default.
    pub state_dir: std::path::PathBuf,
}

impl Plan {
    /// Resolves the hostname and builds collectors and handler specs. With
    /// `dry_run` the configured handlers are replaced by one printing to stdout.
    pub fn new(cfg: &Config, dry_run: bool) -> Result<Plan, ConfigError> {
        let host = match &cfg.hostname {
            Some(h) => Some(h.clone()),
            None => cfg.hostname_method.resolve(&HostNames::from_system()),
        };
        let collectors = collectors::build_with_host(cfg, host.as_deref())?;
        let logs = crate::logs::build(cfg, host.as_deref())?;
        let handlers = if dry_run {
            vec![HandlerSpec {
                name: "dry-run".into(),
                enabled: true,
                config: HandlerConfig::Stdout(Default::default()),
                buffer: Default::default(),
            }]
        } else {
            HandlerConfig::resolve_all(&cfg.handlers, false)?
                .into_iter()
                .filter(|h| h.enabled)
                .collect()
        };
        // Names no mapping rule maps lose the agent's root in Prometheus.
        let root = MetricPath::new(&cfg.path_prefix, host.as_deref(), &cfg.path_suffix, ".")
            .base()
            .to_string();
        let mut handlers = handlers;
        for h in &mut handlers {
            match &mut h.config {
                HandlerConfig::Prometheus(c) => c.host_root = root.clone(),
                HandlerConfig::RemoteWrite(c) => c.host_root = root.clone(),
                _ => {}
            }
        }
        let self_path = cfg.self_metrics.then(|| {
            MetricPath::new(
                &cfg.path_prefix,
                host.as_deref(),
                &cfg.path_suffix,
                "carbyne",
            )
        });
        let mut plan = Plan {
            collectors,
            logs,
            dry_run,
            handlers,
            self_path,
            host: host.unwrap_or_default(),
            state_dir: cfg.state_dir.clone(),
        };
        plan.ask_for_series();
        Ok(plan)
    }

    /// Has the collectors emit Prometheus series when a handler takes them.
    fn ask_for_series(&mut self) {
        let wanted = self.handlers.iter().any(|h| h.config.takes_series());
        for c in &mut self.collectors {
            c.series = wanted;
        }
    }
}

/// The handlers' queues, to fan samples out to.
#[derive(Clone)]
struct FanOut(Arc<Vec<Arc<Queue>>>);

impl FanOut {
    fn send(&self, samples: Vec<Sample>) {
        if samples.is_empty() {
            return;
        }
        let Some((last, rest)) = self.0.split_last() else {
            return;
        };
        for q in rest {
            q.push(samples.iter().filter(|s| q.accepts(s)).cloned());
        }
        last.push(samples.into_iter().filter(|s| last.accepts(s)));
    }
}

fn start_handlers(plan: &Plan) -> (Vec<Running>, FanOut) {
    let running: Vec<Running> = plan
        .handlers
        .iter()
        .map(|h| handlers::spawn(h, &plan.host, &plan.state_dir))
        .collect();
    let queues = running.iter().map(|r| r.queue.clone()).collect();
    (running, FanOut(Arc::new(queues)))
}

/// Stops the handlers, giving them `flush_timeout` to deliver: what
/// could not be delivered and is lost, one line per handler, and what
/// waits in disk buffers for the next run.
async fn stop_handlers(running: Vec<Running>, flush_timeout: f64) -> (Vec<String>, Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(flush_timeout);
    let (mut failures, mut buffered) = (Vec::new(), Vec::new());
    for r in running {
        match r.stop(deadline).await {
            Ok(handlers::Stopped::Delivered) => {}
            Ok(handlers::Stopped::Buffered(why)) => buffered.push(why),
            Err(e) => failures.push(e.to_string()),
        }
    }
    (failures, buffered)
}

/// The agent's own metrics: per collector run time, errors and samples, per
/// handler sent, dropped, errors and queue depth.
struct SelfMetrics {
    path: MetricPath,
    collectors: BTreeMap<&'static str, Arc<CollectorStats>>,
    queues: Vec<(String, Arc<Queue>)>,
}

impl SelfMetrics {
    fn samples(&self, ts: i64) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut put =
            |name: String, v: f64| out.push(Sample::new(self.path.name(&name), v, ts, Kind::Gauge));
        for (name, st) in &self.collectors {
            put(
                format!("collectors.{name}.run_time_ms"),
                st.run_time_us.load(Ordering::Relaxed) as f64 / 1000.0,
            );
            put(
                format!("collectors.{name}.errors"),
                st.errors.load(Ordering::Relaxed) as f64,
            );
            put(
                format!("collectors.{name}.samples"),
                st.samples.load(Ordering::Relaxed) as f64,
            );
        }
        for (name, q) in &self.queues {
            out.extend(handler_samples(&self.path, name, &q.snapshot(), ts));
        }
        out
    }
}

/// `handlers.<name>.{sent,dropped,errors,queue,oversize}`, and with a
/// disk buffer `{buffered,buffer_bytes,replayed}`.
fn handler_samples(
    path: &MetricPath,
    name: &str,
    s: &handlers::StatsSnapshot,
    ts: i64,
) -> Vec<Sample> {
    let buffer = s.buffered.map(|b| {
        [
            ("buffered", b),
            ("buffer_bytes", s.buffer_bytes.unwrap_or(0)),
            ("replayed", s.replayed),
        ]
    });
    [
        ("sent", s.sent),
        ("dropped", s.dropped),
        ("errors", s.errors),
        ("queue", s.queue),
        ("oversize", s.oversize),
    ]
    .into_iter()
    .chain(buffer.into_iter().flatten())
    .map(|(k, v)| {
        Sample::new(
            path.name(&format!("handlers.{name}.{k}")),
            v as f64,
            ts,
            Kind::Gauge,
        )
    })
    .collect()
}

/// What each handler did in the last `agent --once` run, kept in
/// `state_dir` for the next run to report: a run cannot report its own
/// delivery before it has delivered.
fn handler_stats_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("agent-handlers.json")
}

fn load_handler_stats(state_dir: &std::path::Path) -> BTreeMap<String, handlers::StatsSnapshot> {
    std::fs::read(handler_stats_path(state_dir))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn record(stats: &CollectorStats, o: &Outcome) {
    stats
        .samples
        .store(o.samples.len() as u64, Ordering::Relaxed);
    stats
        .run_time_us
        .store(o.took.as_micros() as u64, Ordering::Relaxed);
    if o.result.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// `agent --once`: every enabled collector once, every sample handed to
/// every handler, delivery awaited. Returns one line per failure.
pub async fn run_once(cfg: &Config, mut plan: Plan) -> Vec<String> {
    let before = plan.handlers.len();
    plan.handlers.retain(|h| {
        let serves = h.config.serves_scrapes();
        if serves {
            log::info!(
                "handlers.{}: a scrape endpoint is served by the daemon only; not started by --once",
                h.name
            );
        }
        !serves
    });
    if plan.handlers.is_empty() {
        if before > 0 {
            log::warn!("the only handlers are scrape endpoints, which --once does not start: samples go nowhere");
        } else {
            log::warn!("no handler configured: samples go nowhere (--dry-run prints them)");
        }
    }
    plan.ask_for_series();
    let (running, fan) = start_handlers(&plan);
    let queues: Vec<(String, Arc<Queue>)> = running
        .iter()
        .map(|r| (r.name.clone(), r.queue.clone()))
        .collect();
    let boot = boot_id(&cfg.proc_root);
    let mut state = StateFile::load(&cfg.state_dir, &boot);
    let ts = unix_now() as i64;
    let mut failures = Vec::new();
    let mut stats = BTreeMap::new();

    let had_collectors = !plan.collectors.is_empty();
    let mut tasks = Vec::new();
    for inst in plan.collectors {
        let prev = state.collectors.remove(inst.name);
        let (name, interval) = (inst.name, inst.interval);
        let h = tokio::task::spawn_blocking(move || run_blocking(inst, ts, prev));
        tasks.push((name, interval, h));
    }
    for (name, interval, h) in tasks {
        let st = Arc::new(CollectorStats::default());
        match tokio::time::timeout(interval, h).await {
            Ok(Ok((_, o))) => {
                record(&st, &o);
                if let Err(e) = &o.result {
                    failures.push(format!("collector {name}: {e}"));
                }
                if let Some(s) = o.state {
                    state.collectors.insert(name.to_string(), s);
                }
                fan.send(o.samples);
            }
            Ok(Err(e)) => failures.push(format!("collector {name}: {e}")),
            Err(_) => {
                st.errors.fetch_add(1, Ordering::Relaxed);
                failures.push(format!("collector {name}: timed out after {interval:?}"));
            }
        }
        stats.insert(name, st);
    }
    // Logs: from the saved positions to the end; positions saved only
    // once every handler has delivered, so a failed send re-reads the lines.
    let now = unix_now();
    let mut pending = Vec::new();
    let mut log_tasks = Vec::new();
    for mut job in plan.logs {
        let dir = cfg.state_dir.clone();
        log_tasks.push(tokio::task::spawn_blocking(move || {
            crate::logs::run_once(&mut job, &dir, now, ts)
        }));
    }
    for t in log_tasks {
        match t.await {
            Ok(Ok(o)) => {
                fan.send(o.samples);
                pending.push((o.state_path, o.state));
            }
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("log reader failed: {e}")),
        }
    }
    if let Some(path) = plan.self_path {
        let own = SelfMetrics {
            path,
            collectors: stats,
            queues: Vec::new(),
        };
        let mut samples = own.samples(ts);
        // The handlers' counts are those of the last run (this one's are
        // known only once it has delivered).
        let last = load_handler_stats(&cfg.state_dir);
        for (name, _) in &queues {
            if let Some(s) = last.get(name) {
                samples.extend(handler_samples(&own.path, name, s, ts));
            }
        }
        fan.send(samples);
    }
    let (undelivered, buffered) = stop_handlers(running, cfg.flush_timeout).await;
    for b in &buffered {
        log::warn!("{b}");
    }
    if !plan.dry_run {
        let now: BTreeMap<&str, handlers::StatsSnapshot> = queues
            .iter()
            .map(|(n, q)| (n.as_str(), q.snapshot()))
            .collect();
        let saved = serde_json::to_vec(&now)
            .map_err(std::io::Error::other)
            .and_then(|b| crate::rates::write_atomically(&handler_stats_path(&cfg.state_dir), &b));
        if let Err(e) = saved {
            log::warn!(
                "cannot save the handlers' counts in {}: {e}",
                cfg.state_dir.display()
            );
        }
    }
    // Positions move only when every handler took the metrics of the lines.
    let delivered = undelivered.is_empty();
    failures.extend(undelivered);
    if delivered && !plan.dry_run {
        for (path, st) in pending {
            if let Err(e) = crate::logs::save_state(&path, &st) {
                failures.push(format!(
                    "cannot save log positions in {}: {e}",
                    path.display()
                ));
            }
        }
    }
    if had_collectors {
        if let Err(e) = state.save(&cfg.state_dir) {
            log::warn!(
                "cannot save counters in {}: {e}; the next run will have no rates",
                cfg.state_dir.display()
            );
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{CollectError, Collector, Emit, Filter};
    use crate::handlers::graphite::GraphiteConfig;
    use tokio::io::AsyncReadExt;

    /// Sends `up 1` every run.
    struct Steady;
    impl Collector for Steady {
        fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
            out.gauge("up", 1.0);
            Ok(())
        }
    }

    /// Hangs for 3.5 s on its second run.
    struct Hangs(u32);
    impl Collector for Hangs {
        fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
            self.0 += 1;
            if self.0 == 2 {
                std::thread::sleep(Duration::from_millis(3500));
            }
            out.gauge("up", 1.0);
            Ok(())
        }
    }

    /// Panics every run.
    struct Panics;
    impl Collector for Panics {
        fn collect(&mut self, _: &mut Emit) -> Result<(), CollectError> {
            panic!("collector bug")
        }
    }

    fn instance(name: &'static str, c: Box<dyn Collector>) -> Instance {
        Instance {
            name,
            interval: Duration::from_secs(1),
            path: MetricPath::new("t", None, "", name),
            filter: Filter::default(),
            collector: c,
            series: false,
        }
    }

    /// A hanging and a panicking collector, ahead of a healthy one in the
    /// same group: the healthy one loses no slot, the others are counted.
    #[tokio::test]
    async fn a_hung_or_panicking_collector_never_holds_up_the_others() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(String::new()));
        let sink = received.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        lock(&sink).push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                });
            }
        });
        let cfg = Config {
            interval: 1,
            flush_timeout: 2.0,
            ..Config::default()
        };
        let plan = Plan {
            logs: Vec::new(),
            dry_run: false,
            collectors: vec![
                instance("hangs", Box::new(Hangs(0))),
                instance("panics", Box::new(Panics)),
                instance("steady", Box::new(Steady)),
            ],
            handlers: vec![HandlerSpec {
                name: "graphite".into(),
                enabled: true,
                config: HandlerConfig::Graphite(GraphiteConfig {
                    port,
                    ..GraphiteConfig::default()
                }),
                buffer: Default::default(),
            }],
            self_path: Some(MetricPath::new("t", None, "", "carbyne")),
            host: "t".into(),
            state_dir: cfg.state_dir.clone(),
        };
        let (_reload, reloads) = tokio::sync::mpsc::channel(1);
        let failures = run_daemon(
            &cfg,
            plan,
            tokio::time::sleep(Duration::from_secs(7)),
            reloads,
        )
        .await;
        assert!(failures.is_empty(), "{failures:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = lock(&received).clone();
        let mut steady = std::collections::BTreeSet::new();
        let mut errors = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 3, "{line:?}");
            let ts: i64 = f[2].parse().expect("timestamp");
            if f[0] == "t.steady.up" {
                assert!(steady.insert(ts), "slot {ts} sent twice");
            }
            if let Some(name) = f[0].strip_prefix("t.carbyne.collectors.") {
                if let Some(c) = name.strip_suffix(".errors") {
                    let v: f64 = f[1].parse().expect("value");
                    let e = errors.entry(c.to_string()).or_insert(0.0f64);
                    *e = e.max(v);
                }
            }
        }
        let slots: Vec<i64> = steady.into_iter().collect();
        assert!(slots.len() >= 5, "{slots:?}");
        assert!(
            slots.windows(2).all(|w| w[1] == w[0] + 1),
            "a slot was lost: {slots:?}"
        );
        assert!(errors["panics"] >= 4.0, "{errors:?}");
        assert!(errors["hangs"] >= 1.0, "{errors:?}");
        assert_eq!(errors["steady"], 0.0, "{errors:?}");
    }

    #[test]
    fn ticks_align_to_wall_clock_multiples() {
        let (ts, wait) = next_tick(1_700_000_003.25, Duration::from_secs(10));
        assert_eq!(ts, 1_700_000_010);
        assert!((wait.as_secs_f64() - 6.75).abs() < 1e-6);
        let (ts, _) = next_tick(1_700_000_010.0, Duration::from_secs(60));
        assert_eq!(ts, 1_700_000_040);
    }

    #[test]
    fn a_timer_firing_early_does_not_repeat_a_slot() {
        let mut t = Ticker::new(Duration::from_secs(10));
        let (a, _) = t.next(1_700_000_003.0);
        assert_eq!(a, 1_700_000_010);
        // Woken 1 ms early: still the next slot, not the same one again.
        let (b, wait) = t.next(1_700_000_009.999);
        assert_eq!(b, 1_700_000_020);
        assert!(wait > Duration::from_secs(10));
    }

    #[test]
    fn missed_slots_are_caught_up_but_clock_jumps_start_afresh() {
        let mut t = Ticker::resume(Duration::from_secs(10), 1_700_000_010);
        let (a, wait) = t.next(1_700_000_035.0);
        assert_eq!((a, wait), (1_700_000_020, Duration::ZERO));
        let (b, _) = t.next(1_700_000_035.0);
        assert_eq!(b, 1_700_000_030);
        let (c, _) = t.next(1_700_000_035.0);
        assert_eq!(c, 1_700_000_040);
        // An hour forward, or back: no burst, no hour-long sleep.
        let (d, _) = t.next(1_700_003_635.0);
        assert_eq!(d, 1_700_003_640);
        let (e, wait) = t.next(1_700_000_001.0);
        assert_eq!(e, 1_700_000_010);
        assert!(wait <= Duration::from_secs(10));
    }

    #[test]
    fn a_disk_buffer_adds_its_own_metrics() {
        let path = MetricPath::new("servers", Some("h"), "", "carbyne");
        let mut snap = handlers::StatsSnapshot {
            sent: 5,
            dropped: 2,
            errors: 1,
            queue: 3,
            oversize: 0,
            buffered: None,
            buffer_bytes: None,
            replayed: 0,
        };
        let names = |s: &handlers::StatsSnapshot| -> Vec<(String, f64)> {
            handler_samples(&path, "graphite", s, 1)
                .into_iter()
                .map(|x| (x.name, x.value))
                .collect()
        };
        assert_eq!(names(&snap).len(), 5, "memory: no buffer metrics");
        snap.buffered = Some(40);
        snap.buffer_bytes = Some(4096);
        snap.replayed = 7;
        let got = names(&snap);
        for (name, v) in [
            ("buffered", 40.0),
            ("buffer_bytes", 4096.0),
            ("replayed", 7.0),
            ("dropped", 2.0),
        ] {
            assert!(
                got.contains(&(format!("servers.h.carbyne.handlers.graphite.{name}"), v)),
                "{name}: {got:?}"
            );
        }
        // An older run's counts (without these fields) still read.
        let old: handlers::StatsSnapshot =
            serde_json::from_str(r#"{"sent":1,"dropped":0,"errors":0,"queue":0,"oversize":0}"#)
                .expect("old file");
        assert_eq!(old.buffered, None);
    }
}
