//! prometheus: an HTTP endpoint that Prometheus scrapes, as node_exporter's
//! (`127.0.0.1:9100/metrics` by default, the port carbyne takes over).
//!
//! Collection stays on the schedule: every run's samples land in a cache
//! here, and a scrape serves the cache, rendered once per change (text
//! format 0.0.4, or OpenMetrics 1.0 when the scraper asks for it, gzipped
//! when it accepts gzip). Collectors with series of their own give
//! node_exporter's families (`node_cpu_seconds_total{cpu,mode}`, raw
//! counters); every other sample (log parsers, the agent's own metrics)
//! becomes a gauge named by graphite_exporter's mapping rules
//! (`mapping_file`), or after its dotted name sanitised as
//! graphite_exporter does where no rule matches; its tags are labels.
//!
//! A series is served until a newer run of its family leaves it out (an
//! unmounted file system goes at the next run) or, for every series, until
//! it is `expiry` seconds old (a collector that stopped). The cache is
//! bounded by `max_bytes`; a new series beyond it is dropped and counted.

use super::{Backoff, Delivery, DeliveryError};
use crate::config::ConfigError;
use crate::prometheus::mapping::Mapper;
use crate::prometheus::naming::Namer;
use crate::prometheus::{Conflict, Exposition, Format, Kind};
use crate::sample::Sample;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `[handlers.prometheus]` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Address and port to serve scrapes on (node_exporter's port).
    pub listen: String,
    /// The path of the metrics.
    pub path: String,
    /// Seconds a series is served after its last value.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub expiry: f64,
    /// Most bytes of series held (names, labels, values); beyond it new
    /// series are dropped and counted.
    pub max_bytes: usize,
    /// graphite_exporter's mapping rules (YAML) for the samples without a
    /// family of their own; "" for none.
    pub mapping_file: String,
    /// The mapping file's digest when the configuration was read: a
    /// reload (SIGHUP) restarts the handler when the file changed.
    #[serde(skip)]
    pub mapping_digest: u64,
    /// The agent's `<prefix>.<host>.`, left off names no rule maps (set
    /// from the configuration's path_prefix and hostname).
    #[serde(skip)]
    pub host_root: String,
    /// Most scrape connections open at once; one more is closed at once.
    pub max_connections: usize,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            listen: "127.0.0.1:9100".into(),
            path: "/metrics".into(),
            expiry: 300.0,
            max_bytes: 64 << 20,
            mapping_file: String::new(),
            mapping_digest: 0,
            host_root: String::new(),
            max_connections: 64,
        }
    }
}

impl PrometheusConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::new(
                format!("{key}.listen"),
                format!(
                    "{:?} is not an address and port such as 127.0.0.1:9100",
                    self.listen
                ),
            ));
        }
        check_path(&format!("{key}.path"), &self.path)?;
        super::check_seconds(key, &[("expiry", self.expiry)])?;
        self.mapper(key)?;
        if !(1..=100_000).contains(&self.max_connections) {
            return Err(ConfigError::new(
                format!("{key}.max_connections"),
                "must be 1 to 100000",
            ));
        }
        if self.max_bytes < 4096 {
            return Err(ConfigError::new(
                format!("{key}.max_bytes"),
                "must be at least 4096",
            ));
        }
        Ok(())
    }
}

/// A scrape path (`/metrics`): letters, digits and `/-._~` only, since the
/// router reads `:`, `*`, `{` and `}` as its own syntax.
pub fn check_path(key: &str, path: &str) -> Result<(), ConfigError> {
    let plain = path
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/-._~".contains(&c));
    if !path.starts_with('/') || !plain || path.contains("//") {
        return Err(ConfigError::new(
            key,
            format!("{path:?} is not a URL path such as /metrics"),
        ));
    }
    Ok(())
}

impl PrometheusConfig {
    /// The rules of `mapping_file` (none when it is ""); an error names
    /// the file and line.
    pub fn mapper(&self, key: &str) -> Result<Option<Mapper>, ConfigError> {
        Mapper::for_handler(key, &self.mapping_file)
    }
}

/// The latest value of every series, and the renderings of them.
#[derive(Debug, Default)]
pub struct Cache {
    exp: Exposition,
    /// The newest run of each family of a collector's own: the series an
    /// update leaves older than it go.
    latest: HashMap<String, i64>,
    bytes: usize,
    max_bytes: usize,
    /// New series refused because the cache was full.
    pub refused: u64,
    refusing: bool,
    /// Families whose series could not be taken (a name clash), each said once.
    clashes: HashSet<String>,
    rendered: [Option<Bytes>; 2],
    gzipped: [Option<Bytes>; 2],
    namer: Namer,
    /// Adds node_time_seconds and node_uname_info at each update.
    host_facts: bool,
}

