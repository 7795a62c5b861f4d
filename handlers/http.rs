//! http: POSTs batches of samples to a URL, as JSON (Diamond's
//! HttpPostHandler shape, `{"metric":[{"path","value","timestamp","host"}]}`)
//! or as Graphite plaintext lines; optionally gzipped, with extra headers,
//! over http or https (rustls, the system's CA store, or `ca_file`).
//!
//! Connection errors, timeouts and 5xx answers are retried with exponential
//! backoff (the batch stays queued); a 4xx answer is not: the batch is
//! dropped, counted, and the status and the start of the body logged once.

use super::{Backoff, Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::sample::Sample;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Plain,
}

/// `[handlers.http]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where to POST (http:// or https://).
    pub url: String,
    /// `json` or `plain`.
    pub format: Format,
    /// Extra request headers, e.g. `{ Authorization = "Bearer ..." }`.
    pub headers: BTreeMap<String, String>,
    /// Gzip the body (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// Seconds allowed for each request.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub timeout: f64,
    /// Most samples per request.
    pub max_batch: usize,
    /// Most bytes of body per request (before gzip).
    pub max_batch_bytes: usize,
    /// A PEM file of CA certificates to trust beside the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Most samples held while the server is unreachable.
    pub max_queue: usize,
    /// Longest wait between retries, in seconds.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub max_backoff: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            url: String::new(),
            format: Format::Json,
            headers: BTreeMap::new(),
            gzip: false,
            timeout: 10.0,
            max_batch: 1000,
            max_batch_bytes: 1 << 20,
            ca_file: None,
            max_queue: 100_000,
            max_backoff: 30.0,
        }
    }
}

impl HttpConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        super::check_http_url(key, &self.url)?;
        for (name, value) in &self.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::new(
                    format!("{key}.headers"),
                    format!("{name:?} is not a header name"),
                )
            })?;
            reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                ConfigError::new(format!("{key}.headers.{name}"), "not a valid header value")
            })?;
        }
        if let Some(f) = &self.ca_file {
            let pem = std::fs::read(f)
                .map_err(|e| ConfigError::new(format!("{key}.ca_file"), format!("{f}: {e}")))?;
            reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ConfigError::new(format!("{key}.ca_file"), format!("{f}: {e}")))?;
        }
        super::check_seconds(
            key,
            &[("timeout", self.timeout), ("max_backoff", self.max_backoff)],
        )?;
        if self.max_batch == 0 || self.max_batch_bytes < 256 || self.max_queue == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_batch"),
                "max_batch and max_queue must be at least 1, max_batch_bytes at least 256",
            ));
        }
        Ok(())
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &self.headers {
            let name =
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = reqwest::header::HeaderValue::from_str(v).map_err(|e| e.to_string())?;
            headers.insert(name, value);
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(self.timeout))
            .default_headers(headers)
            .user_agent(concat!("carbyne/", env!("CARGO_PKG_VERSION")));
        if let Some(f) = &self.ca_file {
            let pem = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())? {
                b = b.add_root_certificate(cert);
            }
        }
        b.build().map_err(|e| e.to_string())
    }
}

/// Appends one sample to a JSON body being built (`{"metric":[` … `]}`).
fn push_json(out: &mut String, s: &Sample, host: &str) {
    if !out.ends_with('[') {
        out.push(',');
    }
    let value = if s.value.is_finite() {
        serde_json::json!(s.value)
    } else {
        serde_json::Value::Null
    };
    let item = serde_json::json!({
        "path": s.name,
        "value": value,
        "timestamp": s.timestamp,
        "host": host,
    });
    out.push_str(&item.to_string());
}

/// The body for a batch, within `max_bytes`: how many samples it holds.
pub fn body(batch: &[Sample], format: Format, host: &str, max_bytes: usize) -> (String, usize) {
    let mut out = String::new();
    if format == Format::Json {
        out.push_str("{\"metric\":[");
    }
    let mut n = 0;
    for s in batch {
        let before = out.len();
        match format {
            Format::Json => push_json(&mut out, s, host),
            Format::Plain => s.write_plaintext(&mut out),
        }
        if out.len() + 2 > max_bytes && n > 0 {
            out.truncate(before);
            break;
        }
        n += 1;
    }
    if format == Format::Json {
        out.push_str("]}");
    }
    (out, n)
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    e.finish()
}

