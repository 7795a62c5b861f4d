//! `[server.web]`: graphite-web's HTTP API over the whisper files the
//! carbon receiver writes (and the points its cache still holds), so that
//! Grafana's Graphite data source, dashboards and scripts read carbyne as
//! they read graphite-web.
//!
//! - `routes` (this file): the HTTP side, parameters, limits, answers.
//! - `attime`: `from`/`until`/`now`; `grammar`: targets;
//!   `functions/`: graphite-web's functions by group.
//! - `finder` and `store`: series read from disk and cache; `render`:
//!   the data formats; `series`: the time series model.

pub mod attime;
pub mod carbonlink;
pub mod events;
pub mod finder;
pub mod functions;
pub mod grammar;
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
    /// Seconds a request may take before it is answered 503.
    pub request_timeout: f64,
    /// carbon-cache daemons (`host:port:instance`, their cache query
    /// port) asked for points not written yet, as graphite-web's
    /// CARBONLINK_HOSTS.
    pub carbonlink_hosts: Vec<String>,
    /// Seconds one carbonlink question may take.
    pub carbonlink_timeout: f64,
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
            request_timeout: 30.0,
            carbonlink_hosts: Vec::new(),
            carbonlink_timeout: 1.0,
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
        ] {
            if v == 0 {
                return Err(ConfigError::new(format!("{key}.{k}"), "must be at least 1"));
            }
        }
        for (k, v) in [
            ("request_timeout", self.request_timeout),
            ("carbonlink_timeout", self.carbonlink_timeout),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    "must be a number of seconds above 0",
                ));
            }
        }
        if let Err(e) = carbonlink::CarbonLink::new(&self.carbonlink_hosts, Duration::from_secs(1))
        {
            return Err(ConfigError::new(format!("{key}.carbonlink_hosts"), e));
        }
        Ok(())
    }
}

struct App {
    cfg: WebServerConfig,
    storage: Storage,
    events: events::Events,
    slots: tokio::sync::Semaphore,
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
    let root = cfg.storage_dir.clone().unwrap_or(storage_dir);
    log::info!(
        "web server on http://{} reading {}{}",
        cfg.listen,
        root.display(),
        if carbon.is_some() {
            " and the carbon cache"
        } else {
            ""
        }
    );
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
    let app = Arc::new(App {
        events,
        slots: tokio::sync::Semaphore::new(cfg.max_concurrent_requests),
        storage: Storage {
            root,
            cache: carbon.as_ref().map(|c| c.cache.clone()),
            carbon: carbon.map(|c| c.store),
            carbonlink,
            tags: tags::TagIndex::new(&root_for_tags),
        },
        cfg,
    });
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
        .route("/version", get(version))
        .route("/version/", get(version))
        .fallback(not_found)
        .with_state(app);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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

/// `POST /events/`: one event, as JSON.
async fn post_event(State(app): State<Arc<App>>, body: Bytes) -> Response {
    limited(&app, move |app| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        match app.events.add(&body, now) {
            Ok(()) => StatusCode::OK.into_response(),
            Err(e) => error(StatusCode::BAD_REQUEST, &e),
        }
    })
    .await
}

/// `GET /events/get_data`: events by time (`from`, `until`) and `tags`.
async fn get_events(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        // Events keep fractions of seconds, and graphite-web's "now" has
        // them: a time relative to now (it moves with it) gets the fraction.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let wall = now.trunc() as i64;
        let at = |key: &str, default: f64| -> Result<f64, String> {
            match p.get(key) {
                Some(v) => {
                    let t = attime::parse(v, chrono_tz::Tz::UTC, wall)
                        .map_err(|e| format!("Invalid value for {key}: {e}"))?;
                    let relative =
                        attime::parse(v, chrono_tz::Tz::UTC, wall + 1).is_ok_and(|u| u != t);
                    Ok(t as f64 + if relative { now.fract() } else { 0.0 })
                }
                None => Ok(default),
            }
        };
        let (from, until) = match (at("from", 0.0), at("until", now)) {
            (Ok(f), Ok(u)) => (f, u),
            (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, &e),
        };
        let tags: Option<Vec<String>> = p
            .get("tags")
            .map(|t| t.split(' ').map(str::to_string).collect());
        match app.events.find(from, until, tags.as_deref(), p.get("set")) {
            Ok(list) => json_response(&p, &serde_json::Value::Array(list)),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        }
    })
    .await
}

