//! KServe V1 and TensorFlow Serving's REST shape, for every served model: `GET /v1/models/{name}`
//! describes one, `POST /v1/models/{name}:predict` runs its `instances` (one per row) and answers
//! `predictions`. The same checks, queue and limits as V2 apply; only the wire format differs.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::ApiJson;
use super::types::*;
use super::v2::types::TensorData;
use crate::protocol::imported::{self as tensors, RequestInput, Values};
use crate::service::imported::ImportedService;
use crate::service::traffic::Shadow;
use crate::service::{ModelService, Served};
use ember_model::input;

/// `POST /v1/models/{name}:predict`, as KServe V1 and TensorFlow Serving take it: one instance
/// per row. An instance is the input's values (flat or nested, row-major) for a model with one
/// input, or an object of them by input name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"instances": [[17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189]]}))]
pub(crate) struct InstancesRequest {
    #[schema(value_type = Vec<Object>)]
    pub(crate) instances: Vec<Instance>,
}

/// One row of an [`InstancesRequest`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Instance {
    /// Values by input name (a map fails to parse as numbers, so it is tried first).
    Named(std::collections::BTreeMap<String, TensorData>),
    /// The values of the model's one input.
    Values(TensorData),
}

/// The answer of `POST /v1/models/{name}:predict`: one prediction per instance, in order. A
/// prediction is the output's values for a model with one output, or an object of them by
/// output name.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({"predictions": [[0.9999, 0.0001]], "model_version": "1.0.0"}))]
pub(crate) struct PredictionsResponse {
    #[schema(value_type = Vec<Object>)]
    pub(crate) predictions: Vec<serde_json::Value>,
    /// The version that answered (KServe V1 has no field for it; clients ignore it).
    pub(crate) model_version: String,
}

/// Every served model as `/v1/models` lists it: the digits model, then each loaded version of
/// the imported ones, newest first.
pub(crate) fn entries(state: &ModelService) -> Vec<ModelEntry> {
    let mut entries = vec![ModelEntry::Digits(state.model.clone())];
    for model in state.repository.models() {
        let default = model.find(None).ok();
        for version in model.versions() {
            let mut info = info(&version);
            info.default = default.as_ref().is_some_and(|d| Arc::ptr_eq(d, &version));
            entries.push(ModelEntry::Imported(info));
        }
    }
    entries
}

/// A loaded version, as the default one (what `find(name, None)` returns).
fn info(model: &ImportedService) -> ImportedModelInfo {
    let config = model.config();
    ImportedModelInfo {
        name: config.name.clone(),
        version: config.version.clone(),
        description: config.description.clone(),
        inputs: config.inputs.clone(),
        outputs: config.outputs.clone(),
        backend: model.backend.clone(),
        device: model.device.clone(),
        max_batch_size: config.max_batch as usize,
        weights: model.model.weights_origin().to_string(),
        weights_sha256: model.model.weights_sha256().into(),
        weights_bytes: model.model.weights_bytes(),
        default: true,
    }
}

fn lookup(state: &ModelService, name: &str) -> Result<Served, ApiError> {
    Ok(state.find(name, None)?)
}

/// One served model: its inputs, outputs and where it runs.
#[utoipa::path(get, path = "/v1/models/{name}", tag = "inference",
    params(("name" = String, Path, description = "Model name", example = "breast-cancer")),
    responses(
        (status = 200, description = "The model", body = ModelEntry),
        (status = 404, description = "No such model", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn model(
    State(state): State<Arc<ModelService>>,
    Path(name): Path<String>,
) -> Result<Json<ModelEntry>, ApiError> {
    Ok(Json(match lookup(&state, &name)? {
        Served::Digits => ModelEntry::Digits(state.model.clone()),
        Served::Imported(model) => ModelEntry::Imported(info(&model)),
    }))
}

/// Run `instances` through a model (`{name}:predict`; KServe V1, TensorFlow Serving).
#[utoipa::path(post, path = "/v1/models/{name}:predict", tag = "inference",
    params(("name" = String, Path, description = "Model name", example = "breast-cancer")),
    request_body(content = InstancesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One prediction per instance, in order", body = PredictionsResponse),
        (status = 400, description = "The body is not valid JSON", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No such model, or a verb other than `:predict`",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds --body-limit", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Wrong input names, shapes or values, empty or oversize batch",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not ready, or the queue is full (see Retry-After)",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Not answered within --request-timeout",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn predict(
    State(state): State<Arc<ModelService>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    ApiJson(request): ApiJson<InstancesRequest>,
) -> Result<Json<PredictionsResponse>, ApiError> {
    let (served, shadow) = state.route(
        &name,
        None,
        crate::http::extract::sticky_key(&state, &headers),
    )?;
    let (predictions, model_version) = match served {
        Served::Digits => (
            digits(&state, &request.instances).await?,
            state.model.version.clone(),
        ),
        Served::Imported(model) => (
            imported(&model, shadow, &request.instances).await?,
            model.version().to_string(),
        ),
    };
    Ok(Json(PredictionsResponse {
        predictions,
        model_version,
    }))
}

/// `/v1/models/{name}` and `/v1/models/{name}:predict` share one route (the router matches
/// whole path segments only): the path and the method choose the handler, and a method a path
/// does not take gets 405 with the `Allow` it does take.
pub(crate) async fn route(
    State(state): State<Arc<ModelService>>,
    Path(target): Path<String>,
    request: Request,
) -> Response {
    let refuse = |allow: &'static str| {
        let mut response = ApiError::MethodNotAllowed.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    };
    let method = request.method().clone();
    match target.rsplit_once(':') {
        None if method == Method::GET || method == Method::HEAD => {
            model(State(state), Path(target)).await.into_response()
        }
        None => refuse("GET,HEAD"),
        Some((name, "predict")) if method == Method::POST => {
            let headers = request.headers().clone();
            match ApiJson::<InstancesRequest>::from_request(request, &()).await {
                Ok(body) => predict(State(state), Path(name.to_string()), headers, body)
                    .await
                    .into_response(),
                Err(e) => e.into_response(),
            }
        }
        Some((_, "predict")) => refuse("POST"),
        Some((name, verb)) => ApiError::NotFound(format!(
            "/v1/models/{target} (no verb `:{verb}`; a model takes POST /v1/models/{name}:predict)"
        ))
        .into_response(),
    }
}

/// The values of `input` in one instance: the instance itself for a one-input model, else its
/// entry by name.
fn instance_values<'a>(
    instance: &'a Instance,
    index: usize,
    input: &str,
    only_input: bool,
) -> Result<&'a [f64], ApiError> {
    let data = match instance {
        Instance::Values(data) if only_input => data,
        Instance::Values(_) => {
            return Err(ApiError::InvalidInput(format!(
                "instance {index}: this model takes several inputs; send an object of them by name"
            )));
        }
        Instance::Named(map) => {
            if let Some(unknown) = map.keys().find(|k| only_input && *k != input) {
                return Err(ApiError::InvalidInput(format!(
                    "instance {index}: unknown input '{unknown}'; the model's input is '{input}'"
                )));
            }
            map.get(input).ok_or_else(|| {
                ApiError::InvalidInput(format!("instance {index}: input '{input}' is missing"))
            })?
        }
    };
    if let Some(found) = &data.not_a_number {
        return Err(ApiError::InvalidInput(format!(
            "instance {index}, input '{input}': values must be numbers, found {found}"
        )));
    }
    Ok(&data.values)
}

