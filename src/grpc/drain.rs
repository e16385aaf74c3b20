//! A streaming gRPC answer that ends when its connection drains: what was queued goes out,
//! then trailers with UNAVAILABLE, so a stream that would never end cannot hold a shutdown.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use http_body::Frame;
use tokio::sync::watch;

pub(super) struct UntilDrained {
    body: Body,
    /// Resolves when the connection starts draining; `None` once the trailers are out.
    drained: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl UntilDrained {
    pub(super) fn new(body: Body, mut draining: watch::Receiver<bool>) -> Self {
        let drained = Box::pin(async move {
            // A sender gone is a drain too: the accept loop has ended.
            let _ = draining.wait_for(|d| *d).await;
        });
        Self {
            body,
            drained: Some(drained),
        }
    }
}

impl http_body::Body for UntilDrained {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(drained) = this.drained.as_mut() else {
            return Poll::Ready(None);
        };
        // Whatever the stream has ready goes first: the NOT_SERVING sent at the signal.
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            if frame.is_none() {
                this.drained = None;
            }
            return Poll::Ready(frame);
        }
        if drained.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.drained = None;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("14"));
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static("the server is shutting down"),
        );
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }
}
