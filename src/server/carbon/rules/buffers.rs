//! The aggregator's buffers, as carbon's: one per output metric, holding
//! one interval buffer per `frequency`-aligned interval its inputs fell in.
//! Each output metric computes every `frequency` seconds (or every
//! `write_back_frequency`, when shorter) from when it got its first value:
//! every interval that got a value since its last computation gives one
//! point, from all the values the interval holds; intervals older than
//! `max_aggregation_intervals` frequencies go, and a metric left without
//! intervals goes (its rule is asked again by its next value).
//!
//! Sums, averages, minima, maxima and counts keep a running state, in the
//! order carbon adds; percentiles keep the values. The values, intervals
//! and names held are bounded in bytes; past the bound a value is dropped
//! and counted.

use super::aggregation::Method;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;

/// Bytes counted for an interval and for a metric beside their values.
const INTERVAL_BYTES: usize = 96;
const METRIC_BYTES: usize = 160;

/// What one interval holds.
#[derive(Debug)]
enum Values {
    /// Python's `sum` adding left to right, with the count, least and most.
    Running {
        sum: f64,
        n: u64,
        min: f64,
        max: f64,
    },
    Kept(Vec<f64>),
}

#[derive(Debug)]
struct Interval {
    values: Values,
    /// Got a value since the last computation.
    active: bool,
}

impl Interval {
    fn new(method: Method) -> Interval {
        Interval {
            values: match method {
                Method::Percentile(_) => Values::Kept(Vec::new()),
                _ => Values::Running {
                    sum: 0.0,
                    n: 0,
                    min: f64::INFINITY,
                    max: f64::NEG_INFINITY,
                },
            },
            active: true,
        }
    }

    fn len(&self) -> u64 {
        match &self.values {
            Values::Running { n, .. } => *n,
            Values::Kept(v) => v.len() as u64,
        }
    }

    fn input(&mut self, value: f64) {
        self.active = true;
        match &mut self.values {
            Values::Running { sum, n, min, max } => {
                *sum += value;
                *n += 1;
                // Python's min and max keep the first of equals.
                if value < *min {
                    *min = value;
                }
                if value > *max {
                    *max = value;
                }
            }
            Values::Kept(v) => v.push(value),
        }
    }

    /// The aggregate, as carbon's method computes it.
    fn value(&self, method: Method) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        match (&self.values, method) {
            (Values::Running { sum, .. }, Method::Sum) => Some(*sum),
            (Values::Running { sum, n, .. }, Method::Avg) => Some(*sum / *n as f64),
            (Values::Running { min, .. }, Method::Min) => Some(*min),
            (Values::Running { max, .. }, Method::Max) => Some(*max),
            (Values::Running { n, .. }, Method::Count) => Some(*n as f64),
            (Values::Kept(v), Method::Percentile(factor)) => {
                let mut v = v.clone();
                v.sort_by(f64::total_cmp);
                let rank = factor * (v.len() - 1) as f64;
                let (left, right) = (rank.floor(), rank.ceil());
                let (l, r) = (v[left as usize], v[right as usize]);
                Some(if left == right {
                    l
                } else {
                    l * (right - rank) + r * (rank - left)
                })
            }
            _ => None,
        }
    }
}

/// One output metric's buffer.
#[derive(Debug)]
struct MetricBuffer {
    frequency: u64,
    method: Method,
    /// Seconds between computations, and the next one (Unix seconds).
    every: f64,
    next: f64,
    /// The interval the last value fell in, kept out of `intervals`: most
    /// values fall in the same one as the value before, and find it here
    /// without a search (it goes back to `intervals` when computing).
    last: Option<(i64, Interval)>,
    /// The other intervals.
    intervals: BTreeMap<i64, Interval>,
}

impl MetricBuffer {
    /// Makes the interval `key` the last one, if there is one.
    fn make_last(&mut self, key: i64) {
        if matches!(&self.last, Some((k, _)) if *k == key) {
            return;
        }
        if let Some((k, i)) = self.last.take() {
            self.intervals.insert(k, i);
        }
        self.last = self.intervals.remove(&key).map(|i| (key, i));
    }
}

/// The bytes a value takes in an interval of `method`: percentiles keep
/// every value, the others a running one (counted with the interval).
fn kept_bytes(method: Method) -> usize {
    match method {
        Method::Percentile(_) => 8,
        _ => 0,
    }
}

/// carbon's interval of a timestamp: `timestamp - (timestamp % frequency)`
/// (timestamps are never negative here); in integers when the timestamp is
/// whole, as most are, which gives the same.
fn interval(ts: f64, frequency: u64) -> i64 {
    if ts.fract() == 0.0 && ts < 9.0e15 {
        let t = ts as i64;
        t - t % frequency as i64
    } else {
        (ts - ts % frequency as f64) as i64
    }
}

