//! KServe V2 / Open Inference Protocol (REST), so Triton, KServe and MLServer clients and
//! Triton's own tools (perf_analyzer, model configuration, statistics) talk to ember-serve
//! unchanged. Requests go through the same service, queue, batching, limits and metrics as
//! `/v1/predict`; only the wire format differs.
//!
//! Every operation on a model has one handler, registered with and without
//! `/versions/{version}`; the OpenAPI document gets the unversioned path from the versioned one
//! (`openapi.rs`), so the two cannot drift apart.

pub mod codec;
pub(crate) mod error;
mod extensions;
mod imported;
mod infer;
mod metadata;
mod model;
pub(crate) mod repository;
pub mod types;

use axum::routing::{MethodRouter, get, post};

pub(crate) use self::extensions::{__path_model_config, __path_model_stats, __path_server_stats};
pub(crate) use self::extensions::{model_config, model_stats, server_stats};
pub(crate) use self::infer::{__path_infer, infer};
pub(crate) use self::metadata::{
    __path_model_metadata, __path_model_ready, __path_server_live, __path_server_metadata,
    __path_server_ready,
};
pub(crate) use self::metadata::{
    model_metadata, model_ready, server_live, server_metadata, server_ready,
};
pub(crate) use self::repository::{__path_index, __path_load, __path_unload};
use crate::http::ApiState;

/// The paths of the repository API, which needs an admin key, never an inference key.
pub(crate) const REPOSITORY_PREFIX: &str = "/v2/repository/";

/// Triton's model repository extension, for `--model-control-mode explicit`.
pub(crate) fn repository_routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{name}/load", post(repository::load))
        .route(
            "/v2/repository/models/{name}/unload",
            post(repository::unload),
        )
}

/// The protocol's health probes, which never need a key.
pub(crate) fn health_routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/v2/health/live", get(server_live))
        .route("/v2/health/ready", get(server_ready))
}

/// Every other V2 route: metadata, statistics, configuration, inference.
pub(crate) fn routes() -> axum::Router<ApiState> {
    let model = |op: &str, handler: MethodRouter<ApiState>| {
        axum::Router::new()
            .route(&format!("/v2/models/{{name}}{op}"), handler.clone())
            .route(
                &format!("/v2/models/{{name}}/versions/{{version}}{op}"),
                handler,
            )
    };
    axum::Router::new()
        .route("/v2", get(server_metadata))
        // Before `/v2/models/{name}`: "stats" is not a model name here.
        .route("/v2/models/stats", get(server_stats))
        .merge(model("", get(model_metadata)))
        .merge(model("/ready", get(model_ready)))
        .merge(model("/config", get(model_config)))
        .merge(model("/stats", get(model_stats)))
        .merge(model("/infer", post(infer)))
}
