//! The inference queue: where HTTP requests become forward passes.
//!
//! Requests are queued on a bounded channel and answered through a oneshot each (the
//! text-embeddings-inference pattern). Dedicated OS threads own the model, so blocking device
//! readback never stalls tokio's I/O workers; each thread gathers whatever arrives within
//! `batch_wait` (up to `max_batch` inputs) into one forward pass and routes every result back to
//! the request it came from, in order.

mod batcher;
mod job;
mod queue;
pub mod stats;

pub use job::{InferenceError, Prediction, QueueStats};
pub use queue::{InferenceQueue, QueueConfig};
pub use stats::InferenceStatistics;
