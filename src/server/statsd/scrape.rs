//! The statsd server's scrape endpoint: the page rendered at the last
//! flush, served as it is (gzipped when the scraper accepts it), within
//! the bounds of `server::http`.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

/// The page of the last flush, and its gzipped form once asked for.
#[derive(Default)]
pub struct Page {
    inner: Mutex<(Bytes, Option<Bytes>)>,
}

impl Page {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Bytes, Option<Bytes>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set(&self, text: String) {
        *self.lock() = (Bytes::from(text), None);
    }

    /// The page, gzipped when `gzip`.
    pub fn get(&self, gzip: bool) -> Bytes {
        let mut p = self.lock();
        if !gzip {
            return p.0.clone();
        }
        if let Some(z) = &p.1 {
            return z.clone();
        }
        let mut e = flate2::write::GzEncoder::new(
            Vec::with_capacity(p.0.len() / 4),
            flate2::Compression::fast(),
        );
        // Writing into a Vec cannot fail.
        let _ = e.write_all(&p.0);
        let z = Bytes::from(e.finish().unwrap_or_default());
        p.1 = Some(z.clone());
        z
    }
}

async fn scrape(page: Arc<Page>, headers: HeaderMap) -> Response {
    let gzip = crate::handlers::prometheus::accepts_gzip(&headers);
    let mut r = (StatusCode::OK, page.get(gzip)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::prometheus::Format::Text.content_type()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    r
}

/// Serves `page` at `path` until `stop` says so.
pub async fn serve(
    listener: tokio::net::TcpListener,
    path: String,
    page: Arc<Page>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let router = axum::Router::new().route(
        &path,
        axum::routing::get(move |headers: HeaderMap| scrape(page.clone(), headers)),
    );
    crate::server::http::serve(listener, router, Default::default(), stop).await;
}
