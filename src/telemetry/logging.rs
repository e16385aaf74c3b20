//! tracing subscriber set-up from `--log-format` and `--log-level`, plus the OpenTelemetry layer
//! when traces are exported.
//!
//! Every line logged while a request is answered carries its request id. The id lives in a
//! task-local for the request's life and is added when a line is written: a span per request
//! would carry it too, but costs about 8 % of a prediction's instructions even when nothing is
//! logged (benches/README.md), and almost no request logs anything.

use std::future::Future;
use std::io::IsTerminal;

use axum::http::HeaderValue;
use opentelemetry_sdk::trace::SdkTracer;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
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

tokio::task_local! {
    // The header value itself: scoping it costs no copy; text is made only for lines logged.
    static REQUEST_ID: HeaderValue;
}

/// Run `answer` with `id` as the request id of every line it logs (`take_value` on the
/// returned future gives the id back).
pub(crate) fn with_request_id<F: Future>(
    id: HeaderValue,
    answer: F,
) -> tokio::task::futures::TaskLocalFuture<HeaderValue, F> {
    REQUEST_ID.scope(id, answer)
}

/// The id of the request being answered on this task, if any.
pub(crate) fn request_id() -> Option<String> {
    REQUEST_ID
        .try_with(|id| id.to_str().ok().map(str::to_owned))
        .ok()
        .flatten()
}

/// tracing-subscriber's own format, plus `request_id` on lines logged while a request is
/// answered: the first member of a JSON line, `request_id=...` at the end of a text line.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some(id) = request_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        // Buffered to add the id, so without colours: only lines logged inside a request.
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        if self.json {
            let id = serde_json::to_string(&id).map_err(|_| std::fmt::Error)?;
            match body.strip_prefix('{') {
                Some(rest) => writeln!(writer, "{{\"request_id\":{id},{rest}"),
                None => writeln!(writer, "{body}"),
            }
        } else {
            writeln!(writer, "{body} request_id={id}")
        }
    }
}

/// The log lines' format, written to `writer`; lines logged while answering a request carry
/// its id.
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
        LogFormat::Text => {
            let inner: Format<Full> = Format::default().with_ansi(ansi);
            layer
                .event_format(WithRequestId { inner, json: false })
                .fmt_fields(DefaultFields::new())
                .boxed()
        }
        LogFormat::Json => {
            let inner: Format<Json> = Format::default().json().flatten_event(true);
            layer
                .event_format(WithRequestId { inner, json: true })
                .fmt_fields(JsonFields::new())
                .boxed()
        }
    }
}

/// Parse `--log-level`: a level or a full `EnvFilter` directive.
pub(crate) fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
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
            .with_filter(
                Targets::new()
                    .with_target(env!("CARGO_CRATE_NAME"), Level::INFO)
                    .with_target("ember_inference", Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| LoggingError::Install(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// What `format` writes for one line logged inside a request and one outside.
    fn lines(format: LogFormat) -> Vec<String> {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = buf.clone();
        let writer = move || Sink(sink.clone());
        let subscriber = tracing_subscriber::registry().with(fmt_layer(format, writer, false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(with_request_id(
                HeaderValue::from_static("req-\"7\""),
                async {
                    tracing::warn!(answer = 42, "inside a request");
                },
            ));
            tracing::warn!("outside any request");
        });
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_inside_a_request_carry_its_id_and_stay_json() {
        let lines = lines(LogFormat::Json);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let inside: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(inside["request_id"], "req-\"7\"");
        assert_eq!(inside["answer"], 42);
        assert_eq!(inside["message"], "inside a request");
        let outside: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert!(outside.get("request_id").is_none(), "{outside}");
    }

    #[test]
    fn text_lines_inside_a_request_end_with_its_id() {
        let lines = lines(LogFormat::Text);
        assert!(lines[0].contains("inside a request"), "{lines:?}");
        assert!(lines[0].ends_with("request_id=req-\"7\""), "{lines:?}");
        assert!(!lines[1].contains("request_id"), "{lines:?}");
    }
}
