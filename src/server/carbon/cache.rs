//! The write cache: points accumulate per metric; writer threads drain it,
//! one whisper `update_many` per metric per pass, creating files as the
//! schemas say. Full cache: receivers wait (flow control), nothing is
//! dropped silently.

use super::names;
use super::schemas::Rules;
use crate::whisper::{self, Aggregation, Allocation};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which metric a writer takes next (carbon's `CACHE_WRITE_STRATEGY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Every metric once per pass, those with the most points first.
    Sorted,
    /// Always the metric with the most points.
    Max,
    /// Any order.
    Naive,
}

/// carbon's instrumentation counters, since the last report.
#[derive(Debug, Default)]
pub struct Counters {
    pub metrics_received: AtomicU64,
    pub committed_points: AtomicU64,
    pub update_operations: AtomicU64,
    pub update_time_us: AtomicU64,
    pub creates: AtomicU64,
    pub dropped_creates: AtomicU64,
    pub errors: AtomicU64,
    /// Lines that were not `name value timestamp` or had a bad name.
    pub rejected: AtomicU64,
    /// Points that could not be written before shutdown (a full disk).
    pub lost_points: AtomicU64,
    /// Points written and update operations since start (never reset).
    pub total_points: AtomicU64,
    pub total_updates: AtomicU64,
}

type Hasher = foldhash::fast::RandomState;
/// A metric's cached `(timestamp, value)` points, in arrival order.
type Points = Vec<(f64, f64)>;

/// One writer's share of the cache: the metrics only it writes.
#[derive(Default)]
struct Part {
    points: HashMap<Box<str>, Points, Hasher>,
    /// Metrics left in the writer's current sorted pass.
    pass: Vec<Box<str>>,
    /// When the current sorted pass began.
    began: Option<Instant>,
    /// `Inner::stored` when the writer last waited to begin a pass.
    waited_at: Option<u64>,
}

/// A sorted pass begins at most this often while points keep arriving and
/// the cache is less than a quarter full: a writer that keeps up easily
/// then waits for fuller updates (fewer system calls per point, more time
/// for the receivers) rather than writing each metric's one new point
/// every pass. Reads (the web server, carbonlink) see the cache meanwhile.
const MIN_PASS: Duration = Duration::from_millis(500);
/// How long a pacing writer waits at a time: when no point came in that
/// while, it begins the pass at once.
const PACE_STEP: Duration = Duration::from_millis(20);

struct Inner {
    /// One per writer; a metric lives in the part `partition` gives it.
    parts: Vec<Part>,
    size: usize,
    /// Points stored since start: a pacing writer sees whether any came.
    stored: u64,
    /// What the held names and points take, about (see [`metric_bytes`]).
    bytes: usize,
    /// Writers waiting for points, receivers waiting for room: a condition
    /// variable is signalled only when someone waits on it (a signal is a
    /// system call).
    idle_writers: usize,
    blocked_receivers: usize,
}

