//! OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when `--otlp-endpoint` is given.
//!
//! Each request is a server span (route, status, request id) continuing the caller's W3C
//! `traceparent`; under it a "queue wait" span, and a "forward pass" span whose parent is the
//! first request of its batch and which links every other request it served. Without the flag
//! no span is created and nothing is exported.
//!
//! Sampling (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`) is decided here, before any span
//! exists, rather than by the SDK once the spans are built: a request that is not kept costs
//! no span at all, so keeping 1 % of traces costs about 1 % of what keeping all of them does.

use std::sync::OnceLock;

use axum::extract::Request;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SdkTracer, SdkTracerProvider, ShouldSample,
};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Which requests get spans; set once spans are exported.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// Whether spans are being exported.
pub(crate) fn enabled() -> bool {
    ember_inference::spans::enabled()
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("--otlp-endpoint {0:?}: not an http:// or https:// URL")]
    Endpoint(String),
    #[error("--otlp-endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error(
        "OTEL_TRACES_SAMPLER={0:?}: not one of always_on, always_off, traceidratio, \
         parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
    )]
    Sampler(String),
    #[error("OTEL_TRACES_SAMPLER_ARG={0:?}: not a ratio between 0 and 1")]
    SamplerArg(String),
}

/// The sampler the standard variables name (`parentbased_always_on` when unset, as the SDK).
pub fn sampler_from(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, TraceError> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(a) => a
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| TraceError::SamplerArg(a.into())),
    };
    let parent_based = |root| Sampler::ParentBased(Box::new(root));
    Ok(
        match name.map(str::trim).unwrap_or("parentbased_always_on") {
            "always_on" => Sampler::AlwaysOn,
            "always_off" => Sampler::AlwaysOff,
            "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
            "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
            "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
            "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
            other => return Err(TraceError::Sampler(other.into())),
        },
    )
}

/// Whether to trace a request with this (possibly absent) caller context. A root gets a random
/// trace id for the decision: the ratio holds, though the span's own id is drawn later.
fn keep(sampler: &Sampler, parent: Option<&opentelemetry::Context>) -> bool {
    let trace_id = match parent {
        Some(cx) => cx.span().span_context().trace_id(),
        None => TraceId::from(rand::random::<u128>()),
    };
    let result = sampler.should_sample(parent, trace_id, "request", &SpanKind::Server, &[], &[]);
    result.decision == SamplingDecision::RecordAndSample
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
pub(crate) fn traces_url(endpoint: &str) -> Result<String, TraceError> {
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

/// Start exporting to `endpoint`, sampling as the standard variables say; the tracer the log
/// subscriber's OpenTelemetry layer uses. Call inside the tokio runtime (the exporter runs on
/// it), and [`TraceExport::shutdown`] while the runtime still runs, outside any of its tasks.
pub fn export(endpoint: &str) -> Result<(TraceExport, SdkTracer), TraceError> {
    let sampler = sampler_from(
        std::env::var("OTEL_TRACES_SAMPLER").ok().as_deref(),
        std::env::var("OTEL_TRACES_SAMPLER_ARG").ok().as_deref(),
    )?;
    export_sampled(endpoint, sampler)
}

/// [`export`] with the sampler given. Once per process: a second call exports but keeps the
/// first sampler.
pub fn export_sampled(
    endpoint: &str,
    sampler: Sampler,
) -> Result<(TraceExport, SdkTracer), TraceError> {
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
    // Every span that exists was sampled already (`request_span`).
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(batches)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer(env!("CARGO_PKG_NAME"));
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let _ = SAMPLER.set(sampler);
    ember_inference::spans::enable();
    Ok((TraceExport { provider }, tracer))
}

/// The span a request is answered in, continuing the caller's trace; none unless spans are
/// exported and the sampler keeps this request (log lines get the request id without it).
pub(crate) fn request_span(req: &Request, request_id: &axum::http::HeaderValue) -> Span {
    let Some(sampler) = SAMPLER.get() else {
        return Span::none();
    };
    let parent = req.headers().contains_key("traceparent").then(|| {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(req.headers()))
        })
    });
    let parent = parent.filter(|cx| cx.span().span_context().is_valid());
    if !keep(sampler, parent.as_ref()) {
        return Span::none();
    }
    let request_id = request_id.to_str().unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id,
        http.request.method = %req.method(),
        http.route = Empty,
        http.response.status_code = Empty,
        rpc.grpc.status_code = Empty,
        otel.kind = "server",
    );
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
    span
}