/// The tag endpoints' answers: a JSON value, or a 400 naming what is wrong.
fn tag_answer(p: &Params, r: Result<serde_json::Value, String>) -> Response {
    match r {
        Ok(v) => json_response(p, &v),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

/// Repeated `key` (or `key[]`) values.
fn many<'a>(p: &'a Params, key: &str) -> Vec<&'a str> {
    let v = p.all(key);
    if v.is_empty() {
        p.all(&format!("{key}[]"))
    } else {
        v
    }
}

fn limit_param(p: &Params) -> Result<Option<usize>, String> {
    p.get("limit")
        .map(|l| {
            l.trim()
                .parse::<usize>()
                .map_err(|_| format!("Invalid limit {l:?}"))
        })
        .transpose()
}

async fn tag_list(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q, &headers, &Bytes::new());
    limited(&app, move |app| {
        let r =
            limit_param(&p).and_then(|limit| app.storage.tags.list_tags(p.get("filter"), limit));
        tag_answer(
            &p,
            r.map(|tags| {
                serde_json::json!(tags
                    .iter()
                    .map(|t| serde_json::json!({"tag": t}))
                    .collect::<Vec<_>>())
            }),
        )
    })
    .await
}

async fn tag_details(
    State(app): State<Arc<App>>,
    axum::extract::Path(tag): axum::extract::Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q, &headers, &Bytes::new());
    limited(&app, move |app| {
        let r = limit_param(&p).and_then(|limit| app.storage.tags.tag_values(&tag, p.get("filter"), limit));
        tag_answer(
            &p,
            r.map(|values| {
                serde_json::json!({"tag": tag, "values": values.iter().map(|(v, c)| serde_json::json!({"value": v, "count": c})).collect::<Vec<_>>()})
            }),
        )
    })
    .await
}

async fn tag_find(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let exprs = many(&p, "expr");
        if exprs.is_empty() {
            return error(StatusCode::BAD_REQUEST, "no tag expressions specified");
        }
        tag_answer(
            &p,
            app.storage.tags.find(&exprs).map(|n| serde_json::json!(n)),
        )
    })
    .await
}

async fn tag_complete(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let r = limit_param(&p).and_then(|limit| {
            app.storage.tags.complete_tags(
                &many(&p, "expr"),
                p.get("tagPrefix"),
                limit.unwrap_or(100),
            )
        });
        tag_answer(&p, r.map(|t| serde_json::json!(t)))
    })
    .await
}

async fn tag_complete_values(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let Some(tag) = p.get("tag").filter(|t| !t.is_empty()) else {
            return error(StatusCode::BAD_REQUEST, "no tag specified");
        };
        let r = limit_param(&p).and_then(|limit| {
            app.storage.tags.complete_values(
                &many(&p, "expr"),
                tag,
                p.get("valuePrefix"),
                limit.unwrap_or(100),
            )
        });
        tag_answer(&p, r.map(|v| serde_json::json!(v)))
    })
    .await
}

/// `tagSeries` (`path`: the canonical name) and `tagMultiSeries` (`path`
/// repeated: the list), as carbon's ENABLE_TAGS posts them.
async fn tag_series(
    State(app): State<Arc<App>>,
    uri: axum::http::Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    let multi = uri.path().ends_with("tagMultiSeries");
    limited(&app, move |app| {
        let paths = many(&p, "path");
        if paths.is_empty() {
            return error(
                StatusCode::BAD_REQUEST,
                if multi {
                    "no paths specified"
                } else {
                    "no path specified"
                },
            );
        }
        let r = app
            .storage
            .tags
            .add(if multi { &paths } else { &paths[..1] });
        tag_answer(
            &p,
            r.map(|names| {
                if multi {
                    serde_json::json!(names)
                } else {
                    serde_json::json!(names[0])
                }
            }),
        )
    })
    .await
}

