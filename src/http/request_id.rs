//! Request ids and the per-request span.
//!
//! Every request gets an id: the caller's `X-Request-Id` when it is short printable ASCII, a
//! fresh random one otherwise. It is returned on every response (errors too), written on every
//! log line of the request, named in problem-details bodies and, when traces are exported, an
//! attribute of the request's span, so a user's error report, the server's logs and a trace can
//! be matched up. V2's own request `id`
//! field is left alone: it belongs to the protocol.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};
use tracing::instrument::Instrumented;
use tracing::{Instrument, Level};

use crate::telemetry::{logging, traces};

pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-chosen id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

/// The id of the request being answered on this task, if any.
pub(crate) fn current() -> Option<String> {
    logging::request_id()
}

/// The caller's id if it is one we can log and echo safely, else a new one.
pub(crate) fn accept(incoming: Option<&HeaderValue>) -> HeaderValue {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_LEN
                && id.as_bytes().iter().all(u8::is_ascii_graphic) =>
        {
            id.clone()
        }
        _ => generate(),
    }
}

/// 128 random bits, hex: as unique as a UUID, and printable everywhere.
fn generate() -> HeaderValue {
    let mut hex = [0u8; 32];
    // Cannot fail: 16 bytes always fit 32 hex digits, and hex digits are a valid header value.
    let _ = hex::encode_to_slice(rand::random::<u128>().to_be_bytes(), &mut hex);
    HeaderValue::from_bytes(&hex).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Gives every request its id and span, answers it inside both, and returns the id. A plain
/// tower layer rather than `middleware::from_fn`: it runs on every request, and its future
/// needs no allocation of its own.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RequestIdService<S> {
    inner: S,
}

impl<S> Service<Request> for RequestIdService<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // Handlers read the id from the task-local, not from the request's headers.
        let id = accept(req.headers().get(&HEADER));
        let span = traces::request_span(&req, &id);
        // The access log line (debug level) names and times the request; when it is off nothing
        // is copied and no clock is read.
        let access = tracing::enabled!(Level::DEBUG).then(|| {
            (
                req.method().clone(),
                req.uri().path().to_string(),
                Instant::now(),
            )
        });
        let answer = logging::with_request_id(id, self.inner.call(req));
        Answer {
            answer: answer.instrument(span),
            access,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, in the request's span and with its id in scope; the id goes on the
    /// response.
    pub(crate) struct Answer<F: Future> {
        #[pin]
        answer: Instrumented<TaskLocalFuture<HeaderValue, F>>,
        access: Option<(Method, String, Instant)>,
    }
}

impl<F, E> Future for Answer<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut result = std::task::ready!(this.answer.as_mut().poll(cx));
        let id = this.answer.as_mut().inner_pin_mut().take_value();
        if let Ok(response) = &mut result {
            let span = this.answer.span();
            let status = response.status().as_u16();
            traces::record_status(span, status);
            if let Some((method, path, started)) = this.access.take() {
                // Past the answer the id is out of scope: this line names it itself.
                let elapsed_us = started.elapsed().as_micros() as u64;
                let request_id = id.as_ref().and_then(|id| id.to_str().ok());
                tracing::debug!(parent: span, request_id, %method, path, status, elapsed_us, "request answered");
            }
            if let Some(id) = id {
                response.headers_mut().insert(HEADER, id);
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_safe_id_is_kept_and_anything_else_replaced() {
        let kept = HeaderValue::from_static("req-42_abc.DEF:1");
        assert_eq!(accept(Some(&kept)), kept);
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_str(&"x".repeat(MAX_LEN + 1)).unwrap(),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
            HeaderValue::from_bytes(b"tab\there").unwrap(),
        ] {
            let replaced = accept(Some(&bad));
            assert_ne!(replaced, bad);
            assert_eq!(replaced.len(), 32);
        }
        assert_ne!(accept(None), accept(None), "fresh ids differ");
    }
}
