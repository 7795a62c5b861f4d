//! The scheduler: runs each collector on its own wall-clock-aligned
//! interval (or all of them once), off the async threads and under a
//! timeout, and fans every run's samples out to the handlers' queues.

use crate::collectors::{self, Instance};
use crate::config::{Config, ConfigError};
use crate::handlers::{self, HandlerConfig, HandlerSpec, Queue, Running};
use crate::hostname::HostNames;
use crate::rates::{boot_id, CounterState, StateFile};
use crate::sample::{Kind, MetricPath, Sample};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Unix time now, in fractional seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The next wall-clock multiple of `interval` after `now` (unix seconds),
/// and how long until then: every host's samples land on the same slots.
pub fn next_tick(now: f64, interval: Duration) -> (i64, Duration) {
    let step = interval.as_secs().max(1) as f64;
    let next = ((now / step).floor() + 1.0) * step;
    (next as i64, Duration::from_secs_f64((next - now).max(0.0)))
}

/// What one run of one collector produced.
struct Outcome {
    result: Result<(), String>,
    samples: Vec<Sample>,
    /// `None` after a panic: the next run starts without previous counters.
    state: Option<CounterState>,
    took: Duration,
}

fn run_blocking(mut inst: Instance, ts: i64, prev: Option<CounterState>) -> (Instance, Outcome) {
    let start = std::time::Instant::now();
    let now = unix_now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| inst.run(ts, now, prev)));
    let took = start.elapsed();
    let outcome = match r {
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
    };
    (inst, outcome)
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
    pub handlers: Vec<HandlerSpec>,
    /// `<prefix>.<host>[.<suffix>].carbyne.` for the agent's own metrics.
    pub self_path: Option<MetricPath>,
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
        let handlers = if dry_run {
            vec![HandlerSpec {
                name: "dry-run".into(),
                enabled: true,
                config: HandlerConfig::Stdout(Default::default()),
            }]
        } else {
            HandlerConfig::resolve_all(&cfg.handlers, false)?
                .into_iter()
                .filter(|h| h.enabled)
                .collect()
        };
        let self_path = cfg.self_metrics.then(|| {
            MetricPath::new(
                &cfg.path_prefix,
                host.as_deref(),
                &cfg.path_suffix,
                "carbyne",
            )
        });
        Ok(Plan {
            collectors,
            handlers,
            self_path,
        })
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
            q.push(samples.iter().cloned());
        }
        last.push(samples);
    }
}

fn start_handlers(plan: &Plan) -> (Vec<Running>, FanOut) {
    if plan.handlers.is_empty() {
        log::warn!("no handler configured: samples go nowhere (--dry-run prints them)");
    }
    let running: Vec<Running> = plan.handlers.iter().map(handlers::spawn).collect();
    let queues = running.iter().map(|r| r.queue.clone()).collect();
    (running, FanOut(Arc::new(queues)))
}

async fn stop_handlers(running: Vec<Running>, flush_timeout: f64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(flush_timeout);
    let mut failures = Vec::new();
    for r in running {
        if let Err(e) = r.stop(deadline).await {
            failures.push(e.to_string());
        }
    }
    failures
}

