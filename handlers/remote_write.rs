//! remote_write: samples into Prometheus, VictoriaMetrics, Thanos, Mimir
//! or any store that takes Prometheus remote_write 1.0.
//!
//! Samples are named as a scrape of the prometheus handler shows them
//! (node_exporter's families for the collectors that have them, mapping
//! rules or sanitised names for the rest), with `external_labels` added.
//! Each round takes up to `max_samples_per_send` x `max_shards` samples
//! from the queue, groups them into series and spreads the series over
//! `max_shards` shards by the hash of their labels: a series is always in
//! one shard, which sends its requests one after the other, so a series'
//! samples arrive in time order; the shards send at the same time.
//!
//! A 5xx or 429 answer, a timeout or a connection error is retried with
//! exponential backoff (the round waits; the queue holds what comes
//! meanwhile, bounded by `max_queue`); a 4xx answer drops that request's
//! samples, counts them, and is logged once.

use super::{Backoff, Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::prometheus::mapping::Mapper;
use crate::prometheus::naming::Namer;
use crate::prometheus::remote::{self, Grouped};
use crate::sample::Sample;
use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// `[handlers.remote_write]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// The receiver's endpoint, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: String,
    /// Seconds allowed for each request.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub timeout: f64,
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// Requests in flight at once (series spread over them by hash).
    pub max_shards: usize,
    /// Most samples held while the receiver is unreachable; beyond it the oldest are dropped.
    pub max_queue: usize,
    /// Longest wait between retries, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
    /// Labels added to every series that has none of that name (`instance`, `job`, ...).
    pub external_labels: BTreeMap<String, String>,
    /// Extra request headers (e.g. `X-Scope-OrgID` for Mimir and Cortex).
    pub headers: BTreeMap<String, String>,
    /// HTTP basic authentication; "" for none.
    pub basic_auth_username: String,
    pub basic_auth_password: String,
    /// `Authorization: Bearer <token>`; "" for none.
    pub bearer_token: String,
    /// A PEM file of CA certificates to trust beside the system's; "" for none.
    pub ca_file: String,
    /// graphite_exporter's mapping rules for the samples without a
    /// node_exporter family; "" for none.
    pub mapping_file: String,
    /// The mapping file's digest when the configuration was read: a
    /// reload (SIGHUP) restarts the handler when the file changed.
    #[serde(skip)]
    pub mapping_digest: u64,
    /// The agent's `<prefix>.<host>.`, left off names no rule maps (set
    /// from the configuration's path_prefix and hostname).
    #[serde(skip)]
    pub host_root: String,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            timeout: 30.0,
            max_samples_per_send: 2000,
            max_shards: 4,
            max_queue: 100_000,
            max_backoff: 30.0,
            external_labels: BTreeMap::new(),
            headers: BTreeMap::new(),
            basic_auth_username: String::new(),
            basic_auth_password: String::new(),
            bearer_token: String::new(),
            ca_file: String::new(),
            mapping_file: String::new(),
            mapping_digest: 0,
            host_root: String::new(),
        }
    }
}

