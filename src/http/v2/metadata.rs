//! Server and model metadata and health: what a client asks before it sends inferences.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::V2Error;
use super::imported;
use super::model::{ModelPath, find_model};
use super::types::*;
use crate::http::state::RepositoryApi;
use crate::protocol;
use crate::protocol::protocol_version;
use crate::service::{ModelService, Served};

/// Server name, version and the protocol extensions it implements.
#[utoipa::path(get, path = "/v2", tag = "kserve-v2",
    responses((status = 200, description = "Server metadata", body = ServerMetadata)))]
pub(crate) async fn server_metadata(
    State(RepositoryApi(on)): State<RepositoryApi>,
) -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        extensions: protocol::extensions(on),
    })
}

/// Server liveness (200 = live).
#[utoipa::path(get, path = "/v2/health/live", tag = "kserve-v2",
    responses((status = 200, description = "Live", body = Health, example = json!({"live": true}))))]
pub(crate) async fn server_live() -> Json<Health> {
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
pub(crate) async fn server_ready(State(state): State<Arc<ModelService>>) -> Response {
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
pub(crate) async fn model_metadata(
    State(state): State<Arc<ModelService>>,
    Path(path): Path<ModelPath>,
) -> Result<Json<ModelMetadata>, V2Error> {
    if let Served::Imported(model) = find_model(&state, &path)? {
        return Ok(Json(imported::metadata(
            &model,
            state.versions_of(&path.name),
        )));
    }
    let tensor = |t: protocol::TensorDescription| TensorMetadata {
        name: t.name.into(),
        datatype: t.datatype.as_str().into(),
        shape: t.shape,
    };
    Ok(Json(ModelMetadata {
        name: state.model.name.clone(),
        versions: vec![protocol_version(&state.model.version).to_string()],
        platform: format!("burn_{}", state.model.backend),
        inputs: protocol::inputs().into_iter().map(tensor).collect(),
        outputs: protocol::outputs().into_iter().map(tensor).collect(),
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
pub(crate) async fn model_ready(
    State(state): State<Arc<ModelService>>,
    Path(path): Path<ModelPath>,
) -> Result<Response, V2Error> {
    let ready = state.model_ready(&path.name, path.version.as_deref())?;
    let body = ModelReady {
        name: path.name,
        ready,
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(body)).into_response())
}
