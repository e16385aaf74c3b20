//! The handlers, each with its OpenAPI description beside it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use super::error::ApiError;
use super::extract::ApiJson;
use super::types::*;
use crate::service::ModelService;
use ember_model::input;

/// Links to everything else, or (for a browser, `Accept: text/html`) the page to draw a digit on.
#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "Where the docs, metrics and probes are; the drawing page for browsers",
        content(
            (IndexResponse = "application/json"),
            (String = "text/html"),
        ))))]
pub(crate) async fn index(headers: HeaderMap) -> Response {
    if super::page::wants_html(&headers) {
        return super::page::html();
    }
    Json(IndexResponse {
        name: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        docs: "/docs".into(),
        openapi: "/api-docs/openapi.json".into(),
        metrics: "/metrics".into(),
        live: "/health/live".into(),
        ready: "/health/ready".into(),
        predict: "/v1/predict".into(),
        models: "/v1/models".into(),
    })
    .into_response()
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = HealthResponse,
        example = json!({"status": "live"}))))]
pub(crate) async fn live() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "live".into(),
    })
}

/// Readiness: the model is loaded, every inference thread has run its warm-up passes, and the
/// server is not shutting down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready for traffic", body = HealthResponse,
            example = json!({"status": "ready"})),
        (status = 503, description = "Warming up or shutting down", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn ready(
    State(state): State<Arc<ModelService>>,
) -> Result<Json<HealthResponse>, ApiError> {
    if state.is_ready() {
        Ok(Json(HealthResponse {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::NotReady(
            "the model is warming up or the server is shutting down".into(),
        ))
    }
}

/// Every served model: shapes, labels, backend and device; the digits model first.
#[utoipa::path(get, path = "/v1/models", tag = "inference",
    responses((status = 200, description = "The served models", body = ModelsResponse)))]
pub(crate) async fn models(State(state): State<Arc<ModelService>>) -> Json<ModelsResponse> {
    Json(ModelsResponse {
        models: super::instances::entries(&state),
    })
}

/// Classify one or more 8×8 digit images.
#[utoipa::path(post, path = "/v1/predict", tag = "inference",
    request_body(content = PredictRequest, content_type = "application/json",
        example = json!({"inputs": [&EXAMPLE_DIGIT[..]]})),
    responses(
        (status = 200, description = "One prediction per input, in order", body = PredictResponse),
        (status = 400, description = "The body is not valid JSON", body = Problem,
            content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds --body-limit", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "Content-Type is not application/json", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Wrong shape, out-of-range values, empty or oversize batch",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not ready, or the queue is full (see Retry-After)",
            body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Not answered within --request-timeout",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn predict(
    State(state): State<Arc<ModelService>>,
    ApiJson(request): ApiJson<PredictRequest>,
) -> Result<Json<PredictResponse>, ApiError> {
    let rows = input::images_from_rows(
        request.inputs.iter().map(Vec::as_slice),
        state.model.max_batch_size,
    )?;
    let predictions = state.predict(rows).await?;
    let predictions = predictions
        .into_iter()
        .map(|p| PredictionBody {
            label: state.label(p.label),
            class: p.label,
            confidence: p.confidence,
            probabilities: p.probabilities.to_vec(),
        })
        .collect();
    Ok(Json(PredictResponse {
        model: state.model.name.clone(),
        model_version: state.model.version.clone(),
        backend: state.model.backend.clone(),
        device: state.model.device.clone(),
        predictions,
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)",
        content_type = "text/plain", body = String)))]
pub(crate) async fn metrics(State(metrics): State<PrometheusHandle>) -> impl IntoResponse {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::telemetry::metrics::render(&metrics),
    )
}
