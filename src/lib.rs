//! ember-serve: a burn digit classifier behind an axum API.
//!
//! The layers below this one are crates of their own, so the compiler keeps them apart: the
//! model layer (`ember-model`, in `model/`) loads and verifies the weights and picks a device;
//! the inference layer (`ember-inference`, in `inference/`, re-exported here as [`inference`]
//! and [`service`]) owns the model on its own thread(s), batches queued requests into forward
//! passes, and holds the rules every surface shares (readiness, timeouts). Neither knows this
//! crate. Here, [`config`] is read once at start-up, [`http`] and [`grpc`] turn requests into
//! service calls and results into their wire formats ([`protocol`]: what the two share), behind
//! [`auth`] (API keys) and [`connections`] (the accept loop with its limits and bounded drain).
//! [`app`] wires them together at start-up. [`telemetry`] (logs, the Prometheus recorder,
//! OpenTelemetry export) is observed by all of them. Items are `pub(crate)` unless the binary or
//! the integration tests use them.

pub mod app;
pub(crate) mod auth;
pub mod config;
pub mod connections;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod protocol;
pub mod telemetry;
pub mod version;

// The inference layer's paths, as this crate and its tests name them.
pub use ember_inference as inference;
pub use ember_inference::service;
