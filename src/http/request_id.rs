//! Request ids and the per-request span.
//!
//! Every request gets an id: the caller's `X-Request-Id` when it is short printable ASCII, a
//! fresh random one otherwise. It is returned on every response (errors too), carried by the
//! span every log line of the request is written in, and named in problem-details bodies, so a
//! user's error report, the server's logs and a trace can be matched up. V2's own request `id`
//! field is left alone: it belongs to the protocol.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Instrument, Level};

use crate::telemetry::traces;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-chosen id kept; a longer one is replaced.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The id of the request being answered on this task, if any.
pub fn current() -> Option<String> {
    CURRENT
        .try_with(|id| id.to_str().ok().map(str::to_string))
        .ok()
        .flatten()
}

/// The caller's id if it is one we can log and echo safely, else a new one.
pub fn accept(incoming: Option<&HeaderValue>) -> HeaderValue {
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
    let id = format!("{:032x}", rand::random::<u128>());
    HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("unknown"))
}

/// Give the request its id and span, answer it inside both, and return the id.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = accept(req.headers().get(&HEADER));
    req.headers_mut().insert(HEADER, id.clone());
    let span = traces::request_span(&req, id.to_str().unwrap_or_default());
    // The access log line (debug level) names the request; nothing is copied when it is off.
    let access = tracing::enabled!(Level::DEBUG)
        .then(|| (req.method().clone(), req.uri().path().to_string()));
    let started = Instant::now();
    let mut response = CURRENT
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let status = response.status().as_u16();
    traces::record_status(&span, status);
    if let Some((method, path)) = access {
        let elapsed_us = started.elapsed().as_micros() as u64;
        tracing::debug!(parent: &span, %method, path, status, elapsed_us, "request answered");
    }
    response.headers_mut().insert(HEADER, id);
    response
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
