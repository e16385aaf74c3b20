//! The OpenAPI 3.1 document, assembled from the `#[utoipa::path]` descriptions in `routes.rs`.

use utoipa::OpenApi;

use super::routes;
use super::types::*;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ember-serve",
        description = "Classify 8×8 handwritten digits with a burn CNN. Errors are RFC 9457 \
                       problem details (`application/problem+json`)."
    ),
    paths(routes::index, routes::live, routes::ready, routes::models, routes::predict, routes::metrics),
    components(schemas(
        PredictRequest, PredictResponse, PredictionBody, ModelsResponse, ModelMetadata,
        HealthResponse, IndexResponse, Problem
    )),
    tags(
        (name = "inference", description = "Predictions and model metadata"),
        (name = "health", description = "Liveness and readiness probes"),
        (name = "meta", description = "Index and Prometheus metrics"),
    )
)]
pub struct ApiDoc;

/// The document served at `/api-docs/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
