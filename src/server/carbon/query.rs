//! carbon's cache query protocol (what graphite-web's carbonlink asks):
//! `!L`-length-prefixed pickled dicts in, pickled dicts (protocol 2) out.
//!
//! - `cache-query` → `{'datapoints': [(timestamp, value), ...]}`
//! - `cache-query-bulk` → `{'datapointsByMetric': {metric: [...]}}`
//! - `get-metadata` / `set-metadata` of `aggregationMethod` → `{'value': ...}`
//!   / `{'old_value': ..., 'new_value': ...}`
//! - anything else → `{'error': 'Invalid request type "..."'}`

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::cache::Cache;
use super::pickle::{self, Pickler, Value};
use super::receive::read_full;
use super::Shared;
use crate::whisper::{Aggregation, Whisper};

/// The longest request taken; a longer one closes the connection.
pub const QUERY_MAX: usize = 1 << 20;

/// Metrics one bulk query may name.
const MAX_BULK: usize = 100_000;

pub(super) fn connection(mut stream: std::net::TcpStream, s: Arc<Shared>) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut head = [0u8; 4];
    while read_full(&mut stream, &mut head, &s) {
        let len = u32::from_be_bytes(head) as usize;
        if len > QUERY_MAX {
            log::debug!("carbon cache query: a request of {len} bytes, over 1 MiB; closed");
            return;
        }
        let mut body = vec![0u8; len];
        if !read_full(&mut stream, &mut body, &s) {
            return;
        }
        let answer = match pickle::loads(&body, pickle::budget(len)) {
            Ok(req) => respond(&req, &s.cache, &s.root),
            Err(e) => error(&format!("cannot read the request: {e}")),
        };
        let mut out = (answer.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&answer);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn error(msg: &str) -> Vec<u8> {
    let mut p = Pickler::default();
    p.dict_start();
    p.string("error");
    p.string(msg);
    p.dict_end();
    p.finish()
}

/// A metric's cached points as carbon keeps them: one per timestamp (the
/// last value), in the order timestamps first arrived.
fn points_of(cache: &Cache, metric: &str) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (ts, v) in cache.query(metric) {
        match out.iter_mut().find(|(t, _)| *t == ts) {
            Some(p) => p.1 = v,
            None => out.push((ts, v)),
        }
    }
    out
}

fn datapoints(p: &mut Pickler, points: &[(f64, f64)]) {
    p.list_start();
    for (ts, v) in points {
        p.tuple_start();
        p.float(*ts);
        p.float(*v);
        p.tuple_end();
    }
    p.list_end();
}

pub fn respond(req: &Value, cache: &Cache, root: &Path) -> Vec<u8> {
    let kind = req.get("type").and_then(Value::as_str).unwrap_or("");
    let metric = req.get("metric").and_then(Value::as_str);
    let mut p = Pickler::default();
    match kind {
        "cache-query" => {
            let Some(metric) = metric else {
                return error("cache-query without a metric");
            };
            p.dict_start();
            p.string("datapoints");
            datapoints(&mut p, &points_of(cache, metric));
            p.dict_end();
        }
        "cache-query-bulk" => {
            let metrics = match req.get("metrics") {
                Some(Value::List(m) | Value::Tuple(m)) if m.len() <= MAX_BULK => m,
                _ => return error("cache-query-bulk needs a list of metrics"),
            };
            p.dict_start();
            p.string("datapointsByMetric");
            p.dict_start();
            for m in metrics.iter().filter_map(Value::as_str) {
                p.string(m);
                datapoints(&mut p, &points_of(cache, m));
            }
            p.dict_end();
            p.dict_end();
        }
        "get-metadata" | "set-metadata" => {
            let Some(metric) = metric else {
                return error(&format!("{kind} without a metric"));
            };
            let key = req.get("key").and_then(Value::as_str).unwrap_or("");
            if key != "aggregationMethod" {
                return error(&format!("Unsupported metadata key \"{key}\""));
            }
            let path = super::names::path(root, metric);
            if kind == "get-metadata" {
                match Whisper::open(&path, false) {
                    Ok(w) => {
                        p.dict_start();
                        p.string("value");
                        p.string(w.header.aggregation.name());
                        p.dict_end();
                    }
                    Err(e) => return error(&format!("{}: {e}", path.display())),
                }
            } else {
                let value = req.get("value").and_then(Value::as_str).unwrap_or("");
                let method = match Aggregation::from_name(value) {
                    Ok(m) => m,
                    Err(e) => return error(&e.to_string()),
                };
                let old = Whisper::open(&path, true)
                    .and_then(|mut w| w.set_aggregation(Some(method), None));
                match old {
                    Ok((old, _)) => {
                        p.dict_start();
                        p.string("old_value");
                        p.string(old.name());
                        p.string("new_value");
                        p.string(method.name());
                        p.dict_end();
                    }
                    Err(e) => return error(&format!("{}: {e}", path.display())),
                }
            }
        }
        other => return error(&format!("Invalid request type \"{other}\"")),
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps({'type': 'cache-query', 'metric': 'a.b'}, protocol=-1)`
    /// as graphite-web's carbonlink (Python 3.11) sends it.
    const QUERY: &[u8] = b"\x80\x05\x95)\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x04type\x94\x8c\x0bcache-query\x94\x8c\x06metric\x94\x8c\x03a.b\x94u.";

    #[test]
    fn answers_a_cache_query() {
        let cache = Cache::new(0, super::super::cache::Strategy::Sorted, 0.0, 0.0, 1);
        cache.store(vec![
            ("a.b", 60.0, 1.0),
            ("a.b", 120.0, 2.0),
            ("a.b", 60.0, 3.0),
        ]);
        let req = pickle::loads(QUERY, pickle::budget(QUERY.len())).expect("request");
        let answer = respond(&req, &cache, Path::new("/nonexistent"));
        let back = pickle::loads(&answer, pickle::budget(answer.len())).expect("answer");
        let points = back.get("datapoints").cloned();
        assert_eq!(
            points,
            Some(Value::List(vec![
                Value::Tuple(vec![Value::Float(60.0), Value::Float(3.0)]),
                Value::Tuple(vec![Value::Float(120.0), Value::Float(2.0)]),
            ]))
        );
        let odd = Value::Dict(vec![(Value::Str("type".into()), Value::Str("nope".into()))]);
        let answer = respond(&odd, &cache, Path::new("/"));
        let back = pickle::loads(&answer, pickle::budget(answer.len())).expect("answer");
        assert_eq!(
            back.get("error").and_then(Value::as_str),
            Some("Invalid request type \"nope\"")
        );
    }
}
