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