async fn digits(state: &ModelService, instances: &[Instance]) -> Result<Vec<Value>, ApiError> {
    let rows = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| instance_values(instance, i, crate::protocol::INPUT_NAME, true))
        .collect::<Result<Vec<_>, _>>()?;
    let images = input::images_from_rows(rows.into_iter(), state.model.max_batch_size)?;
    let predictions = state.predict(images).await?;
    Ok(predictions
        .into_iter()
        .map(|p| json!({"probabilities": p.probabilities.to_vec(), "label": p.label}))
        .collect())
}

async fn imported(
    model: &ImportedService,
    shadow: Option<Shadow>,
    instances: &[Instance],
) -> Result<Vec<Value>, ApiError> {
    let config = model.config();
    let only_input = config.inputs.len() == 1;
    if let Some((i, unknown)) =
        instances
            .iter()
            .enumerate()
            .find_map(|(i, instance)| match instance {
                Instance::Named(map) => map
                    .keys()
                    .find(|k| !config.inputs.iter().any(|t| &t.name == *k))
                    .map(|k| (i, k)),
                Instance::Values(_) => None,
            })
    {
        return Err(ApiError::InvalidInput(format!(
            "instance {i}: model {} has no input '{unknown}'",
            config.name
        )));
    }
    // One tensor per input, the instances' values one after another.
    let mut tensors = Vec::with_capacity(config.inputs.len());
    let mut shapes = Vec::with_capacity(config.inputs.len());
    for spec in &config.inputs {
        let mut values = Vec::with_capacity(instances.len() * spec.row_len());
        for (i, instance) in instances.iter().enumerate() {
            let row = instance_values(instance, i, &spec.name, only_input)?;
            if row.len() != spec.row_len() {
                return Err(ApiError::InvalidInput(format!(
                    "instance {i}, input '{}': {} values; the input takes {} (shape {:?})",
                    spec.name,
                    row.len(),
                    spec.row_len(),
                    spec.shape
                )));
            }
            values.extend_from_slice(row);
        }
        let mut shape = vec![instances.len() as i64];
        shape.extend(&spec.shape[1..]);
        tensors.push(values);
        shapes.push(shape);
    }
    let inputs: Vec<RequestInput> = config
        .inputs
        .iter()
        .zip(tensors.iter().zip(&shapes))
        .map(|(spec, (values, shape))| RequestInput {
            name: &spec.name,
            shape,
            datatype: "FP32",
            values: Values::Numbers(values),
        })
        .collect();
    let rows =
        tensors::rows(&model.model, &inputs).map_err(|e| ApiError::InvalidInput(e.to_string()))?;
    let answers = model.predict_shadowed(rows, shadow).await?;
    let mut offset = 0;
    let widths: Vec<(usize, usize)> = config
        .outputs
        .iter()
        .map(|t| {
            let start = offset;
            offset += t.row_len();
            (start, offset)
        })
        .collect();
    Ok(answers
        .iter()
        .map(|answer| {
            let mut outputs = config.outputs.iter().zip(&widths).map(|(t, &(a, b))| {
                let values = answer.get(a..b).unwrap_or_default();
                (t.name.clone(), json!(values))
            });
            if config.outputs.len() == 1 {
                outputs.next().map_or(Value::Null, |(_, v)| v)
            } else {
                Value::Object(outputs.collect::<Map<_, _>>())
            }
        })
        .collect())
}
