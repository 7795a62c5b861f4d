//! A summary's sliding window: its observations in `age_buckets` slices of
//! `max_age`, each a DDSketch (quantiles within 1% of the value, in bounded
//! bins); the quantiles merge the slices younger than `max_age`.

use sketches_ddsketch::{Config as SketchConfig, DDSketch};
use std::collections::VecDeque;

/// A quantile is within this fraction of the true value.
const RELATIVE_ERROR: f64 = 0.01;
/// Bins per sketch (and per sign): 1% bins cover eighteen decades of values;
/// past them the lowest values merge (the high quantiles stay exact to 1%).
const SKETCH_BINS: u32 = 2048;

/// A summary's observations over its window, in slices: each slice's
/// sketch, from the oldest; the quantiles merge the slices younger than
/// the window.
#[derive(Clone)]
pub(super) struct Window {
    slice_ms: i64,
    slices: VecDeque<(i64, DDSketch)>,
    max_slices: usize,
}

impl Window {
    pub(super) fn new(max_age: std::time::Duration, age_buckets: u32) -> Self {
        let n = age_buckets.max(1);
        Window {
            slice_ms: ((max_age.as_millis() as i64) / i64::from(n)).max(1),
            slices: VecDeque::new(),
            max_slices: n as usize,
        }
    }

    /// Forgets the slices wholly older than the window at `now_ms`.
    fn rotate(&mut self, now_ms: i64) {
        let span = self.slice_ms * self.max_slices as i64;
        while self
            .slices
            .front()
            .is_some_and(|(start, _)| start + span <= now_ms)
        {
            self.slices.pop_front();
        }
    }

    pub(super) fn observe(&mut self, v: f64, now_ms: i64) {
        self.rotate(now_ms);
        let fresh = self
            .slices
            .back()
            .is_none_or(|(start, _)| now_ms >= start + self.slice_ms);
        if fresh {
            let cfg = SketchConfig::new(RELATIVE_ERROR, SKETCH_BINS, 1e-9);
            self.slices.push_back((now_ms, DDSketch::new(cfg)));
        }
        if let Some((_, s)) = self.slices.back_mut() {
            s.add(v);
        }
    }

    /// Each quantile's value over the window (NaN with no observation).
    pub(super) fn quantiles(&mut self, qs: &[f64], now_ms: i64) -> Vec<(f64, f64)> {
        self.rotate(now_ms);
        let mut slices = self.slices.iter().map(|(_, s)| s);
        let merged = slices.next().map(|first| {
            let mut m = first.clone();
            for s in slices {
                // Slices share one configuration: merging cannot fail.
                let _ = m.merge(s);
            }
            m
        });
        qs.iter()
            .map(|&q| {
                // Within the values seen: one value is its own quantiles.
                let v = merged
                    .as_ref()
                    .and_then(|m| {
                        let v = m.quantile(nearest_rank(q, m.count())).ok().flatten()?;
                        Some(v.clamp(m.min()?, m.max()?))
                    })
                    .unwrap_or(f64::NAN);
                (q, v)
            })
            .collect()
    }

    pub(super) fn bytes(&self) -> usize {
        self.slices.iter().map(|(_, s)| s.length() * 8 + 192).sum()
    }
}

/// The sketch's quantile argument that reads the value at the nearest
/// rank, `ceil(q * n)` of `n` (as the client library's summaries answer):
/// the sketch reads rank `floor(q' * (n - 1))`, which would put the 0.99
/// quantile of 10 values on the 9th, hiding the one slow outlier.
fn nearest_rank(q: f64, n: usize) -> f64 {
    if n < 2 || q <= 0.0 {
        return q;
    }
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    ((rank as f64 + 0.5) / (n - 1) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_read_at_the_nearest_rank() {
        let mut w = Window::new(std::time::Duration::from_secs(600), 5);
        for v in [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1000.0] {
            w.observe(v, 0);
        }
        let q = w.quantiles(&[0.0, 0.5, 0.9, 0.99, 1.0], 1);
        // Within the sketch's 1% (and a rounding).
        let near = |got: f64, want: f64| (got - want).abs() <= want * 0.0101;
        for ((_, got), want) in q.iter().zip([1.0, 5.0, 9.0, 1000.0, 1000.0]) {
            assert!(near(*got, want), "{q:?}");
        }
        let mut w = Window::new(std::time::Duration::from_secs(600), 5);
        for v in [5.0, 15.0, 25.0] {
            w.observe(v, 0);
        }
        let q = w.quantiles(&[0.5, 0.9, 0.99], 1);
        for ((_, got), want) in q.iter().zip([15.0, 25.0, 25.0]) {
            assert!(near(*got, want), "{q:?}");
        }
    }
}
