//! The daemon: one thread per interval runs its collectors in turn at each
//! tick, a watchdog moves the work of a thread whose collector hangs to a
//! new thread, and SIGHUP's new plan replaces the running one.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Condvar;

/// A collector in the daemon, shared between the thread that runs it and
/// the watchdog. Its lock is held while it runs.
struct Slot {
    name: &'static str,
    run: Mutex<(Instance, Option<CounterState>)>,
    stats: Arc<CollectorStats>,
    /// Set while the collector is failing, so a streak is logged once.
    failing: AtomicBool,
}

impl Slot {
    fn failed(&self, what: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            log::warn!("collector {}: {what}", self.name);
        } else {
            log::debug!("collector {}: {what}", self.name);
        }
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            log::info!("collector {}: working again", self.name);
        }
    }
}

/// The collectors that share an interval. One thread runs them one after
/// the other at each tick and hands their samples over in one batch: on
/// small machines a thread wake-up costs more than a whole collection.
struct Group {
    interval: Duration,
    slots: Vec<Arc<Slot>>,
    /// Bumped when the watchdog gives the group a new thread.
    generation: AtomicU64,
    /// The slot (unix seconds) of the running tick; 0 when idle.
    busy_tick: AtomicU64,
    /// Samples of the running tick, handed over at its end (or by the
    /// watchdog when one collector hangs).
    pending: Mutex<Vec<Sample>>,
    /// The slot being run.
    current: AtomicUsize,
    /// The agent's own metrics ride along with this group's samples (the
    /// group on the global interval), saving a hand-over per tick.
    own: Option<Arc<SelfMetrics>>,
}

/// Tells the collector threads to stop, waking them from their sleep.
#[derive(Default)]
struct Stopper {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Stopper {
    /// Sleeps `d`; true when stopping was asked for.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// The thread of one group, until stopped or superseded by the watchdog.
/// A thread that takes over starts with the rest of the stuck tick: slot
/// `resume.0`, from collector `resume.1` on.
fn group_thread(
    group: Arc<Group>,
    resume: Option<(i64, usize)>,
    generation: u64,
    fan: FanOut,
    stop: Arc<Stopper>,
) {
    let current = || group.generation.load(Ordering::Acquire) == generation;
    let mut ticker = match resume {
        Some((ts, _)) => Ticker::resume(group.interval, ts),
        None => Ticker::new(group.interval),
    };
    let mut next = resume;
    loop {
        let (ts, from) = match next.take() {
            Some(first) => first,
            None => {
                let (ts, wait) = ticker.next(unix_now());
                if stop.sleep(wait) {
                    return;
                }
                (ts, 0)
            }
        };
        if !current() {
            return;
        }
        group.busy_tick.store(ts.max(1) as u64, Ordering::Release);
        for (i, slot) in group.slots.iter().enumerate().skip(from) {
            let Ok(mut guard) = slot.run.try_lock() else {
                // Still stuck in a run the watchdog gave up on.
                slot.failed("previous run still going; slot skipped");
                continue;
            };
            group.current.store(i, Ordering::Release);
            let (inst, state) = &mut *guard;
            let mut o = run_in_place(inst, ts, state.take());
            *state = o.state.take();
            drop(guard);
            if !current() {
                return; // superseded while this collector hung; its samples are stale
            }
            record(&slot.stats, &o);
            match &o.result {
                Err(e) => slot.failed(e),
                Ok(()) => slot.succeeded(),
            }
            lock(&group.pending).extend(o.samples);
        }
        let mut batch = std::mem::take(&mut *lock(&group.pending));
        group.busy_tick.store(0, Ordering::Release);
        if let Some(own) = &group.own {
            batch.extend(own.samples(ts));
        }
        fan.send(batch);
    }
}

fn spawn_group_thread(
    group: &Arc<Group>,
    resume: Option<(i64, usize)>,
    generation: u64,
    fan: &FanOut,
    stop: &Arc<Stopper>,
) {
    let (g, f, s) = (group.clone(), fan.clone(), stop.clone());
    let spawned = std::thread::Builder::new()
        .name(format!("collect-{}s", group.interval.as_secs()))
        .spawn(move || group_thread(g, resume, generation, f, s));
    if let Err(e) = spawned {
        log::error!("cannot start a collector thread: {e}");
    }
}

/// Gives a group whose tick has run a whole interval a new thread: the
/// samples its other collectors already gave are sent, the collector that
/// hangs stays behind (skipped until it returns), and the new thread catches
/// up the slots since. Runs from the housekeeping task, at the global interval.
fn watchdog(groups: &[Arc<Group>], fan: &FanOut, stop: &Arc<Stopper>) {
    let now = unix_now();
    for g in groups {
        let tick = g.busy_tick.load(Ordering::Acquire);
        if tick == 0 || now < (tick + g.interval.as_secs()) as f64 {
            continue;
        }
        let stuck = g.current.load(Ordering::Acquire);
        if let Some(slot) = g.slots.get(stuck) {
            slot.failed(&format!(
                "timed out after {:?}; the other collectors go on without it",
                g.interval
            ));
        }
        let generation = g.generation.fetch_add(1, Ordering::AcqRel) + 1;
        g.busy_tick.store(0, Ordering::Release);
        fan.send(std::mem::take(&mut *lock(&g.pending)));
        spawn_group_thread(g, Some((tick as i64, stuck + 1)), generation, fan, stop);
    }
}

/// The collectors and log readers of one configuration, on their own
/// threads; replaced as a whole when the configuration is reloaded.
struct Collecting {
    groups: Vec<Arc<Group>>,
    stop: Arc<Stopper>,
    logs: Option<(
        std::thread::JoinHandle<()>,
        std::sync::mpsc::Sender<crate::logs::Wake>,
    )>,
    /// The agent's own metrics, when no group runs on the global interval.
    own: Option<Arc<SelfMetrics>>,
    global: Duration,
}

impl Collecting {
    /// Starts the plan's collectors and log readers. `carry` holds counter
    /// readings of the collectors being replaced, so rates go on.
    fn start(
        cfg: &Config,
        plan: Plan,
        queues: Vec<(String, Arc<Queue>)>,
        fan: &FanOut,
        mut carry: HashMap<&'static str, CounterState>,
    ) -> Collecting {
        let stop = Arc::new(Stopper::default());
        let mut stats = BTreeMap::new();
        let mut by_interval: BTreeMap<Duration, Vec<Arc<Slot>>> = BTreeMap::new();
        for inst in plan.collectors {
            let st = Arc::new(CollectorStats::default());
            stats.insert(inst.name, st.clone());
            let (name, interval) = (inst.name, inst.interval);
            by_interval
                .entry(interval)
                .or_default()
                .push(Arc::new(Slot {
                    name,
                    run: Mutex::new((inst, carry.remove(name))),
                    stats: st,
                    failing: AtomicBool::new(false),
                }));
        }
        let global = Duration::from_secs(cfg.interval);
        let mut own = plan.self_path.map(|path| {
            Arc::new(SelfMetrics {
                path,
                collectors: stats,
                queues,
            })
        });
        let groups: Vec<Arc<Group>> = by_interval
            .into_iter()
            .map(|(interval, slots)| {
                Arc::new(Group {
                    interval,
                    slots,
                    generation: AtomicU64::new(0),
                    busy_tick: AtomicU64::new(0),
                    pending: Mutex::new(Vec::new()),
                    current: AtomicUsize::new(0),
                    own: if interval == global { own.take() } else { None },
                })
            })
            .collect();
        for g in &groups {
            spawn_group_thread(g, None, 0, fan, &stop);
        }
        // The logs: one thread follows them all.
        let logs = if plan.logs.is_empty() {
            None
        } else {
            let (wake_tx, wake_rx) = std::sync::mpsc::channel();
            let (jobs, dir, f, tx) = (
                plan.logs,
                cfg.state_dir.clone(),
                fan.clone(),
                wake_tx.clone(),
            );
            std::thread::Builder::new()
                .name("logs".into())
                .spawn(move || crate::logs::follow(jobs, &dir, &|s| f.send(s), wake_rx, tx))
                .map_err(|e| log::error!("cannot start the log thread: {e}"))
                .ok()
                .map(|t| (t, wake_tx))
        };
        Collecting {
            groups,
            stop,
            logs,
            own,
            global,
        }
    }

