//! ember-serve: a burn digit classifier behind an axum API.
//!
//! The model layer is a crate of its own (`ember-model`, in `model/`): it loads and verifies the
//! weights and picks a device, and knows nothing of this crate. Data flows one way through this
//! one: [`config`] is read once at start-up, [`inference`] owns the model on its own thread(s) and
//! batches queued requests into forward passes, [`service`] holds the rules every surface shares
//! (readiness, timeouts), and [`http`] and [`grpc`] turn requests into service calls and results
//! into their wire formats, behind [`auth`] (API keys) and [`connections`] (the accept loop with
//! its limits and bounded drain). [`app`] wires them together at start-up. [`telemetry`] (logs,
//! Prometheus metrics, OpenTelemetry traces) is observed by all of them.

pub mod app;
pub mod auth;
pub mod config;
pub mod connections;
pub mod grpc;
pub mod healthcheck;
pub mod http;
pub mod inference;
pub mod protocol;
pub mod service;
pub mod telemetry;
pub mod version;
