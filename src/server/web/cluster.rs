//! graphite-web's cluster protocol, as the asking side: `cluster_servers`
//! (other carbyne servers or graphite-web 1.1.10) asked for what they hold
//! themselves, `/metrics/find/?local=1&format=pickle` and
//! `/render/?local=1&format=pickle`, and their answers merged with ours as
//! graphite-web merges them. A peer that fails or times out is skipped for
//! `cluster_retry_delay` seconds; the answer is what the reachable ones
//! hold. The answering side is ours already: `local=1` requests are
//! answered from this server's own files and cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::functions::{Context, RenderError, Result, Source};
use super::grammar::Node as Target;
use super::series::Series;
use super::store::Reader;
use crate::server::carbon::pickle::{self, Value};

/// The classes of graphite-web's pickled find answers (`IntervalSet`).
const CLASSES: &[&str] = &[
    "graphite.intervals.IntervalSet",
    "graphite.intervals.Interval",
];

/// A node another server found.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteNode {
    pub path: String,
    pub is_leaf: bool,
    /// The times it holds, `(start, end)`.
    pub intervals: Vec<(f64, f64)>,
}

struct Peer {
    /// `http://host:port` (with any path the setting gave).
    url: String,
    failed_at: Mutex<Option<Instant>>,
}

pub struct Cluster {
    peers: Vec<Peer>,
    client: reqwest::Client,
    find_timeout: Duration,
    fetch_timeout: Duration,
    retry_delay: Duration,
    /// The most bytes one answer may have (the request's point limit,
    /// pickled).
    max_answer_bytes: usize,
}

/// `host:port` or `http(s)://host:port[/path]`, as graphite-web's
/// CLUSTER_SERVERS (graphite-web's `?format=...` options on an entry are
/// not taken: refused, so they are not silently ignored).
pub fn base_url(server: &str) -> std::result::Result<String, String> {
    let url = match server.split_once("://") {
        Some(("http" | "https", _)) => server.trim_end_matches('/').to_string(),
        Some((scheme, _)) => {
            return Err(format!("{server:?}: expected http or https, not {scheme}"))
        }
        None => format!("http://{server}"),
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| format!("{server:?}: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{server:?}: expected host:port or an http URL"));
    }
    if parsed.port() == Some(0) {
        return Err(format!("{server:?}: port 0"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{server:?}: options after '?' (graphite-web's format, local, noTags) are not taken"
        ));
    }
    Ok(url)
}

/// Whether a `cluster_servers` entry is this server's own `listen`
/// address (the same port on the same, a loopback or any address).
pub fn is_this_server(server: &str, listen: &str) -> bool {
    let Some(url) = base_url(server)
        .ok()
        .and_then(|u| reqwest::Url::parse(&u).ok())
    else {
        return false;
    };
    let Some((host, port)) = listen.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = |h: &str| {
        matches!(
            h,
            "127.0.0.1" | "localhost" | "::1" | "[::1]" | "0.0.0.0" | "::"
        )
    };
    url.port_or_known_default()
        .map(|p| p.to_string())
        .as_deref()
        == Some(port)
        && url
            .host_str()
            .is_some_and(|h| h == host || (local(h) && local(host)))
}

