//! The Open Inference Protocol (KServe V2) apart from its transports: which model and version a
//! request names, the tensors this model takes and gives, and the checks and encodings that
//! REST (`crate::http::v2`) and gRPC (`crate::grpc`) share, so both answer alike, word for word.

pub(crate) mod datatype;
pub(crate) mod imported;
pub mod tensors;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) use self::datatype::Datatype;

/// Extensions this server always implements.
const EXTENSIONS: &[&str] = &[
    "binary_tensor_data",
    "classification",
    "model_configuration",
    "statistics",
];

/// Extensions this server implements, as `GET /v2` and gRPC `ServerMetadata` list them: Triton's
/// model repository extension only where it is on (`--model-control-mode explicit`), so a tool
/// that reads the list before calling it is not sent to a 404.
pub(crate) fn extensions(repository_api: bool) -> Vec<String> {
    let mut listed: Vec<String> = EXTENSIONS.iter().map(|e| e.to_string()).collect();
    if repository_api {
        listed.push("model_repository".into());
        listed.sort();
    }
    listed
}

/// The one input this model takes.
pub(crate) const INPUT_NAME: &str = "input";

/// The outputs this model produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = V2OutputName)]
pub(crate) enum OutputName {
    /// FP32 `[batch, 10]`: the probability of each class.
    Probabilities,
    /// INT64 `[batch]`: the most probable class.
    Label,
}

impl OutputName {
    pub(crate) const ALL: [OutputName; 2] = [Self::Probabilities, Self::Label];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Probabilities => "probabilities",
            Self::Label => "label",
        }
    }

    /// An output by its name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The datatype of the output tensor (classification results are BYTES instead).
    pub(crate) fn datatype(self) -> Datatype {
        match self {
            Self::Probabilities => Datatype::FP32,
            Self::Label => Datatype::INT64,
        }
    }
}

/// A tensor the model takes or gives, as metadata and configuration describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorDescription {
    pub(crate) name: &'static str,
    pub(crate) datatype: Datatype,
    /// With the batch dimension first, as `-1`.
    pub(crate) shape: Vec<i64>,
}

impl TensorDescription {
    /// Triton's model configuration: dimensions without the batch dimension, and the reshape
    /// that makes a batched scalar (`[-1]`, dims `[1]`) one number per input again.
    pub(crate) fn config_dims(&self) -> (Vec<i64>, Option<Vec<i64>>) {
        match &self.shape[1..] {
            [] => (vec![1], Some(vec![])),
            dims => (dims.to_vec(), None),
        }
    }
}

/// The model's input: FP32 `[-1, 64]`.
pub(crate) fn inputs() -> Vec<TensorDescription> {
    vec![TensorDescription {
        name: INPUT_NAME,
        datatype: Datatype::FP32,
        shape: vec![-1, ember_model::INPUT_LEN as i64],
    }]
}

/// The model's outputs: `probabilities` FP32 `[-1, 10]` and `label` INT64 `[-1]`.
pub(crate) fn outputs() -> Vec<TensorDescription> {
    let describe = |name: OutputName, shape: Vec<i64>| TensorDescription {
        name: name.as_str(),
        datatype: name.datatype(),
        shape,
    };
    vec![
        describe(
            OutputName::Probabilities,
            vec![-1, ember_model::NUM_CLASSES as i64],
        ),
        describe(OutputName::Label, vec![-1]),
    ]
}

pub(crate) use crate::service::lookup::{ModelLookupError, protocol_version};
