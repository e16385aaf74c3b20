//! The page a person uses: draw a digit, see the model's 8×8 input and its answer. Served at
//! `/` to browsers (clients that accept `text/html`); API clients keep getting the JSON index.
//!
//! The HTML, CSS and JavaScript are compiled into the binary: no CDN, no build step, nothing
//! read from disk, so the page works in the offline, read-only container.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub(crate) const INDEX_HTML: &str = include_str!("ui/index.html");
pub(crate) const APP_JS: &str = include_str!("ui/app.js");
pub(crate) const STYLE_CSS: &str = include_str!("ui/style.css");
pub(crate) const ICON_SVG: &str = include_str!("ui/icon.svg");

/// Whether the client asked for HTML (a browser navigating to `/`).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Tied to the binary: revalidate, so an upgraded server never serves stale script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

pub(crate) fn html() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(crate) async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

/// The page's icon, also at `/favicon.ico`, where browsers and tools look without being told
/// (a 404 there is a console error on every visit).
pub(crate) async fn icon() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn only_clients_that_accept_html_get_the_page() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(&accept(browser)));
        assert!(wants_html(&accept("TEXT/HTML")));
        assert!(!wants_html(&accept("*/*")));
        assert!(!wants_html(&accept("application/json")));
        assert!(!wants_html(&accept("text/html;q=0, application/json")));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