impl Cluster {
    pub fn new(
        servers: &[String],
        find_timeout: f64,
        fetch_timeout: f64,
        retry_delay: f64,
        max_points: usize,
    ) -> std::result::Result<Self, String> {
        let peers = servers
            .iter()
            .map(|s| {
                Ok(Peer {
                    url: base_url(s)?,
                    failed_at: Mutex::new(None),
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(find_timeout.min(fetch_timeout)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Cluster {
            peers,
            client,
            find_timeout: Duration::from_secs_f64(find_timeout),
            fetch_timeout: Duration::from_secs_f64(fetch_timeout),
            retry_delay: Duration::from_secs_f64(retry_delay),
            // A pickled point is 9 bytes; names and framing besides.
            max_answer_bytes: max_points.saturating_mul(10).saturating_add(16 << 20),
        })
    }

    /// The peers not failed within `cluster_retry_delay`.
    fn active(&self) -> Vec<&Peer> {
        self.peers
            .iter()
            .filter(|p| {
                let failed = p.failed_at.lock().map(|f| *f).unwrap_or(None);
                failed.is_none_or(|t| t.elapsed() >= self.retry_delay)
            })
            .collect()
    }

    /// Asks every active peer at once; their answers in the order of
    /// `cluster_servers`. A peer that cannot be reached, fails or times
    /// out is logged, marked and left out; one that refuses the request
    /// itself (a 4xx: the request, not the peer, is at fault) is left out
    /// of this answer only, and its 413 is the whole request's.
    fn ask_all(
        &self,
        path: &str,
        fields: &[(String, String)],
        timeout: Duration,
    ) -> Result<Vec<(&Peer, Vec<u8>)>> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Ok(Vec::new());
        };
        let peers = self.active();
        let handles: Vec<_> = peers
            .iter()
            .map(|peer| {
                let url = format!("{}{path}", peer.url);
                let (client, fields, max) =
                    (self.client.clone(), fields.to_vec(), self.max_answer_bytes);
                rt.spawn(async move {
                    tokio::time::timeout(timeout, request(client, url, fields, max))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Failure::Peer(format!("no answer within {timeout:?}")))
                        })
                })
            })
            .collect();
        let mut out = Vec::new();
        for (peer, h) in peers.into_iter().zip(handles) {
            match rt.block_on(h) {
                Ok(Ok(body)) => {
                    if let Ok(mut f) = peer.failed_at.lock() {
                        if f.take().is_some() {
                            log::info!("web: cluster server {} answers again", peer.url);
                        }
                    }
                    out.push((peer, body));
                }
                Ok(Err(Failure::Refused(413, e))) => {
                    return Err(RenderError::TooLarge(format!(
                        "cluster server {}: {e}",
                        peer.url
                    )))
                }
                Ok(Err(Failure::Refused(status, e))) => log::warn!(
                    "web: cluster server {} refused {path} (HTTP {status}): {e}",
                    peer.url
                ),
                Ok(Err(Failure::Peer(e))) => self.failed(peer, path, &e),
                Err(e) => self.failed(peer, path, &e.to_string()),
            }
        }
        Ok(out)
    }

    fn failed(&self, peer: &Peer, path: &str, e: &str) {
        log::warn!(
            "web: cluster server {} failed {path}: {e}; left out for {} s",
            peer.url,
            self.retry_delay.as_secs_f64()
        );
        if let Ok(mut f) = peer.failed_at.lock() {
            *f = Some(Instant::now());
        }
    }

    /// The nodes the peers find for `query`, in their order.
    pub fn find(
        &self,
        query: &str,
        from: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<RemoteNode>> {
        let mut fields = vec![
            ("local".to_string(), "1".to_string()),
            ("format".into(), "pickle".into()),
            ("query".into(), query.to_string()),
        ];
        fields.extend(from.map(|f| ("from".to_string(), f.to_string())));
        fields.extend(until.map(|u| ("until".to_string(), u.to_string())));
        let path = "/metrics/find/";
        let mut out = Vec::new();
        for (peer, body) in self.ask_all(path, &fields, self.find_timeout)? {
            match pickle::loads_with(&body, pickle::budget(body.len()), CLASSES) {
                Ok(v) => out.extend(nodes_of(&v)),
                Err(e) => self.failed(peer, path, &format!("an unreadable answer: {e}")),
            }
        }
        Ok(out)
    }

    /// What the peers hold of `patterns` in `(start, end]`, by path
    /// expression, each peer's series in its order.
    pub fn fetch(
        &self,
        patterns: &[String],
        start: i64,
        end: i64,
        now: i64,
        xff: f64,
    ) -> Result<HashMap<String, Vec<Series>>> {
        let mut fields = vec![
            ("format".to_string(), "pickle".to_string()),
            ("local".into(), "1".into()),
            ("noCache".into(), "1".into()),
            ("from".into(), start.to_string()),
            ("until".into(), end.to_string()),
        ];
        fields.extend(patterns.iter().map(|p| ("target".to_string(), p.clone())));
        fields.push(("now".into(), now.to_string()));
        let path = "/render/";
        let mut out: HashMap<String, Vec<Series>> = HashMap::new();
        for (peer, body) in self.ask_all(path, &fields, self.fetch_timeout)? {
            let series = pickle::loads(&body, pickle::budget(body.len()))
                .map_err(|e| e.to_string())
                .and_then(|v| series_of(&v, xff));
            match series {
                Ok(series) => {
                    for s in series {
                        out.entry(s.path_expression.clone()).or_default().push(s);
                    }
                }
                Err(e) => self.failed(peer, path, &format!("an unreadable answer: {e}")),
            }
        }
        Ok(out)
    }

    /// The metric names every peer lists in its `index.json`.
    pub fn index(&self) -> Result<Vec<String>> {
        let fields = [("local".to_string(), "1".to_string())];
        self.lists("/metrics/index.json", &fields)
    }

    /// The peers' answers to a tag autocompletion (`/tags/autoComplete/
    /// tags` or `values`, `fields` as asked here), joined.
    pub fn complete(&self, path: &str, fields: &[(String, String)]) -> Result<Vec<String>> {
        let mut fields = fields.to_vec();
        fields.retain(|(k, _)| k != "local");
        fields.push(("local".into(), "1".into()));
        self.lists(path, &fields)
    }

    /// Every peer's JSON list of strings at `path`, joined.
    fn lists(&self, path: &str, fields: &[(String, String)]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (peer, body) in self.ask_all(path, fields, self.find_timeout)? {
            match serde_json::from_slice::<Vec<String>>(&body) {
                Ok(names) => out.extend(names),
                Err(e) => self.failed(peer, path, &format!("an unreadable answer: {e}")),
            }
        }
        Ok(out)
    }
}

