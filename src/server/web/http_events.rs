//! graphite-web's events app over HTTP: `POST /events/`, `/events/get_data`.

use super::*;

/// `POST /events/`: one event, as JSON.
pub(super) async fn post_event(State(app): State<Arc<App>>, body: Bytes) -> Response {
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
pub(super) async fn get_events(
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
