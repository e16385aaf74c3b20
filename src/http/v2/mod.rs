//! KServe V2 / Open Inference Protocol (REST), so Triton, KServe and MLServer clients and
//! Triton's own tools (perf_analyzer, model configuration, statistics) talk to ember-serve
//! unchanged. Requests go through the same queue, batching, limits and metrics as
//! `/v1/predict`; only the wire format differs.
//!
//! Every operation on a model has one handler, registered with and without
//! `/versions/{version}`; the OpenAPI document gets the unversioned path from the versioned one
//! (`openapi.rs`), so the two cannot drift apart.

pub mod codec;
pub mod error;
mod extensions;
mod infer;
pub mod types;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use serde::Deserialize;
use utoipa::IntoParams;

pub use self::extensions::{__path_model_config, __path_model_stats, __path_server_stats};
pub use self::extensions::{model_config, model_stats, server_stats};
pub use self::infer::{__path_infer, infer};

use self::codec::INPUT_NAME;
use self::error::V2Error;
use self::types::*;
use super::state::AppState;
use crate::model::{INPUT_LEN, NUM_CLASSES};

/// Extensions advertised in `GET /v2`: exactly those this server implements.
pub const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
];

/// Where a model operation's path names the model, and perhaps its version. Described once for
/// every operation's OpenAPI parameters (the unversioned paths drop `version`, `openapi.rs`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// Model name.
    #[param(example = "digits-cnn")]
    name: String,
    /// Model version: the major version (`2`) or the full one (`2.0.0`).
    #[serde(default)]
    #[param(required = true, value_type = String, example = "2")]
    version: Option<String>,
}

pub fn routes() -> axum::Router<Arc<AppState>> {
    let model = |op: &str, handler: MethodRouter<Arc<AppState>>| {
        axum::Router::new()
            .route(&format!("/v2/models/{{name}}{op}"), handler.clone())
            .route(
                &format!("/v2/models/{{name}}/versions/{{version}}{op}"),
                handler,
            )
    };
    axum::Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(server_live))
        .route("/v2/health/ready", get(server_ready))
        // Before `/v2/models/{name}`: "stats" is not a model name here.
        .route("/v2/models/stats", get(server_stats))
        .merge(model("", get(model_metadata)))
        .merge(model("/ready", get(model_ready)))
        .merge(model("/config", get(model_config)))
        .merge(model("/stats", get(model_stats)))
        .merge(model("/infer", axum::routing::post(infer)))
}

/// Whether `path` belongs to the V2 surface (whose errors are `{"error": ...}`).
pub fn is_v2_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// The model version as the V2 surface names it: the major version, because Triton's tools
/// (perf_analyzer) parse versions as integers. The full semantic version is accepted too.
pub fn protocol_version(semver: &str) -> &str {
    semver.split('.').next().unwrap_or(semver)
}

/// 404 unless the path names the served model (and one of its version spellings, if any).
fn check_model(state: &AppState, path: &ModelPath) -> Result<(), V2Error> {
    let served = &state.model;
    if path.name != served.name {
        return Err(V2Error::not_found(format!(
            "unknown model '{}'; this server serves '{}'",
            path.name, served.name
        )));
    }
    match &path.version {
        Some(v) if v != protocol_version(&served.version) && *v != served.version => {
            Err(V2Error::not_found(format!(
                "unknown version '{v}' of model '{}'; the served version is '{}' ({})",
                path.name,
                protocol_version(&served.version),
                served.version
            )))
        }
        _ => Ok(()),
    }
}

/// Server name, version and the protocol extensions it implements.
#[utoipa::path(get, path = "/v2", tag = "kserve-v2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: EXTENSIONS.iter().map(|e| e.to_string()).collect(),
    })
}

/// Server liveness (200 = live).
#[utoipa::path(get, path = "/v2/health/live", tag = "kserve-v2",
    responses((status = 200, description = "Live", body = Health, example = json!({"live": true}))))]
pub async fn server_live() -> Json<Health> {
    Json(Health {
        live: Some(true),
        ready: None,
    })
}

/// Server readiness (200 = ready, 400 = warming up or shutting down).
#[utoipa::path(get, path = "/v2/health/ready", tag = "kserve-v2",
    responses(
        (status = 200, description = "Ready", body = Health, example = json!({"ready": true})),
        (status = 400, description = "Not ready", body = Health, example = json!({"ready": false})),
    ))]
pub async fn server_ready(State(state): State<Arc<AppState>>) -> Response {
    let ready = state.is_ready();
    // The protocol signals "false" with a 4xx status.
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let body = Health {
        live: None,
        ready: Some(ready),
    };
    (status, Json(body)).into_response()
}

/// Model metadata: inputs and outputs with datatypes and shapes.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "kserve-v2",
    params(ModelPath),
    responses(
        (status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelMetadata>, V2Error> {
    check_model(&state, &path)?;
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    };
    Ok(Json(ModelMetadata {
        name: state.model.name.clone(),
        versions: vec![protocol_version(&state.model.version).to_string()],
        platform: format!("burn_{}", state.model.backend),
        inputs: vec![tensor(INPUT_NAME, "FP32", vec![-1, INPUT_LEN as i64])],
        outputs: vec![
            tensor(
                OutputName::Probabilities.as_str(),
                "FP32",
                vec![-1, NUM_CLASSES as i64],
            ),
            tensor(OutputName::Label.as_str(), "INT64", vec![-1]),
        ],
    }))
}

/// Model readiness (200 = ready, 400 = not ready).
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "kserve-v2",
    params(ModelPath),
    responses(
        (status = 200, description = "Ready", body = ModelReady),
        (status = 400, description = "Not ready", body = ModelReady),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(path): Path<ModelPath>,
) -> Result<Response, V2Error> {
    check_model(&state, &path)?;
    let body = ModelReady {
        name: state.model.name.clone(),
        ready: state.is_ready(),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(body)).into_response())
}
