//! Wall-clock-aligned ticks: when each interval's next run is due.

use super::*;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Wall-clock-aligned ticks that never repeat a slot, even when a timer
/// fires a little before the wall-clock time it was set for.
pub struct Ticker {
    interval: Duration,
    last: Option<i64>,
}

impl Ticker {
    pub fn new(interval: Duration) -> Self {
        Ticker {
            interval,
            last: None,
        }
    }

    /// A ticker whose next slot is the one after `last`, even if that slot
    /// is already past: it runs at once (a taken-over group catches up).
    pub fn resume(interval: Duration, last: i64) -> Self {
        Ticker {
            interval,
            last: Some(last),
        }
    }

    /// The next slot after the last one, and how long until it.
    pub fn next(&mut self, now: f64) -> (i64, Duration) {
        let (natural, _) = next_tick(now, self.interval);
        let step = self.interval.as_secs().max(1) as i64;
        // The slot after the last one; a missed slot is caught up at once.
        // After a clock jump (either way) or a long stall, start afresh.
        let ts = match self.last {
            Some(last) if (natural - 10 * step..=natural + step).contains(&(last + step)) => {
                last + step
            }
            _ => natural,
        };
        self.last = Some(ts);
        (ts, Duration::from_secs_f64((ts as f64 - now).max(0.0)))
    }
}
