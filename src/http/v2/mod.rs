//! KServe V2 / Open Inference Protocol (REST), so Triton, KServe and MLServer clients can talk to
//! ember-serve unchanged. Requests go through the same queue, batching, limits and metrics as
//! `/v1/predict`; only the wire format differs.

pub mod codec;
pub mod error;
pub mod types;

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::codec::{HEADER_LENGTH, INPUT_NAME, OUTPUT_LABEL, OUTPUT_PROBABILITIES};
use self::error::V2Error;
use self::types::*;
use super::ApiError;
use super::state::AppState;
use crate::model::{INPUT_LEN, NUM_CLASSES};

/// Extensions advertised in `GET /v2`.
pub const EXTENSIONS: &[&str] = &["binary_tensor_data"];

pub fn routes() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(server_live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(model_metadata_version),
        )
        .route("/v2/models/{name}/ready", get(model_ready))
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(model_ready_version),
        )
        .route("/v2/models/{name}/infer", post(infer))
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(infer_version),
        )
}

/// 404 unless `name` (and `version`, if given) is the served model.
fn check_model(state: &AppState, name: &str, version: Option<&str>) -> Result<(), V2Error> {
    if name != state.model.name {
        return Err(V2Error::not_found(format!(
            "unknown model '{name}'; this server serves '{}'",
            state.model.name
        )));
    }
    match version {
        Some(v) if v != state.model.version => Err(V2Error::not_found(format!(
            "unknown version '{v}' of model '{name}'; the served version is '{}'",
            state.model.version
        ))),
        _ => Ok(()),
    }
}

/// Server name, version and protocol extensions.
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

fn readiness(state: &AppState) -> Response {
    if state.is_ready() {
        Json(Health {
            live: None,
            ready: Some(true),
        })
        .into_response()
    } else {
        // The protocol signals "false" with a 4xx status.
        (
            StatusCode::BAD_REQUEST,
            Json(Health {
                live: None,
                ready: Some(false),
            }),
        )
            .into_response()
    }
}

/// Server readiness (200 = ready, 400 = warming up or shutting down).
#[utoipa::path(get, path = "/v2/health/ready", tag = "kserve-v2",
    responses(
        (status = 200, description = "Ready", body = Health, example = json!({"ready": true})),
        (status = 400, description = "Not ready", body = Health, example = json!({"ready": false})),
    ))]
pub async fn server_ready(State(state): State<Arc<AppState>>) -> Response {
    readiness(&state)
}

fn metadata(state: &AppState) -> ModelMetadata {
    let tensor = |name: &str, datatype: &str, shape: Vec<i64>| TensorMetadata {
        name: name.into(),
        datatype: datatype.into(),
        shape,
    };
    ModelMetadata {
        name: state.model.name.clone(),
        versions: vec![state.model.version.clone()],
        platform: format!("burn_{}", state.model.backend),
        inputs: vec![tensor(INPUT_NAME, "FP32", vec![-1, INPUT_LEN as i64])],
        outputs: vec![
            tensor(OUTPUT_PROBABILITIES, "FP32", vec![-1, NUM_CLASSES as i64]),
            tensor(OUTPUT_LABEL, "INT64", vec![-1]),
        ],
    }
}

/// Model metadata: inputs and outputs with datatypes and shapes.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "kserve-v2",
    params(("name" = String, Path, description = "Model name", example = "digits-cnn")),
    responses(
        (status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "Unknown model", body = ErrorBody),
    ))]
pub async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, V2Error> {
    check_model(&state, &name, None)?;
    Ok(Json(metadata(&state)))
}

