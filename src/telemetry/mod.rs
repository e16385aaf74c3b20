//! Logs and Prometheus metrics.
//!
//! Every other module records through the `metrics` facade and `tracing`; this module decides
//! where that goes: a Prometheus recorder rendered on `/metrics`, and text or JSON logs on
//! stderr.

pub mod logging;
pub mod metrics;
