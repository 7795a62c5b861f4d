//! graphite-web's render and functions apps over HTTP: `/render`,
//! `/functions`.

use super::*;

/// graphite-web's `/functions`: every function carbyne evaluates, with its
/// parameters (Grafana's function editor reads it).
pub(super) async fn functions_list(RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    let p = Params::new(q, &headers, &Bytes::new());
    let grouped = p
        .get("grouped")
        .is_some_and(|g| matches!(g.to_lowercase().as_str(), "1" | "true"));
    let text = functions::catalog::to_text(&functions::catalog::list(grouped, p.get("group")));
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

pub(super) async fn function_one(
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

/// `now`, `from`, `until` and `tz` of a request: `(start, end, now, tz)`.
pub(super) fn time_range(p: &Params) -> Result<(i64, i64, i64, chrono_tz::Tz), RenderError> {
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

pub(super) async fn render(
    State(app): State<Arc<App>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(app, q, headers, body, render_blocking).await
}

pub(super) fn render_blocking(app: &App, p: &Params) -> Result<Response, RenderError> {
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
    // graphite-web draws a PNG for any other format (an unknown one too),
    // an SVG for svg; `outputFormat` overrides.
    let image = match format.as_str() {
        "json" | "csv" | "raw" | "pickle" => None,
        "pdf" | "dygraph" | "rickshaw" | "msgpack" => {
            return Err(RenderError::Input(format!(
                "format={format}: not served by carbyne; ask for json, csv, raw, pickle, png or svg"
            )))
        }
        _ => Some(
            match p
                .get("outputFormat")
                .unwrap_or(&format)
                .to_ascii_lowercase()
                .as_str()
            {
                "svg" => graph::Format::Svg,
                _ => graph::Format::Png,
            },
        ),
    };
    // The graph options are read (and refused) before any data is.
    let options = match image {
        Some(_) => Some(graph::Options::parse(|k| p.get(k)).map_err(RenderError::Input)?),
        None => None,
    };
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
    let mut parsed = Vec::new();
    let mut patterns = Vec::new();
    for t in targets {
        if t.trim().is_empty() {
            continue;
        }
        let node = grammar::parse(t).map_err(RenderError::Input)?;
        cluster::path_expressions(&node, &mut patterns);
        parsed.push(node);
    }
    let across;
    let source: &dyn functions::Source = match app.cluster_for(p) {
        Some(c) => {
            across = cluster::ClusterSource::new(&reader, c, patterns);
            &across
        }
        None => &reader,
    };
    let ctx = Context {
        start,
        end,
        now,
        xff,
        source,
    };
    let mut data = Vec::new();
    for node in &parsed {
        data.extend(functions::evaluate_target(node, &ctx)?);
    }
    let max_points = p
        .get("maxDataPoints")
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<usize>().ok());
    let jsonp = p.get("jsonp").filter(|_| p.has("format"));
    if let (Some(f), Some(o)) = (image, options) {
        let (body, content_type) = graph::render(data, &o, f, tz, app.cfg.max_image_pixels)
            .map_err(|e| match e {
                graph::GraphError::Input(m) => RenderError::Input(m),
                graph::GraphError::TooLarge(m) => RenderError::TooLarge(m),
            })?;
        return Ok(match (jsonp, f) {
            (Some(cb), graph::Format::Svg) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                let quoted = serde_json::to_string(&text).unwrap_or_default();
                (
                    [(header::CONTENT_TYPE, "text/javascript")],
                    format!("{cb}({quoted})"),
                )
                    .into_response()
            }
            _ => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        });
    }
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