fn self_samples(
    path: &MetricPath,
    ts: i64,
    collectors: &BTreeMap<&'static str, Arc<CollectorStats>>,
    queues: &[(String, Arc<Queue>)],
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut put =
        |name: String, v: f64| out.push(Sample::new(path.name(&name), v, ts, Kind::Gauge));
    for (name, st) in collectors {
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
    for (name, q) in queues {
        let s = q.snapshot();
        put(format!("handlers.{name}.sent"), s.sent as f64);
        put(format!("handlers.{name}.dropped"), s.dropped as f64);
        put(format!("handlers.{name}.errors"), s.errors as f64);
        put(format!("handlers.{name}.queue"), s.queue as f64);
    }
    out
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
pub async fn run_once(cfg: &Config, plan: Plan) -> Vec<String> {
    let (running, fan) = start_handlers(&plan);
    let boot = boot_id(&cfg.proc_root);
    let mut state = StateFile::load(&cfg.state_dir, &boot);
    let ts = unix_now() as i64;
    let mut failures = Vec::new();
    let mut stats = BTreeMap::new();

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
    if let Some(path) = &plan.self_path {
        fan.send(self_samples(path, ts, &stats, &[]));
    }
    failures.extend(stop_handlers(running, cfg.flush_timeout).await);
    if let Err(e) = state.save(&cfg.state_dir) {
        log::warn!(
            "cannot save counters in {}: {e}; the next run will have no rates",
            cfg.state_dir.display()
        );
    }
    failures
}

/// One collector's loop in the daemon.
async fn collector_loop(
    inst: Instance,
    fan: FanOut,
    stats: Arc<CollectorStats>,
    mut stop: watch::Receiver<bool>,
) {
    let (name, interval) = (inst.name, inst.interval);
    let mut idle: Option<(Instance, Option<CounterState>)> = Some((inst, None));
    let mut late: Option<tokio::task::JoinHandle<(Instance, Outcome)>> = None;
    let mut failing = false;
    loop {
        let (ts, wait) = next_tick(unix_now(), interval);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if let Some(h) = late.take_if(|h| h.is_finished()) {
            // The run that timed out has finished: take the collector back,
            // but not its samples, which belong to a slot long gone.
            match h.await {
                Ok((inst, o)) => idle = Some((inst, o.state)),
                Err(e) => {
                    log::error!("collector {name}: lost after a failed run ({e}); stopped");
                    return;
                }
            }
        }
        let Some((inst, prev)) = idle.take() else {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            if !failing {
                log::warn!("collector {name}: previous run still going, slot skipped");
                failing = true;
            }
            continue;
        };
        let mut h = tokio::task::spawn_blocking(move || run_blocking(inst, ts, prev));
        match tokio::time::timeout(interval, &mut h).await {
            Ok(Ok((inst, o))) => {
                record(&stats, &o);
                match &o.result {
                    Err(e) if !failing => {
                        log::warn!("collector {name}: {e}");
                        failing = true;
                    }
                    Err(e) => log::debug!("collector {name}: {e}"),
                    Ok(()) if failing => {
                        log::info!("collector {name}: working again");
                        failing = false;
                    }
                    Ok(()) => {}
                }
                idle = Some((inst, o.state));
                fan.send(o.samples);
            }
            Ok(Err(e)) => {
                log::error!("collector {name}: lost after a failed run ({e}); stopped");
                return;
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    log::warn!("collector {name}: timed out after {interval:?}");
                    failing = true;
                }
                late = Some(h);
            }
        }
    }
}

/// The daemon: runs until `shutdown` resolves (SIGTERM/SIGINT in `main`),
/// then gives the handlers `flush_timeout` to deliver. Returns what could
/// not be delivered, one line per handler.
pub async fn run_daemon(
    cfg: &Config,
    plan: Plan,
    shutdown: impl std::future::Future<Output = ()>,
) -> Vec<String> {
    let (running, fan) = start_handlers(&plan);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stats = BTreeMap::new();
    let mut tasks = Vec::new();
    for inst in plan.collectors {
        let st = Arc::new(CollectorStats::default());
        stats.insert(inst.name, st.clone());
        tasks.push(tokio::spawn(collector_loop(
            inst,
            fan.clone(),
            st,
            stop_rx.clone(),
        )));
    }
    if let Some(path) = plan.self_path.clone() {
        let queues: Vec<(String, Arc<Queue>)> = running
            .iter()
            .map(|r| (r.name.clone(), r.queue.clone()))
            .collect();
        let interval = Duration::from_secs(cfg.interval);
        let fan = fan.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let (ts, wait) = next_tick(unix_now(), interval);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
                fan.send(self_samples(&path, ts, &stats, &queues));
            }
        }));
    }
    shutdown.await;
    log::info!("stopping: delivering what the handlers hold");
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    stop_handlers(running, cfg.flush_timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_align_to_wall_clock_multiples() {
        let (ts, wait) = next_tick(1_700_000_003.25, Duration::from_secs(10));
        assert_eq!(ts, 1_700_000_010);
        assert!((wait.as_secs_f64() - 6.75).abs() < 1e-6);
        let (ts, _) = next_tick(1_700_000_010.0, Duration::from_secs(60));
        assert_eq!(ts, 1_700_000_040);
    }
}
