//! The built-in page (`/`) and its assets, embedded in the binary at build
//! time: nothing is read from disk, nothing comes from elsewhere. Served
//! with headers that forbid framing and allow scripts, styles and requests
//! from this origin only.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("page/index.html");

/// (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "page.js",
        "text/javascript; charset=utf-8",
        include_bytes!("page/page.js"),
    ),
    (
        "preview.js",
        "text/javascript; charset=utf-8",
        include_bytes!("page/preview.js"),
    ),
    (
        "page.css",
        "text/css; charset=utf-8",
        include_bytes!("page/page.css"),
    ),
    // uPlot 1.6.32 (MIT, Leon Sorokin): the charts; its licence beside it.
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("page/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("page/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("page/vendor/uPlot.LICENSE"),
    ),
];

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                      base-uri 'none'; form-action 'none'";

fn with_headers(mut r: Response, content_type: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

pub(super) async fn page() -> Response {
    with_headers(INDEX.into_response(), "text/html; charset=utf-8")
}

pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            let mut r = with_headers(bytes.into_response(), content_type);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        None => super::error(StatusCode::NOT_FOUND, &format!("no such file: {name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_built_in() {
        for (name, _, bytes) in ASSETS {
            assert!(!bytes.is_empty(), "{name}");
        }
        // The page names preview.js, which loads the others.
        let preview = include_str!("page/preview.js");
        let named = INDEX
            .split("/static/")
            .skip(1)
            .chain(preview.split("/static/").skip(1));
        for src in named {
            let name = src.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|(n, _, _)| *n == name),
                "the page names {name}, which is not built in"
            );
        }
        // No inline script or style the policy would block.
        assert!(!INDEX.contains("<script>") && !INDEX.contains("style="));
    }
}