impl Cache {
    pub fn new(max_bytes: usize) -> Self {
        Cache {
            max_bytes,
            ..Default::default()
        }
    }

    /// A cache whose samples without a family go through `mapper`.
    pub fn with_mapper(max_bytes: usize, mapper: Option<Mapper>) -> Self {
        Cache {
            max_bytes,
            namer: Namer::new(mapper),
            ..Default::default()
        }
    }

    /// With node_exporter's `node_time_seconds` and `node_uname_info`
    /// added at each update (the handler's cache; not the tests').
    pub fn with_host_facts(mut self) -> Self {
        self.host_facts = true;
        self
    }

    /// Names no rule maps lose `root` (the agent's `<prefix>.<host>.`).
    pub fn with_host_root(mut self, root: &str) -> Self {
        self.namer = std::mem::take(&mut self.namer).with_host_root(root);
        self
    }

    /// Samples a mapping rule dropped.
    pub fn mapped_away(&self) -> u64 {
        self.namer.dropped
    }

    /// Takes over what `old` holds (a handler restarted by a reload), so
    /// that scrapes do not find an empty page until every collector ran
    /// again; with `mapping_changed`, only the collectors' own families
    /// (mapped names would be the old rules').
    pub fn carry_over(&mut self, old: &Cache, mapping_changed: bool) {
        self.exp = old.exp.clone();
        self.latest = old.latest.clone();
        self.bytes = old.bytes;
        if mapping_changed {
            let latest = &self.latest;
            let freed = self.exp.retain(|family, _| latest.contains_key(family));
            self.release(freed);
        }
        self.rendered = [None, None];
        self.gzipped = [None, None];
    }

    /// Takes in one batch of samples (whole collector runs).
    pub fn update(&mut self, samples: Vec<Sample>) {
        let mut swept = false;
        for s in samples {
            swept |= self.put(s);
        }
        if swept {
            let latest = &self.latest;
            let freed = self
                .exp
                .retain(|family, ts| latest.get(family).is_none_or(|l| ts >= *l));
            self.release(freed);
        }
        if self.host_facts {
            self.host_facts();
        }
        self.rendered = [None, None];
        self.gzipped = [None, None];
    }

    /// node_exporter's `node_time_seconds` (as of this run: a scrape
    /// serves the page of the last run) and `node_uname_info`: what
    /// dashboards made for node_exporter pick hosts by and count uptime from.
    fn host_facts(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let u = rustix::system::uname();
        let text = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
        let uname = [
            ("domainname", text(u.domainname())),
            ("machine", text(u.machine())),
            ("nodename", text(u.nodename())),
            ("release", text(u.release())),
            ("sysname", text(u.sysname())),
            ("version", text(u.version())),
        ];
        let labels: Vec<(&str, &str)> = uname.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for (name, help, labels, value) in [
            (
                "node_time_seconds",
                "System time in seconds since epoch (1970).",
                &[][..],
                now,
            ),
            (
                "node_uname_info",
                "Labeled system information as provided by the uname system call.",
                &labels[..],
                1.0,
            ),
        ] {
            let full = self.bytes + 1024 > self.max_bytes;
            if let Ok(added) =
                self.exp
                    .add_at(name, Kind::Gauge, help, labels, value, now as i64, !full)
            {
                self.bytes += added.new_series + added.new_family;
            }
        }
    }

    /// Takes one sample; whether a family of a collector's own has a
    /// newer run now (its older series are to go).
    fn put(&mut self, s: Sample) -> bool {
        let Some(n) = self.namer.name(s) else {
            return false;
        };
        let labels: Vec<(&str, &str)> = n.labels.iter().map(|(k, v)| (&**k, v.as_str())).collect();
        // At most what a new series and family take (their strings, the
        // label block's quotes and commas, the maps' entries).
        let most = n.name.len()
            + n.help.len()
            + labels
                .iter()
                .map(|(k, v)| k.len() + 2 * v.len() + 4)
                .sum::<usize>()
            + 130;
        let full = self.bytes + most > self.max_bytes;
        match self.exp.add_at(
            &n.name,
            n.kind,
            &n.help,
            &labels,
            n.value,
            n.timestamp,
            !full,
        ) {
            Ok(added) => {
                self.bytes += added.new_series + added.new_family;
                if n.native {
                    let l = self.latest.entry(added.family).or_insert(n.timestamp);
                    if n.timestamp > *l {
                        *l = n.timestamp;
                        return true;
                    }
                }
                false
            }
            Err(Conflict::Full) => {
                self.refused += 1;
                if !self.refusing {
                    self.refusing = true;
                    log::warn!(
                        "prometheus: the cache holds max_bytes ({}); new series are dropped",
                        self.max_bytes
                    );
                }
                false
            }
            Err(e) => {
                if self.clashes.insert(n.name.to_string()) {
                    log::warn!("prometheus: {e}; that series is left out");
                }
                false
            }
        }
    }

