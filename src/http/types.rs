//! Request and response bodies, with the OpenAPI schemas and examples derived beside them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::service::ServedModel;

/// An 8×8 digit ("0") from the data set, used as the documented example.
pub(crate) const EXAMPLE_DIGIT: [u8; 64] = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0,
    8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6,
    13, 10, 0, 0, 0,
];

/// `POST /v1/predict` body.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"inputs": [&EXAMPLE_DIGIT[..]]}))]
pub struct PredictRequest {
    /// One or more images (at most `--max-batch`), each 64 pixel values in 0..=16, row-major
    /// (8 rows of 8).
    #[schema(schema_with = images_schema)]
    pub inputs: Vec<Vec<f64>>,
}

/// Rows of exactly 64 pixel values in 0..=16; at least one row. The document the server serves
/// also says at most `--max-batch` rows (`openapi::document`).
fn images_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let pixel = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(0.0))
        .maximum(Some(ember_model::PIXEL_MAX as f64));
    let image = ArrayBuilder::new()
        .items(pixel)
        .min_items(Some(ember_model::INPUT_LEN))
        .max_items(Some(ember_model::INPUT_LEN));
    ArrayBuilder::new().items(image).min_items(Some(1)).build()
}

/// One input's result.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct PredictionBody {
    /// The predicted digit.
    #[schema(example = "0")]
    pub label: String,
    /// Index of the predicted class (0..=9).
    #[schema(example = 0)]
    pub class: usize,
    /// Probability of the predicted class.
    #[schema(example = 0.998)]
    pub confidence: f32,
    /// Probability of every class, in label order.
    pub probabilities: Vec<f32>,
}

/// `POST /v1/predict` answer: one prediction per input, in the same order.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct PredictResponse {
    pub model: String,
    pub model_version: String,
    /// `flex`, `ndarray` or `wgpu`.
    pub backend: String,
    /// `cpu` or the GPU adapter's name.
    pub device: String,
    pub predictions: Vec<PredictionBody>,
}

/// `GET /v1/models` answer: the digits model first, then each model compiled in from the model
/// repository.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct ModelsResponse {
    pub(crate) models: Vec<ModelEntry>,
}

/// One served model, as `/v1/models` lists it.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ModelEntry {
    /// The digits CNN, with its weights manifest.
    Digits(ServedModel),
    /// A model compiled in from `weights/<name>/model.onnx`.
    Imported(ImportedModelInfo),
}

/// A model compiled in from ONNX: its config, and where it runs.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct ImportedModelInfo {
    #[schema(example = "breast-cancer")]
    pub(crate) name: String,
    #[schema(example = "1.0.0")]
    pub(crate) version: String,
    pub(crate) description: String,
    /// Each input: name, datatype, shape (`-1`: the batch), and the range of values it accepts.
    #[schema(value_type = Vec<Object>)]
    pub(crate) inputs: Vec<ember_model::TensorConfig>,
    /// Each output: name, datatype, shape, and its class labels where it classifies.
    #[schema(value_type = Vec<Object>)]
    pub(crate) outputs: Vec<ember_model::TensorConfig>,
    pub(crate) backend: String,
    pub(crate) device: String,
    /// Most rows accepted in one request.
    pub(crate) max_batch_size: usize,
    /// Where the weights came from: `bundled` (extracted from the graph at build time) or the
    /// weights version's file (`<--weights>/<name>/<version>/`).
    #[schema(example = "bundled")]
    pub(crate) weights: String,
    /// sha256 of the weights loaded.
    pub(crate) weights_sha256: String,
    /// Bytes of weights this version holds (what --memory-budget counts).
    pub(crate) weights_bytes: u64,
    /// Whether this version answers requests that name none.
    pub(crate) default: bool,
}

/// Health probe answer.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct HealthResponse {
    /// `live` or `ready`.
    #[schema(example = "ready")]
    pub(crate) status: String,
}

/// `GET /` answer: where things are.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub(crate) struct IndexResponse {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) docs: String,
    pub(crate) openapi: String,
    pub(crate) metrics: String,
    pub(crate) live: String,
    pub(crate) ready: String,
    pub(crate) predict: String,
    pub(crate) models: String,
}

/// RFC 9457 problem details, served as `application/problem+json`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:ember-serve:problem:invalid-input",
    "title": "Invalid input",
    "status": 422,
    "detail": "inputs[0] has 63 values; each input must have exactly 64 (an 8×8 image, row-major)"
}))]
pub(crate) struct Problem {
    /// A URI naming the error class; stable, so clients can branch on it.
    pub r#type: String,
    pub(crate) title: String,
    pub(crate) status: u16,
    /// What went wrong and how to fix it.
    pub(crate) detail: String,
    /// The request's id (the `X-Request-Id` response header), for matching a report to the
    /// server's logs and traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) request_id: Option<String>,
}