/// Record the answer's status on an exported request span.
pub(crate) fn record_status(span: &Span, status: u16) {
    if !span.is_none() {
        // Signed: OpenTelemetry has no unsigned integers, and an unsigned one is exported as text.
        span.record("http.response.status_code", i64::from(status));
    }
}

/// Name the current request span after its route (`POST /v1/predict`): never the raw path,
/// which would make every URL its own span name.
pub(crate) fn record_route(method: &str, route: &str) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    if !span.is_none() {
        span.record("http.route", route);
        // The exported span has started by now, and a recorded `otel.name` only names a span
        // that has not: rename it through OpenTelemetry itself.
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
}

/// Name the current request span after a gRPC method (`inference.GRPCInferenceService/ModelInfer`)
/// and record the call's status code, which the HTTP status (always 200) does not carry.
pub(crate) fn record_rpc(service: &str, method: &str, code: i32) {
    if !enabled() {
        return;
    }
    let span = Span::current();
    if !span.is_none() {
        span.record("rpc.grpc.status_code", i64::from(code));
        span.context()
            .span()
            .update_name(format!("{service}/{method}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    fn caller(sampled: bool) -> opentelemetry::Context {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let span = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7_u64),
            flags,
            true,
            TraceState::default(),
        );
        opentelemetry::Context::new().with_remote_span_context(span)
    }

    /// How many of `n` roots the sampler keeps.
    fn roots_kept(sampler: &Sampler, n: usize) -> usize {
        (0..n).filter(|_| keep(sampler, None)).count()
    }

    #[test]
    fn the_standard_sampler_variables_are_understood_and_mistakes_refused() {
        let parse = |name, arg| sampler_from(name, arg).map(|s| format!("{s:?}"));
        assert!(
            parse(None, None)
                .unwrap()
                .starts_with("ParentBased(AlwaysOn")
        );
        assert_eq!(
            parse(Some("parentbased_traceidratio"), Some("0.01")).unwrap(),
            "ParentBased(TraceIdRatioBased(0.01))"
        );
        assert_eq!(
            parse(Some("traceidratio"), None).unwrap(),
            "TraceIdRatioBased(1.0)"
        );
        assert!(matches!(
            sampler_from(Some("parentbased_traceidratio"), Some("1.5")),
            Err(TraceError::SamplerArg(_))
        ));
        assert!(matches!(
            sampler_from(Some("sometimes"), None),
            Err(TraceError::Sampler(_))
        ));
    }

    #[test]
    fn requests_are_kept_as_the_sampler_says() {
        let one_in_ten = sampler_from(Some("parentbased_traceidratio"), Some("0.1")).unwrap();
        // A caller's decision is followed either way.
        assert!(keep(&one_in_ten, Some(&caller(true))));
        assert!(!keep(&one_in_ten, Some(&caller(false))));
        // Roots are kept at the ratio (10 000 draws: 1 000 ± 5 sigma).
        let kept = roots_kept(&one_in_ten, 10_000);
        assert!((850..=1150).contains(&kept), "{kept}");
        assert_eq!(roots_kept(&Sampler::AlwaysOff, 100), 0);
        assert_eq!(roots_kept(&Sampler::AlwaysOn, 100), 100);
        // Not parent-based: the caller's flag does not matter.
        assert!(keep(&Sampler::AlwaysOn, Some(&caller(false))));
    }

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
