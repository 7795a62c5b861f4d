//! The queue in front of each handler: bounded in memory (`max_queue`,
//! the oldest dropped when full), or a disk buffer (`buffer = "disk"`,
//! see [`crate::buffer`]) that survives restarts and crashes.
//!
//! A handler takes batches, delivers them, puts back what it could not
//! deliver and, once the receiver has what it took, says so with
//! [`Queue::settle`]: only then does a disk buffer forget them.

use crate::buffer::disk::{BufferError, Disk};
use crate::buffer::Spec;
use crate::sample::Sample;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Counters of one handler, read by the self-metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    /// Lines longer than a datagram, sent alone.
    pub oversize: AtomicU64,
    /// Records read back from a disk buffer after a restart.
    pub replayed: AtomicU64,
}

enum Store {
    Memory(VecDeque<Sample>),
    Disk(Box<Durable>),
}

/// A disk buffer, and the samples it could not write (the disk full, the
/// directory gone): those wait in memory, behind what is on disk, and go
/// to disk again once it takes writes; only beyond [`MAX_SPILL`] are the
/// oldest of them dropped.
struct Durable {
    disk: Disk,
    spill: VecDeque<Sample>,
    /// Of the samples taken, how many came from `spill` (the last ones).
    spill_taken: usize,
}

/// Most samples kept in memory while a disk buffer cannot be written.
const MAX_SPILL: usize = 100_000;

/// A bounded queue of samples waiting for one handler; when full, the
/// oldest samples are dropped (and counted) to make room for new ones.
pub struct Queue {
    store: Mutex<Store>,
    capacity: usize,
    notify: Notify,
    /// Shared by the queues of one handler that has several (one per
    /// destination), so the handler's counters cover them all.
    pub stats: Arc<Stats>,
    /// Those other queues, counted in this one's snapshot.
    pub(super) parts: Mutex<Vec<Weak<Queue>>>,
    /// The handler takes Prometheus series (see [`Queue::accepts`]).
    series: bool,
    /// The disk buffer's settings, for the parts of this handler.
    buffer: Option<Spec>,
    /// Set while writing to the disk buffer fails, so a streak is logged once.
    disk_failing: AtomicBool,
    /// When a full buffer's dropping was last said (Unix seconds).
    said_full: AtomicU64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .field("buffer", &self.buffer)
            .finish()
    }
}

/// The disk buffers open in this process, by directory: a handler that
/// a reload restarts takes over its predecessor's buffer as it is.
fn open_buffers() -> &'static Mutex<HashMap<PathBuf, Weak<Queue>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Queue>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// How long opening a buffer waits for another process to let go of it
/// (a cron run still finishing).
const LOCK_WAIT: Duration = Duration::from_secs(5);

impl Queue {
    pub fn new(capacity: usize) -> Arc<Self> {
        Self::counting_into(capacity, Arc::default())
    }

    /// A queue for a handler that takes Prometheus series.
    pub fn for_series(capacity: usize) -> Arc<Self> {
        let mut q = Self::counting_into(capacity, Arc::default());
        if let Some(q) = Arc::get_mut(&mut q) {
            q.series = true;
        }
        q
    }

    /// A queue whose counters are `stats`.
    pub fn counting_into(capacity: usize, stats: Arc<Stats>) -> Arc<Self> {
        Arc::new(Self::build(
            Store::Memory(VecDeque::new()),
            capacity,
            stats,
            false,
            None,
        ))
    }

    fn build(
        store: Store,
        capacity: usize,
        stats: Arc<Stats>,
        series: bool,
        buffer: Option<Spec>,
    ) -> Queue {
        Queue {
            store: Mutex::new(store),
            capacity: capacity.max(1),
            notify: Notify::new(),
            stats,
            parts: Mutex::new(Vec::new()),
            series,
            buffer,
            disk_failing: AtomicBool::new(false),
            said_full: AtomicU64::new(0),
        }
    }

