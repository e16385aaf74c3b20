//! Open Inference Protocol (KServe V2) bodies, as the protocol names them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `GET /v2`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ember-serve", "version": "0.1.0", "extensions": ["binary_tensor_data"]}))]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// A tensor's name, datatype and shape (`-1`: any size).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "digits-cnn", "versions": ["2.0.0"], "platform": "burn_ndarray",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                {"name": "label", "datatype": "INT64", "shape": [-1]}]
}))]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "digits-cnn", "ready": true}))]
pub struct ModelReady {
    pub name: String,
    pub ready: bool,
}

/// `GET /v2/health/live` and `/v2/health/ready` (the status code is the answer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
}

/// A tensor as the protocol writes it, in requests (`inputs`) and responses (`outputs`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<i64>,
    /// Inputs: FP32, FP64, INT8..INT64 or UINT8..UINT64 (converted to FP32 where lossless).
    /// Outputs: FP32 (`probabilities`) or INT64 (`label`).
    pub datatype: String,
    /// `binary_data_size` marks data sent after the JSON header (binary tensor extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    /// Row-major values, flat or nested; absent when the data is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub data: Option<Value>,
}

/// An output the client asks for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RequestOutput {
    pub name: String,
    /// `binary_data: true` asks for the output after the JSON header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "42",
    "inputs": [{
        "name": "input", "shape": [1, 64], "datatype": "FP32",
        "data": [0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0]
    }],
    "outputs": [{"name": "label"}, {"name": "probabilities"}]
}))]
pub struct InferRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<Tensor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// Inference response (JSON part, when binary outputs follow it).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "model_name": "digits-cnn", "model_version": "2.0.0", "id": "42",
    "outputs": [
        {"name": "label", "shape": [1], "datatype": "INT64", "data": [0]},
        {"name": "probabilities", "shape": [1, 10], "datatype": "FP32",
         "data": [0.9999, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0001]}
    ]
}))]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Map<String, Value>>,
    pub outputs: Vec<Tensor>,
}

/// The protocol's error body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "unknown model 'mnist'; this server serves 'digits-cnn'"}))]
pub struct ErrorBody {
    pub error: String,
}
