//! `config.json`, the file a user writes beside a model's ONNX graph: one definition, used by
//! the server at run time and by build.rs (which includes this file) to check every config
//! against its graph before the model is compiled in.

use serde::{Deserialize, Serialize};

/// A model's `config.json`: what the server needs that the graph does not say. Unknown fields
/// are refused: a misspelt one must not be silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub inputs: Vec<TensorConfig>,
    pub outputs: Vec<TensorConfig>,
    /// Most rows in one request and in one forward pass.
    pub max_batch: u32,
    /// Batch sizes worth padding a pass up to (warmed before serving).
    #[serde(default)]
    pub preferred_batch_sizes: Vec<u32>,
    /// Inference threads for this model (Triton's instance count); `--workers`' where absent.
    /// A small model beside others needs fewer than the server's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
}

/// One input or output tensor. The first dimension of `shape` is the batch (`-1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorConfig {
    pub name: String,
    /// KServe V2's name for the element type (`FP32`).
    pub datatype: String,
    pub shape: Vec<i64>,
    /// For a classifier's output: one name per class, in the order of its values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The smallest value an input accepts, where the model was only trained on larger ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl TensorConfig {
    /// Values per row: the product of every dimension after the batch.
    pub fn row_len(&self) -> usize {
        self.shape
            .iter()
            .skip(1)
            .map(|&d| d.max(0) as usize)
            .product()
    }
}
