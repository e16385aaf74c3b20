//! What the queue handle and the inference threads exchange: a job with its reply channel, the
//! answer for each input, why there is none, and the counters both sides keep.

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::telemetry::traces::JobSpans;
use ember_model::{INPUT_LEN, NUM_CLASSES};

/// One input's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub label: usize,
    pub confidence: f32,
    pub probabilities: [f32; NUM_CLASSES],
}

/// Why a request got no predictions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    #[error("the inference queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("the inference queue has stopped")]
    Stopped,
    #[error("the forward pass failed: {0}")]
    Failed(String),
}

/// A request waiting for a forward pass.
pub(super) struct Job {
    pub rows: Vec<[f32; INPUT_LEN]>,
    pub enqueued: Instant,
    /// The request's spans, when traces are exported.
    pub spans: Option<JobSpans>,
    pub reply: oneshot::Sender<Result<Vec<Prediction>, InferenceError>>,
}

/// Counters shared by the handle and the inference threads.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Requests waiting (not yet taken by an inference thread).
    pub depth: AtomicUsize,
    /// Requests submitted and not yet answered (queued, batching or running).
    pub in_flight: AtomicUsize,
    /// Requests an inference thread has taken and not yet answered (batching or running).
    pub held: AtomicUsize,
}
