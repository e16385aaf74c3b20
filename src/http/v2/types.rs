//! Open Inference Protocol (KServe V2) bodies, as the protocol names them.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub(crate) use crate::protocol::OutputName;

/// `GET /v2`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ember-serve", "version": "0.1.0", "extensions": ["binary_tensor_data"]}))]
#[schema(as = V2ServerMetadata)]
pub(crate) struct ServerMetadata {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) extensions: Vec<String>,
}

/// A tensor's name, datatype and shape (`-1`: any size).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(as = V2TensorMetadata)]
pub(crate) struct TensorMetadata {
    pub(crate) name: String,
    pub(crate) datatype: String,
    pub(crate) shape: Vec<i64>,
}

/// `GET /v2/models/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "digits-cnn", "versions": ["2.0.0"], "platform": "burn_ndarray",
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
    "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                {"name": "label", "datatype": "INT64", "shape": [-1]}]
}))]
#[schema(as = V2ModelMetadata)]
pub(crate) struct ModelMetadata {
    pub(crate) name: String,
    pub(crate) versions: Vec<String>,
    pub(crate) platform: String,
    pub(crate) inputs: Vec<TensorMetadata>,
    pub(crate) outputs: Vec<TensorMetadata>,
}

/// `GET /v2/models/{name}/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "digits-cnn", "ready": true}))]
#[schema(as = V2ModelReady)]
pub(crate) struct ModelReady {
    pub(crate) name: String,
    pub(crate) ready: bool,
}

/// `GET /v2/health/live` and `/v2/health/ready` (the status code is the answer).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2Health)]
pub(crate) struct Health {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) live: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ready: Option<bool>,
}

/// An output tensor of an inference response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(as = V2Tensor)]
pub struct Tensor {
    pub(crate) name: String,
    pub(crate) shape: Vec<i64>,
    /// FP32 (`probabilities`), INT64 (`label`) or BYTES (classification).
    pub(crate) datatype: String,
    /// `binary_data_size` marks data sent after the JSON header (binary tensor extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) parameters: Option<Map<String, Value>>,
    /// Row-major values: numbers, or strings for BYTES; absent when the data is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = output_data_schema)]
    pub(crate) data: Option<Value>,
}

/// A flat array of numbers or of strings (BYTES).
fn output_data_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let element = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::String));
    ArrayBuilder::new().items(element).build()
}

/// What a requested output's `parameters` may say.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = V2OutputParameters)]
pub(crate) struct OutputParameters {
    /// `true`: return this output as binary tensor data after the JSON header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) binary_data: Option<bool>,
    /// The classification extension: return the top k classes of `probabilities`, per input,
    /// as BYTES strings `"<probability>:<index>:<label>"`, most probable first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10)]
    pub(crate) classification: Option<i64>,
}

