//! The router: routes, body limit, metrics middleware, Swagger UI, and the switches around them
//! (request ids, CORS, API keys, compression).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Extension, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use utoipa_swagger_ui::SwaggerUi;

use super::error::ApiError;
use super::extract::BodyLimit;
use super::openapi;
use super::page;
use super::routes;
use super::state::{ApiState, RepositoryApi};
use super::v2;
use super::{guard, request_id};
use crate::auth::ApiKeys;
use crate::service::ModelService;
use crate::telemetry::metrics as m;
use crate::telemetry::traces;

/// What the router is built with besides the model: limits and the switches that are off
/// unless given.
#[derive(Debug, Clone, Default)]
pub struct RouterOptions {
    /// Largest request body, in bytes (inflated size for compressed bodies).
    pub(crate) body_limit: usize,
    /// Keys the inference and model routes require; `None`: open.
    pub(crate) api_keys: Option<Arc<ApiKeys>>,
    /// Keys the repository API requires; `None`: the API is not served.
    pub(crate) admin_keys: Option<Arc<ApiKeys>>,
    /// Origins answered with CORS headers; empty: none.
    pub(crate) cors_allow_origins: Vec<String>,
}

impl RouterOptions {
    /// No keys, no CORS.
    pub fn new(body_limit: usize) -> Self {
        Self {
            body_limit,
            ..Self::default()
        }
    }
}

/// The whole HTTP surface, ready to serve.
pub fn router(
    service: Arc<ModelService>,
    metrics: PrometheusHandle,
    options: &RouterOptions,
) -> Router {
    let body_limit = options.body_limit;
    // Served only with admin keys: the docs, `GET /v2`'s extensions and the fallback agree.
    let repository_api = options.admin_keys.is_some();
    let models: Vec<_> = service
        .repository
        .models()
        .iter()
        .map(|m| m.config())
        .collect();
    let docs = openapi::document(
        service.model.max_batch_size,
        options.api_keys.is_some(),
        repository_api,
        &models,
    );
    let state = ApiState {
        service,
        metrics,
        repository_api: RepositoryApi(repository_api),
    };
    // Probes, metrics, the page and the docs: what Kubernetes, Prometheus and a browser reach
    // with nothing but a URL. Every other route is added to `protected` below and needs a key
    // when keys are on: a new route is protected unless it is put here on purpose.
    let open = Router::new()
        .route("/", get(routes::index))
        .route("/ui/app.js", get(page::app_js))
        .route("/ui/style.css", get(page::style_css))
        .route("/favicon.ico", get(page::icon))
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .merge(super::v2::health_routes());
    let protected = Router::new()
        .route("/v1/models", get(routes::models))
        .route("/v1/models/{name}", any(super::instances::route))
        .route("/v1/predict", post(routes::predict))
        .merge(super::v2::routes());
    let protected = match &options.api_keys {
        Some(keys) => protected.route_layer(middleware::from_fn_with_state(
            keys.clone(),
            guard::require_api_key,
        )),
        None => protected,
    };
    // Management is not inference: the repository API exists only with admin keys, and an
    // inference key never opens it.
    let protected = match &options.admin_keys {
        Some(keys) => protected.merge(v2::repository_routes().route_layer(
            middleware::from_fn_with_state(keys.clone(), guard::require_api_key),
        )),
        None => protected,
    };
    let app = open
        .merge(protected)
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/api-docs/openapi.json", docs))
        .fallback(move |uri: Uri| async move {
            if !repository_api && uri.path().starts_with(v2::REPOSITORY_PREFIX) {
                return v2::error::V2Error::not_found(
                    "the repository API is off: start the server with --model-control-mode explicit and --admin-api-key (or --admin-api-key-file)",
                )
                .into_response();
            }
            v2::error::in_api_shape(&uri, ApiError::NotFound(uri.path().into()))
        })
        .method_not_allowed_fallback(|uri: Uri| async move {
            v2::error::in_api_shape(&uri, ApiError::MethodNotAllowed)
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
    let steered = Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let app = if names_an_encoding(req.headers()) {
            coded.clone()
        } else {
            plain.clone()
        };
        app.oneshot(req)
    }));
    // Outermost: CORS answers preflights before any key is asked for, and every response,
    // preflights included, carries the request id.
    let steered = match guard::cors(&options.cors_allow_origins) {
        Some(cors) => steered.layer(cors),
        None => steered,
    };
    steered.layer(request_id::RequestIdLayer)
}

/// Whether a request sends a compressed body or accepts a compressed answer.
fn names_an_encoding(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_ENCODING) || headers.contains_key(header::ACCEPT_ENCODING)
}

/// The decompression layer refuses an unknown `Content-Encoding` with a bare 415; say why, in
/// the API's error shape. Stacked encodings (`gzip, gzip`, or two header lines, which HTTP
/// says mean the same) are refused alike: the layer would undo only one of two header lines.
async fn explain_unsupported_encoding(req: Request, next: Next) -> Response {
    let uri = req.uri().clone();
    let codings: Vec<_> = req
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .collect();
    if codings.len() > 1 {
        let named: Vec<_> = codings
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        return v2::error::in_api_shape(&uri, ApiError::UnsupportedEncoding(named.join(", ")));
    }
    let encoding = req.headers().get(header::CONTENT_ENCODING).cloned();
    let response = next.run(req).await;
    match encoding {
        Some(encoding)
            if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
                && !response.headers().contains_key(header::CONTENT_TYPE) =>
        {
            let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
            v2::error::in_api_shape(&uri, ApiError::UnsupportedEncoding(encoding))
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
    traces::record_route(&method, &route);
    let started = Instant::now();
    let in_flight = InFlight::enter(route, method);
    let response = next.run(req).await;
    let (route, method) = in_flight.leave();
    let status = response.status().as_u16().to_string();
    metrics::histogram!(m::HTTP_DURATION, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// A request counted in the in-flight gauge. The connection drops the request's future when its
/// client hangs up mid-request, so the gauge is lowered on drop, and such a request is counted
/// as cancelled, not left "in flight" forever.
struct InFlight {
    /// `None` once the request was answered.
    labels: Option<(String, String)>,
}

impl InFlight {
    fn enter(route: String, method: String) -> Self {
        metrics::gauge!(m::HTTP_IN_FLIGHT).increment(1.0);
        Self {
            labels: Some((route, method)),
        }
    }

    /// The request was answered: its route and method, for the answer's metrics.
    fn leave(mut self) -> (String, String) {
        self.labels.take().unwrap_or_default()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(m::HTTP_IN_FLIGHT).decrement(1.0);
        if let Some((route, method)) = self.labels.take() {
            metrics::counter!(m::HTTP_CANCELLED, "route" => route, "method" => method).increment(1);
        }
    }
}