/// carbon's token bucket: `capacity` tokens, refilled at `rate` per second.
struct Bucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: f64, rate: f64) -> Self {
        // Below one token a bucket would never hold a whole one: 0.2 updates
        // a second is one update every five seconds.
        let capacity = capacity.max(1.0);
        Bucket {
            capacity,
            rate,
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + self.rate * now.duration_since(self.at).as_secs_f64())
            .min(self.capacity);
        self.at = now;
    }

    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there.
    fn wait(&mut self) -> Duration {
        self.refill();
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// What the writers need besides the points.
pub struct Store {
    pub root: PathBuf,
    /// Replaced whole when the files are read again (SIGHUP).
    pub rules: std::sync::RwLock<std::sync::Arc<Rules>>,
    pub allocation: Allocation,
}

impl Store {
    /// The rules in force.
    pub fn rules(&self) -> std::sync::Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The cache, shared by receivers and writers.
pub struct Cache {
    inner: Mutex<Inner>,
    /// Signalled when points arrive (idle writers wait on it).
    arrived: Condvar,
    /// Signalled when writers make room (receivers of a full cache wait).
    room: Condvar,
    max_size: std::sync::atomic::AtomicUsize,
    max_bytes: std::sync::atomic::AtomicUsize,
    strategy: Strategy,
    updates: Option<Mutex<Bucket>>,
    creates: Option<Mutex<Bucket>>,
    pub counters: Counters,
    /// Receivers stopped: writers drain everything and return.
    closing: AtomicBool,
    /// Write errors come per metric (a full disk fails every create):
    /// logged at most once a second, all counted in `errors`.
    errors_log: crate::server::Throttle,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cache {
    /// `max_size` points (0: unlimited); updates per second and creates per
    /// minute (0: unlimited); `writers` writer threads, each with its share
    /// of the metrics.
    pub fn new(
        max_size: usize,
        strategy: Strategy,
        updates: f64,
        creates: f64,
        writers: usize,
    ) -> Self {
        Cache {
            inner: Mutex::new(Inner {
                parts: (0..writers.max(1)).map(|_| Part::default()).collect(),
                size: 0,
                stored: 0,
                bytes: 0,
                idle_writers: 0,
                blocked_receivers: 0,
            }),
            arrived: Condvar::new(),
            room: Condvar::new(),
            max_size: unlimited_at_0(max_size).into(),
            max_bytes: usize::MAX.into(),
            strategy,
            updates: (updates > 0.0).then(|| Mutex::new(Bucket::new(updates, updates))),
            creates: (creates > 0.0).then(|| Mutex::new(Bucket::new(creates, creates / 60.0))),
            counters: Counters::default(),
            closing: AtomicBool::new(false),
            errors_log: crate::server::Throttle::new(),
        }
    }

    /// Bounds the cache in bytes too (0: unlimited): names and points held,
    /// as [`metric_bytes`] weighs them.
    pub fn max_bytes(self, max: usize) -> Self {
        self.set_limits(None, Some(max));
        self
    }

    /// Changes the bounds in points and in bytes (0: unlimited) of a
    /// running cache; receivers waiting for room see them at once.
    pub fn set_limits(&self, points: Option<usize>, bytes: Option<usize>) {
        if let Some(n) = points {
            self.max_size.store(unlimited_at_0(n), Ordering::Relaxed);
        }
        if let Some(n) = bytes {
            self.max_bytes.store(unlimited_at_0(n), Ordering::Relaxed);
        }
        self.room.notify_all();
    }

    /// Bytes held, about.
    pub fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }

    /// Points held, and metrics holding them.
    pub fn size(&self) -> (usize, usize) {
        let i = lock(&self.inner);
        (i.size, i.parts.iter().map(|p| p.points.len()).sum())
    }

    /// Adds points; while the cache is full, waits for the writers (carbon
    /// pauses its receivers the same way). A name is copied only when its
    /// metric is new to the cache.
    pub fn store<S: AsRef<str> + Into<String>>(&self, batch: Vec<(S, f64, f64)>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        self.counters
            .metrics_received
            .fetch_add(n as u64, Ordering::Relaxed);
        let mut i = lock(&self.inner);
        while (i.size >= self.max_size.load(Ordering::Relaxed)
            || i.bytes >= self.max_bytes.load(Ordering::Relaxed))
            && !self.closing.load(Ordering::Relaxed)
        {
            i.blocked_receivers += 1;
            i = self
                .room
                .wait_timeout(i, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            i.blocked_receivers -= 1;
        }
        let parts = i.parts.len();
        let mut grown = 0;
        for (metric, ts, value) in batch {
            let part = &mut i.parts[partition(metric.as_ref(), parts)];
            match part.points.get_mut(metric.as_ref()) {
                Some(points) => {
                    let before = points.capacity();
                    points.push((ts, value));
                    grown += (points.capacity() - before) * POINT_BYTES;
                }
                None => {
                    let key = metric.into().into_boxed_str();
                    let points = vec![(ts, value)];
                    grown += metric_bytes(&key, &points);
                    part.points.insert(key, points);
                }
            }
            i.size += 1;
        }
        i.bytes += grown;
        i.stored += n as u64;
        let wake = i.idle_writers > 0;
        drop(i);
        if wake {
            self.arrived.notify_all();
        }
    }

    /// Takes the next metric of writer `part` and its points, as the
    /// strategy says; waits up to `wait` for one. Each metric belongs to one
    /// writer, so no two write one file at once. A sorted pass begins at
    /// most every [`MIN_PASS`] while points arrive, when waiting is
    /// allowed, the cache is under a quarter full and not closing.
    fn drain_one(&self, wait: Duration, part: usize) -> Option<(Box<str>, Points)> {
        let mut i = lock(&self.inner);
        if i.parts[part].points.is_empty() && !wait.is_zero() {
            i.idle_writers += 1;
            i = self
                .arrived
                .wait_timeout(i, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            i.idle_writers -= 1;
        }
        let pace = !wait.is_zero()
            && !self.closing.load(Ordering::Relaxed)
            && i.size < self.max_size.load(Ordering::Relaxed) / 4
            && i.bytes < self.max_bytes.load(Ordering::Relaxed) / 4;
        let stored = i.stored;
        let p = &mut i.parts[part];
        let metric = match self.strategy {
            Strategy::Naive => p.points.keys().next().cloned(),
            Strategy::Max => p
                .points
                .iter()
                .max_by_key(|(_, v)| v.len())
                .map(|(k, _)| k.clone()),
            Strategy::Sorted => loop {
                if p.pass.is_empty() {
                    let left = p
                        .began
                        .map_or(Duration::ZERO, |b| MIN_PASS.saturating_sub(b.elapsed()));
                    if pace && !left.is_zero() && p.waited_at != Some(stored) {
                        p.waited_at = Some(stored);
                        drop(i);
                        std::thread::sleep(left.min(wait).min(PACE_STEP));
                        return None;
                    }
                    p.waited_at = None;
                    if !p.points.is_empty() {
                        p.began = Some(Instant::now());
                    }
                    let mut counts: Vec<(usize, &Box<str>)> =
                        p.points.iter().map(|(k, v)| (v.len(), k)).collect();
                    // Fewest first: popped from the end, the most points go first.
                    counts.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
                    p.pass = counts.into_iter().map(|(_, k)| k.clone()).collect();
                }
                match p.pass.pop() {
                    None => break None,
                    Some(m) if p.points.contains_key(&m) => break Some(m),
                    Some(_) => {}
                }
            },
        }?;
        let points = p.points.remove(&metric)?;
        i.size -= points.len();
        i.bytes -= metric_bytes(&metric, &points);
        let wake = i.blocked_receivers > 0;
        drop(i);
        if wake {
            self.room.notify_all();
        }
        Some((metric, points))
    }

    /// The points held for `metric`, in arrival order: what carbon's
    /// cache query (carbonlink) answers, and what the web reads merge.
    pub fn query(&self, metric: &str) -> Vec<(f64, f64)> {
        let i = lock(&self.inner);
        let part = &i.parts[partition(metric, i.parts.len())];
        part.points.get(metric).cloned().unwrap_or_default()
    }

    /// The names of the metrics held that `keep` accepts.
    pub fn metrics_where(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let i = lock(&self.inner);
        i.parts
            .iter()
            .flat_map(|p| p.points.keys())
            .filter(|k| keep(k))
            .map(|k| k.to_string())
            .collect()
    }

    /// Asks the writers to write everything and return.
    pub fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        self.arrived.notify_all();
        self.room.notify_all();
    }

    /// Writer `part`: drains its metrics into whisper files until closed
    /// and empty, keeping up to `open_files` files open.
    pub fn writer(&self, store: &Store, part: usize, open_files: usize) {
        let mut files = Handles::new(open_files);
        let mut failing = crate::handlers::Backoff::new(Duration::from_secs(5));
        loop {
            let closing = self.closing.load(Ordering::Relaxed);
            // Under max_updates_per_second, wait for the next update while
            // the points are still in the cache: taken out first (as carbon
            // does), they would be in neither cache nor file meanwhile, and
            // reads (the web server, carbonlink) would miss them.
            if let Some(b) = &self.updates {
                if !closing {
                    let wait = lock(b).wait().min(Duration::from_millis(200));
                    std::thread::sleep(wait);
                    if !lock(b).wait().is_zero() {
                        continue;
                    }
                }
            }
            match self.drain_one(Duration::from_millis(200), part) {
                Some((metric, points)) => {
                    if self.write(store, &mut files, metric, points, closing) {
                        failing.reset();
                    } else if !closing {
                        // The disk refuses (full, read-only): the points wait
                        // in the cache; try again after a while.
                        std::thread::sleep(failing.next_wait());
                    }
                }
                None if closing => return,
                None => {}
            }
        }
    }

    /// Writes a metric's points; false when the file could not be made or
    /// written (a full disk, say): the points are back in the cache then,
    /// to be written when the disk takes them, except while closing.
    fn write(
        &self,
        store: &Store,
        files: &mut Handles,
        metric: Box<str>,
        mut points: Vec<(f64, f64)>,
        closing: bool,
    ) -> bool {
        let c = &self.counters;
        let path = names::path(&store.root, &metric);
        files.renew();
        if !files.has(&metric) {
            // Opened straight away: a file that is not there yet is created
            // (no separate look for it first).
            let opened = match files.open(&metric, &path) {
                Err(whisper::WhisperError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    match self.create(store, &metric, &path) {
                        Created::Yes => files.open(&metric, &path),
                        Created::NotYet => return true,
                        Created::Failed => return self.keep(metric, points, closing),
                    }
                }
                // A damaged file (truncated by a crash of another writer,
                // say) is moved aside once and the metric starts afresh,
                // rather than failing every later point.
                Err(e @ whisper::WhisperError::Corrupt { .. }) => {
                    if !set_aside(&path, &e) {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        return self.keep(metric, points, closing);
                    }
                    match self.create(store, &metric, &path) {
                        Created::Yes => files.open(&metric, &path),
                        Created::NotYet => return true,
                        Created::Failed => return self.keep(metric, points, closing),
                    }
                }
                other => other,
            };
            if let Err(e) = opened {
                c.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("cannot open {}: {e}", path.display()));
                return self.keep(metric, points, closing);
            }
        }
        if let Some(b) = &self.updates {
            if !closing {
                let wait = lock(b).wait();
                std::thread::sleep(wait);
                lock(b).take();
            }
        }
        // As carbon's cache: one value per timestamp (the last one stored),
        // in time order; whisper then truncates timestamps to whole seconds.
        points.reverse();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|later, first| later.0 == first.0);
        let pts: Vec<(i64, f64)> = points.iter().map(|(t, v)| (*t as i64, *v)).collect();
        let start = Instant::now();
        let written = files
            .get(&metric)
            .ok_or_else(|| whisper::WhisperError::InvalidConfiguration("no handle".into()))
            .and_then(|w| w.update_many(&pts, None));
        if written.is_err() {
            files.forget(&metric);
        }
        match written {
            Ok(()) => {
                c.committed_points
                    .fetch_add(pts.len() as u64, Ordering::Relaxed);
                c.update_operations.fetch_add(1, Ordering::Relaxed);
                c.total_points
                    .fetch_add(pts.len() as u64, Ordering::Relaxed);
                c.total_updates.fetch_add(1, Ordering::Relaxed);
                c.update_time_us
                    .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("cannot write {}: {e}", path.display()));
                // Written again whole: whisper's update of the same points
                // is the same, so a half-done one is mended.
                return self.keep(metric, points, closing);
            }
        }
        true
    }

    /// Puts a metric's unwritten points back in the cache, before any that
    /// came since (returns false, for [`Cache::write`]); while closing they
    /// cannot wait any longer and are counted lost.
    fn keep(&self, metric: Box<str>, points: Points, closing: bool) -> bool {
        if closing {
            self.counters
                .lost_points
                .fetch_add(points.len() as u64, Ordering::Relaxed);
            self.log_error(format_args!(
                "{} points of {metric} not written at shutdown ({} in all so far)",
                points.len(),
                self.counters.lost_points.load(Ordering::Relaxed)
            ));
            return false;
        }
        let mut i = lock(&self.inner);
        let parts = i.parts.len();
        let n = points.len();
        let part = &mut i.parts[partition(&metric, parts)];
        let grown = match part.points.get_mut(&metric) {
            Some(newer) => {
                let before = newer.capacity();
                let mut all = points;
                all.append(newer);
                *newer = all;
                newer.capacity().saturating_sub(before) * POINT_BYTES
            }
            None => {
                let bytes = metric_bytes(&metric, &points);
                part.points.insert(metric, points);
                bytes
            }
        };
        i.size += n;
        i.bytes += grown;
        false
    }
}

