//! The router (routes, body limit, metrics middleware, Swagger UI) and the serve loop with
//! graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use utoipa_swagger_ui::SwaggerUi;

use super::error::ApiError;
use super::extract::BodyLimit;
use super::openapi;
use super::page;
use super::routes;
use super::state::ApiState;
use super::v2;
use crate::service::ModelService;
use crate::telemetry::metrics as m;

/// The whole HTTP surface, ready to serve.
pub fn router(service: Arc<ModelService>, metrics: PrometheusHandle, body_limit: usize) -> Router {
    let docs = openapi::document(service.model.max_batch_size);
    let state = ApiState { service, metrics };
    let app = Router::new()
        .route("/", get(routes::index))
        .route("/ui/app.js", get(page::app_js))
        .route("/ui/style.css", get(page::style_css))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/v1/models", get(routes::models))
        .route("/v1/predict", post(routes::predict))
        .route("/metrics", get(routes::metrics))
        .merge(super::v2::routes())
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/api-docs/openapi.json", docs))
        .fallback(
            |uri: Uri| async move { in_api_shape(&uri, ApiError::NotFound(uri.path().into())) },
        )
        .method_not_allowed_fallback(|uri: Uri| async move {
            in_api_shape(&uri, ApiError::MethodNotAllowed)
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(Extension(BodyLimit(body_limit)));
    // Compressed request bodies (tritonclient's request_compression_algorithm) are inflated as
    // the handler reads them, so --body-limit bounds the inflated size too; responses are
    // compressed for clients that send Accept-Encoding. Wrapping every body costs throughput,
    // so only requests that name an encoding take that path.
    let coded = app
        .clone()
        .layer(RequestDecompressionLayer::new().gzip(true).deflate(true))
        .layer(middleware::from_fn(explain_unsupported_encoding))
        .layer(CompressionLayer::new().gzip(true).deflate(true))
        .layer(middleware::from_fn(track));
    let plain = app.layer(middleware::from_fn(track));
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let app = if names_an_encoding(req.headers()) {
            coded.clone()
        } else {
            plain.clone()
        };
        app.oneshot(req)
    }))
}

/// Whether a request sends a compressed body or accepts a compressed answer.
fn names_an_encoding(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::ACCEPT_ENCODING)
}

/// An error in the shape of the API its path belongs to: `{"error": ...}` under `/v2`, problem
/// details elsewhere.
fn in_api_shape(uri: &Uri, error: ApiError) -> Response {
    if v2::is_v2_path(uri.path()) {
        v2::error::V2Error::from(error).into_response()
    } else {
        error.into_response()
    }
}

/// The decompression layer refuses an unknown `Content-Encoding` with a bare 415; say why, in
/// the API's error shape.
async fn explain_unsupported_encoding(req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let encoding = req.headers().get(header::CONTENT_ENCODING).cloned();
    let response = next.run(req).await;
    match encoding {
        Some(encoding)
            if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
                && !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
            in_api_shape(&uri, ApiError::UnsupportedEncoding(encoding))
        }
        _ => response,
    }
}

/// Count and time every request by matched route (never by raw path, to bound label cardinality).
async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let started = Instant::now();
    let in_flight = metrics::gauge!(m::HTTP_IN_FLIGHT);
    in_flight.increment(1.0);
    let response = next.run(req).await;
    in_flight.decrement(1.0);
    let status = response.status().as_u16().to_string();
    metrics::histogram!(m::HTTP_DURATION, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// Serve until `shutdown` resolves. Readiness turns 503 at once, the listener stays open for
/// `delay` (so load balancers notice), then closes; in-flight requests finish before this returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    service: Arc<ModelService>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    delay: Duration,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            service.begin_shutdown();
            tracing::info!(delay = ?delay, "shutdown requested: readiness is now 503, draining");
            tokio::time::sleep(delay).await;
        })
        .await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
