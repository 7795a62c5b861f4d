//! `[server.web]`: graphite-web's HTTP API over the whisper files the
//! carbon receiver writes (and the points its cache still holds), so that
//! Grafana's Graphite data source, dashboards and scripts read carbyne as
//! they read graphite-web.
//!
//! - this file: the config, the router, parameters, limits, answers;
//!   `http_*.rs`: graphite-web's render, metrics, tags and events apps.
//! - `attime`: `from`/`until`/`now`; `grammar`: targets;
//!   `functions/`: graphite-web's functions by group.
//! - `finder` and `store`: series read from disk and cache; `render`:
//!   the data formats; `series`: the time series model.

pub mod attime;
pub mod carbonlink;
pub mod cluster;
pub mod events;
pub mod finder;
pub mod functions;
pub mod grammar;
pub mod graph;
mod http_events;
mod http_metrics;
mod http_page;
mod http_render;
mod http_tags;
pub mod open_files;
pub mod pyfmt;
pub mod render;
pub mod series;
pub mod store;
pub mod tags;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use functions::{Context, RenderError};
use http_events::{get_events, post_event};
use http_metrics::{expand, find, index};
use http_render::{function_one, functions_list, render};
use http_tags::{
    tag_complete, tag_complete_values, tag_delete, tag_details, tag_find, tag_list, tag_series,
};
use store::{Reader, Storage};

/// `[server.web]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebServerConfig {
    /// Address of the HTTP listener (all interfaces only when set so).
    pub listen: String,
    /// The whisper files read (default: the carbon receiver's `storage_dir`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_dir: Option<PathBuf>,
    /// Series one request may read, across its targets.
    pub max_series_per_request: usize,
    /// Points one request may read, across its series (16 bytes each).
    pub max_points_per_request: usize,
    /// Nodes one `/metrics/find`, `/metrics/expand` or `index.json` may list.
    pub max_find_results: usize,
    /// Requests evaluated at once; others wait their turn.
    pub max_concurrent_requests: usize,
    /// Connections open at once; one more is closed at once (a client
    /// must send its headers within 30 s, a connection lasts an hour).
    pub max_connections: usize,
    /// Seconds a request may take before it is answered 503.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub request_timeout: f64,
    /// Whisper files kept open for reading between requests (each still
    /// looked up by path on every read, so a replaced or deleted file is
    /// noticed); at most a quarter of the open file limit, closed after
    /// two minutes unused. 0 opens every file anew for each read.
    pub keep_open_files: usize,
    /// Pixels (`width` × `height`) one PNG or SVG graph may have; 4 bytes
    /// each while a PNG is drawn. Larger ones are answered 413.
    pub max_image_pixels: u64,
    /// carbon-cache daemons (`host:port:instance`, their cache query
    /// port) asked for points not written yet, as graphite-web's
    /// CARBONLINK_HOSTS.
    pub carbonlink_hosts: Vec<String>,
    /// Seconds one carbonlink question may take.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub carbonlink_timeout: f64,
    /// Other servers of the cluster (carbyne or graphite-web, `host:port`
    /// or an http URL), asked for their finds and renders as graphite-web's
    /// CLUSTER_SERVERS.
    pub cluster_servers: Vec<String>,
    /// Seconds a cluster server may take to answer a find.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub cluster_find_timeout: f64,
    /// Seconds a cluster server may take to answer a render.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub cluster_fetch_timeout: f64,
    /// Seconds a cluster server that failed is left out.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub cluster_retry_delay: f64,
}

impl Default for WebServerConfig {
    fn default() -> Self {
        WebServerConfig {
            listen: "127.0.0.1:8080".into(),
            storage_dir: None,
            max_series_per_request: 10_000,
            max_points_per_request: 10_000_000,
            max_find_results: 1_000_000,
            max_concurrent_requests: 8,
            max_connections: 256,
            request_timeout: 30.0,
            keep_open_files: 10_000,
            max_image_pixels: 4096 * 4096,
            carbonlink_hosts: Vec::new(),
            carbonlink_timeout: 1.0,
            cluster_servers: Vec::new(),
            cluster_find_timeout: 3.0,
            cluster_fetch_timeout: 6.0,
            cluster_retry_delay: 60.0,
        }
    }
}