/// What [`Cache::create`] did.
enum Created {
    Yes,
    /// Over the create rate: the points are dropped, as carbon drops them.
    NotYet,
    Failed,
}

impl Cache {
    /// Logs a write error, at most once a second (each is counted).
    fn log_error(&self, what: std::fmt::Arguments<'_>) {
        if let Some(held) = self.errors_log.ready() {
            log::error!("carbon: {what}{}", crate::server::held_note(held));
        }
    }

    /// Creates the file of a new metric as the schemas say, within the
    /// create rate (counted when it may not or cannot be created).
    fn create(&self, store: &Store, metric: &str, path: &std::path::Path) -> Created {
        let c = &self.counters;
        if let Some(b) = &self.creates {
            if !lock(b).take() {
                // As carbon: the points of a metric it may not create yet are dropped.
                c.dropped_creates.fetch_add(1, Ordering::Relaxed);
                return Created::NotYet;
            }
        }
        let rules = store.rules();
        let schema = rules.schema(metric);
        let agg = rules.aggregation(metric);
        let created = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                whisper::create(
                    path,
                    &schema.archives,
                    agg.x_files_factor.unwrap_or(0.5),
                    agg.method.unwrap_or(Aggregation::Average),
                    store.allocation,
                )
                .map_err(|e| e.to_string())
            });
        match created {
            Ok(()) => {
                c.creates.fetch_add(1, Ordering::Relaxed);
                if metric.contains(';') {
                    if let Err(e) = names::record(&store.root, metric) {
                        self.log_error(format_args!(
                            "cannot list {metric} among the tagged names: {e}"
                        ));
                    }
                }
                log::debug!(
                    "created {metric} (schema {}, aggregation {})",
                    schema.name,
                    agg.name
                );
                Created::Yes
            }
            Err(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                self.log_error(format_args!("cannot create {}: {e}", path.display()));
                Created::Failed
            }
        }
    }
}

