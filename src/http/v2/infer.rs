//! `POST .../infer`: decode the request (JSON, or JSON header + binary tensors), run it through
//! the shared queue, encode the outputs the client asked for.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::codec::{self, HEADER_LENGTH};
use super::error::V2Error;
use super::imported;
use super::model::ModelPath;
use super::types::*;
use crate::http::extract::{BodyLimit, body_rejection};
use crate::protocol::protocol_version;
use crate::service::{ModelService, Served};

/// Run inference. JSON in and out by default; with the binary tensor data extension, the body
/// is a JSON header of `Inference-Header-Content-Length` bytes followed by raw tensor bytes,
/// and outputs asked for with `binary_data` come back the same way. An output asked for with
/// `classification: k` returns the top k classes (the classification extension).
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "kserve-v2",
    params(ModelPath),
    request_body(description = "JSON, or (binary tensor extension) a JSON header of \
        `Inference-Header-Content-Length` bytes followed by the inputs' raw bytes",
        content(
            (InferRequest = "application/json"),
            (BinaryTensors = "application/octet-stream"),
        )),
    responses(
        (status = 200, description = "Outputs: JSON, or (when an output asked for binary data) a \
            JSON header of `Inference-Header-Content-Length` bytes followed by the outputs' raw bytes",
            content(
                (InferResponse = "application/json"),
                (BinaryTensors = "application/octet-stream"),
            )),
        (status = 400, description = "Malformed request, wrong shape, datatype or values", body = ErrorBody),
        (status = 404, description = "Unknown model or version", body = ErrorBody),
        (status = 413, description = "Body (decompressed) exceeds --body-limit", body = ErrorBody),
        (status = 503, description = "Not ready, or the queue is full (see Retry-After)", body = ErrorBody),
        (status = 504, description = "Not answered within --request-timeout", body = ErrorBody),
    ))]
pub(crate) async fn infer(
    State(state): State<Arc<ModelService>>,
    Path(path): Path<ModelPath>,
    Extension(BodyLimit(limit)): Extension<BodyLimit>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, V2Error> {
    let (served, shadow) = state.route(
        &path.name,
        path.version.as_deref(),
        crate::http::extract::sticky_key(&state, &headers),
    )?;
    let body = body.map_err(|e| V2Error::from(body_rejection(e, limit)))?;
    let header_length = headers
        .get(HEADER_LENGTH)
        .map(|v| v.to_str().unwrap_or("invalid"));
    if let Served::Imported(model) = served {
        return imported::infer(&model, shadow, &body, header_length).await;
    }
    let (json_part, binary) = codec::split_body(&body, header_length)?;
    let request: InferRequest = serde_json::from_slice(json_part)
        .map_err(|e| V2Error::bad_request(format!("invalid inference request JSON: {e}")))?;
    let rows = codec::decode_inputs(&request, binary, state.model.max_batch_size)?;
    let requested = codec::requested_outputs(&request)?;
    let predictions = state.predict(rows).await?;
    let (outputs, tail) = codec::encode_outputs(&predictions, &requested, &state.model.labels);
    let response = InferResponse {
        model_name: state.model.name.clone(),
        model_version: protocol_version(&state.model.version).to_string(),
        id: request.id,
        parameters: None,
        outputs,
    };
    codec::respond(&response, tail)
}
