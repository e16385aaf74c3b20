//! The OpenAPI 3.1 document, assembled from the `#[utoipa::path]` descriptions in `routes.rs`.

use utoipa::OpenApi;

use super::types::*;
use super::{routes, v2};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ember-serve",
        description = "Classify 8×8 handwritten digits with a burn CNN. Errors are RFC 9457 \
                       problem details (`application/problem+json`)."
    ),
    paths(
        routes::index, routes::live, routes::ready, routes::models, routes::predict, routes::metrics,
        v2::server_metadata, v2::server_live, v2::server_ready, v2::model_metadata,
        v2::model_metadata_version, v2::model_ready, v2::model_ready_version, v2::infer,
        v2::infer_version,
    ),
    components(schemas(
        PredictRequest, PredictResponse, PredictionBody, ModelsResponse, ModelMetadata,
        HealthResponse, IndexResponse, Problem,
        v2::types::ServerMetadata, v2::types::Health, v2::types::ModelMetadata,
        v2::types::TensorMetadata, v2::types::ModelReady, v2::types::InferRequest,
        v2::types::Tensor, v2::types::RequestOutput, v2::types::InferResponse,
        v2::types::ErrorBody
    )),
    tags(
        (name = "inference", description = "Predictions and model metadata"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "Index and Prometheus metrics"),
        (name = "kserve-v2", description = "KServe V2 / Open Inference Protocol (Triton-compatible, with binary tensor data)"),
    )
)]
pub struct ApiDoc;

/// The document served at `/api-docs/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
