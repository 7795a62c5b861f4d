//! graphite-web's tags app over HTTP: `/tags`, `/tags/<tag>`, `findSeries`,
//! the autocompletes, `tagSeries`, `tagMultiSeries`, `delSeries`.

use super::*;

/// The tag endpoints' answers: a JSON value, or a 400 naming what is wrong.
pub(super) fn tag_answer(p: &Params, r: Result<serde_json::Value, String>) -> Response {
    match r {
        Ok(v) => json_response(p, &v),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

/// A tag completion's answer (a cluster server's 413 is its own).
fn completion_answer(p: &Params, r: Result<Vec<String>, RenderError>) -> Response {
    match r {
        Ok(v) => json_response(p, &serde_json::json!(v)),
        Err(e) => render_error(e),
    }
}

/// Repeated `key` (or `key[]`) values.
pub(super) fn many<'a>(p: &'a Params, key: &str) -> Vec<&'a str> {
    let v = p.all(key);
    if v.is_empty() {
        p.all(&format!("{key}[]"))
    } else {
        v
    }
}

pub(super) fn limit_param(p: &Params) -> Result<Option<usize>, String> {
    p.get("limit")
        .map(|l| {
            l.trim()
                .parse::<usize>()
                .map_err(|_| format!("Invalid limit {l:?}"))
        })
        .transpose()
}

pub(super) async fn tag_list(
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

pub(super) async fn tag_details(
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

pub(super) async fn tag_find(
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

pub(super) async fn tag_complete(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::new(q, &headers, &body);
    limited(&app, move |app| {
        let r = limit_param(&p)
            .map_err(RenderError::Input)
            .and_then(|limit| {
                let limit = limit.unwrap_or(100);
                let exprs = many(&p, "expr");
                let mine = app
                    .storage
                    .tags
                    .complete_tags(&exprs, p.get("tagPrefix"), limit)
                    .map_err(RenderError::Input)?;
                let keys = ["tagPrefix"];
                let path = "/tags/autoComplete/tags";
                with_cluster(app, &p, mine, path, &keys, &exprs, limit)
            });
        completion_answer(&p, r)
    })
    .await
}

pub(super) async fn tag_complete_values(
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
        let r = limit_param(&p)
            .map_err(RenderError::Input)
            .and_then(|limit| {
                let limit = limit.unwrap_or(100);
                let exprs = many(&p, "expr");
                let mine = app
                    .storage
                    .tags
                    .complete_values(&exprs, tag, p.get("valuePrefix"), limit)
                    .map_err(RenderError::Input)?;
                let keys = ["tag", "valuePrefix"];
                let path = "/tags/autoComplete/values";
                with_cluster(app, &p, mine, path, &keys, &exprs, limit)
            });
        completion_answer(&p, r)
    })
    .await
}

/// Our completions joined with the cluster's (asked `path` with the
/// request's `keys`, `limit` and `exprs`), sorted, at most `limit`
/// (graphite-web's store).
fn with_cluster(
    app: &App,
    p: &Params,
    mine: Vec<String>,
    path: &str,
    keys: &[&str],
    exprs: &[&str],
    limit: usize,
) -> Result<Vec<String>, RenderError> {
    let Some(c) = app.cluster_for(p) else {
        return Ok(mine);
    };
    let mut fields: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.to_string(), p.get(k).unwrap_or("").to_string()))
        .collect();
    fields.push(("limit".into(), limit.to_string()));
    fields.extend(exprs.iter().map(|e| ("expr".to_string(), e.to_string())));
    let mut all: Vec<String> = mine.into_iter().chain(c.complete(path, &fields)?).collect();
    all.sort();
    all.dedup();
    all.truncate(limit);
    Ok(all)
}

/// `tagSeries` (`path`: the canonical name) and `tagMultiSeries` (`path`
/// repeated: the list), as carbon's ENABLE_TAGS posts them.
pub(super) async fn tag_series(
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

pub(super) async fn tag_delete(
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
