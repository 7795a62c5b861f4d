//! graphite-web's metrics app over HTTP: `/metrics/find`, `/metrics/expand`,
//! `/metrics/index.json`.

use super::*;

pub(super) fn find_error(e: finder::FindError) -> RenderError {
    match e {
        finder::FindError::TooMany(n) => {
            RenderError::TooLarge(format!("more than max_find_results ({n}) metrics match"))
        }
        finder::FindError::Unavailable(..) => RenderError::Unavailable(e.to_string()),
        e => RenderError::Input(e.to_string()),
    }
}

pub(super) async fn find(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, find_blocking).await
}

pub(super) fn find_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
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
    if let Some(c) = app.cluster_for(p) {
        let (from, until) = find_range(p)?;
        let theirs = c.find(&query, from, until)?;
        merge_nodes(&mut nodes, theirs, app.cfg.max_find_results)?;
    }
    if leaves_only {
        nodes.retain(|n| n.is_leaf);
    }
    // graphite-web sorts by the last segment only (stable).
    nodes.sort_by(|a, b| a.name().cmp(b.name()));
    let value = match format {
        "treejson" => return Ok(json_text_response(p, tree_json(&nodes, &base, wildcards))),
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

/// A find's `from` and `until` (`-1` or absent: none), passed on to the
/// cluster's servers.
fn find_range(p: &Params) -> Result<(Option<i64>, Option<i64>), RenderError> {
    let tz = attime::zone(p.get("tz"));
    let now = crate::whisper::unix_now();
    let one = |k: &str| -> Result<Option<i64>, RenderError> {
        match p.get(k).filter(|v| *v != "-1") {
            None => Ok(None),
            Some(v) => attime::parse(v, tz, now)
                .map(Some)
                .map_err(|e| RenderError::Input(format!("Invalid value {v:?} for param {k}: {e}"))),
        }
    };
    Ok((one("from")?, one("until")?))
}

/// The cluster's nodes added to ours as graphite-web's store lists them:
/// a branch once, a leaf once with the times every server holds.
pub(super) fn merge_nodes(
    nodes: &mut Vec<finder::Node>,
    theirs: Vec<cluster::RemoteNode>,
    limit: usize,
) -> Result<(), RenderError> {
    let mut at: std::collections::HashMap<(String, bool), usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| ((n.path.clone(), n.is_leaf), i))
        .collect();
    for r in theirs {
        match at.get(&(r.path.clone(), r.is_leaf)) {
            Some(&i) => nodes[i].intervals.extend(r.intervals),
            None => {
                if nodes.len() >= limit {
                    return Err(find_error(finder::FindError::TooMany(limit)));
                }
                at.insert((r.path.clone(), r.is_leaf), nodes.len());
                nodes.push(finder::Node {
                    path: r.path,
                    is_leaf: r.is_leaf,
                    file: None,
                    intervals: r.intervals,
                });
            }
        }
    }
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// graphite-web's `tree_json` as its `json.dumps` writes it (keys in its
/// order, its separators): the wildcard node when asked, then branches,
/// then leaves, each name once.
fn tree_json(nodes: &[finder::Node], base: &str, wildcards: bool) -> String {
    let mut out = String::with_capacity(nodes.len() * (96 + 2 * base.len()));
    out.push('[');
    let mut first = true;
    let mut entry = |out: &mut String, text: &str, name: &str, leaf: bool| {
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str("{\"text\": ");
        render::json_string(text, out);
        out.push_str(", \"id\": ");
        let mut id = String::with_capacity(base.len() + name.len());
        id.push_str(base);
        id.push_str(name);
        render::json_string(&id, out);
        out.push_str(if leaf {
            ", \"allowChildren\": 0, \"expandable\": 0, \"leaf\": 1}"
        } else {
            ", \"allowChildren\": 1, \"expandable\": 1, \"leaf\": 0}"
        });
    };
    if nodes.len() > 1 && wildcards {
        entry(&mut out, "*", "*", nodes.iter().all(|n| n.is_leaf));
    }
    let mut seen = std::collections::HashSet::new();
    let mut leaves = Vec::new();
    for n in nodes {
        if !seen.insert(n.name()) {
            continue;
        }
        if n.is_leaf {
            leaves.push(n);
        } else {
            entry(&mut out, &unquote_plus(n.name()), n.name(), false);
        }
    }
    for n in leaves {
        entry(&mut out, &unquote_plus(n.name()), n.name(), true);
    }
    out.push(']');
    out
}

/// Python's `unquote_plus`: `+` is a space, `%XX` a byte (UTF-8 read
/// leniently).
fn unquote_plus(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A leaf's interval as graphite-web gives it: from the oldest time its
/// file keeps to the file's last change.
pub(super) fn interval_of(n: &finder::Node) -> Option<(f64, f64)> {
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

/// All the times a leaf is held, here and on the cluster's servers,
/// overlapping ones joined (graphite-web's `IntervalSet`).
pub(super) fn all_intervals(n: &finder::Node) -> Vec<(f64, f64)> {
    let mut all: Vec<(f64, f64)> = interval_of(n)
        .into_iter()
        .chain(n.intervals.iter().copied())
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (s, e) in all {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

pub(super) fn intervals(n: &finder::Node) -> serde_json::Value {
    serde_json::Value::Array(
        all_intervals(n)
            .into_iter()
            .map(|(s, e)| serde_json::json!({"start": s, "end": e}))
            .collect(),
    )
}

/// `/metrics/find?format=pickle` as graphite-web's cluster peers read it.
pub(super) fn pickle_nodes(nodes: &[finder::Node]) -> Vec<u8> {
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
            for (s, e) in all_intervals(n) {
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

pub(super) async fn expand(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, expand_blocking).await
}

pub(super) fn expand_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
    let group = int_param(p, "groupByExpr", 0)? != 0;
    let leaves_only = int_param(p, "leavesOnly", 0)? != 0;
    let mut grouped = serde_json::Map::new();
    let mut all = std::collections::BTreeSet::new();
    for q in p.all("query") {
        let mut nodes = app
            .storage
            .find(q, app.cfg.max_find_results)
            .map_err(find_error)?;
        if let Some(c) = app.cluster_for(p) {
            let theirs = c.find(q, None, None)?;
            merge_nodes(&mut nodes, theirs, app.cfg.max_find_results)?;
        }
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

pub(super) async fn index(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let mut list = match finder::index(&app.storage.root, app.cfg.max_find_results) {
            Ok(list) => list,
            Err(e) => return render_error(find_error(e)),
        };
        if let Some(c) = app.cluster_for(&p) {
            match c.index() {
                Ok(theirs) => list.extend(theirs),
                Err(e) => return render_error(e),
            }
            list.sort();
            list.dedup();
            if list.len() > app.cfg.max_find_results {
                return render_error(find_error(finder::FindError::TooMany(
                    app.cfg.max_find_results,
                )));
            }
        }
        json_response(&p, &serde_json::json!(list))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(path: &str, is_leaf: bool) -> finder::Node {
        finder::Node {
            path: path.into(),
            is_leaf,
            file: None,
            intervals: Vec::new(),
        }
    }

    #[test]
    fn tree_json_as_graphite_web_dumps_it() {
        let nodes = [
            node("a.x", true),
            node("a.b%2Bc", false),
            node("a.x", false),
        ];
        assert_eq!(
            tree_json(&nodes, "a.", true),
            "[{\"text\": \"*\", \"id\": \"a.*\", \"allowChildren\": 1, \"expandable\": 1, \"leaf\": 0}, \
             {\"text\": \"b+c\", \"id\": \"a.b%2Bc\", \"allowChildren\": 1, \"expandable\": 1, \"leaf\": 0}, \
             {\"text\": \"x\", \"id\": \"a.x\", \"allowChildren\": 0, \"expandable\": 0, \"leaf\": 1}]"
        );
        assert_eq!(tree_json(&[], "", true), "[]");
        assert_eq!(unquote_plus("a+b%41%zz%4"), "a bA%zz%4");
    }
}