/// Why a peer gave no answer.
enum Failure {
    /// The peer is unreachable, slow, failing or its answer too large.
    Peer(String),
    /// The peer refused the request (HTTP 4xx, with its message).
    Refused(u16, String),
}

/// An error with its causes (reqwest's own message hides them).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// One request to one peer: GET as graphite-web asks (POST when the
/// query would make too long a URL), a 200 expected, the body read up to
/// `max` bytes.
async fn request(
    client: reqwest::Client,
    url: String,
    fields: Vec<(String, String)>,
    max: usize,
) -> std::result::Result<Vec<u8>, Failure> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let req = if query.len() > 4000 {
        client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(query)
    } else {
        client.get(format!("{url}?{query}"))
    };
    let peer = |e: reqwest::Error| Failure::Peer(with_causes(&e));
    let mut resp = req.send().await.map_err(peer)?;
    let status = resp.status();
    if status.is_client_error() {
        // Its message ({"error": ...} from carbyne and graphite-web), short.
        let mut text = Vec::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            text.extend_from_slice(&chunk);
            if text.len() > 4096 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&text[..text.len().min(4096)]).into_owned();
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(Failure::Refused(status.as_u16(), msg));
    }
    if !status.is_success() {
        return Err(Failure::Peer(format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(peer)? {
        if body.len() + chunk.len() > max {
            return Err(Failure::Peer(format!(
                "the answer is larger than {max} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A number graphite-web wrote (int or float).
fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

/// The nodes of a pickled find answer (graphite-web 1.x's and 0.9's keys;
/// intervals as an `IntervalSet` or as `(start, end)` pairs).
fn nodes_of(v: &Value) -> Vec<RemoteNode> {
    let (Value::List(items) | Value::Tuple(items)) = v else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|n| {
            let path = n
                .get("path")
                .or_else(|| n.get("metric_path"))
                .and_then(Value::as_str)?;
            let leaf = n.get("is_leaf").or_else(|| n.get("isLeaf"));
            let is_leaf = matches!(leaf, Some(Value::Int(i)) if *i != 0);
            let intervals = match n.get("intervals") {
                Some(Value::Object { state, .. }) => match state.get("intervals") {
                    Some(Value::List(list)) => list
                        .iter()
                        .filter_map(|i| match i {
                            Value::Object { state, .. } => {
                                Some((num(state.get("start"))?, num(state.get("end"))?))
                            }
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                },
                Some(list) => list.pairs(),
                _ => Vec::new(),
            };
            Some(RemoteNode {
                path: path.to_string(),
                is_leaf,
                intervals,
            })
        })
        .collect()
}

/// The series of a pickled render answer (graphite-web's `getInfo`),
/// checked: a step above 0, a name without control characters, and the
/// end where the values end (`start + step × values`), whatever the peer
/// said, so that no answer can make a render loop over a range its
/// values do not fill.
fn series_of(v: &Value, xff: f64) -> std::result::Result<Vec<Series>, String> {
    let (Value::List(items) | Value::Tuple(items)) = v else {
        return Err("not a list of series".into());
    };
    items
        .iter()
        .map(|s| {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a series without a name")?;
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(format!("a series named {name:?}"));
            }
            let int = |k: &str| num(s.get(k)).filter(|f| f.is_finite()).map(|f| f as i64);
            let (Some(start), Some(step)) = (int("start"), int("step")) else {
                return Err(format!("{name}: no start or step"));
            };
            if step <= 0 {
                return Err(format!("{name}: a step of {step}"));
            }
            let values: Vec<Option<f64>> = match s.get("values") {
                Some(Value::List(v) | Value::Tuple(v)) => v.iter().map(Value::as_f64).collect(),
                _ => return Err(format!("{name}: no values")),
            };
            let end = i64::try_from(values.len())
                .ok()
                .and_then(|n| n.checked_mul(step))
                .and_then(|span| span.checked_add(start))
                .ok_or_else(|| format!("{name}: a range past the end of time"))?;
            let mut series = Series::new(name.to_string(), start, end, step, values, xff);
            series.path_expression = s
                .get("pathExpression")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string();
            Ok(series)
        })
        .collect()
}

/// The path expressions a target reads (graphite-web's
/// `extractPathExpressions`): paths, and `seriesByTag` calls as written.
pub fn path_expressions(t: &Target, out: &mut Vec<String>) {
    let expression = match t {
        Target::Path(p) => p,
        Target::Call(c) if c.name == "seriesByTag" => &c.raw,
        Target::Call(c) => {
            for a in c.args.iter().chain(c.kwargs.iter().map(|(_, a)| a)) {
                path_expressions(a, out);
            }
            return;
        }
        _ => return,
    };
    if !out.contains(expression) {
        out.push(expression.clone());
    }
}

/// graphite-web's `_merge_results` for one path expression: series by
/// name in the order they came (ours first, then each peer's); a later
/// one fills the gaps of an earlier one of the same length, or replaces
/// one with gaps when the lengths differ. Sorted by name.
pub fn merge(series: impl IntoIterator<Item = Series>) -> Vec<Series> {
    let mut by_name: HashMap<String, Series> = HashMap::new();
    for s in series {
        match by_name.get_mut(&s.name) {
            None => {
                by_name.insert(s.name.clone(), s);
            }
            Some(known) => {
                let gaps = known.values.iter().filter(|v| v.is_none()).count();
                if gaps == 0 || s.values.is_empty() {
                    continue;
                }
                if s.values.len() == known.values.len() {
                    for (k, v) in known.values.iter_mut().zip(&s.values) {
                        if k.is_none() && v.is_some() {
                            *k = *v;
                        }
                    }
                } else {
                    *known = s;
                }
            }
        }
    }
    let mut out: Vec<Series> = by_name.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The peers' series of one time range, by path expression.
type ByExpression = HashMap<String, Vec<Series>>;

/// A render's reads across the cluster: ours, merged with what the
/// peers hold of the same path expressions, fetched for all of the
/// request's expressions at once per time range (graphite-web's
/// prefetch; a function that shifts the range fetches again).
pub struct ClusterSource<'a> {
    pub local: &'a Reader<'a>,
    pub cluster: &'a Cluster,
    pub patterns: Vec<String>,
    fetched: Mutex<HashMap<(i64, i64, i64), Arc<ByExpression>>>,
}

impl<'a> ClusterSource<'a> {
    pub fn new(local: &'a Reader<'a>, cluster: &'a Cluster, patterns: Vec<String>) -> Self {
        ClusterSource {
            local,
            cluster,
            patterns,
            fetched: Mutex::new(HashMap::new()),
        }
    }

    fn remote(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>> {
        let key = (ctx.start, ctx.end, ctx.now);
        let cached = self
            .fetched
            .lock()
            .map_err(|_| RenderError::Internal("a cluster fetch failed".into()))?
            .get(&key)
            .cloned();
        let all = match cached {
            Some(a) => a,
            None => {
                let mut patterns = self.patterns.clone();
                if !patterns.iter().any(|p| p == pattern) {
                    patterns.push(pattern.to_string());
                }
                let got = Arc::new(
                    self.cluster
                        .fetch(&patterns, ctx.start, ctx.end, ctx.now, ctx.xff)?,
                );
                let points: usize = got.values().flatten().map(|s| s.values.len()).sum();
                let series: usize = got.values().map(Vec::len).sum();
                self.local.count(series, points)?;
                if let Ok(mut f) = self.fetched.lock() {
                    f.insert(key, got.clone());
                }
                got
            }
        };
        Ok(all.get(pattern).cloned().unwrap_or_default())
    }
}

impl Source for ClusterSource<'_> {
    fn fetch(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>> {
        let mine = self.local.fetch(pattern, ctx)?;
        let theirs = self.remote(pattern, ctx)?;
        Ok(merge(mine.into_iter().chain(theirs)))
    }

    fn fetch_tagged(&self, exprs: &[String], raw: &str, ctx: &Context) -> Result<Vec<Series>> {
        let mine = self.local.fetch_tagged(exprs, raw, ctx)?;
        let theirs = self.remote(raw, ctx)?;
        Ok(merge(mine.into_iter().chain(theirs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, values: Vec<Option<f64>>) -> Series {
        Series::new(
            name.into(),
            60,
            60 + 60 * values.len() as i64,
            60,
            values,
            0.0,
        )
    }

    #[test]
    fn merged_as_graphite_web_merges() {
        let out = merge([
            s("b", vec![Some(1.0), None, None]),
            s("a", vec![Some(5.0)]),
            // Same length: fills the gaps only.
            s("b", vec![Some(9.0), Some(2.0), None]),
            // Complete already: ignored.
            s("a", vec![None, Some(6.0)]),
            s("b", vec![None, Some(8.0), Some(3.0)]),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].values, vec![Some(5.0)]);
        assert_eq!(out[1].values, vec![Some(1.0), Some(2.0), Some(3.0)]);
        // Another length replaces one with gaps, whole.
        let out = merge([s("c", vec![Some(1.0), None]), s("c", vec![Some(7.0)])]);
        assert_eq!(out[0].values, vec![Some(7.0)]);
    }

    #[test]
    fn cluster_servers_as_graphite_web_reads_them() {
        assert_eq!(
            base_url("10.0.0.2:8080").as_deref(),
            Ok("http://10.0.0.2:8080")
        );
        assert_eq!(
            base_url("https://g.example/graphite/").as_deref(),
            Ok("https://g.example/graphite")
        );
        for bad in ["http://", "ftp://h:1", "h:0", "h:80/x?noTags=1", ""] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn this_server_is_recognised() {
        assert!(is_this_server("127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(is_this_server("localhost:8080", "0.0.0.0:8080"));
        assert!(!is_this_server("127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!is_this_server("10.0.0.2:8080", "127.0.0.1:8080"));
    }

    #[test]
    fn path_expressions_of_targets() {
        let mut out = Vec::new();
        for t in [
            "sumSeries(a.*.b, group(c.d, a.*.b))",
            "seriesByTag('name=x', 'dc=1')|alias('y')",
            "c.d",
        ] {
            let node = crate::server::web::grammar::parse(t).expect("parses");
            path_expressions(&node, &mut out);
        }
        assert_eq!(out, vec!["a.*.b", "c.d", "seriesByTag('name=x', 'dc=1')"]);
    }

    #[test]
    fn pickled_answers_read() {
        let mut p = pickle::Pickler::default();
        p.list_start();
        p.dict_start();
        p.string("path");
        p.string("a.b");
        p.string("is_leaf");
        p.boolean(true);
        p.string("intervals");
        p.list_start();
        p.list_start();
        p.float(10.0);
        p.float(20.0);
        p.list_end();
        p.list_end();
        p.dict_end();
        p.list_end();
        let b = p.finish();
        let v = pickle::loads_with(&b, 1 << 20, CLASSES).expect("reads");
        assert_eq!(
            nodes_of(&v),
            vec![RemoteNode {
                path: "a.b".into(),
                is_leaf: true,
                intervals: vec![(10.0, 20.0)]
            }]
        );
        let b = super::super::render::pickle(&[s("x.y", vec![Some(1.0), None])]);
        let v = pickle::loads(&b, 1 << 20).expect("reads");
        let got = series_of(&v, 0.5).expect("series");
        assert_eq!(got[0].name, "x.y");
        assert_eq!(got[0].values, vec![Some(1.0), None]);
        assert_eq!((got[0].start, got[0].end, got[0].step), (60, 180, 60));
        assert_eq!(got[0].xff, 0.5);
    }
}