    /// A queue kept in the disk buffer `spec`: the one already open in
    /// this process for that directory (a reload's handler taking over),
    /// or opened now.
    pub fn durable(spec: &Spec, stats: Arc<Stats>, series: bool) -> Result<Arc<Self>, BufferError> {
        let mut open = open_buffers().lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, w| w.strong_count() > 0);
        if let Some(q) = open.get(&spec.dir).and_then(Weak::upgrade) {
            return Ok(q);
        }
        let disk = Disk::open(spec, LOCK_WAIT)?;
        for d in &disk.damage {
            log::warn!("buffer {d}");
        }
        let q = Arc::new(Self::build(
            Store::Disk(Box::new(Durable {
                disk,
                spill: VecDeque::new(),
                spill_taken: 0,
            })),
            usize::MAX,
            stats,
            series,
            Some(spec.clone()),
        ));
        let waiting = q.len();
        if waiting > 0 {
            log::info!(
                "buffer {}: {waiting} samples from before to deliver first",
                spec.dir.display()
            );
        }
        open.insert(spec.dir.clone(), Arc::downgrade(&q));
        Ok(q)
    }

    /// The disk buffer's settings, when this queue is one.
    pub fn buffer(&self) -> Option<&Spec> {
        self.buffer.as_ref()
    }

    /// Whether what this queue holds survives the process.
    pub fn is_durable(&self) -> bool {
        self.buffer.is_some()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether this queue's handler takes `s`: a Prometheus series only
    /// goes to a handler that takes series, a sample hidden from
    /// Prometheus only to one that does not.
    pub fn accepts(&self, s: &Sample) -> bool {
        match s.prom {
            crate::sample::Prom::Mapped => true,
            crate::sample::Prom::Hidden => !self.series,
            crate::sample::Prom::Series(_) => self.series,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves a queue that is still valid.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves a disk buffer's own counts into the handler's counters, and
    /// says (once a minute at most) when a full buffer dropped its oldest.
    fn count(&self, disk: &mut Disk) {
        let dropped = std::mem::take(&mut disk.dropped);
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            let now = crate::whisper::unix_now() as u64;
            let last = self.said_full.load(Ordering::Relaxed);
            if now >= last + 60
                && self
                    .said_full
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                log::warn!(
                    "buffer {}: full (max_buffer_bytes) or damaged: {dropped} oldest samples dropped (counted in dropped; said once a minute)",
                    disk.dir().display()
                );
            }
        }
        let replayed = std::mem::take(&mut disk.replayed);
        if replayed > 0 {
            self.stats.replayed.fetch_add(replayed, Ordering::Relaxed);
        }
    }

    /// Appends to a disk buffer, or keeps in memory what it cannot write.
    fn push_durable(&self, d: &mut Durable, samples: Vec<Sample>) {
        // Those kept in memory go first, to keep the order.
        if !d.spill.is_empty() {
            let held: Vec<Sample> = d.spill.drain(d.spill_taken.min(d.spill.len())..).collect();
            if d.disk.push(&held).is_err() {
                d.spill.extend(held);
            }
        }
        let written = if d.spill.len() > d.spill_taken {
            Err(None)
        } else {
            d.disk.push(&samples).map_err(Some)
        };
        if let Err(why) = written {
            d.spill.extend(samples);
            // Beyond the bound, the oldest not yet taken go.
            let from = d.spill_taken.min(d.spill.len());
            let over = d
                .spill
                .len()
                .saturating_sub(MAX_SPILL)
                .min(d.spill.len() - from);
            if over > 0 {
                d.spill.drain(from..from + over);
                self.stats.dropped.fetch_add(over as u64, Ordering::Relaxed);
            }
            if let Some(why) = why {
                if !self.disk_failing.swap(true, Ordering::Relaxed) {
                    log::error!(
                        "buffer {why}; samples wait in memory (at most {MAX_SPILL}, then the oldest are dropped and counted) until it takes writes again"
                    );
                }
            }
        } else if self.disk_failing.swap(false, Ordering::Relaxed) {
            log::info!("buffer {}: writing again", d.disk.dir().display());
        }
        self.count(&mut d.disk);
    }

    /// Samples of a disk buffer's queue that only memory holds.
    pub fn spilled(&self) -> usize {
        match &*self.lock() {
            Store::Memory(_) => 0,
            Store::Disk(d) => d.spill.len(),
        }
    }

    /// Adds samples at the back, dropping the oldest beyond capacity.
    pub fn push(&self, samples: impl IntoIterator<Item = Sample>) {
        let mut store = self.lock();
        match &mut *store {
            Store::Memory(q) => {
                let mut dropped = 0u64;
                for s in samples {
                    if q.len() >= self.capacity {
                        q.pop_front();
                        dropped += 1;
                    }
                    q.push_back(s);
                }
                if dropped > 0 {
                    self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            Store::Disk(d) => self.push_durable(d, samples.into_iter().collect()),
        }
        drop(store);
        self.notify.notify_one();
    }

    /// Takes up to `max` samples from the front.
    pub fn take(&self, max: usize) -> Vec<Sample> {
        let mut store = self.lock();
        match &mut *store {
            Store::Memory(q) => {
                let n = q.len().min(max);
                q.drain(..n).collect()
            }
            Store::Disk(d) => {
                let mut out = d.disk.take(max, |s| self.accepts(s));
                self.count(&mut d.disk);
                if out.len() < max && d.spill.len() > d.spill_taken {
                    let from = d.spill_taken;
                    let n = (max - out.len()).min(d.spill.len() - from);
                    out.extend(d.spill.range(from..from + n).cloned());
                    d.spill_taken += n;
                }
                out
            }
        }
    }

    /// Puts back a batch that could not be delivered, in front, keeping the
    /// bound (what no longer fits is the oldest, and is dropped).
    pub fn put_back(&self, batch: Vec<Sample>) {
        let mut store = self.lock();
        match &mut *store {
            Store::Memory(q) => {
                let room = self.capacity.saturating_sub(q.len());
                let skip = batch.len().saturating_sub(room);
                for s in batch.into_iter().skip(skip).rev() {
                    q.push_front(s);
                }
                if skip > 0 {
                    self.stats.dropped.fetch_add(skip as u64, Ordering::Relaxed);
                }
            }
            Store::Disk(d) => {
                // The last ones taken came from memory: they stay there.
                let from_spill = d.spill_taken.min(batch.len());
                let mut batch = batch;
                batch.truncate(batch.len() - from_spill);
                d.spill_taken -= from_spill;
                if let Err((unwritten, _)) = d.disk.put_back(batch) {
                    for s in unwritten.into_iter().rev() {
                        d.spill.push_front(s);
                    }
                }
                self.count(&mut d.disk);
            }
        }
        drop(store);
        self.notify.notify_one();
    }

    /// Everything taken and not put back has reached its receiver (or
    /// was refused for good): a disk buffer forgets it.
    pub fn settle(&self) {
        if let Store::Disk(d) = &mut *self.lock() {
            d.disk.settle();
            d.spill.drain(..d.spill_taken);
            d.spill_taken = 0;
        }
    }

    /// The first `n` samples taken and not settled (in the order taken)
    /// have reached the receiver. (Samples a full disk left in memory are
    /// counted after those read from disk.)
    pub fn settle_first(&self, n: usize) {
        if let Store::Disk(d) = &mut *self.lock() {
            let from_disk = n.min(d.disk.in_flight());
            d.disk.settle_first(from_disk);
            let from_spill = (n - from_disk).min(d.spill_taken);
            d.spill.drain(..from_spill);
            d.spill_taken -= from_spill;
        }
    }

    /// Forgets what was taken and not settled: a disk buffer reads it
    /// again (for the handler taking over after a reload).
    pub fn rewind(&self) {
        if let Store::Disk(d) = &mut *self.lock() {
            d.disk.rewind();
            d.spill_taken = 0;
        }
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        match &*self.lock() {
            Store::Memory(q) => q.len(),
            Store::Disk(d) => d.disk.len() as usize + d.spill.len() - d.spill_taken,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until samples may have arrived.
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// A disk buffer's records not yet settled, its bytes and oldest
    /// timestamp.
    pub fn buffered(&self) -> Option<(u64, u64)> {
        match &*self.lock() {
            Store::Memory(_) => None,
            Store::Disk(d) => Some((d.disk.unsettled() + d.spill.len() as u64, d.disk.bytes())),
        }
    }

    fn parts(&self) -> Vec<Arc<Queue>> {
        self.parts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// The counters, and the samples held here and in the handler's other
    /// queues.
    pub fn snapshot(&self) -> StatsSnapshot {
        let parts = self.parts();
        let queue = self.len() + parts.iter().map(|q| q.len()).sum::<usize>();
        let mut buffered = None;
        for q in std::iter::once(self).chain(parts.iter().map(|q| &**q)) {
            if let Some((records, bytes)) = q.buffered() {
                let b = buffered.get_or_insert((0, 0));
                b.0 += records;
                b.1 += bytes;
            }
        }
        StatsSnapshot {
            sent: self.stats.sent.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            queue: queue as u64,
            oversize: self.stats.oversize.load(Ordering::Relaxed),
            buffered: buffered.map(|b| b.0),
            buffer_bytes: buffered.map(|b| b.1),
            replayed: self.stats.replayed.load(Ordering::Relaxed),
        }
    }
}

/// A serializable view of a handler's counters.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub sent: u64,
    pub dropped: u64,
    pub errors: u64,
    pub queue: u64,
    pub oversize: u64,
    /// Disk buffers only: records not yet delivered, and their files' bytes.
    #[serde(default)]
    pub buffered: Option<u64>,
    #[serde(default)]
    pub buffer_bytes: Option<u64>,
    #[serde(default)]
    pub replayed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Fsync;
    use crate::sample::Kind;

    fn s(i: i64) -> Sample {
        Sample::new(format!("m{i}"), i as f64, i, Kind::Gauge)
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = Queue::new(3);
        q.push((0..5).map(s));
        assert_eq!(q.len(), 3);
        assert_eq!(q.snapshot().dropped, 2);
        let got: Vec<_> = q.take(10).into_iter().map(|x| x.timestamp).collect();
        assert_eq!(got, [2, 3, 4]);
    }

    #[test]
    fn put_back_keeps_order_and_bound() {
        let q = Queue::new(4);
        q.push((0..4).map(s));
        let batch = q.take(2); // 0, 1
        q.push([s(4), s(5)]); // queue: 2 3 4 5
        q.put_back(batch); // no room: 0 and 1 are the oldest, dropped
        assert_eq!(q.snapshot().dropped, 2);
        let got: Vec<_> = q.take(10).into_iter().map(|x| x.timestamp).collect();
        assert_eq!(got, [2, 3, 4, 5]);
        q.push([s(7)]);
        let b = q.take(1);
        q.push([s(8)]);
        q.put_back(b);
        let got: Vec<_> = q.take(10).into_iter().map(|x| x.timestamp).collect();
        assert_eq!(got, [7, 8]);
    }

    #[test]
    fn a_durable_queue_is_shared_in_the_process_and_counts_its_buffer() {
        let t = tempfile::tempdir().expect("tempdir");
        let spec = Spec {
            dir: t.path().join("g"),
            max_bytes: 1 << 20,
            fsync: Fsync::Never,
        };
        let q = Queue::durable(&spec, Arc::default(), false).expect("open");
        q.push((0..5).map(s));
        let again = Queue::durable(&spec, Arc::default(), false).expect("shared");
        assert!(Arc::ptr_eq(&q, &again));
        let b = q.take(2);
        assert_eq!(b.len(), 2);
        // A reload's successor: what was taken and not settled comes again.
        q.rewind();
        assert_eq!(q.len(), 5);
        q.take(3);
        q.settle();
        let snap = q.snapshot();
        assert_eq!(snap.buffered, Some(2));
        assert!(snap.buffer_bytes.is_some_and(|b| b > 0));
        // A sample for Prometheus only is passed over by a Graphite queue.
        q.push([Sample::series(
            crate::sample::Series {
                name: "node_x".into(),
                kind: crate::prometheus::Kind::Gauge,
                help: "".into(),
                labels: vec![],
            },
            1.0,
            9,
        )]);
        let rest: Vec<_> = q.take(10).into_iter().map(|x| x.timestamp).collect();
        assert_eq!(rest, [3, 4]);
    }
}