impl RemoteWriteConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        super::check_http_url(key, &self.url)?;
        super::check_seconds(
            key,
            &[("timeout", self.timeout), ("max_backoff", self.max_backoff)],
        )?;
        if self.max_samples_per_send == 0 || self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_samples_per_send"),
                "max_samples_per_send and max_queue must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.max_shards) {
            return Err(ConfigError::new(
                format!("{key}.max_shards"),
                "must be 1 to 64",
            ));
        }
        for k in self.external_labels.keys() {
            if !crate::prometheus::valid_label_name(k) || k.starts_with("__") {
                return Err(ConfigError::new(
                    format!("{key}.external_labels"),
                    format!("{k:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not __)"),
                ));
            }
        }
        if !self.bearer_token.is_empty() && !self.basic_auth_username.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.bearer_token"),
                "set either bearer_token or basic_auth_username, not both",
            ));
        }
        self.client()
            .map_err(|e| ConfigError::new(key.to_string(), e))?;
        self.mapper(key)?;
        Ok(())
    }

    fn mapper(&self, key: &str) -> Result<Option<Mapper>, ConfigError> {
        Mapper::for_handler(key, &self.mapping_file)
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("headers: {k:?} is not a header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("headers.{k}: not a valid header value"))?;
            headers.insert(name, value);
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(self.timeout))
            .default_headers(headers)
            .user_agent(concat!("carbyne/", env!("CARGO_PKG_VERSION")));
        if !self.ca_file.is_empty() {
            let f = &self.ca_file;
            let pem = std::fs::read(f).map_err(|e| format!("ca_file: {f}: {e}"))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca_file: {f}: {e}"))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// What the shards of a round share.
struct Round<'a> {
    d: &'a Delivery,
    cfg: &'a RemoteWriteConfig,
    /// The URL as messages show it.
    shown: &'a str,
    client: &'a reqwest::Client,
    external: &'a [(String, String)],
    /// Samples the receiver refused (4xx).
    rejected: AtomicU64,
    /// A 4xx was logged already.
    said_4xx: &'a AtomicBool,
    /// What the deadline left unsent, as samples again (for the queue).
    unsent: std::sync::Mutex<Vec<Sample>>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl Round<'_> {
    fn note(&self, msg: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
    }

    async fn post(&self, body: Bytes) -> Result<reqwest::Response, reqwest::Error> {
        let mut req = self
            .client
            .post(&self.cfg.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if !self.cfg.basic_auth_username.is_empty() {
            req = req.basic_auth(
                &self.cfg.basic_auth_username,
                Some(&self.cfg.basic_auth_password),
            );
        } else if !self.cfg.bearer_token.is_empty() {
            req = req.bearer_auth(&self.cfg.bearer_token);
        }
        req.send().await
    }

    /// Sends one shard's series, request after request, each retried
    /// until taken, refused, or the deadline passes.
    async fn shard(&self, series: Vec<Grouped>) {
        let mut backoff = Backoff::new(Duration::from_secs_f64(self.cfg.max_backoff));
        let reqs = remote::plan(&series, self.cfg.max_samples_per_send);
        let mut raw = Vec::new();
        for (r, (parts, n)) in reqs.iter().enumerate() {
            let n = *n;
            raw.clear();
            remote::encode_protobuf(&series, parts, self.external, &mut raw);
            let body = match remote::compress(&raw) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    self.d.failed(&format!("snappy: {e}"));
                    self.rejected.fetch_add(n as u64, Ordering::Relaxed);
                    continue;
                }
            };
            loop {
                if self.d.past_deadline() {
                    // This request and the ones after it stay unsent: back
                    // to samples, so the queue keeps them.
                    let mut unsent = self.unsent.lock().unwrap_or_else(|p| p.into_inner());
                    for (parts, _) in &reqs[r..] {
                        unsent.extend(remote::samples(&series, parts));
                    }
                    return;
                }
                match self.post(body.clone()).await {
                    Ok(resp) if resp.status().is_success() => {
                        self.d.sent(n);
                        backoff.reset();
                        break;
                    }
                    Ok(resp)
                        if resp.status().is_client_error()
                            && resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                    {
                        // Refused as it is: sending it again cannot help.
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        let excerpt: String = text.chars().take(200).collect();
                        self.d
                            .queue
                            .stats
                            .dropped
                            .fetch_add(n as u64, Ordering::Relaxed);
                        self.rejected.fetch_add(n as u64, Ordering::Relaxed);
                        let msg = format!("{status}: {}", excerpt.trim());
                        if !self.said_4xx.swap(true, Ordering::Relaxed) {
                            log::warn!(
                                "{} {}: {msg}; {n} samples dropped (said once; counted in dropped)",
                                self.d.name,
                                self.shown
                            );
                        }
                        self.d.queue.stats.errors.fetch_add(1, Ordering::Relaxed);
                        self.note(msg);
                        break;
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        self.d.failed(&format!("{}: {status}", self.shown));
                        self.note(status.to_string());
                        self.d.pause_shared(backoff.next_wait()).await;
                    }
                    Err(e) => {
                        let msg = super::brief_http(e);
                        self.d.failed(&format!("{}: {msg}", self.shown));
                        self.note(msg);
                        self.d.pause_shared(backoff.next_wait()).await;
                    }
                }
            }
        }
    }
}

/// The handler task.
/// The labels added to every series: `external_labels`, and `instance`
/// set to the agent's hostname unless they name one (so that two hosts'
/// series never meet under one name in the receiver).
pub fn external_labels(cfg: &RemoteWriteConfig, host: &str) -> Vec<(String, String)> {
    let mut labels = cfg.external_labels.clone();
    if !host.is_empty() {
        labels
            .entry("instance".into())
            .or_insert_with(|| host.to_string());
    }
    labels.into_iter().collect()
}