impl WebServerConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !self
            .listen
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            return Err(ConfigError::new(
                format!("{key}.listen"),
                format!("{:?}: expected host:port", self.listen),
            ));
        }
        for (k, v) in [
            ("max_series_per_request", self.max_series_per_request),
            ("max_points_per_request", self.max_points_per_request),
            ("max_find_results", self.max_find_results),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_connections", self.max_connections),
            ("max_image_pixels", self.max_image_pixels as usize),
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("{key}.{k}"), "must be at least 1"));
            }
        }
        if self.max_connections > 100_000 {
            return Err(ConfigError::new(
                format!("{key}.max_connections"),
                "must be 1 to 100000",
            ));
        }
        for (k, v) in [
            ("request_timeout", self.request_timeout),
            ("carbonlink_timeout", self.carbonlink_timeout),
            ("cluster_find_timeout", self.cluster_find_timeout),
            ("cluster_fetch_timeout", self.cluster_fetch_timeout),
            ("cluster_retry_delay", self.cluster_retry_delay),
        ] {
            // At most a year: a duration past what a timer can hold would
            // pass here and stop the server at start.
            if !(v.is_finite() && v > 0.0 && v <= 31_536_000.0) {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    "must be a number of seconds above 0 and at most a year (31536000)",
                ));
            }
        }
        let slowest = self.cluster_find_timeout.max(self.cluster_fetch_timeout);
        if !self.cluster_servers.is_empty() && self.request_timeout <= slowest {
            return Err(ConfigError::new(
                format!("{key}.request_timeout"),
                format!(
                    "must be longer than cluster_find_timeout and cluster_fetch_timeout ({slowest} s), \
                     or one slow cluster server costs every request the others' answers"
                ),
            ));
        }
        if let Err(e) = carbonlink::CarbonLink::new(&self.carbonlink_hosts, Duration::from_secs(1))
        {
            return Err(ConfigError::new(format!("{key}.carbonlink_hosts"), e));
        }
        for s in &self.cluster_servers {
            if let Err(e) = cluster::base_url(s) {
                return Err(ConfigError::new(format!("{key}.cluster_servers"), e));
            }
        }
        Ok(())
    }

    /// The cluster client, when `cluster_servers` names any.
    fn cluster(&self) -> Result<Option<cluster::Cluster>, String> {
        if self.cluster_servers.is_empty() {
            return Ok(None);
        }
        cluster::Cluster::new(
            &self.cluster_servers,
            self.cluster_find_timeout,
            self.cluster_fetch_timeout,
            self.cluster_retry_delay,
            self.max_points_per_request,
        )
        .map(Some)
    }
}

struct App {
    cfg: WebServerConfig,
    storage: Storage,
    events: events::Events,
    slots: tokio::sync::Semaphore,
    cluster: Option<cluster::Cluster>,
}

impl App {
    /// The cluster to ask too: none for a peer's `local=1` request.
    fn cluster_for(&self, p: &Params) -> Option<&cluster::Cluster> {
        self.cluster
            .as_ref()
            .filter(|_| p.get("local") != Some("1"))
    }
}

/// Runs the web server until `shutdown`. `storage_dir` is the carbon
/// receiver's when the section sets none; `carbon` what the carbon
/// receiver of this process shares, when one runs.
pub async fn run(
    cfg: WebServerConfig,
    storage_dir: PathBuf,
    state_dir: PathBuf,
    carbon: Option<crate::server::carbon::Published>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let max_connections = cfg.max_connections;
    let root = cfg.storage_dir.clone().unwrap_or(storage_dir);
    log::info!(
        "web server on http://{} reading {}{}{}",
        cfg.listen,
        root.display(),
        if carbon.is_some() {
            " and the carbon cache"
        } else {
            ""
        },
        if cfg.cluster_servers.is_empty() {
            String::new()
        } else {
            format!(", with cluster servers {}", cfg.cluster_servers.join(", "))
        }
    );
    for s in &cfg.cluster_servers {
        if cluster::is_this_server(s, &cfg.listen) {
            log::warn!(
                "web: cluster_servers lists this server itself ({s}): its own answers come back \
                 as a peer's, at the cost of a request each time; leave it out"
            );
        }
    }
    let carbonlink = if cfg.carbonlink_hosts.is_empty() {
        None
    } else {
        let timeout = Duration::from_secs_f64(cfg.carbonlink_timeout);
        Some(
            carbonlink::CarbonLink::new(&cfg.carbonlink_hosts, timeout)
                .map_err(std::io::Error::other)?,
        )
    };
    let events =
        events::Events::open(&state_dir.join("web-events.db")).map_err(std::io::Error::other)?;
    let root_for_tags = root.clone();
    let cluster = cfg.cluster().map_err(std::io::Error::other)?;
    let app = Arc::new(App {
        cluster,
        events,
        slots: tokio::sync::Semaphore::new(cfg.max_concurrent_requests),
        storage: Storage {
            root,
            cache: carbon.as_ref().map(|c| c.cache.clone()),
            carbon: carbon.map(|c| c.store),
            carbonlink,
            tags: tags::TagIndex::new(&root_for_tags),
            open_files: open_files::OpenFiles::new(cfg.keep_open_files),
        },
        cfg,
    });
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                app.storage.open_files.sweep(open_files::IDLE);
            }
        })
    };
    let router = Router::new()
        .route("/render", get(render).post(render))
        .route("/render/", get(render).post(render))
        .route("/metrics", get(find).post(find))
        .route("/metrics/", get(find).post(find))
        .route("/metrics/find", get(find).post(find))
        .route("/metrics/find/", get(find).post(find))
        .route("/metrics/expand", get(expand).post(expand))
        .route("/metrics/expand/", get(expand).post(expand))
        .route("/metrics/index.json", get(index).post(index))
        .route("/events", axum::routing::post(post_event))
        .route("/events/", axum::routing::post(post_event))
        .route("/events/get_data", get(get_events).post(get_events))
        .route("/events/get_data/", get(get_events).post(get_events))
        .route("/tags", get(tag_list))
        .route("/tags/", get(tag_list))
        .route("/tags/findSeries", get(tag_find).post(tag_find))
        .route(
            "/tags/autoComplete/tags",
            get(tag_complete).post(tag_complete),
        )
        .route(
            "/tags/autoComplete/values",
            get(tag_complete_values).post(tag_complete_values),
        )
        .route("/tags/tagSeries", axum::routing::post(tag_series))
        .route("/tags/tagMultiSeries", axum::routing::post(tag_series))
        .route("/tags/delSeries", axum::routing::post(tag_delete))
        .route("/tags/{tag}", get(tag_details))
        .route("/functions", get(functions_list))
        .route("/functions/", get(functions_list))
        .route("/functions/{name}", get(function_one))
        .route("/", get(http_page::page))
        .route("/static/{name}", get(http_page::asset))
        .route("/version", get(version))
        .route("/version/", get(version))
        .fallback(not_found)
        .with_state(app);
    // Bounded: slow or idle clients hold a slot each, never the
    // process's descriptors (axum::serve has no such bounds).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = crate::server::http::Limits {
        max_connections,
        header_timeout: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(3600),
    };
    crate::server::http::serve(listener, router, limits, stop_rx).await;
    sweeper.abort();
    log::info!("web server stopped");
    Ok(())
}