    /// Every global interval, forever: the watchdog, and the agent's own
    /// metrics when no group took them.
    async fn housekeeping(&self, fan: &FanOut) {
        let mut ticker = Ticker::new(self.global);
        let mut first = true;
        loop {
            let (ts, wait) = ticker.next(unix_now());
            tokio::time::sleep(wait).await;
            if std::mem::take(&mut first) {
                let bytes = crate::pages::release_program_pages();
                log::debug!("start-up code released: {} KiB", bytes / 1024);
            }
            watchdog(&self.groups, fan, &self.stop);
            if let Some(own) = &self.own {
                fan.send(own.samples(ts));
            }
        }
    }

    /// Stops the threads (the log thread saves its positions); returns the
    /// collectors' counter readings.
    async fn stop(self) -> HashMap<&'static str, CounterState> {
        self.stop.stop();
        if let Some((t, wake)) = self.logs {
            let _ = wake.send(crate::logs::Wake::Stop);
            let joined = tokio::task::spawn_blocking(move || t.join());
            if tokio::time::timeout(Duration::from_secs(5), joined)
                .await
                .is_err()
            {
                log::warn!("the log thread did not stop in 5 s");
            }
        }
        let mut carry = HashMap::new();
        for slot in self.groups.iter().flat_map(|g| &g.slots) {
            // A collector still running keeps its readings; it starts afresh.
            if let Ok(mut run) = slot.run.try_lock() {
                if let Some(state) = run.1.take() {
                    carry.insert(slot.name, state);
                }
            }
        }
        carry
    }
}

/// Running handlers with the sections they were started from.
type Handlers = Vec<(HandlerSpec, Running)>;

fn fan_out(hs: &Handlers) -> (FanOut, Vec<(String, Arc<Queue>)>) {
    let queues = hs.iter().map(|(_, r)| r.queue.clone()).collect();
    let named = hs
        .iter()
        .map(|(_, r)| (r.name.clone(), r.queue.clone()))
        .collect();
    (FanOut(Arc::new(queues)), named)
}

/// The daemon: runs until `shutdown` resolves (SIGTERM/SIGINT in `main`),
/// then gives the handlers `flush_timeout` to deliver. Returns what could
/// not be delivered, one line per handler.
///
/// Each configuration from `reloads` (SIGHUP in `main`) replaces the
/// collectors and log readers; handlers whose section did not change keep
/// running with what they hold, changed or removed ones get `flush_timeout`
/// to deliver and stop, new ones start.
pub async fn run_daemon(
    cfg: &Config,
    plan: Plan,
    shutdown: impl std::future::Future<Output = ()>,
    mut reloads: tokio::sync::mpsc::Receiver<(Config, Plan)>,
) -> Vec<String> {
    if plan.handlers.is_empty() {
        log::warn!("no handler configured: samples go nowhere (--dry-run prints them)");
    }
    let mut handlers: Handlers = plan
        .handlers
        .iter()
        .map(|h| (h.clone(), handlers::spawn(h, &plan.host, &plan.state_dir)))
        .collect();
    let (mut fan, queues) = fan_out(&handlers);
    let mut flush_timeout = cfg.flush_timeout;
    let mut collecting = Collecting::start(cfg, plan, queues, &fan, HashMap::new());
    tokio::pin!(shutdown);
    let mut open = true;
    loop {
        let next = async {
            if open {
                reloads.recv().await
            } else {
                std::future::pending().await
            }
        };
        let reload = tokio::select! {
            _ = &mut shutdown => break,
            _ = collecting.housekeeping(&fan) => continue,
            r = next => r,
        };
        let Some((cfg, plan)) = reload else {
            open = false;
            continue;
        };
        let carry = collecting.stop().await;
        let mut old = std::mem::take(&mut handlers);
        let mut gates = HashMap::new();
        for spec in &plan.handlers {
            match old.iter().position(|(s, _)| s == spec) {
                Some(i) => handlers.push(old.remove(i)),
                None => {
                    // One that replaces a handler of the same name (not a
                    // scrape endpoint, which takes its cache over itself)
                    // starts once that one has handed over what it holds.
                    let replaces = old.iter().any(|(s, _)| s.name == spec.name)
                        && !spec.config.serves_scrapes();
                    let gate = replaces.then(|| {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        gates.insert(spec.name.clone(), tx);
                        rx
                    });
                    handlers.push((
                        spec.clone(),
                        handlers::spawn_after(spec, &plan.host, &plan.state_dir, gate),
                    ));
                }
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(flush_timeout);
        for (_, r) in old {
            // A handler whose section changed gets what its predecessor
            // could not deliver in flush_timeout, ahead of its own.
            let heir = handlers
                .iter()
                .find(|(s, _)| s.name == r.name)
                .map(|(_, n)| n.queue.clone());
            let gate = gates.remove(&r.name);
            tokio::spawn(async move {
                let (name, queue) = (r.name.clone(), r.queue.clone());
                let result = r.stop(deadline).await;
                match heir {
                    // The same disk buffer: what the old settings took and
                    // did not deliver is read again by the new ones.
                    Some(heir) if Arc::ptr_eq(&heir, &queue) => queue.rewind(),
                    Some(heir) => {
                        let left: Vec<Sample> = queue
                            .take(heir.capacity())
                            .into_iter()
                            .filter(|s| heir.accepts(s))
                            .collect();
                        if !left.is_empty() {
                            log::info!(
                                "{name}: {} samples not delivered before the reload go to the new settings",
                                left.len()
                            );
                            heir.put_back(left);
                        }
                        queue.settle();
                        let stays = queue.len();
                        if let (Some(b), true) = (queue.buffer(), stays > 0) {
                            log::warn!(
                                "{name}: {stays} samples stay in the disk buffer {} (more than the new settings' queue takes); \
                                 they are sent when buffer = \"disk\" comes back, or `carbyne buffer discard` deletes them",
                                b.dir.display()
                            );
                        }
                    }
                    None => match result {
                        Err(e) => log::error!("{e}"),
                        Ok(handlers::Stopped::Buffered(why)) => log::warn!("{why}"),
                        Ok(handlers::Stopped::Delivered) => {}
                    },
                }
                if let Some(gate) = gate {
                    let _ = gate.send(());
                }
            });
        }
        log::info!(
            "configuration reloaded: {} collectors, {} handlers",
            plan.collectors.len(),
            handlers.len()
        );
        let queues;
        (fan, queues) = fan_out(&handlers);
        flush_timeout = cfg.flush_timeout;
        collecting = Collecting::start(&cfg, plan, queues, &fan, carry);
    }
    log::info!("stopping: delivering what the handlers hold");
    collecting.stop().await;
    let (failures, buffered) = stop_handlers(
        handlers.into_iter().map(|(_, r)| r).collect(),
        flush_timeout,
    )
    .await;
    for b in buffered {
        log::warn!("{b}");
    }
    failures
}
