//! The inference queue: where HTTP requests become forward passes.
//!
//! Requests are queued on a bounded channel and answered through a oneshot each (the
//! text-embeddings-inference pattern). Dedicated OS threads own the model, so blocking device
//! readback never stalls tokio's I/O workers; each thread gathers whatever arrives within
//! `batch_wait` (up to `max_batch` inputs) into one forward pass and routes every result back to
//! the request it came from, in order. On a GPU every pass is padded up to one of a few batch
//! sizes, each run by every thread before readiness, so no request waits for a kernel compile.
//! Beside a GPU, small requests have a lane of their own: CPU-backend threads on a second
//! channel, which on this model serve them faster than the GPU does.

pub mod metrics;
pub mod service;
pub mod spans;

mod batcher;
mod buckets;
mod job;
mod pass;
mod queue;
mod runner;
pub mod stats;
mod warmup;

pub use buckets::{BucketError, BucketSpec, Buckets};
pub use job::{InferenceError, QueueStats};
pub use queue::{CpuLane, InferenceQueue, QueueConfig};
pub use runner::{ImportedRow, Prediction, Runner};
pub use stats::InferenceStatistics;
