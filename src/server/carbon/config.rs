//! `[server.carbon]`: the receiver's settings, carbon.conf's `[cache]`
//! keys in snake_case, and their checks.

use super::cache::Strategy;
use super::rules::{aggregation::AggregationRules, filters, rewrite::RewriteRules, Watched};
use super::{relay, schemas};
use crate::config::ConfigError;
use crate::whisper::Allocation;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[server.carbon]` options (carbon.conf's `[cache]` keys in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarbonServerConfig {
    /// Address of the line-protocol listeners (TCP, and UDP when `udp`).
    pub listen: String,
    /// Address of the pickle listener ("" for none).
    pub pickle_listen: String,
    /// Address of the cache query listener that graphite-web's carbonlink
    /// asks for points not written yet ("" for none; carbon's 7002).
    pub cache_query_listen: String,
    /// Also take lines over UDP on `listen`.
    pub udp: bool,
    /// Where the whisper files go (carbon's LOCAL_DATA_DIR).
    pub storage_dir: PathBuf,
    /// carbon's storage-schemas.conf; without it every name gets carbon's
    /// default, 60 s points for 7 days.
    pub schemas: Option<PathBuf>,
    /// carbon's storage-aggregation.conf; without it xFilesFactor 0.5, average.
    pub aggregation: Option<PathBuf>,
    /// carbon's whitelist.conf (its USE_WHITELIST): only names one of its
    /// expressions matches are kept, when it holds any.
    pub whitelist: Option<PathBuf>,
    /// carbon's blacklist.conf: names one of its expressions matches are dropped.
    pub blacklist: Option<PathBuf>,
    /// carbon's rewrite-rules.conf: `[pre]` renames received names before
    /// the aggregation rules, `[post]` the names passed on after them.
    pub rewrite_rules: Option<PathBuf>,
    /// carbon's aggregation-rules.conf, as carbon-aggregator applies it
    /// (the aggregated points are stored and relayed as received ones).
    pub aggregation_rules: Option<PathBuf>,
    /// carbon's FORWARD_ALL: pass on the received points too, not only the
    /// aggregated ones (a name that is one of its own outputs never is).
    pub forward_all: bool,
    /// carbon's MAX_AGGREGATION_INTERVALS: how many frequencies back an
    /// output metric keeps its intervals for late values.
    pub max_aggregation_intervals: u64,
    /// carbon's WRITE_BACK_FREQUENCY: seconds between computations of every
    /// output metric when shorter than its rule's frequency (0: each rule's).
    #[serde(deserialize_with = "crate::config::duration::whole_seconds")]
    pub write_back_frequency: u64,
    /// Bytes the aggregation buffers may hold; past it values are dropped
    /// and counted (0: unlimited).
    pub max_aggregation_bytes: usize,
    /// Points held in the cache before receivers wait (0: unlimited).
    pub max_cache_size: usize,
    /// Bytes (names and points) held in the cache before receivers wait
    /// (0: unlimited).
    pub max_cache_bytes: usize,
    /// Whisper updates per second across writers (0: unlimited; carbon: 500).
    pub max_updates_per_second: f64,
    /// New files per minute (0: unlimited); points of a metric that may not
    /// be created yet are dropped and counted, as carbon does.
    pub max_creates_per_minute: f64,
    /// Which metric a writer takes next: "sorted", "max" or "naive".
    pub cache_write_strategy: Strategy,
    /// Writer threads (each metric always goes to the same one).
    pub writers: usize,
    /// Whisper files each writer keeps open between updates (0: none),
    /// within the process's open file limit.
    pub open_files: usize,
    /// "sparse", "fallocate" or "zeroed" new files (carbon's WHISPER_SPARSE_CREATE...).
    pub create: String,
    /// Most TCP connections at once on each listener (line and pickle).
    pub max_connections: usize,
    /// Seconds a connection may stay silent before it is closed (0: never).
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub idle_timeout: f64,
    /// Bytes that the pickle messages being read and decoded may hold at
    /// once, across connections; past it, connections wait their turn.
    pub max_decode_bytes: usize,
    /// First segment of the receiver's own metrics (`carbon.agents.<host>-<instance>.*`).
    pub carbon_metric_prefix: String,
    /// Seconds between the receiver's own metrics (0: none).
    #[serde(deserialize_with = "crate::config::duration::whole_seconds")]
    pub carbon_metric_interval: u64,
    /// The `<instance>` of the own metrics' name.
    pub instance: String,
    /// Write whisper files; false with a relay makes a pure relay.
    pub store: bool,
    /// Forward points to other carbon daemons (off when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<relay::RelayConfig>,
}

impl Default for CarbonServerConfig {
    fn default() -> Self {
        CarbonServerConfig {
            listen: "127.0.0.1:2003".into(),
            pickle_listen: "127.0.0.1:2004".into(),
            cache_query_listen: "127.0.0.1:7002".into(),
            udp: true,
            storage_dir: "/var/lib/carbyne/whisper".into(),
            schemas: None,
            aggregation: None,
            whitelist: None,
            blacklist: None,
            rewrite_rules: None,
            aggregation_rules: None,
            forward_all: true,
            max_aggregation_intervals: 5,
            write_back_frequency: 0,
            max_aggregation_bytes: 256 << 20,
            max_cache_size: 10_000_000,
            max_cache_bytes: 1 << 30,
            max_updates_per_second: 0.0,
            max_creates_per_minute: 0.0,
            cache_write_strategy: Strategy::Sorted,
            writers: 1,
            open_files: 100_000,
            create: "zeroed".into(),
            max_connections: 1024,
            idle_timeout: 60.0,
            max_decode_bytes: 256 << 20,
            carbon_metric_prefix: "carbon".into(),
            carbon_metric_interval: 60,
            instance: "a".into(),
            store: true,
            relay: None,
        }
    }
}

impl CarbonServerConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (k, v, optional) in [
            ("listen", &self.listen, false),
            ("pickle_listen", &self.pickle_listen, true),
            ("cache_query_listen", &self.cache_query_listen, true),
        ] {
            let ok = (optional && v.is_empty())
                || v.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    format!("{v:?}: expected host:port"),
                ));
            }
        }
        if self.allocation().is_none() {
            return Err(ConfigError::new(
                format!("{key}.create"),
                format!(
                    "{:?}: expected \"zeroed\", \"sparse\" or \"fallocate\"",
                    self.create
                ),
            ));
        }
        // The files the receiver will read, read now: a bad one fails
        // `config check` and stops `carbyne server` before it listens.
        schemas::Rules::load(self.schemas.as_deref(), None)
            .map_err(|e| e.at_key(&format!("{key}.schemas")))?;
        schemas::Rules::load(None, self.aggregation.as_deref())
            .map_err(|e| e.at_key(&format!("{key}.aggregation")))?;
        for (k, path) in [
            ("whitelist", &self.whitelist),
            ("blacklist", &self.blacklist),
        ] {
            if let Some(p) = path {
                filters::RegexList::load(p).map_err(|e| e.at_key(&format!("{key}.{k}")))?;
            }
        }
        if let Some(p) = &self.rewrite_rules {
            Watched::open(p, RewriteRules::parse)
                .map_err(|e| e.at_key(&format!("{key}.rewrite_rules")))?;
        }
        if let Some(p) = &self.aggregation_rules {
            // carbon-aggregator does not start without its rules file.
            if !p.exists() {
                return Err(ConfigError::new(
                    format!("{key}.aggregation_rules"),
                    format!("{}: no such file", p.display()),
                ));
            }
            Watched::open(p, AggregationRules::parse)
                .map_err(|e| e.at_key(&format!("{key}.aggregation_rules")))?;
        }
        for (k, v, max) in [
            (
                "max_aggregation_intervals",
                self.max_aggregation_intervals,
                1_000_000,
            ),
            (
                "write_back_frequency",
                self.write_back_frequency,
                366 * 86_400,
            ),
        ] {
            if v > max {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    format!("{v}: at most {max}"),
                ));
            }
        }
        match &self.relay {
            Some(r) => r.validate(&format!("{key}.relay"))?,
            None if !self.store => {
                return Err(ConfigError::new(
                    format!("{key}.store"),
                    "store = false needs a [server.carbon.relay] to send points to",
                ))
            }
            None => {}
        }
        for (k, v) in [
            ("writers", self.writers),
            ("max_connections", self.max_connections),
            ("max_decode_bytes", self.max_decode_bytes),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("{key}.{k}"), "must be at least 1"));
            }
        }
        for (k, v) in [
            ("max_updates_per_second", self.max_updates_per_second),
            ("max_creates_per_minute", self.max_creates_per_minute),
            ("idle_timeout", self.idle_timeout),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    "must be a number, 0 for none",
                ));
            }
        }
        Ok(())
    }

    /// The settings the rule files take.
    pub(super) fn rules(&self) -> super::rules::Settings<'_> {
        super::rules::Settings {
            rewrite_rules: self.rewrite_rules.as_deref(),
            aggregation_rules: self.aggregation_rules.as_deref(),
            forward_all: self.forward_all,
            max_aggregation_intervals: self.max_aggregation_intervals,
            write_back_frequency: self.write_back_frequency,
            max_aggregation_bytes: self.max_aggregation_bytes,
        }
    }

    pub(super) fn allocation(&self) -> Option<Allocation> {
        match self.create.as_str() {
            "zeroed" => Some(Allocation::Zeroed),
            "sparse" => Some(Allocation::Sparse),
            "fallocate" => Some(Allocation::Fallocate),
            _ => None,
        }
    }
}
