//! What the queue handle and the inference threads exchange: a job with its reply channel, the
//! answer for each input, why there is none, and the counters both sides keep.

use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use tokio::sync::oneshot;

use super::runner::Runner;
use crate::spans::JobSpans;

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
pub(super) struct Job<R: Runner> {
    pub(crate) rows: Vec<R::Row>,
    pub(crate) enqueued: Instant,
    /// The request's spans, when traces are exported.
    pub(crate) spans: Option<JobSpans>,
    pub(crate) reply: oneshot::Sender<Result<Vec<R::Answer>, InferenceError>>,
}

/// Counters shared by the handle and the inference threads.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Requests waiting (not yet taken by an inference thread).
    pub depth: AtomicUsize,
    /// Requests submitted and not yet answered (queued, batching or running).
    pub in_flight: AtomicUsize,
    /// Requests an inference thread has taken and not yet answered (batching or running).
    pub(crate) held: AtomicUsize,
}
