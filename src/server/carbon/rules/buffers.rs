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
    intervals: BTreeMap<i64, Interval>,
}

/// Every output metric's buffer, with the counts carbon reports.
#[derive(Debug)]
pub struct Buffers {
    map: HashMap<Arc<str>, MetricBuffer>,
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
            map: HashMap::new(),
            bytes: 0,
            max_bytes,
            max_intervals,
            write_back,
            sent: 0,
            dropped: 0,
        }
    }

    /// Takes `value` of time `ts` for `metric`, whose buffer a rule of
    /// `frequency` and `method` configures when it has none (as carbon's,
    /// the first rule to make it). False when dropped at the byte bound.
    pub fn input(
        &mut self,
        metric: &Arc<str>,
        frequency: u64,
        method: Method,
        ts: f64,
        value: f64,
        now: f64,
    ) -> bool {
        let grows = |b: Option<&MetricBuffer>, key: i64| match b {
            None => METRIC_BYTES + metric.len() + INTERVAL_BYTES,
            Some(b) => match b.intervals.get(&key) {
                None => INTERVAL_BYTES,
                Some(i) => match i.values {
                    Values::Kept(_) => 8,
                    Values::Running { .. } => 0,
                },
            },
        };
        let freq = self.map.get(metric).map_or(frequency, |b| b.frequency) as f64;
        // carbon: timestamp - (timestamp % frequency); timestamps are >= 0.
        let key = (ts - ts % freq) as i64;
        let more = grows(self.map.get(metric), key);
        if more > 0 && self.max_bytes > 0 && self.bytes + more > self.max_bytes {
            self.dropped += 1;
            return false;
        }
        self.bytes += more;
        let every = match self.write_back {
            0 => frequency,
            w => w.min(frequency),
        } as f64;
        let b = self
            .map
            .entry(metric.clone())
            .or_insert_with(|| MetricBuffer {
                frequency,
                method,
                every,
                next: now + every,
                intervals: BTreeMap::new(),
            });
        let method = b.method;
        b.intervals
            .entry(key)
            .or_insert_with(|| Interval::new(method))
            .input(value);
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
        self.map.retain(|name, b| {
            if !all && b.next > now {
                return true;
            }
            // A computation missed (a busy or stopped clock) is not run twice.
            b.next += b.every;
            if b.next <= now {
                b.next = now + b.every;
            }
            let f = b.frequency as i64;
            let threshold = (whole - whole.rem_euclid(f)) - max_intervals * f;
            let method = b.method;
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
            let keep = !b.intervals.is_empty();
            if !keep {
                freed += METRIC_BYTES + name.len();
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
        self.sent += sent;
    }

    /// carbon's allocatedBuffers and bufferedDatapoints.
    pub fn sizes(&self) -> (usize, u64) {
        let points = self
            .map
            .values()
            .flat_map(|b| b.intervals.values())
            .map(Interval::len)
            .sum();
        (self.map.len(), points)
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
                assert!(b.input(&name("out"), 60, m, 1_000_020.0, x, 1_000_030.0));
            }
            let mut out = Vec::new();
            b.compute_due(1_000_090.0, &mut out);
            assert_eq!(out, vec![(name("out"), 1_000_020.0, want)], "{m:?}");
        }
    }

    #[test]
    fn intervals_are_computed_again_when_late_values_come_then_forgotten() {
        let mut b = Buffers::new(0, 2, 0);
        let m = name("a");
        b.input(&m, 10, Method::Sum, 1005.0, 1.0, 1006.0);
        b.input(&m, 10, Method::Sum, 1013.0, 2.0, 1006.0);
        let mut out = Vec::new();
        b.compute_due(1015.0, &mut out);
        assert!(out.is_empty(), "not due before 10 s");
        b.compute_due(1016.0, &mut out);
        assert_eq!(
            out,
            vec![(m.clone(), 1000.0, 1.0), (m.clone(), 1010.0, 2.0)]
        );
        // A late value: its interval computed again from all its values.
        b.input(&m, 10, Method::Sum, 1001.0, 5.0, 1020.0);
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
    fn the_first_rule_configures_and_the_bound_drops_and_counts() {
        let mut b = Buffers::new(METRIC_BYTES + 1 + INTERVAL_BYTES + 16, 5, 0);
        let m = name("p");
        assert!(b.input(&m, 60, Method::Percentile(0.5), 60.0, 1.0, 61.0));
        assert!(
            b.input(&m, 10, Method::Sum, 61.0, 3.0, 61.0),
            "configured by the first"
        );
        assert!(b.input(&m, 10, Method::Sum, 62.0, 2.0, 61.0));
        assert!(!b.input(&m, 10, Method::Sum, 63.0, 9.0, 61.0), "bound");
        assert!(
            !b.input(&name("q"), 10, Method::Sum, 63.0, 9.0, 61.0),
            "bound"
        );
        assert_eq!(b.dropped, 2);
        let mut out = Vec::new();
        b.compute_all(62.0, &mut out);
        assert_eq!(out, vec![(m, 60.0, 2.0)]);
    }
}