/// Moves a damaged whisper file to `FILE.corrupt` (or `FILE.corrupt.N`),
/// saying so; false when it could not be moved.
fn set_aside(path: &std::path::Path, why: &whisper::WhisperError) -> bool {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let mut target = PathBuf::from(&aside);
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.{n}", aside.to_string_lossy()));
        n += 1;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => {
            log::error!(
                "{why}: moved aside to {}; the metric starts a new file",
                target.display()
            );
            true
        }
        Err(e) => {
            log::error!("{why}; cannot move it aside: {e}");
            false
        }
    }
}

fn unlimited_at_0(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

/// What one cached point takes.
const POINT_BYTES: usize = std::mem::size_of::<(f64, f64)>();

/// What a metric takes in the cache: its name, its points' room, and its
/// table entry (key and vector headers, hash table slot overhead).
fn metric_bytes(name: &str, points: &Points) -> usize {
    name.len() + points.capacity() * POINT_BYTES + 64
}

/// A stable partition of metric names among writers (FNV-1a).
fn partition(metric: &str, parts: usize) -> usize {
    if parts <= 1 {
        return 0;
    }
    let h = metric.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (h % parts as u64) as usize
}

/// A writer's open files: reopening a file for each update costs an open,
/// a header read and a close. Dropped wholesale every minute, so a file
/// replaced behind carbyne's back (whisper-resize) is picked up.
struct Handles {
    open: HashMap<Box<str>, whisper::Whisper, Hasher>,
    max: usize,
    since: Instant,
    /// The warning that there are more metrics than `max` was given.
    said_full: bool,
}

impl Handles {
    fn new(max: usize) -> Self {
        Handles {
            open: HashMap::default(),
            max,
            since: Instant::now(),
            said_full: false,
        }
    }

    /// Closes every file once a minute.
    fn renew(&mut self) {
        if self.since.elapsed() >= Duration::from_secs(60) {
            self.open.clear();
            self.since = Instant::now();
        }
    }

    fn has(&self, metric: &str) -> bool {
        self.open.contains_key(metric)
    }

    fn forget(&mut self, metric: &str) {
        self.open.remove(metric);
    }

    /// Opens `metric`'s file and keeps it, closing another when `max` are
    /// open (with `max` 0, only the last one opened stays).
    fn open(&mut self, metric: &str, path: &std::path::Path) -> whisper::Result<()> {
        let w = whisper::Whisper::open(path, true)?;
        if self.max == 0 {
            self.open.clear();
        } else if self.open.len() >= self.max {
            if !self.said_full {
                self.said_full = true;
                log::warn!(
                    "carbon: a writer has more metrics than open_files ({}): files are \
                     reopened for each update; raise the open file limit (LimitNOFILE) \
                     and open_files, or add writers",
                    self.max
                );
            }
            // Any one goes; the next pass reopens it if it is still busy.
            if let Some(k) = self.open.keys().next().cloned() {
                self.open.remove(&k);
            }
        }
        self.open.insert(metric.into(), w);
        Ok(())
    }

    fn get(&self, metric: &str) -> Option<&whisper::Whisper> {
        self.open.get(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers' settings over a fresh folder with carbon's default schema.
    fn store(dir: &tempfile::TempDir, allocation: Allocation) -> Store {
        Store {
            root: dir.path().to_path_buf(),
            rules: std::sync::RwLock::new(std::sync::Arc::new(
                Rules::load(None, None).expect("rules"),
            )),
            allocation,
        }
    }

    #[test]
    fn sorted_takes_the_fullest_first_and_every_metric_once_a_pass() {
        let c = Cache::new(0, Strategy::Sorted, 0.0, 0.0, 1);
        c.store(vec![
            ("a", 1.0, 1.0),
            ("b", 1.0, 1.0),
            ("b", 2.0, 1.0),
            ("c", 1.0, 1.0),
            ("c", 2.0, 1.0),
            ("c", 3.0, 1.0),
        ]);
        let order: Vec<String> =
            std::iter::from_fn(|| c.drain_one(Duration::ZERO, 0).map(|x| x.0.into())).collect();
        assert_eq!(order, ["c", "b", "a"]);
        assert_eq!(c.size(), (0, 0));
    }

    #[test]
    fn each_writer_takes_only_its_share_and_waits_when_it_has_none() {
        let c = Cache::new(0, Strategy::Sorted, 0.0, 0.0, 2);
        let names: Vec<String> = (0..40).map(|i| format!("m.{i}")).collect();
        c.store(names.iter().map(|n| (n.as_str(), 1.0, 1.0)).collect());
        for part in 0..2 {
            let got: Vec<Box<str>> =
                std::iter::from_fn(|| c.drain_one(Duration::ZERO, part).map(|x| x.0)).collect();
            assert!(!got.is_empty());
            assert!(got.iter().all(|m| partition(m, 2) == part));
        }
        assert_eq!(c.size(), (0, 0));
        // Points only for the other writer: this one waits (no busy loop).
        let other = names.iter().find(|n| partition(n, 2) == 1).expect("name");
        c.store(vec![(other.as_str(), 1.0, 1.0)]);
        let start = Instant::now();
        assert!(c.drain_one(Duration::from_millis(100), 0).is_none());
        assert!(start.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn a_writer_that_keeps_up_waits_for_fuller_updates_while_points_come() {
        let c = Cache::new(0, Strategy::Sorted, 0.0, 0.0, 1);
        let wait = Duration::from_millis(200);
        c.store(vec![("a", 1.0, 1.0)]);
        assert!(
            c.drain_one(wait, 0).is_some(),
            "the first pass begins at once"
        );
        c.store(vec![("a", 2.0, 1.0)]);
        // A point came since: the next pass waits a step for more...
        assert!(c.drain_one(wait, 0).is_none());
        c.store(vec![("a", 3.0, 1.0)]);
        assert!(c.drain_one(wait, 0).is_none());
        // ...and begins once a step passes with none.
        let (_, points) = c.drain_one(wait, 0).expect("the pass");
        assert_eq!(points.len(), 2);
        // Closing, it never waits.
        c.store(vec![("a", 4.0, 1.0)]);
        c.close();
        assert!(c.drain_one(wait, 0).is_some());
    }

    #[test]
    fn duplicates_keep_the_last_value_and_points_go_in_time_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir, Allocation::Zeroed);
        let c = Cache::new(0, Strategy::Max, 0.0, 0.0, 1);
        let now = whisper::unix_now() as f64;
        let t = now - now % 60.0 - 120.0;
        c.store(vec![
            ("x.y", t, 1.0),
            ("x.y", t - 60.0, 2.0),
            ("x.y", t, 3.0),
        ]);
        c.close();
        c.writer(&store, 0, 16);
        let w = whisper::Whisper::open(&dir.path().join("x/y.wsp"), false).expect("open");
        let s = w
            .fetch(t as i64 - 120, Some(t as i64 + 1), None, None)
            .expect("fetch")
            .expect("series");
        let got: Vec<f64> = s.values.iter().flatten().copied().collect();
        assert_eq!(got, [2.0, 3.0]);
        assert_eq!(c.counters.creates.load(Ordering::Relaxed), 1);
        assert_eq!(c.counters.committed_points.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn creates_past_the_limit_are_dropped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir, Allocation::Sparse);
        let c = Cache::new(0, Strategy::Sorted, 0.0, 2.0, 1);
        let now = whisper::unix_now() as f64;
        c.store((0..5).map(|i| (format!("m{i}"), now - 60.0, 1.0)).collect());
        c.close();
        c.writer(&store, 0, 16);
        assert_eq!(c.counters.creates.load(Ordering::Relaxed), 2);
        assert_eq!(c.counters.dropped_creates.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_full_cache_makes_receivers_wait_for_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir, Allocation::Sparse);
        let c = std::sync::Arc::new(Cache::new(10, Strategy::Sorted, 0.0, 0.0, 1));
        let now = whisper::unix_now() as f64;
        let feeder = {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    c.store(vec![(format!("m{}", i % 5), now - 60.0 * i as f64, 1.0)]);
                    assert!(c.size().0 <= 10);
                }
            })
        };
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || c.writer(&store, 0, 16))
        };
        feeder.join().expect("feeder");
        c.close();
        writer.join().expect("writer");
        assert_eq!(c.counters.metrics_received.load(Ordering::Relaxed), 50);
        assert_eq!(c.counters.committed_points.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        // Long names: few points, many bytes.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir, Allocation::Sparse);
        let c = std::sync::Arc::new(Cache::new(0, Strategy::Sorted, 0.0, 0.0, 1).max_bytes(20_000));
        let now = whisper::unix_now() as f64;
        let feeder = {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut most = 0;
                for i in 0..100 {
                    let name = format!("{}.m{i}", "x".repeat(200));
                    c.store(vec![(name, now, 1.0)]);
                    most = most.max(c.bytes());
                }
                most
            })
        };
        let writer = {
            let c = c.clone();
            std::thread::spawn(move || c.writer(&store, 0, 16))
        };
        let most = feeder.join().expect("feeder");
        c.close();
        writer.join().expect("writer");
        // One batch may go past the bound; none starts past it.
        assert!(most < 20_000 + 400, "{most}");
        assert_eq!(c.counters.committed_points.load(Ordering::Relaxed), 100);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn a_truncated_file_is_moved_aside_once_and_the_metric_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir, Allocation::Sparse);
        let path = names::path(&store.root, "bad.one");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        // What a writer killed mid-create used to leave: half a header.
        std::fs::write(&path, [0u8, 0, 0, 1, 0, 0]).expect("truncated");
        let c = Cache::new(0, Strategy::Sorted, 0.0, 0.0, 1);
        let now = whisper::unix_now() as f64;
        c.store(vec![("bad.one", now, 1.0)]);
        c.store(vec![("bad.one", now - 60.0, 2.0)]);
        c.close();
        c.writer(&store, 0, 16);
        assert_eq!(c.counters.committed_points.load(Ordering::Relaxed), 2);
        let mut aside = path.as_os_str().to_owned();
        aside.push(".corrupt");
        assert_eq!(
            std::fs::read(&aside).expect("set aside"),
            [0, 0, 0, 1, 0, 0]
        );
        let w = whisper::Whisper::open(&path, false).expect("a new, whole file");
        let s = w
            .fetch(now as i64 - 120, None, None, None)
            .expect("fetch")
            .expect("series");
        assert_eq!(s.values.iter().flatten().count(), 2);
    }

    #[test]
    fn more_metrics_than_open_files_is_said_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Handles::new(2);
        for i in 0..5 {
            let p = dir.path().join(format!("m{i}.wsp"));
            whisper::create(
                &p,
                &[(60, 10)],
                0.5,
                Aggregation::Average,
                Allocation::Sparse,
            )
            .expect("create");
            h.open(&format!("m{i}"), &p).expect("open");
            assert_eq!(h.said_full, i >= 2, "{i}");
            assert!(h.open.len() <= 2);
        }
    }
}