/// Where a route last found its output metric's buffer: the buffer's slot
/// and the slot's generation then (a slot freed and reused has another).
#[derive(Debug, Clone, Copy)]
pub struct Hint {
    slot: usize,
    generation: u64,
}

impl Default for Hint {
    /// No slot yet.
    fn default() -> Hint {
        Hint {
            slot: usize::MAX,
            generation: 0,
        }
    }
}

#[derive(Debug)]
struct Slot {
    name: Arc<str>,
    generation: u64,
    buffer: Option<MetricBuffer>,
}

/// Every output metric's buffer, with the counts carbon reports. Buffers
/// live in slots that routes keep a [`Hint`] to, so a value finds its
/// buffer without hashing the name again.
#[derive(Debug)]
pub struct Buffers {
    index: HashMap<Arc<str>, usize, Hasher>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    bytes: usize,
    pub max_bytes: usize,
    pub max_intervals: u64,
    /// Seconds between computations when shorter than a rule's frequency (0: none).
    pub write_back: u64,
    /// Points computed (carbon's aggregateDatapointsSent), since last taken.
    pub sent: u64,
    /// Values dropped at the byte bound, since last taken.
    pub dropped: u64,
}

impl Buffers {
    pub fn new(max_bytes: usize, max_intervals: u64, write_back: u64) -> Buffers {
        Buffers {
            index: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            bytes: 0,
            max_bytes,
            max_intervals,
            write_back,
            sent: 0,
            dropped: 0,
        }
    }

    /// The slot of `metric`'s buffer, if it has one: `hint`'s when still
    /// good, else looked up (and `hint` set).
    fn find(&self, metric: &Arc<str>, hint: &mut Hint) -> Option<usize> {
        if let Some(s) = self.slots.get(hint.slot) {
            if s.generation == hint.generation && s.buffer.is_some() {
                return Some(hint.slot);
            }
        }
        let slot = *self.index.get(metric)?;
        *hint = Hint {
            slot,
            generation: self.slots[slot].generation,
        };
        Some(slot)
    }

    /// Takes `value` of time `ts` for `metric`, whose buffer a rule of
    /// `frequency` and `method` configures when it has none (as carbon's,
    /// the first rule to make it). False when dropped at the byte bound.
    #[allow(clippy::too_many_arguments)]
    pub fn input(
        &mut self,
        metric: &Arc<str>,
        hint: &mut Hint,
        frequency: u64,
        method: Method,
        ts: f64,
        value: f64,
        now: f64,
    ) -> bool {
        let max = self.max_bytes;
        let over = move |bytes: usize, more: usize| max > 0 && bytes + more > max;
        let interval = |f: u64| interval(ts, f);
        if let Some(slot) = self.find(metric, hint) {
            let Some(b) = self.slots[slot].buffer.as_mut() else {
                return false;
            };
            let method = b.method;
            let key = interval(b.frequency);
            b.make_last(key);
            let more = match &b.last {
                Some((_, i)) => match i.values {
                    Values::Kept(_) => 8,
                    Values::Running { .. } => 0,
                },
                None => INTERVAL_BYTES + kept_bytes(method),
            };
            if more > 0 && over(self.bytes, more) {
                self.dropped += 1;
                return false;
            }
            self.bytes += more;
            b.last
                .get_or_insert_with(|| (key, Interval::new(method)))
                .1
                .input(value);
            return true;
        }
        let more = METRIC_BYTES + metric.len() + INTERVAL_BYTES + kept_bytes(method);
        if over(self.bytes, more) {
            self.dropped += 1;
            return false;
        }
        self.bytes += more;
        let every = match self.write_back {
            0 => frequency,
            w => w.min(frequency),
        } as f64;
        let mut first = Interval::new(method);
        first.input(value);
        let buffer = MetricBuffer {
            frequency,
            method,
            every,
            next: now + every,
            last: Some((interval(frequency), first)),
            intervals: BTreeMap::new(),
        };
        let slot = match self.free.pop() {
            Some(i) => {
                let s = &mut self.slots[i];
                s.name = metric.clone();
                s.buffer = Some(buffer);
                i
            }
            None => {
                self.slots.push(Slot {
                    name: metric.clone(),
                    generation: 0,
                    buffer: Some(buffer),
                });
                self.slots.len() - 1
            }
        };
        self.index.insert(metric.clone(), slot);
        *hint = Hint {
            slot,
            generation: self.slots[slot].generation,
        };
        true
    }