/// Request parameters, query string then form body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            out.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            out.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(out)
    }

    /// The last value of `key` (Django's `QueryDict.get`).
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// graphite-web's answer to bad input, as JSON.
fn error(status: StatusCode, msg: &str) -> Response {
    let body = serde_json::json!({ "error": msg }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn render_error(e: RenderError) -> Response {
    match e {
        RenderError::Input(m) => error(StatusCode::BAD_REQUEST, &m),
        RenderError::TooLarge(m) => error(StatusCode::PAYLOAD_TOO_LARGE, &m),
        RenderError::Internal(m) => error(StatusCode::INTERNAL_SERVER_ERROR, &m),
        RenderError::Unavailable(m) => {
            log::warn!("web: answered 503: {m}");
            error(StatusCode::SERVICE_UNAVAILABLE, &m)
        }
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        &format!("{method} {}: not found", uri.path()),
    )
}

async fn version() -> Response {
    // The graphite-web release whose API this serves (Grafana reads it to
    // choose the functions it offers).
    ([(header::CONTENT_TYPE, "text/plain")], "1.1.10").into_response()
}

/// Runs blocking work within the request limits (a slot, the timeout).
async fn limited<F>(app: &Arc<App>, work: F) -> Response
where
    F: FnOnce(&App) -> Response + Send + 'static,
{
    let Ok(_slot) = app.slots.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping");
    };
    let timeout = Duration::from_secs_f64(app.cfg.request_timeout);
    let a = app.clone();
    let task = tokio::task::spawn_blocking(move || work(&a));
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the request failed: {e}"),
        ),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "the request took longer than request_timeout ({} s)",
                app.cfg.request_timeout
            ),
        ),
    }
}

fn json_response(p: &Params, value: &serde_json::Value) -> Response {
    json_text_response(p, value.to_string())
}

/// JSON already written, answered as [`json_response`] answers.
fn json_text_response(p: &Params, body: String) -> Response {
    match p.get("jsonp").filter(|j| !j.is_empty()) {
        Some(cb) => (
            [(header::CONTENT_TYPE, "text/javascript")],
            format!("{cb}({body})"),
        )
            .into_response(),
        None => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::PRAGMA, "no-cache"),
            ],
            body,
        )
            .into_response(),
    }
}

fn int_param(p: &Params, key: &str, default: i64) -> Result<i64, RenderError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| RenderError::Input(format!("Invalid int value {v:?} for param {key}"))),
    }
}

/// A handler of parameters (query and form) answered within the limits.
async fn answer(
    app: Arc<App>,
    q: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    f: fn(&App, &Params) -> Result<Response, RenderError>,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| f(app, &p).unwrap_or_else(render_error)).await
}
