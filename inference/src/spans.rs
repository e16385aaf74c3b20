//! The spans the inference queue makes when traces are exported: a request's wait in the queue,
//! and one span per forward pass, a child of its batch's first request and linked to the others.
//! The server's telemetry decides whether spans are exported and switches these on.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Spans are exported from now on: queued requests get theirs.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Whether spans are being exported (the server's exporter said so through [`enable`]).
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// A queued request's spans: the request it belongs to, and its wait in the queue (which ends
/// when the span is dropped, as its forward pass starts).
pub(crate) struct JobSpans {
    pub(crate) request: Span,
    pub(crate) wait: Option<Span>,
}

/// Spans for a request entering the queue now, when it is traced.
pub(crate) fn queued() -> Option<JobSpans> {
    if !enabled() {
        return None;
    }
    let request = Span::current();
    if request.is_none() {
        return None;
    }
    let wait = tracing::info_span!(parent: &request, "queue wait");
    Some(JobSpans {
        request,
        wait: Some(wait),
    })
}

/// The span of one forward pass over `inputs` rows serving `requests`: a child of the first
/// request, linked to the others.
pub(crate) fn forward_pass(requests: &[&Span], inputs: usize) -> Span {
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