async fn tag_delete(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let paths = many(&p, "path");
        if paths.is_empty() {
            return error(StatusCode::BAD_REQUEST, "no path specified");
        }
        tag_answer(
            &p,
            app.storage
                .tags
                .remove(&paths)
                .map(|()| serde_json::json!(true)),
        )
    })
    .await
}

/// graphite-web's `/functions`: every function carbyne evaluates, with its
/// parameters (Grafana's function editor reads it).
async fn functions_list(RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let p = Params::new(q, &headers, &Bytes::new());
    let grouped = p
        .get("grouped")
        .is_some_and(|g| matches!(g.to_lowercase().as_str(), "1" | "true"));
    let text = functions::catalog::to_text(&functions::catalog::list(grouped, p.get("group")));
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

async fn function_one(
    axum::extract::Path(name): axum::extract::Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let p = Params::new(q, &headers, &Bytes::new());
    match functions::catalog::one(&name) {
        Some(v) => json_response(&p, &v),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("Function not found: {name}"),
        ),
    }
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

/// `now`, `from`, `until` and `tz` of a request: `(start, end, now, tz)`.
fn time_range(p: &Params) -> Result<(i64, i64, i64, chrono_tz::Tz), RenderError> {
    let tz = attime::zone(p.get("tz"));
    let wall = crate::whisper::unix_now();
    let bad = |k: &str, e: String| RenderError::Input(format!("Invalid value for {k}: {e}"));
    let now = match p.get("now") {
        Some(n) => attime::parse(n, tz, wall).map_err(|e| bad("now", e))?,
        None => wall,
    };
    let until = match p.get("until") {
        Some(u) => attime::parse(u, tz, now).map_err(|e| bad("until", e))?,
        None => now,
    };
    let from = match p.get("from") {
        Some(f) => attime::parse(f, tz, now).map_err(|e| bad("from", e))?,
        None => now - 86400,
    };
    let (start, end) = (from.min(until), from.max(until));
    if start == end {
        return Err(RenderError::Input("Invalid empty time range".into()));
    }
    Ok((start, end, now, tz))
}

async fn render(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, render_blocking).await
}

