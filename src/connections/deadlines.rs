//! The two clocks a client runs against: `--client-timeout` for a request's headers (and for an
//! idle keep-alive connection), and as long again for its body.
//!
//! hyper's own header-read timeout re-arms a timer for every request, which cost about 3 % of
//! throughput on a keep-alive connection (benches/README.md). Here each connection has one
//! watch instead: a request only moves a counter up and down, each write another, and the
//! timer wakes at most once per timeout to look at them. HTTP/2 connections are left alone, as hyper
//! left them: their streams are multiplexed and idle gRPC channels are normal.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::telemetry::metrics as m;

/// What one connection has been doing, as far as the header deadline cares. Shared between the
/// connection's I/O, its service (one per request) and its watch, all on the connection's task.
#[derive(Debug)]
pub(super) struct HeadWatch {
    opened: Instant,
    /// Requests whose headers have arrived and whose response is not ready yet.
    busy: AtomicUsize,
    /// Successful writes: every response is at least one, and a client still reading a long
    /// response is not waiting to send headers.
    writes: AtomicU64,
    /// The connection speaks HTTP/2 (its preface arrived).
    http2: AtomicBool,
}

impl HeadWatch {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        })
    }

    /// Requests on this connection whose response is not ready yet.
    pub(super) fn in_flight(&self) -> usize {
        self.busy.load(Relaxed)
    }

    /// A request's headers have arrived; the returned guard marks its response ready when dropped.
    pub(super) fn request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Relaxed);
        Busy(self.clone())
    }

    /// Resolves once a whole `timeout` has passed with no request in progress and nothing
    /// written: exactly `timeout` after opening for a client that never finishes its first
    /// headers, between one and two timeouts after the last response on a keep-alive one. No
    /// clock is read per request for it.
    pub(super) async fn headers_overdue(&self, timeout: Duration) {
        let mut writes = self.writes.load(Relaxed);
        let mut check_at = self.opened + timeout;
        loop {
            tokio::time::sleep_until(check_at).await;
            if self.http2.load(Relaxed) {
                return std::future::pending().await;
            }
            let written = self.writes.load(Relaxed);
            if self.busy.load(Relaxed) == 0 && written == writes {
                return;
            }
            writes = written;
            check_at = Instant::now() + timeout;
        }
    }
}

/// One request in progress on a watched connection.
pub(super) struct Busy(Arc<HeadWatch>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's socket that tells its [`HeadWatch`] about writes and about an HTTP/2 preface.
pub(super) struct Watched<IO> {
    io: IO,
    watch: Arc<HeadWatch>,
    /// How many bytes of the HTTP/2 preface have matched so far; `None` once decided.
    sniffed: Option<usize>,
}

impl<IO> Watched<IO> {
    pub(super) fn new(io: IO, watch: Arc<HeadWatch>) -> Self {
        Self {
            io,
            watch,
            sniffed: Some(0),
        }
    }

    /// Match newly read bytes against the preface, byte by byte, so a client trickling `P`,
    /// `O`, `S`, `T` is still an HTTP/1 client.
    fn sniff(&mut self, read: &[u8]) {
        let Some(matched) = self.sniffed else {
            return;
        };
        let wanted = &HTTP2_PREFACE[matched..];
        let n = read.len().min(wanted.len());
        if read[..n] != wanted[..n] {
            self.sniffed = None;
        } else if matched + n == HTTP2_PREFACE.len() {
            self.watch.http2.store(true, Relaxed);
            self.sniffed = None;
        } else {
            self.sniffed = Some(matched + n);
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.sniffed.is_some() && buf.filled().len() > before {
            this.sniff(&buf.filled()[before..]);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled
            && *n > 0
        {
            self.watch.writes.fetch_add(1, Relaxed);
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    // hyper writes head and body in one vectored write when the socket can.
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The client did not send the whole request body in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (--client-timeout)")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails with [`BodyTimeout`] unless it is complete within the client
/// timeout of the first time it was found incomplete (as the handler starts reading it): a
/// request that arrives in one piece pays for no timer and no clock read.
pub(super) struct DeadlineBody {
    body: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    listener: &'static str,
}

impl DeadlineBody {
    pub(super) fn new(body: Incoming, timeout: Duration, listener: &'static str) -> Self {
        Self {
            body,
            timeout,
            deadline: None,
            listener,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(this.timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            metrics::counter!(m::CLIENT_TIMEOUTS, "listener" => this.listener, "phase" => "body")
                .increment(1);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniffed(chunks: &[&[u8]]) -> bool {
        let watch = HeadWatch::new();
        let mut io = Watched::new((), watch.clone());
        for chunk in chunks {
            io.sniff(chunk);
        }
        watch.http2.load(Relaxed)
    }

    #[test]
    fn the_http2_preface_is_recognised_whole_or_in_pieces() {
        assert!(sniffed(&[HTTP2_PREFACE]));
        assert!(sniffed(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04"]));
        assert!(sniffed(&[b"P", b"RI * HTTP/2", b".0\r\n\r\nSM\r\n\r\n"]));
    }

    #[test]
    fn http1_requests_are_not_taken_for_http2() {
        assert!(!sniffed(&[b"POST /v1/predict HTTP/1.1\r\n"]));
        assert!(!sniffed(&[b"P", b"O", b"S", b"T"]));
        assert!(!sniffed(&[b"PRI * HTTP/2.0\r\n"]));
        assert!(!sniffed(&[b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n"]));
    }
}