/// The handler task. `host` is the agent's hostname for the JSON `host` field.
pub async fn run(mut d: Delivery, cfg: HttpConfig, host: String) -> Result<(), DeliveryError> {
    let shown = super::shown_url(&cfg.url);
    let client = cfg
        .client()
        .map_err(|e| DeliveryError(format!("{} {}: {e}", d.name, shown)))?;
    let content_type = match cfg.format {
        Format::Json => "application/json",
        Format::Plain => "text/plain",
    };
    let mut backoff = Backoff::new(Duration::from_secs_f64(cfg.max_backoff));
    let mut last_error: Option<String> = None;
    let mut rejected = 0u64;
    loop {
        if let Some(done) = d.ready(&shown, last_error.as_deref(), rejected).await {
            return done;
        }
        let mut batch = d.queue.take(cfg.max_batch);
        let (text, n) = body(&batch, cfg.format, &host, cfg.max_batch_bytes);
        d.queue.put_back(batch.split_off(n));
        let mut req = client.post(&cfg.url).header("Content-Type", content_type);
        req = if cfg.gzip {
            match gzip(text.as_bytes()) {
                Ok(z) => req.header("Content-Encoding", "gzip").body(z),
                Err(e) => return Err(DeliveryError(format!("{}: gzip: {e}", d.name))),
            }
        } else {
            req.body(text)
        };
        match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                d.sent(batch.len());
                d.settle();
                backoff.reset();
                last_error = None;
            }
            Ok(resp) if resp.status().is_client_error() => {
                // The server refuses this batch: sending it again cannot help.
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(200).collect();
                d.queue
                    .stats
                    .dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                rejected += batch.len() as u64;
                d.settle();
                let msg = format!("{status}: {}", excerpt.trim());
                d.failed(&format!(
                    "{}: {msg}; batch of {} dropped",
                    shown,
                    batch.len()
                ));
                last_error = Some(msg);
            }
            Ok(resp) => {
                let status = resp.status();
                d.failed(&format!("{}: {status}", shown));
                last_error = Some(status.to_string());
                d.queue.put_back(batch);
                d.pause(backoff.next_wait()).await;
            }
            Err(e) => {
                let msg = super::brief_http(e);
                d.failed(&format!("{}: {msg}", shown));
                last_error = Some(msg);
                d.queue.put_back(batch);
                d.pause(backoff.next_wait()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind;

    #[test]
    fn json_and_plain_bodies_within_the_byte_limit() {
        let batch: Vec<Sample> = (0..3)
            .map(|i| Sample::new(format!("a.b{i}"), i as f64 + 0.5, 100, Kind::Gauge))
            .collect();
        let (j, n) = body(&batch, Format::Json, "web01", 1 << 20);
        assert_eq!(n, 3);
        let v: serde_json::Value = serde_json::from_str(&j).expect("json");
        assert_eq!(v["metric"][1]["path"], "a.b1");
        assert_eq!(v["metric"][1]["value"], 1.5);
        assert_eq!(v["metric"][1]["timestamp"], 100);
        assert_eq!(v["metric"][1]["host"], "web01");
        let (p, n) = body(&batch, Format::Plain, "web01", 30);
        assert_eq!((p.as_str(), n), ("a.b0 0.5 100\na.b1 1.5 100\n", 2));
        let (_, n) = body(&batch, Format::Json, "web01", 10);
        assert_eq!(n, 1, "one sample always goes, however long");
    }

    #[test]
    fn bad_settings() {
        let c = HttpConfig {
            url: "ftp://x/".into(),
            ..Default::default()
        };
        assert!(c
            .validate("handlers.http")
            .expect_err("scheme")
            .to_string()
            .contains("handlers.http.url"));
        let c = HttpConfig {
            url: "not a url".into(),
            ..Default::default()
        };
        assert!(c.validate("handlers.http").is_err());
        let mut h = BTreeMap::new();
        h.insert("Bad Header".to_string(), "x".to_string());
        let c = HttpConfig {
            url: "http://127.0.0.1/".into(),
            headers: h,
            ..Default::default()
        };
        assert!(c
            .validate("handlers.http")
            .expect_err("header")
            .to_string()
            .contains("headers"));
        let c = HttpConfig {
            url: "http://127.0.0.1/".into(),
            ca_file: Some("/nonexistent.pem".into()),
            ..Default::default()
        };
        assert!(c
            .validate("handlers.http")
            .expect_err("ca")
            .to_string()
            .contains("ca_file"));
    }
}
