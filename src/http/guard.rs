//! What stands between the network and the handlers when it is switched on: API keys on the
//! inference and model routes, and CORS for browser clients on other origins.
//!
//! Probes, metrics and docs never need a key: Kubernetes and Prometheus must reach them with
//! nothing but a URL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use super::v2::error::in_api_shape;
use crate::auth::ApiKeys;

/// The routes that never need a key, as the router registers them outside the protected
/// router (`server.rs`); the OpenAPI document marks every other route as needing one, and a
/// test asks each documented route both ways.
pub const OPEN_ROUTES: &[&str] = &[
    "/",
    "/ui/app.js",
    "/ui/style.css",
    "/favicon.ico",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
];

/// 401 in the API's shape without a valid key: the layer of the protected routes only.
pub(crate) async fn require_api_key(
    State(keys): State<Arc<ApiKeys>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match keys.verify(presented) {
        Ok(()) => next.run(req).await,
        Err(e) => in_api_shape(req.uri(), ApiError::Unauthorized(e)),
    }
}

/// The CORS layer for `origins` (`*` allows any), or none when the list is empty.
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    let name = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                header::ACCEPT,
                header::ACCEPT_ENCODING,
                name("x-request-id"),
                name("inference-header-content-length"),
                name("traceparent"),
                name("tracestate"),
            ])
            .expose_headers([
                name("x-request-id"),
                name("inference-header-content-length"),
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                header::CONTENT_ENCODING,
            ])
            .max_age(Duration::from_secs(3600)),
    )
}