    /// Computes every metric whose time has come by `now`, into `out` as
    /// `(name, interval, value)`.
    pub fn compute_due(&mut self, now: f64, out: &mut Vec<(Arc<str>, f64, f64)>) {
        self.compute(now, false, out);
    }

    /// Computes every active interval of every metric now (at shutdown),
    /// whatever their time.
    pub fn compute_all(&mut self, now: f64, out: &mut Vec<(Arc<str>, f64, f64)>) {
        self.compute(now, true, out);
    }

    fn compute(&mut self, now: f64, all: bool, out: &mut Vec<(Arc<str>, f64, f64)>) {
        let whole = now.floor() as i64;
        let max_intervals = self.max_intervals as i64;
        let mut freed = 0;
        let mut sent = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(b) = slot.buffer.as_mut() else {
                continue;
            };
            if !all && b.next > now {
                continue;
            }
            // A computation missed (a busy or stopped clock) is not run twice.
            b.next += b.every;
            if b.next <= now {
                b.next = now + b.every;
            }
            let f = b.frequency as i64;
            let threshold = (whole - whole.rem_euclid(f)) - max_intervals * f;
            let method = b.method;
            let name = &slot.name;
            if let Some((k, i)) = b.last.take() {
                b.intervals.insert(k, i);
            }
            b.intervals.retain(|&key, i| {
                if i.active {
                    i.active = false;
                    if let Some(v) = i.value(method) {
                        sent += 1;
                        // A NaN (inf - inf) is never stored, as carbon drops it.
                        if !v.is_nan() {
                            out.push((name.clone(), key as f64, v));
                        }
                    }
                }
                let keep = key >= threshold;
                if !keep {
                    freed += INTERVAL_BYTES + 8 * i.values_kept();
                }
                keep
            });
            if b.intervals.is_empty() {
                // The slot goes back, and every hint to it with it.
                freed += METRIC_BYTES + slot.name.len();
                slot.buffer = None;
                slot.generation += 1;
                self.index.remove(&slot.name);
                slot.name = Arc::from("");
                self.free.push(i);
            }
        }
        self.bytes = self.bytes.saturating_sub(freed);
        self.sent += sent;
    }

    /// carbon's allocatedBuffers and bufferedDatapoints.
    pub fn sizes(&self) -> (usize, u64) {
        let points = self
            .slots
            .iter()
            .filter_map(|s| s.buffer.as_ref())
            .flat_map(|b| b.intervals.values().chain(b.last.as_ref().map(|(_, i)| i)))
            .map(Interval::len)
            .sum();
        (self.index.len(), points)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Interval {
    fn values_kept(&self) -> usize {
        match &self.values {
            Values::Kept(v) => v.len(),
            Values::Running { .. } => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn methods_compute_as_carbons() {
        let v = [3.0, -1.5, 10.0, 2.5, 7.25];
        let expect = [
            (Method::Sum, 21.25),
            (Method::Avg, 4.25),
            (Method::Min, -1.5),
            (Method::Max, 10.0),
            (Method::Count, 5.0),
            // sorted -1.5 2.5 3 7.25 10; rank 0.5 * 4 = 2
            (Method::Percentile(0.5), 3.0),
            // rank 0.9 * 4 = 3.6: 7.25 * 0.4 + 10 * 0.6
            (
                Method::Percentile(0.9),
                7.25 * (4.0 - 3.6) + 10.0 * (3.6 - 3.0),
            ),
        ];
        for (m, want) in expect {
            let mut b = Buffers::new(0, 5, 0);
            for x in v {
                assert!(b.input(
                    &name("out"),
                    &mut Hint::default(),
                    60,
                    m,
                    1_000_020.0,
                    x,
                    1_000_030.0
                ));
            }
            let mut out = Vec::new();
            b.compute_due(1_000_090.0, &mut out);
            assert_eq!(out, vec![(name("out"), 1_000_020.0, want)], "{m:?}");
        }
    }

    #[test]
    fn intervals_are_computed_again_when_late_values_come_then_forgotten() {
        let mut b = Buffers::new(0, 2, 0);
        let (m, mut h) = (name("a"), Hint::default());
        b.input(&m, &mut h, 10, Method::Sum, 1005.0, 1.0, 1006.0);
        b.input(&m, &mut h, 10, Method::Sum, 1013.0, 2.0, 1006.0);
        let mut out = Vec::new();
        b.compute_due(1015.0, &mut out);
        assert!(out.is_empty(), "not due before 10 s");
        b.compute_due(1016.0, &mut out);
        assert_eq!(
            out,
            vec![(m.clone(), 1000.0, 1.0), (m.clone(), 1010.0, 2.0)]
        );
        // A late value: its interval computed again from all its values.
        b.input(&m, &mut h, 10, Method::Sum, 1001.0, 5.0, 1020.0);
        out.clear();
        b.compute_due(1026.0, &mut out);
        assert_eq!(out, vec![(m.clone(), 1000.0, 6.0)]);
        assert_eq!(b.sizes(), (1, 3));
        // Past 2 intervals of 10 s: forgotten, and the metric with them.
        out.clear();
        b.compute_due(1046.0, &mut out);
        assert!(out.is_empty());
        assert_eq!(b.sizes(), (0, 0));
        assert_eq!(b.bytes(), 0);
        assert_eq!(b.sent, 3);
    }

    #[test]
    fn hints_follow_slots_that_are_freed_and_reused() {
        let mut b = Buffers::new(0, 0, 0);
        let (x, y) = (name("x"), name("y"));
        let (mut hx, mut hy) = (Hint::default(), Hint::default());
        b.input(&x, &mut hx, 10, Method::Sum, 100.0, 1.0, 100.0);
        b.input(&y, &mut hy, 10, Method::Sum, 100.0, 2.0, 100.0);
        let mut out = Vec::new();
        // x goes (its interval is past 0 intervals back), y with it.
        b.compute_due(200.0, &mut out);
        assert_eq!(b.sizes(), (0, 0));
        // z and y come back first and take the freed slots: the old hints
        // of x and y must not lead there.
        let z = name("z");
        b.input(&z, &mut Hint::default(), 10, Method::Sum, 300.0, 3.0, 300.0);
        b.input(&y, &mut Hint::default(), 10, Method::Sum, 300.0, 5.0, 300.0);
        b.input(&x, &mut hx, 10, Method::Sum, 300.0, 7.0, 300.0);
        b.input(&y, &mut hy, 10, Method::Sum, 300.0, 1.0, 300.0);
        out.clear();
        b.compute_all(300.0, &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(out, vec![(x, 300.0, 7.0), (y, 300.0, 6.0), (z, 300.0, 3.0)]);
    }

    #[test]
    fn values_going_back_and_forth_between_intervals_each_find_their_own() {
        let mut b = Buffers::new(0, 5, 0);
        let (m, mut h) = (name("a"), Hint::default());
        for (ts, v) in [(1000.0, 1.0), (1010.0, 10.0), (1001.0, 3.0), (1011.0, 30.0)] {
            assert!(b.input(&m, &mut h, 10, Method::Percentile(0.5), ts, v, 1000.0));
        }
        assert!(b.input(&m, &mut h, 10, Method::Percentile(0.5), 1002.0, 2.0, 1000.0));
        assert_eq!(b.sizes(), (1, 5));
        assert_eq!(b.bytes(), METRIC_BYTES + 1 + 2 * INTERVAL_BYTES + 5 * 8);
        let mut out = Vec::new();
        b.compute_all(1020.0, &mut out);
        assert_eq!(
            out,
            vec![(m.clone(), 1000.0, 2.0), (m.clone(), 1010.0, 20.0)]
        );
        // Computed, the intervals stay until they are old; a value finds its.
        assert!(b.input(
            &m,
            &mut h,
            10,
            Method::Percentile(0.5),
            1013.0,
            50.0,
            1020.0
        ));
        out.clear();
        b.compute_all(1021.0, &mut out);
        assert_eq!(out, vec![(m, 1010.0, 30.0)]);
    }

    #[test]
    fn the_first_rule_configures_and_the_bound_drops_and_counts() {
        let mut b = Buffers::new(METRIC_BYTES + 1 + INTERVAL_BYTES + 24, 5, 0);
        let (m, mut h) = (name("p"), Hint::default());
        assert!(b.input(&m, &mut h, 60, Method::Percentile(0.5), 60.0, 1.0, 61.0));
        assert!(
            b.input(&m, &mut h, 10, Method::Sum, 61.0, 3.0, 61.0),
            "configured by the first"
        );
        assert!(b.input(&m, &mut h, 10, Method::Sum, 62.0, 2.0, 61.0));
        assert!(
            !b.input(&m, &mut h, 10, Method::Sum, 63.0, 9.0, 61.0),
            "bound"
        );
        assert!(
            !b.input(
                &name("q"),
                &mut Hint::default(),
                10,
                Method::Sum,
                63.0,
                9.0,
                61.0
            ),
            "bound"
        );
        assert_eq!(b.dropped, 2);
        let mut out = Vec::new();
        b.compute_all(62.0, &mut out);
        assert_eq!(out, vec![(m, 60.0, 2.0)]);
        // Freed, every byte charged comes back (percentiles' values too).
        b.compute_due(10_000.0, &mut out);
        assert_eq!((b.sizes(), b.bytes()), ((0, 0), 0));
    }
}
