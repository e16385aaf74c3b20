//! KServe V2 / Open Inference Protocol over gRPC (`inference.GRPCInferenceService`), for clients
//! that speak only gRPC (ModelMesh, many Triton deployments, `tritonclient.grpc`,
//! `perf_analyzer -i grpc`). Calls go through the same model service, queue, batching, limits and
//! statistics as REST; the protocol's checks and encodings are shared with it
//! (`crate::protocol`), so the two answer alike.
//!
//! Served on its own port (`--grpc-port`) beside gRPC health checking (`grpc.health.v1`, which
//! follows readiness) and server reflection, so `grpcurl`-style tools and Kubernetes' gRPC
//! probes work without a copy of the `.proto`.

mod convert;
mod drain;
mod imported;
pub mod pb;
mod service;
mod status;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::ApiKeys;
use crate::connections::Draining;
use crate::http::request_id;
use crate::service::ModelService;

pub(crate) use self::service::InferenceService;

/// The service name health checks and reflection report.
pub(crate) const SERVICE_NAME: &str = "inference.GRPCInferenceService";

/// Why the gRPC surface could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Every gRPC service this server offers, as one router. With `api_keys`, inference and model
/// calls need `authorization: Bearer <key>` metadata; ServerLive/ServerReady, health checking
/// and reflection stay open, as `/v2/health/*` does over REST. The repository calls need one of
/// `admin_keys`, and without them answer UNIMPLEMENTED (the API is off). `draining` ends health
/// `Watch` streams when the listener serving this router drains.
pub fn router(
    service: Arc<ModelService>,
    body_limit: usize,
    keys: Keys,
    draining: Draining,
) -> Result<axum::Router, GrpcError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(follow_readiness(service.clone(), reporter));
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let inference = pb::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        InferenceService::new(service, keys.admin.is_some()),
    )
    // The same bound as --body-limit puts on a REST body.
    .max_decoding_message_size(body_limit);
    let app = tonic::service::Routes::new(inference)
        .add_service(health)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .into_axum_router()
        .layer(middleware::from_fn_with_state(
            draining,
            end_watches_on_drain,
        ))
        .layer(middleware::map_response(over_limit_is_resource_exhausted));
    let app = app.layer(middleware::from_fn_with_state(keys, require_api_key));
    Ok(app.layer(request_id::RequestIdLayer))
}

/// tonic refuses a message over `max_decoding_message_size` with OUT_OF_RANGE; the gRPC spec
/// (and grpc-go, grpc-java, Triton) say RESOURCE_EXHAUSTED, which is what clients handle. No
/// handler here answers OUT_OF_RANGE, so every such answer is tonic's size refusal. It comes
/// before any message, so its status is in the response headers (trailers-only).
async fn over_limit_is_resource_exhausted(mut response: Response) -> Response {
    // Codes 11 (OUT_OF_RANGE) and 8 (RESOURCE_EXHAUSTED), as the header spells them.
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11")
    {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("8"));
    }
    response
}

/// A health `Watch` streams until the client leaves, and would hold a drain to its deadline
/// (grpc-go's client-side health checking keeps one open). When the connection drains, the
/// stream gets whatever status it has queued (NOT_SERVING, sent at the signal) and then ends
/// with UNAVAILABLE, which health-checking clients take as "reconnect elsewhere".
async fn end_watches_on_drain(
    State(draining): State<Draining>,
    req: Request,
    next: Next,
) -> Response {
    let watch = req.uri().path() == "/grpc.health.v1.Health/Watch";
    let response = next.run(req).await;
    if watch {
        response.map(|body| axum::body::Body::new(drain::UntilDrained::new(body, draining.0)))
    } else {
        response
    }
}

/// Calls that answer without a key: whether the server is up, as `/v2/health/*` does over REST.
const OPEN_METHODS: [&str; 2] = ["ServerLive", "ServerReady"];

/// The repository calls: admin keys only.
const REPOSITORY_METHODS: [&str; 3] = [
    "RepositoryIndex",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
];

/// The keys the gRPC surface asks for.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    /// Inference and model calls; `None`: open.
    pub inference: Option<Arc<ApiKeys>>,
    /// Repository calls; `None`: the repository API is off.
    pub admin: Option<Arc<ApiKeys>>,
}

/// UNAUTHENTICATED for a call without a valid key of its kind; UNIMPLEMENTED for a repository
/// call while the repository API is off.
async fn require_api_key(State(keys): State<Keys>, req: Request, next: Next) -> Response {
    let method = req
        .uri()
        .path()
        .strip_prefix("/inference.GRPCInferenceService/")
        .map(str::to_string);
    let repository = method
        .as_deref()
        .is_some_and(|m| REPOSITORY_METHODS.contains(&m));
    let keys = match (repository, keys.inference, keys.admin) {
        (true, _, Some(admin)) => admin,
        (true, _, None) => {
            return tonic::Status::unimplemented(
                "the repository API is off: start the server with --model-control-mode explicit and --admin-api-key (or --admin-api-key-file)",
            )
            .into_http::<axum::body::Body>()
            .into_response();
        }
        (false, None, _) => return next.run(req).await,
        (false, Some(inference), _) => inference,
    };
    let open = method.as_deref().is_none_or(|m| OPEN_METHODS.contains(&m));
    if open {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match keys.verify(presented) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            metrics::counter!(crate::telemetry::metrics::GRPC_REQUESTS,
                "method" => method.unwrap_or_default(), "code" => "UNAUTHENTICATED")
            .increment(1);
            tonic::Status::unauthenticated(e.to_string())
                .into_http::<axum::body::Body>()
                .into_response()
        }
    }
}

/// Keep `grpc.health.v1` in step with readiness, for the server as a whole ("") and for the
/// inference service: NOT_SERVING until warm-up succeeds and again once shutdown begins.
async fn follow_readiness(service: Arc<ModelService>, reporter: HealthReporter) {
    let mut readiness = service.watch_readiness();
    drop(service); // only the channel is needed; the service must be free to shut down
    loop {
        let status = if *readiness.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in ["", SERVICE_NAME] {
            reporter.set_service_status(name, status).await;
        }
        if readiness.changed().await.is_err() {
            return;
        }
    }
}