fn render_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
    let mut targets: Vec<&str> = p.all("target");
    if targets.is_empty() {
        targets = p.all("target[]");
    }
    let mut format = p.get("format").unwrap_or("").to_string();
    if format.is_empty() {
        if p.has("pickle") {
            format = "pickle".into();
        } else if p.has("rawData") {
            format = "raw".into();
        }
    }
    if matches!(format.as_str(), "" | "png" | "svg" | "pdf") {
        return Err(RenderError::Input(format!(
            "format={}: carbyne does not draw graphs yet; ask for format=json, csv, raw or pickle",
            if format.is_empty() {
                "png (the default)"
            } else {
                &format
            }
        )));
    }
    if !matches!(format.as_str(), "json" | "csv" | "raw" | "pickle") {
        return Err(RenderError::Input(format!(
            "format={format}: expected json, csv, raw or pickle"
        )));
    }
    let (start, end, now, tz) = time_range(p)?;
    let xff = match p.get("xFilesFactor") {
        Some(x) => x
            .parse::<f64>()
            .map_err(|_| RenderError::Input(format!("Invalid xFilesFactor {x:?}")))?,
        None => 0.0,
    };
    let reader = Reader::new(
        &app.storage,
        app.cfg.max_series_per_request,
        app.cfg.max_points_per_request,
    );
    let ctx = Context {
        start,
        end,
        now,
        xff,
        source: &reader,
    };
    let mut data = Vec::new();
    for t in targets {
        if t.trim().is_empty() {
            continue;
        }
        let node = grammar::parse(t).map_err(RenderError::Input)?;
        data.extend(functions::evaluate_target(&node, &ctx)?);
    }
    let max_points = p
        .get("maxDataPoints")
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<usize>().ok());
    let jsonp = p.get("jsonp").filter(|_| p.has("format"));
    let (body, content_type) = match format.as_str() {
        "json" => {
            if let Some(m) = max_points {
                render::consolidate_for(&mut data, m);
            }
            let out = render::json(&data, p.has("noNullPoints"));
            match jsonp {
                Some(cb) => (format!("{cb}({out})").into_bytes(), "text/javascript"),
                None => (out.into_bytes(), "application/json"),
            }
        }
        "csv" => (render::csv(&data, tz).into_bytes(), "text/csv"),
        "raw" => (render::raw(&data).into_bytes(), "text/plain"),
        _ => (render::pickle(&data), "application/pickle"),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn json_response(p: &Params, value: &serde_json::Value) -> Response {
    let body = value.to_string();
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

fn find_error(e: finder::FindError) -> RenderError {
    match e {
        finder::FindError::TooMany(n) => {
            RenderError::TooLarge(format!("more than max_find_results ({n}) metrics match"))
        }
        e => RenderError::Input(e.to_string()),
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

async fn find(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, find_blocking).await
}

fn find_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
    let format = p.get("format").unwrap_or("treejson");
    let leaves_only = int_param(p, "leavesOnly", 0)? != 0;
    let wildcards = int_param(p, "wildcards", 0)? != 0;
    let automatic_variants = int_param(p, "automatic_variants", 0)? != 0;
    let mut query = match p.get("query") {
        None => {
            return Err(RenderError::Input(
                "Missing required parameter 'query'".into(),
            ))
        }
        Some("") => {
            return Err(RenderError::Input(
                "Required parameter 'query' is empty".into(),
            ))
        }
        Some(q) => q.to_string(),
    };
    let base = match query.rsplit_once('.') {
        Some((head, _)) => format!("{head}."),
        None => String::new(),
    };
    if format == "completer" {
        query = query.replace("..", "*.");
        if !query.ends_with('*') {
            query.push('*');
        }
        if automatic_variants {
            query = query
                .split('.')
                .map(|part| {
                    if part.contains(',') && !part.contains('{') {
                        format!("{{{part}}}")
                    } else {
                        part.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(".");
        }
    }
    let mut nodes = app
        .storage
        .find(&query, app.cfg.max_find_results)
        .map_err(find_error)?;
    if leaves_only {
        nodes.retain(|n| n.is_leaf);
    }
    // graphite-web sorts by the last segment only (stable).
    nodes.sort_by(|a, b| a.name().cmp(b.name()));
    let value = match format {
        "treejson" => {
            let mut out = Vec::new();
            if nodes.len() > 1 && wildcards {
                let any_branch = nodes.iter().any(|n| !n.is_leaf);
                out.push(tree_node("*", &format!("{base}*"), !any_branch));
            }
            let mut seen = std::collections::HashSet::new();
            let (mut branches, mut leaves) = (Vec::new(), Vec::new());
            for n in &nodes {
                if !seen.insert(n.name().to_string()) {
                    continue;
                }
                let entry = tree_node(n.name(), &format!("{base}{}", n.name()), n.is_leaf);
                if n.is_leaf {
                    leaves.push(entry);
                } else {
                    branches.push(entry);
                }
            }
            out.extend(branches);
            out.extend(leaves);
            serde_json::Value::Array(out)
        }
        "completer" => {
            let mut results: Vec<serde_json::Value> = nodes
                .iter()
                .map(|n| {
                    let path = if n.is_leaf { n.path.clone() } else { format!("{}.", n.path) };
                    serde_json::json!({"path": path, "name": n.name(), "is_leaf": if n.is_leaf { "1" } else { "0" }})
                })
                .collect();
            if results.len() > 1 && wildcards {
                results.push(serde_json::json!({"name": "*"}));
            }
            serde_json::json!({ "metrics": results })
        }
        "json" => {
            let mut out: Vec<serde_json::Value> = nodes
                .iter()
                .map(|n| {
                    if n.is_leaf {
                        serde_json::json!({"path": n.path, "is_leaf": true, "intervals": intervals(n)})
                    } else {
                        serde_json::json!({"path": n.path, "is_leaf": false})
                    }
                })
                .collect();
            out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
            serde_json::Value::Array(out)
        }
        "pickle" => {
            return Ok((
                [(header::CONTENT_TYPE, "application/pickle")],
                pickle_nodes(&nodes),
            )
                .into_response())
        }
        "nodelist" => {
            let pos = int_param(p, "position", -1)?;
            let mut found: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    let parts: Vec<&str> = n.path.split('.').collect();
                    let i = if pos < 0 {
                        parts.len() as i64 + pos
                    } else {
                        pos
                    };
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| parts.get(i))
                        .map(|s| s.to_string())
                })
                .collect();
            found.sort();
            found.dedup();
            serde_json::json!({ "nodes": found })
        }
        _ => {
            return Ok((
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                "Invalid value for 'format' parameter",
            )
                .into_response())
        }
    };
    Ok(json_response(p, &value))
}

fn tree_node(text: &str, id: &str, leaf: bool) -> serde_json::Value {
    let flag = u8::from(!leaf);
    serde_json::json!({
        "text": text,
        "id": id,
        "allowChildren": flag,
        "expandable": flag,
        "leaf": u8::from(leaf),
    })
}

/// A leaf's interval as graphite-web gives it: from the oldest time its
/// file keeps to the file's last change.
fn interval_of(n: &finder::Node) -> Option<(f64, f64)> {
    let file = n.file.as_ref()?;
    let w = crate::whisper::Whisper::open(file, false).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let start = now - w.header.max_retention as f64;
    let mtime = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(start, |d| d.as_secs_f64());
    Some((start, mtime.max(start)))
}

fn intervals(n: &finder::Node) -> serde_json::Value {
    match interval_of(n) {
        Some((s, e)) => serde_json::json!([{"start": s, "end": e}]),
        None => serde_json::json!([]),
    }
}

/// `/metrics/find?format=pickle` as graphite-web's cluster peers read it.
fn pickle_nodes(nodes: &[finder::Node]) -> Vec<u8> {
    let mut p = render::Pickler::default();
    p.list_start();
    for n in nodes {
        p.dict_start();
        p.string("path");
        p.string(&n.path);
        p.string("is_leaf");
        p.boolean(n.is_leaf);
        if n.is_leaf {
            p.string("intervals");
            p.list_start();
            if let Some((s, e)) = interval_of(n) {
                p.list_start();
                p.float(s);
                p.float(e);
                p.list_end();
            }
            p.list_end();
        }
        p.dict_end();
    }
    p.list_end();
    p.finish()
}

async fn expand(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, expand_blocking).await
}

fn expand_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
    let group = int_param(p, "groupByExpr", 0)? != 0;
    let leaves_only = int_param(p, "leavesOnly", 0)? != 0;
    let mut grouped = serde_json::Map::new();
    let mut all = std::collections::BTreeSet::new();
    for q in p.all("query") {
        let nodes = app
            .storage
            .find(q, app.cfg.max_find_results)
            .map_err(find_error)?;
        let paths: std::collections::BTreeSet<String> = nodes
            .into_iter()
            .filter(|n| n.is_leaf || !leaves_only)
            .map(|n| n.path)
            .collect();
        if all.len() + paths.len() > app.cfg.max_find_results {
            return Err(find_error(finder::FindError::TooMany(
                app.cfg.max_find_results,
            )));
        }
        all.extend(paths.iter().cloned());
        grouped.insert(q.to_string(), serde_json::json!(paths));
    }
    let results = if group {
        serde_json::Value::Object(grouped)
    } else {
        serde_json::json!(all)
    };
    Ok(json_response(p, &serde_json::json!({ "results": results })))
}

async fn index(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        match finder::index(&app.storage.root, app.cfg.max_find_results) {
            Ok(list) => json_response(&p, &serde_json::json!(list)),
            Err(e) => render_error(find_error(e)),
        }
    })
    .await
}