/// Model metadata for one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "kserve-v2",
    params(
        ("name" = String, Path, description = "Model name", example = "digits-cnn"),
        ("version" = String, Path, description = "Model version", example = "2.0.0"),
    ),
    responses(
        (status = 200, description = "Model metadata", body = ModelMetadata),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub async fn model_metadata_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ModelMetadata>, V2Error> {
    check_model(&state, &name, Some(&version))?;
    Ok(Json(metadata(&state)))
}

/// Model readiness (200 = ready).
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "kserve-v2",
    params(("name" = String, Path, description = "Model name", example = "digits-cnn")),
    responses(
        (status = 200, description = "Ready", body = ModelReady),
        (status = 400, description = "Not ready", body = ModelReady),
        (status = 404, description = "Unknown model", body = ErrorBody),
    ))]
pub async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, V2Error> {
    check_model(&state, &name, None)?;
    Ok(model_readiness(&state))
}

fn model_readiness(state: &AppState) -> Response {
    let body = ModelReady {
        name: state.model.name.clone(),
        ready: state.is_ready(),
    };
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, Json(body)).into_response()
}

/// Model readiness for one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "kserve-v2",
    params(
        ("name" = String, Path, description = "Model name", example = "digits-cnn"),
        ("version" = String, Path, description = "Model version", example = "2.0.0"),
    ),
    responses(
        (status = 200, description = "Ready", body = ModelReady),
        (status = 400, description = "Not ready", body = ModelReady),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub async fn model_ready_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, V2Error> {
    check_model(&state, &name, Some(&version))?;
    Ok(model_readiness(&state))
}

/// Run inference. JSON in and out by default; with the binary tensor data extension, the body
/// is a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensor bytes,
/// and outputs asked for with `binary_data` come back the same way.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "kserve-v2",
    params(("name" = String, Path, description = "Model name", example = "digits-cnn")),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Outputs (JSON, or JSON header + binary tensors)", body = InferResponse),
        (status = 400, description = "Malformed request, wrong shape, datatype or values", body = ErrorBody),
        (status = 404, description = "Unknown model", body = ErrorBody),
        (status = 413, description = "Body exceeds --body-limit", body = ErrorBody),
        (status = 503, description = "Not ready, or the queue is full (see Retry-After)", body = ErrorBody),
        (status = 504, description = "Not answered within --request-timeout", body = ErrorBody),
    ))]
pub async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, V2Error> {
    check_model(&state, &name, None)?;
    run_inference(&state, &headers, body).await
}

async fn run_inference(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, V2Error> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            V2Error {
                status: e.status(),
                message: format!("the request body exceeds the limit ({e})"),
            }
        } else {
            V2Error::bad_request(e.body_text())
        }
    })?;
    let header_length = headers
        .get(HEADER_LENGTH)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let (json_part, binary) = codec::split_body(&body, header_length)?;
    let request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| V2Error::bad_request(format!("invalid inference request JSON: {e}")))?;
    let rows = codec::decode_inputs(&request, binary, state.model.max_batch_size)?;
    let requested = codec::requested_outputs(&request)?;
    let predictions = state.predict(rows).await?;
    let (outputs, tail) = codec::encode_outputs(&predictions, &requested);
    let response = InferResponse {
        model_name: state.model.name.clone(),
        model_version: state.model.version.clone(),
        id: request.id,
        parameters: None,
        outputs,
    };
    let json = serde_json::to_vec(&response)
        .map_err(|e| V2Error::from(ApiError::Internal(format!("encoding the response: {e}"))))?;
    if tail.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let json_len = json.len();
    let mut bytes = json;
    bytes.extend_from_slice(&tail);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static(HEADER_LENGTH),
                json_len.to_string(),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// Run inference on one version of the model.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "kserve-v2",
    params(
        ("name" = String, Path, description = "Model name", example = "digits-cnn"),
        ("version" = String, Path, description = "Model version", example = "2.0.0"),
    ),
    request_body(content = InferRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Outputs", body = InferResponse),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
    ))]
pub async fn infer_version(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, V2Error> {
    check_model(&state, &name, Some(&version))?;
    run_inference(&state, &headers, body).await
}
