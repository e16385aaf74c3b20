//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `--otlp-endpoint` is given.
//!
//! Each request is a server span (route, status, request id) continuing the caller's W3C
//! `traceparent`; under it a "queue wait" span, and a "forward pass" span whose parent is the
//! first request of its batch and which links every other request it served. Without the flag
//! no span beyond the request's own log span is created, and nothing is exported.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::Request;
use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are being exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("--otlp-endpoint {0:?}: not an http:// or https:// URL")]
    Endpoint(String),
    #[error("--otlp-endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The running exporter; [`TraceExport::shutdown`] sends what is still buffered.
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("ember-serve: flushing traces failed: {e}");
        }
    }
}

/// The URL spans are posted to: `/v1/traces` on the collector unless a path is given.
pub fn traces_url(endpoint: &str) -> Result<String, TraceError> {
    let uri: axum::http::Uri = endpoint
        .parse()
        .map_err(|_| TraceError::Endpoint(endpoint.into()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(TraceError::Endpoint(endpoint.into()));
    }
    Ok(match uri.path() {
        "" | "/" => format!("{}/v1/traces", endpoint.trim_end_matches('/')),
        _ => endpoint.to_string(),
    })
}

/// Start exporting to `endpoint`; the tracer the log subscriber's OpenTelemetry layer uses.
/// Call inside the tokio runtime (the exporter runs on it), and [`TraceExport::shutdown`] while
/// the runtime still runs, outside any of its tasks.
pub fn export(endpoint: &str) -> Result<(TraceExport, SdkTracer), TraceError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint)?)
        .build()?;
    let resource = Resource::builder()
        .with_service_name(env!("CARGO_PKG_NAME"))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let batches = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    ENABLED.store(true, Ordering::Relaxed);
    Ok((TraceExport { provider }, tracer))
}

/// The span a request is answered in, continuing the caller's trace; none unless spans are
/// exported (log lines get the request id without it).
pub fn request_span(req: &Request, request_id: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        "request",
        request_id,
        http.request.method = %req.method(),
        http.route = Empty,
        http.response.status_code = Empty,
        rpc.grpc.status_code = Empty,
        otel.kind = "server",
    );
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

/// Record the answer's status on an exported request span.
pub fn record_status(span: &Span, status: u16) {
    if enabled() {
        // Signed: OpenTelemetry has no unsigned integers, and an unsigned one is exported as text.
        span.record("http.response.status_code", i64::from(status));
    }
}

/// Name the current request span after its route (`POST /v1/predict`): never the raw path,
/// which would make every URL its own span name.
pub fn record_route(method: &str, route: &str) {
    let span = Span::current();
    span.record("http.route", route);
    if enabled() {
        // The exported span has started by now, and a recorded `otel.name` only names a span
        // that has not: rename it through OpenTelemetry itself.
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
}

/// Name the current request span after a gRPC method (`inference.GRPCInferenceService/ModelInfer`)
/// and record the call's status code, which the HTTP status (always 200) does not carry.
pub fn record_rpc(service: &str, method: &str, code: i32) {
    let span = Span::current();
    span.record("rpc.grpc.status_code", i64::from(code));
    if enabled() {
        span.context()
            .span()
            .update_name(format!("{service}/{method}"));
    }
}

/// A queued request's spans: the request it belongs to, and its wait in the queue (which ends
/// when the span is dropped, as its forward pass starts).
pub struct JobSpans {
    pub request: Span,
    pub wait: Option<Span>,
}

/// Spans for a request entering the queue now, when spans are exported.
pub fn queued() -> Option<JobSpans> {
    enabled().then(|| {
        let request = Span::current();
        let wait = tracing::info_span!(parent: &request, "queue wait");
        JobSpans {
            request,
            wait: Some(wait),
        }
    })
}

/// The span of one forward pass over `inputs` rows serving `requests`: a child of the first
/// request, linked to the others.
pub fn forward_pass(requests: &[&Span], inputs: usize) -> Span {
    let Some((first, others)) = requests.split_first() else {
        return Span::none();
    };
    let span = tracing::info_span!(
        parent: *first,
        "forward pass",
        batch_size = inputs as i64,
        requests = requests.len() as i64
    );
    for other in others {
        span.add_link(other.context().span().span_context().clone());
    }
    span
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_collector_base_url_gets_the_traces_path() {
        let url = |s: &str| traces_url(s).ok();
        assert_eq!(
            url("http://c:4318").as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url("http://c:4318/").as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            url("http://c/custom/path").as_deref(),
            Some("http://c/custom/path")
        );
        assert_eq!(url("c:4318"), None);
        assert_eq!(url("grpc://c:4317"), None);
    }
}
