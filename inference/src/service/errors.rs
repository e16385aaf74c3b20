//! What the model services report besides answers: why a request got none, why a warm-up
//! did not make a model ready, and the inference threads a model runs on.

use std::time::Duration;

use crate::InferenceError;

/// A group of inference threads on one kind of device, as Triton's model configuration lists
/// them (`instance_group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceGroup {
    pub name: String,
    pub gpu: bool,
    pub count: usize,
}

/// What a client is told, on every surface, when the server failed to answer (a forward pass
/// failed): stable, so clients and alerts can match it. The cause goes to the log with the
/// request id, never to the client.
pub const INTERNAL_DETAIL: &str =
    "the server failed to answer this request; its log has the reason under the request id";

/// Why a request got no predictions from the service.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PredictError {
    #[error("the model is not ready yet")]
    NotReady,
    #[error("no answer within the request timeout of {0:?} (--request-timeout)")]
    Timeout(Duration),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// Why the warm-up pass did not make the service ready.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WarmUpError {
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error("warm-up probabilities sum to {0}, not 1")]
    NotAProbability(f32),
    #[error("warm-up: {0}")]
    Implausible(String),
    #[error("model {model}: {source}")]
    Imported {
        model: String,
        source: Box<WarmUpError>,
    },
}