    /// Drops the series last given before `oldest` (unix seconds), and
    /// families left empty.
    pub fn expire(&mut self, oldest: i64) {
        let freed = self.exp.retain(|_, ts| ts >= oldest);
        if freed > 0 {
            self.release(freed);
            self.rendered = [None, None];
            self.gzipped = [None, None];
        }
    }

    fn release(&mut self, freed: usize) {
        self.bytes = self.bytes.saturating_sub(freed);
        if self.refusing && self.bytes < self.max_bytes / 2 {
            self.refusing = false;
        }
    }

    /// The number of series held.
    pub fn len(&self) -> usize {
        self.exp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.exp.is_empty()
    }

    /// The exposition in `format`, rendered once per change.
    pub fn render(&mut self, format: Format) -> Bytes {
        let slot = format as usize;
        if let Some(b) = &self.rendered[slot] {
            return b.clone();
        }
        let mut text = String::with_capacity(self.bytes + 1024);
        self.exp.write(format, &mut text);
        let b = Bytes::from(text);
        self.rendered[slot] = Some(b.clone());
        b
    }

    /// [`Cache::render`], gzipped.
    pub fn render_gzip(&mut self, format: Format) -> Bytes {
        let slot = format as usize;
        if let Some(b) = &self.gzipped[slot] {
            return b.clone();
        }
        let plain = self.render(format);
        let mut e = flate2::write::GzEncoder::new(
            Vec::with_capacity(plain.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let _ = e.write_all(&plain);
        let b = Bytes::from(e.finish().unwrap_or_default());
        self.gzipped[slot] = Some(b.clone());
        b
    }
}

/// What the HTTP side shares with the handler task.
struct Shared {
    cache: Mutex<Cache>,
    expiry: i64,
    scrapes: AtomicU64,
    mapping_digest: u64,
}

/// The running prometheus handlers' caches by listen address: a handler
/// that a reload restarts takes over its predecessor's.
static RUNNING: std::sync::LazyLock<Mutex<HashMap<String, std::sync::Weak<Shared>>>> =
    std::sync::LazyLock::new(|| Mutex::new(HashMap::new()));

impl Shared {
    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether an `Accept-Encoding` header accepts gzip: named with a
/// quality above 0, or not named and `*` above 0.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any) = (None::<bool>, None::<bool>);
    for coding in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = parts
            .find_map(|p| p.strip_prefix("q="))
            .map_or(1.0, |q| q.parse::<f64>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(q > 0.0);
        } else if name == "*" {
            any = Some(q > 0.0);
        }
    }
    gzip.or(any).unwrap_or(false)
}

async fn scrape(shared: Arc<Shared>, headers: HeaderMap) -> Response {
    shared.scrapes.fetch_add(1, Ordering::Relaxed);
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    let gzip = accepts_gzip(&headers);
    let body = {
        let mut cache = shared.cache();
        cache.expire(crate::scheduler::unix_now() as i64 - shared.expiry);
        if gzip {
            cache.render_gzip(format)
        } else {
            cache.render(format)
        }
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    r
}

/// Serves scrapes until `stop` says so, within the bounds of
/// `server::http` (a port facing the network: slow and idle clients hold
/// a slot each, never the agent's file descriptors); a port that cannot be
/// bound (an old node_exporter still on it) is tried again with backoff
/// meanwhile.
async fn serve(
    cfg: PrometheusConfig,
    name: String,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(30));
    let mut said = false;
    let listener = loop {
        match tokio::net::TcpListener::bind(&cfg.listen).await {
            Ok(l) => break l,
            Err(e) => {
                if !said {
                    said = true;
                    log::warn!("{name}: cannot listen on {}: {e}; trying again", cfg.listen);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_wait()) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    log::info!("{name}: serving http://{}{}", cfg.listen, cfg.path);
    let router = axum::Router::new().route(
        &cfg.path,
        axum::routing::get(move |headers: HeaderMap| scrape(shared.clone(), headers)),
    );
    let limits = crate::server::http::Limits {
        max_connections: cfg.max_connections,
        ..Default::default()
    };
    crate::server::http::serve(listener, router, limits, stop).await;
}

pub async fn run(mut d: Delivery, cfg: PrometheusConfig) -> Result<(), DeliveryError> {
    // Checked with the configuration; a file changed since is said here.
    let mapper = cfg
        .mapper(&format!("handlers.{}", d.name))
        .unwrap_or_else(|e| {
            log::error!("{e}; samples keep their sanitised names");
            None
        });
    let shared = Arc::new(Shared {
        cache: Mutex::new(
            Cache::with_mapper(cfg.max_bytes, mapper)
                .with_host_root(&cfg.host_root)
                .with_host_facts(),
        ),
        expiry: cfg.expiry.ceil() as i64,
        scrapes: AtomicU64::new(0),
        mapping_digest: cfg.mapping_digest,
    });
    {
        let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = running.get(&cfg.listen).and_then(std::sync::Weak::upgrade) {
            let changed = old.mapping_digest != cfg.mapping_digest;
            let from = old.cache();
            shared.cache().carry_over(&from, changed);
        }
        running.retain(|_, w| w.strong_count() > 0);
        running.insert(cfg.listen.clone(), Arc::downgrade(&shared));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(cfg, d.name.clone(), shared.clone(), stop_rx));
    let mut refused = 0;
    loop {
        let batch = d.queue.take(usize::MAX);
        if !batch.is_empty() {
            let n = batch.len();
            let mut cache = shared.cache();
            cache.update(batch);
            let now_refused = cache.refused;
            drop(cache);
            d.queue
                .stats
                .dropped
                .fetch_add(now_refused - refused, Ordering::Relaxed);
            refused = now_refused;
            d.sent(n);
            d.settle();
            continue;
        }
        if d.deadline().is_some() {
            let _ = stop_tx.send(true);
            let _ = server.await;
            return Ok(());
        }
        d.wait_for_work().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Family, Kind as SampleKind, Prom, Series};
    use std::borrow::Cow;

    const CPU: Family = Family::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );

    fn series(cpu: &str, v: f64, ts: i64) -> Sample {
        Sample::series(
            Series {
                name: Cow::Borrowed(CPU.name),
                kind: CPU.kind,
                help: Cow::Borrowed(CPU.help),
                labels: vec![("cpu".into(), cpu.into()), ("mode".into(), "user".into())],
            },
            v,
            ts,
        )
    }

    fn text(c: &mut Cache) -> String {
        String::from_utf8(c.render(Format::Text).to_vec()).expect("utf-8")
    }

    #[test]
    fn series_and_mapped_names_hidden_left_out() {
        let mut c = Cache::new(1 << 20);
        let mut hidden = Sample::new(
            "servers.h.cpu.total.user".into(),
            3.0,
            100,
            SampleKind::Rate,
        );
        hidden.prom = Prom::Hidden;
        let mut tagged = Sample::new(
            "servers.h.nginx.2xx-count".into(),
            7.0,
            100,
            SampleKind::Gauge,
        );
        tagged.tags = vec![("vhost".into(), "a.example".into())];
        c.update(vec![series("0", 12.5, 100), hidden, tagged]);
        assert_eq!(
            text(&mut c),
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n\
             # TYPE node_cpu_seconds_total counter\n\
             node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 12.5\n\
             # HELP servers_h_nginx_2xx_count Graphite metric servers.h.nginx.2xx-count\n\
             # TYPE servers_h_nginx_2xx_count gauge\n\
             servers_h_nginx_2xx_count{vhost=\"a.example\"} 7\n"
        );
    }

    #[test]
    fn a_newer_run_replaces_its_family_and_old_series_expire() {
        let mut c = Cache::new(1 << 20);
        c.update(vec![series("0", 1.0, 100), series("1", 2.0, 100)]);
        c.update(vec![Sample::new("a.b".into(), 5.0, 100, SampleKind::Gauge)]);
        assert_eq!(c.len(), 3);
        // The next run has only cpu 0: cpu 1 goes, the mapped a.b stays.
        c.update(vec![series("0", 3.0, 110)]);
        let t = text(&mut c);
        assert!(
            t.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 3\n"),
            "{t}"
        );
        assert!(!t.contains("cpu=\"1\""), "{t}");
        assert!(t.contains("a_b 5\n"), "{t}");
        c.expire(105);
        assert_eq!(c.len(), 1);
        c.expire(111);
        assert!(c.is_empty());
        assert_eq!(text(&mut c), "");
    }

    #[test]
    fn mapping_rules_name_and_label_the_other_samples() {
        let rules = "mappings:\n\
            - match: servers.*.nginx.*\n  name: nginx_responses\n  labels: {host: $1, status: $2}\n  help: Responses.\n\
            - match: servers.*.debug.*\n  action: drop\n  name: x\n";
        let mut c = Cache::with_mapper(1 << 20, Some(Mapper::parse(rules).expect("rules")));
        let g = |n: &str, v: f64| Sample::new(n.into(), v, 100, SampleKind::Gauge);
        let mut tagged = g("servers.web01.nginx.5xx", 2.0);
        tagged.tags = vec![
            ("host".into(), "tag-loses".into()),
            ("dc".into(), "eu".into()),
        ];
        c.update(vec![
            g("servers.web01.nginx.2xx", 10.0),
            tagged,
            g("servers.web01.debug.x", 1.0),
            g("servers.web01.other-thing", 3.0),
        ]);
        assert_eq!(c.mapped_away(), 1);
        assert_eq!(
            text(&mut c),
            "# HELP nginx_responses Responses.\n\
             # TYPE nginx_responses gauge\n\
             nginx_responses{dc=\"eu\",host=\"web01\",status=\"5xx\"} 2\n\
             nginx_responses{host=\"web01\",status=\"2xx\"} 10\n\
             # HELP servers_web01_other_thing Graphite metric servers.web01.other-thing\n\
             # TYPE servers_web01_other_thing gauge\n\
             servers_web01_other_thing 3\n"
        );
    }

    #[test]
    fn a_bad_mapping_file_fails_the_check_with_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mapping.yml");
        std::fs::write(
            &path,
            "mappings:\n- match: a.*\n  name: x\n- match: '(b'\n  match_type: regex\n  name: y\n",
        )
        .expect("write");
        let cfg = PrometheusConfig {
            mapping_file: path.display().to_string(),
            ..Default::default()
        };
        let e = cfg
            .validate("handlers.prom")
            .expect_err("bad regex")
            .to_string();
        assert!(e.contains("handlers.prom.mapping_file"), "{e}");
        assert!(e.contains("mapping.yml: line 4: mappings[1]"), "{e}");
        let cfg = PrometheusConfig {
            mapping_file: dir.path().join("none.yml").display().to_string(),
            ..Default::default()
        };
        assert!(cfg
            .validate("handlers.prom")
            .unwrap_err()
            .to_string()
            .contains("none.yml"));
    }

    #[test]
    fn the_cache_is_bounded_in_bytes() {
        let mut c = Cache::new(8192);
        let many: Vec<Sample> = (0..1000)
            .map(|i| series(&i.to_string(), 1.0, 100))
            .collect();
        c.update(many);
        assert!(c.bytes <= 8192, "{}", c.bytes);
        assert!(c.len() > 10 && c.len() < 1000, "{}", c.len());
        assert_eq!(c.refused as usize, 1000 - c.len());
        // Freed room is used again.
        c.expire(101);
        c.update(vec![series("x", 1.0, 200)]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn gzip_is_what_the_client_accepts() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, GZIP;q=0.5"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, identity"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, *"),
        );
        assert!(!accepts_gzip(&h), "the named coding wins over *");
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, *;q=0.1"),
        );
        assert!(accepts_gzip(&h));
    }

    #[test]
    fn gzipped_rendering_decodes_to_the_plain_one() {
        use std::io::Read;
        let mut c = Cache::new(1 << 20);
        c.update(vec![series("0", 1.0, 100)]);
        let gz = c.render_gzip(Format::OpenMetrics);
        let mut out = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .expect("gzip");
        assert_eq!(out.as_bytes(), &c.render(Format::OpenMetrics)[..]);
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn config_is_checked() {
        let ok = PrometheusConfig::default();
        assert!(ok.validate("handlers.p").is_ok());
        let bad = PrometheusConfig {
            listen: "localhost".into(),
            ..ok.clone()
        };
        assert!(bad
            .validate("handlers.p")
            .unwrap_err()
            .to_string()
            .contains("listen"));
        for path in ["metrics", "/:x", "/{x}", "/*x", "/metrics}", "/a b", "//x"] {
            let bad = PrometheusConfig {
                path: path.into(),
                ..ok.clone()
            };
            let e = bad.validate("handlers.p").expect_err(path).to_string();
            assert!(e.contains("path"), "{path}: {e}");
        }
        let bad = PrometheusConfig {
            max_connections: usize::MAX,
            ..ok.clone()
        };
        assert!(bad.validate("handlers.p").is_err());
        let bad = PrometheusConfig {
            expiry: 1e20,
            ..ok.clone()
        };
        assert!(bad.validate("handlers.p").is_err());
        let bad = PrometheusConfig { expiry: 0.0, ..ok };
        assert!(bad.validate("handlers.p").is_err());
    }
}
