//! Logs, Prometheus metrics and OpenTelemetry traces.
//!
//! Every other module records through the `metrics` facade and `tracing`; this module decides
//! where that goes: a Prometheus recorder rendered on `/metrics`, text or JSON logs on stderr,
//! and (with `--otlp-endpoint`) spans to an OTLP collector.

pub mod logging;
pub mod metrics;
pub mod traces;