/// An output the client asks for.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2RequestOutput)]
pub(crate) struct RequestOutput {
    pub(crate) name: OutputName,
    /// An object (read as [`OutputParameters`]; other keys are ignored, as the protocol allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<OutputParameters>)]
    pub(crate) parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{name}/infer`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "42",
    "inputs": [{
        "name": "input", "shape": [1, 64], "datatype": "FP32",
        "data": &crate::http::types::EXAMPLE_DIGIT[..]
    }],
    "outputs": [{"name": "label"}, {"name": "probabilities"}]
}))]
#[schema(as = V2InferRequest)]
pub struct InferRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) parameters: Option<Map<String, Value>>,
    /// This model takes exactly one input.
    #[schema(min_items = 1, max_items = 1)]
    pub(crate) inputs: Vec<InputTensor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outputs: Option<Vec<RequestOutput>>,
}

/// An inference request to a model compiled in from ONNX, whose outputs are named in its
/// config rather than known here (`GET /v2/models/{name}` lists them).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ModelInferRequest {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default)]
    pub(crate) parameters: Option<Map<String, Value>>,
    pub(crate) inputs: Vec<InputTensor>,
    #[serde(default)]
    pub(crate) outputs: Option<Vec<NamedOutput>>,
}

/// An output a [`ModelInferRequest`] asks for.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct NamedOutput {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) parameters: Option<Map<String, Value>>,
}

/// The input this model takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = V2InputName)]
pub(crate) enum InputName {
    /// `[batch, 64]`: 8×8 images, row-major, pixel values 0..=16.
    Input,
}

/// What an input's `parameters` may say.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2InputParameters)]
pub(crate) struct InputParameters {
    /// The binary tensor extension: the input's bytes follow the JSON header, this many.
    #[schema(minimum = 0)]
    pub(crate) binary_data_size: Option<u64>,
}

/// An input tensor of an inference request. Its `shape` is `[batch, 64]`, and `data` (or the
/// binary bytes) holds exactly batch × 64 values, which a schema cannot say.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[schema(as = V2InputTensor)]
pub(crate) struct InputTensor {
    #[schema(value_type = InputName)]
    pub(crate) name: String,
    #[schema(min_items = 2, max_items = 2)]
    pub(crate) shape: Vec<i64>,
    #[schema(schema_with = crate::protocol::datatype::input_schema)]
    pub(crate) datatype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<InputParameters>)]
    pub(crate) parameters: Option<Map<String, Value>>,
    /// Row-major values, flat or nested; absent when the data is binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<f64>>)]
    pub(crate) data: Option<TensorData>,
}

/// An input's JSON `data`, flattened in row-major order as it is parsed, without a JSON value
/// per number (half of a V2 JSON request's decoding time, benches/README.md). A value that is
/// not a number does not fail the parse: it is noted, so the tensor's name, shape and datatype
/// are checked first, as for any other request.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TensorData {
    pub(crate) values: Vec<f64>,
    /// The first value that is not a number, as JSON writes it (an object: `an object`).
    pub(crate) not_a_number: Option<String>,
}

impl From<Vec<f64>> for TensorData {
    fn from(values: Vec<f64>) -> Self {
        Self {
            values,
            not_a_number: None,
        }
    }
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.values.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut data = TensorData::default();
        Flatten(&mut data).deserialize(deserializer)?;
        Ok(data)
    }
}

/// Appends one JSON value (a number, or an array nested to any depth) to the data.
struct Flatten<'a>(&'a mut TensorData);

impl Flatten<'_> {
    fn other(self, found: impl FnOnce() -> String) {
        self.0.not_a_number.get_or_insert_with(found);
    }
}

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("numbers, flat or in nested arrays")
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.values.push(v);
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items.next_element_seed(Flatten(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.other(|| Value::from(v).to_string());
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.other(|| v.to_string());
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.other(|| "null".into());
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        while entries.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.other(|| "an object".into());
        Ok(())
    }
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
#[schema(as = V2InferResponse)]
pub(crate) struct InferResponse {
    pub(crate) model_name: String,
    pub(crate) model_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) parameters: Option<Map<String, Value>>,
    pub(crate) outputs: Vec<Tensor>,
}

/// The protocol's error body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "unknown model 'mnist'; this server serves 'digits-cnn'"}))]
#[schema(as = V2ErrorBody)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
}

/// A `{count, ns}` pair of the statistics extension.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[schema(as = V2StatisticDuration)]
pub(crate) struct StatisticDuration {
    pub(crate) count: u64,
    pub(crate) ns: u64,
}

/// Cumulative per-request statistics: each request is charged the whole pass it ran in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2InferStatistics)]
pub(crate) struct InferStatistics {
    /// Answered requests, and their time from submission to answer.
    pub(crate) success: StatisticDuration,
    /// Failed requests (queue full, timeout, forward-pass error), and their time until failure.
    pub(crate) fail: StatisticDuration,
    /// Time requests waited in the queue.
    pub(crate) queue: StatisticDuration,
    /// Gathering inputs into one batch.
    pub(crate) compute_input: StatisticDuration,
    /// The forward pass.
    pub(crate) compute_infer: StatisticDuration,
    /// Turning outputs into per-request answers.
    pub(crate) compute_output: StatisticDuration,
    /// Always zero: there is no response cache.
    pub(crate) cache_hit: StatisticDuration,
    /// Always zero: there is no response cache.
    pub(crate) cache_miss: StatisticDuration,
}

/// Cumulative statistics of the forward passes of one batch size (one count per pass).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2BatchStatistics)]
pub(crate) struct BatchStatistics {
    pub(crate) batch_size: u64,
    pub(crate) compute_input: StatisticDuration,
    pub(crate) compute_infer: StatisticDuration,
    pub(crate) compute_output: StatisticDuration,
}

/// One model version's statistics, cumulative since the server started.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2ModelStatistics)]
pub(crate) struct ModelStatistics {
    pub(crate) name: String,
    pub(crate) version: String,
    /// When the last forward pass finished, in milliseconds since the Unix epoch (0: none yet).
    pub(crate) last_inference: u64,
    /// Inputs run (a batch of n counts n).
    pub(crate) inference_count: u64,
    /// Forward passes run.
    pub(crate) execution_count: u64,
    pub(crate) inference_stats: InferStatistics,
    /// Only the batch sizes that ran, smallest first.
    pub(crate) batch_stats: Vec<BatchStatistics>,
}

/// `GET /v2/models/stats` and `/v2/models/{name}[/versions/{version}]/stats`: Triton's
/// statistics extension.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2StatisticsResponse)]
pub(crate) struct StatisticsResponse {
    pub(crate) model_stats: Vec<ModelStatistics>,
}

/// An input or output in the model configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2ConfigTensor)]
pub(crate) struct ConfigTensor {
    pub(crate) name: String,
    /// `TYPE_FP32`, `TYPE_INT64`, ...
    pub(crate) data_type: String,
    /// Shape without the batch dimension.
    pub(crate) dims: Vec<i64>,
    /// The shape the tensor really has (without the batch dimension), where it differs from
    /// `dims`: `label` is one number per input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reshape: Option<ConfigReshape>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2ConfigReshape)]
pub(crate) struct ConfigReshape {
    pub(crate) shape: Vec<i64>,
}

/// How requests are batched: the server's `--batch-wait` and `--max-queue`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2DynamicBatching)]
pub(crate) struct DynamicBatching {
    pub(crate) max_queue_delay_microseconds: u64,
    pub(crate) preferred_batch_size: Vec<u32>,
    pub(crate) default_queue_policy: QueuePolicy,
}

impl DynamicBatching {
    /// A queue's batching settings, in Triton's terms.
    pub(crate) fn of(queue: &crate::inference::QueueConfig) -> Self {
        Self {
            max_queue_delay_microseconds: queue.batch_wait.as_micros() as u64,
            preferred_batch_size: queue
                .buckets
                .sizes()
                .iter()
                .map(|&n| u32::try_from(n).unwrap_or(u32::MAX))
                .collect(),
            default_queue_policy: QueuePolicy {
                max_queue_size: queue.max_queue as u64,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2QueuePolicy)]
pub(crate) struct QueuePolicy {
    pub(crate) max_queue_size: u64,
}

/// The inference threads (`--workers`) and where they run.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2InstanceGroup)]
pub struct InstanceGroup {
    pub name: String,
    /// `KIND_CPU` or `KIND_GPU`.
    pub(crate) kind: String,
    pub count: u64,
}

impl From<crate::service::InstanceGroup> for InstanceGroup {
    fn from(g: crate::service::InstanceGroup) -> Self {
        Self {
            name: g.name,
            kind: if g.gpu { "KIND_GPU" } else { "KIND_CPU" }.into(),
            count: g.count as u64,
        }
    }
}

/// A configuration parameter (Triton's `ModelParameter`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2ConfigParameter)]
pub(crate) struct ConfigParameter {
    pub(crate) string_value: String,
}

/// `GET /v2/models/{name}[/versions/{version}]/config`: Triton's model configuration
/// extension, describing the served model and how this server batches it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = V2ModelConfig)]
pub(crate) struct ModelConfig {
    pub(crate) name: String,
    pub(crate) platform: String,
    /// `burn`.
    pub(crate) backend: String,
    /// `--max-batch`.
    pub(crate) max_batch_size: u64,
    pub(crate) input: Vec<ConfigTensor>,
    pub(crate) output: Vec<ConfigTensor>,
    pub(crate) dynamic_batching: DynamicBatching,
    pub(crate) instance_group: Vec<InstanceGroup>,
    /// `labels`: the class labels as a JSON array, in class order; `burn_backend`, `device`,
    /// `model_version` (the full semantic version) and `weights_sha256`.
    #[schema(value_type = Object)]
    pub(crate) parameters: std::collections::BTreeMap<String, ConfigParameter>,
}

/// A binary tensor body: a JSON header of `Inference-Header-Content-Length` bytes, then each
/// binary tensor's raw little-endian bytes, in order.
#[derive(ToSchema)]
#[schema(as = V2BinaryTensors, value_type = String, format = Binary)]
pub(crate) struct BinaryTensors(
    #[expect(
        dead_code,
        reason = "only the OpenAPI document names it; the body is read as bytes"
    )]
    Vec<u8>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> TensorData {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn data_is_flattened_in_row_major_order_at_any_depth() {
        let want: Vec<f64> = vec![1.0, 2.5, 3.0, 4.0, 0.0, 16.0];
        for json in [
            "[1, 2.5, 3, 4, 0, 16]",
            "[[1, 2.5, 3], [4, 0, 16]]",
            "[[[1], [2.5, 3]], [[4, 0], [16]]]",
            "[[1, 2.5, 3], [], [4, 0, 16]]",
        ] {
            assert_eq!(parse(json), TensorData::from(want.clone()), "{json}");
        }
        assert_eq!(parse("-7").values, vec![-7.0]);
        assert_eq!(parse("[]"), TensorData::default());
        let data = TensorData::from(want.clone());
        assert_eq!(parse(&serde_json::to_string(&data).unwrap()), data);
    }

    #[test]
    fn the_first_value_that_is_not_a_number_is_named_and_the_rest_still_parsed() {
        let data = parse(r#"[[1, "a\"b", 2], [true, null, {"k": [1]}, 3]]"#);
        assert_eq!(data.not_a_number.as_deref(), Some(r#""a\"b""#));
        assert_eq!(data.values, vec![1.0, 2.0, 3.0]);
        for (json, found) in [
            ("[1, true]", "true"),
            ("[null]", "null"),
            (r#"[{"k": 1}, 2]"#, "an object"),
        ] {
            assert_eq!(parse(json).not_a_number.as_deref(), Some(found), "{json}");
        }
        // Not JSON at all is still a parse error.
        assert!(serde_json::from_str::<TensorData>("[1, 2").is_err());
    }
}
