//! tracing subscriber set-up from `--log-format` and `--log-level`, plus the OpenTelemetry layer
//! when traces are exported.

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracer;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("--log-level {level:?}: {reason}")]
    Filter { level: String, reason: String },
    #[error("installing the log subscriber failed: {0}")]
    Install(String),
}

/// The log lines' format, written to `writer`. JSON lines carry the fields of the spans they are
/// in (the request id among them).
pub fn fmt_layer<S, W>(
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    }
}

/// Parse `--log-level`: a level or a full `EnvFilter` directive.
pub fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(level).map_err(|e| LoggingError::Filter {
        level: level.to_string(),
        reason: e.to_string(),
    })
}

/// Install the global subscriber: logs on stderr, and spans to `tracer` when given. Only this
/// crate's spans are exported; dependencies' (wgpu, hyper) would only add noise and cost.
pub fn init(format: LogFormat, level: &str, tracer: Option<SdkTracer>) -> Result<(), LoggingError> {
    let logs = fmt_layer(format, std::io::stderr, std::io::stderr().is_terminal())
        .with_filter(filter(level)?);
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))
}
