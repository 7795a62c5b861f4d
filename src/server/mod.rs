//! Receivers for single-box setups: `carbyne server` runs what `[server.*]`
//! configures.

pub mod carbon;
pub mod js;
pub mod statsd;

use serde::{Deserialize, Serialize};

/// `[server.*]`: the receivers `carbyne server` runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The statsd server (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statsd: Option<statsd::StatsdServerConfig>,
    /// The carbon receiver (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carbon: Option<carbon::CarbonServerConfig>,
}

/// Lets a log line through at most once a second; the lines held back in
/// between are counted and said with the next one that goes through.
#[derive(Debug, Default)]
pub struct Throttle {
    last: std::sync::Mutex<Option<std::time::Instant>>,
    held: std::sync::atomic::AtomicU64,
}

impl Throttle {
    pub const fn new() -> Self {
        Throttle {
            last: std::sync::Mutex::new(None),
            held: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when this one may be
    /// logged, `None` (and counted) when it is held back.
    pub fn ready(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            *last = Some(std::time::Instant::now());
            Some(self.held.swap(0, Ordering::Relaxed))
        } else {
            self.held.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// ` (N more since ...)` for a throttled log line, or nothing.
pub fn held_note(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more since the last such message)")
    }
}