/// The handler task; `host` is the agent's hostname (the default `instance`).
pub async fn run(
    mut d: Delivery,
    cfg: RemoteWriteConfig,
    host: String,
) -> Result<(), DeliveryError> {
    let key = format!("handlers.{}", d.name);
    let shown = super::shown_url(&cfg.url);
    let client = cfg
        .client()
        .map_err(|e| DeliveryError(format!("{} {}: {e}", d.name, shown)))?;
    // Checked with the configuration; a file changed since is said here.
    let mapper = cfg.mapper(&key).unwrap_or_else(|e| {
        log::error!("{e}; samples keep their sanitised names");
        None
    });
    let mut namer = Namer::new(mapper).with_host_root(&cfg.host_root);
    let external = external_labels(&cfg, &host);
    let said_4xx = AtomicBool::new(false);
    let mut rejected = 0u64;
    let mut last_error: Option<String> = None;
    let per_round = cfg.max_samples_per_send.saturating_mul(cfg.max_shards);
    loop {
        if let Some(done) = d.ready(&shown, last_error.as_deref(), rejected).await {
            return done;
        }
        let batch = d.queue.take(per_round);
        let named = batch.into_iter().filter_map(|s| namer.name(s)).collect();
        let mut shards: Vec<Vec<Grouped>> = vec![Vec::new(); cfg.max_shards];
        for g in remote::group(named) {
            shards[(g.hash % cfg.max_shards as u64) as usize].push(g);
        }
        let round = Round {
            d: &d,
            cfg: &cfg,
            shown: &shown,
            client: &client,
            external: &external,
            rejected: AtomicU64::new(0),
            said_4xx: &said_4xx,
            unsent: std::sync::Mutex::new(Vec::new()),
            last_error: std::sync::Mutex::new(None),
        };
        futures_util::future::join_all(
            shards
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| round.shard(s)),
        )
        .await;
        rejected += round.rejected.load(Ordering::Relaxed);
        if let Some(e) = round
            .last_error
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
        {
            last_error = Some(e);
        }
        let unsent = round.unsent.into_inner().unwrap_or_else(|p| p.into_inner());
        if unsent.is_empty() {
            // Every request of the round was taken or refused for good.
            d.settle();
        } else {
            // Kept, ahead of the rest: a handler taking over (a reload)
            // sends them first, in order.
            let n = unsent.len();
            d.queue.put_back(unsent);
            return Err(DeliveryError(format!(
                "{} {}: {} ({} samples not delivered)",
                d.name,
                shown,
                last_error.as_deref().unwrap_or("not delivered in time"),
                n.max(d.queue.len())
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostname_is_the_default_instance() {
        let mut cfg = RemoteWriteConfig::default();
        assert_eq!(
            external_labels(&cfg, "web01"),
            [("instance".to_string(), "web01".to_string())]
        );
        assert!(external_labels(&cfg, "").is_empty());
        cfg.external_labels = [
            ("instance".to_string(), "web01:9100".to_string()),
            ("job".to_string(), "node".to_string()),
        ]
        .into();
        assert_eq!(
            external_labels(&cfg, "web01"),
            [
                ("instance".to_string(), "web01:9100".to_string()),
                ("job".to_string(), "node".to_string())
            ]
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        let ok = RemoteWriteConfig {
            url: "http://127.0.0.1:9090/api/v1/write".into(),
            ..Default::default()
        };
        assert!(ok.validate("handlers.rw").is_ok());
        let cases: Vec<(RemoteWriteConfig, &str)> = vec![
            (
                RemoteWriteConfig {
                    url: "ftp://x/".into(),
                    ..ok.clone()
                },
                "handlers.rw.url",
            ),
            (
                RemoteWriteConfig {
                    max_shards: 0,
                    ..ok.clone()
                },
                "handlers.rw.max_shards",
            ),
            (
                RemoteWriteConfig {
                    max_samples_per_send: 0,
                    ..ok.clone()
                },
                "handlers.rw.max_samples_per_send",
            ),
            (
                RemoteWriteConfig {
                    external_labels: [("__x".to_string(), "y".to_string())].into(),
                    ..ok.clone()
                },
                "handlers.rw.external_labels",
            ),
            (
                RemoteWriteConfig {
                    bearer_token: "t".into(),
                    basic_auth_username: "u".into(),
                    ..ok.clone()
                },
                "handlers.rw.bearer_token",
            ),
            (
                RemoteWriteConfig {
                    ca_file: "/nonexistent.pem".into(),
                    ..ok.clone()
                },
                "ca_file",
            ),
            (
                RemoteWriteConfig {
                    headers: [("Bad Header".to_string(), "x".to_string())].into(),
                    ..ok.clone()
                },
                "headers",
            ),
            (
                RemoteWriteConfig {
                    mapping_file: "/nonexistent.yml".into(),
                    ..ok.clone()
                },
                "handlers.rw.mapping_file",
            ),
        ];
        for (cfg, want) in cases {
            let e = cfg.validate("handlers.rw").expect_err(want).to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
