//! The clocks a client runs against: `--client-timeout` for a request's headers (the first on
//! a connection) and again for its body, and `--keep-alive-timeout` for the next request on an
//! idle keep-alive connection.
//!
//! hyper's own header-read timeout re-arms a timer for every request, which cost about 3 % of
//! throughput on a keep-alive connection (benches/README.md). Here each connection has one
//! watch instead: a request only moves a counter up and down, a write stamps the time, and the
//! timer wakes only when a deadline may have passed.
//!
//! HTTP/2 connections are not timed per request: their streams are multiplexed and an idle gRPC
//! channel is normal. They get `--client-timeout` for their first frame after the preface (a
//! client that sends the preface and nothing more is closed), hyper's keep-alive pings for
//! peers that vanished, and `--http2-idle-timeout` with no stream open.

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
use tokio::time::Instant;

use crate::telemetry::metrics as m;

/// What one connection has been doing, as far as its deadlines care. Shared between the
/// connection's I/O, its service (one per request) and its watch, all on the connection's task.
#[derive(Debug)]
pub(super) struct HeadWatch {
    opened: Instant,
    /// Requests whose headers have arrived and whose response is not ready yet.
    busy: AtomicUsize,
    /// When the last successful write ended, in nanoseconds after `opened` plus one; 0 before
    /// the first. Every response is at least one write, and a client still reading a long
    /// response is not waiting to send headers.
    last_write: AtomicU64,
    /// Bytes have arrived since the last write: the next request has begun.
    read_since_write: AtomicBool,
    /// The connection speaks HTTP/2 (its preface arrived).
    http2: AtomicBool,
    /// Bytes arrived after the HTTP/2 preface: the client's first frame has begun.
    http2_framed: AtomicBool,
    /// An answer to write on the socket's next read, and then fail it: the 408 for late
    /// headers, written through the connection's own socket (no second descriptor).
    notice: std::sync::Mutex<Option<Vec<u8>>>,
    noticed: AtomicBool,
    /// When the last request began or ended, as `last_write`: the start of an idle spell.
    last_request: AtomicU64,
}

/// Why a watched connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Overdue {
    /// A request's headers did not all arrive within `within` (the flag named): answer 408.
    Headers {
        within: Duration,
        flag: &'static str,
    },
    /// No next request began within `--keep-alive-timeout`: close without a word, as a client
    /// of an idle keep-alive connection expects.
    Idle,
    /// An HTTP/2 client sent the preface but no frame within the client timeout: close.
    Handshake,
    /// An HTTP/2 connection had no stream open for `--http2-idle-timeout`: send GOAWAY.
    Http2Idle,
}

impl HeadWatch {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            busy: AtomicUsize::new(0),
            last_write: AtomicU64::new(0),
            read_since_write: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            http2_framed: AtomicBool::new(false),
            notice: std::sync::Mutex::new(None),
            noticed: AtomicBool::new(false),
            last_request: AtomicU64::new(0),
        })
    }

    /// Now, as the stamps store it: nanoseconds after `opened`, plus one (0 is "never").
    fn stamp(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        stamp
            .checked_sub(1)
            .map(|n| self.opened + Duration::from_nanos(n))
    }

    /// Have the socket write `answer` and then fail, the next time the connection reads it
    /// (hyper is waiting for headers, so it reads as soon as the connection is polled).
    pub(super) fn close_with(&self, answer: Vec<u8>) {
        if let Ok(mut notice) = self.notice.lock() {
            *notice = Some(answer);
            self.noticed.store(true, Relaxed);
        }
    }

    fn take_notice(&self) -> Option<Vec<u8>> {
        if !self.noticed.load(Relaxed) {
            return None;
        }
        self.notice.lock().ok()?.take()
    }

    /// Requests on this connection whose response is not ready yet.
    pub(super) fn in_flight(&self) -> usize {
        self.busy.load(Relaxed)
    }

    /// A request's headers have arrived; the returned guard marks its response ready when dropped.
    pub(super) fn request(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Relaxed);
        if self.http2.load(Relaxed) {
            self.last_request.store(self.stamp(), Relaxed);
        }
        Busy(self.clone())
    }

    fn wrote(&self) {
        self.last_write.store(self.stamp(), Relaxed);
        self.read_since_write.store(false, Relaxed);
    }

    fn read(&self) {
        if !self.read_since_write.load(Relaxed) {
            self.read_since_write.store(true, Relaxed);
        }
    }

    fn last_write(&self) -> Option<Instant> {
        self.instant(self.last_write.load(Relaxed))
    }

    /// Resolves once no request has been in progress for `grace` (checked every `grace`/4): a
    /// closing connection with nothing in flight has had its chance to close by itself.
    pub(super) async fn settled(&self, grace: Duration) {
        let step = grace / 4;
        let mut quiet = Duration::ZERO;
        while quiet < grace {
            tokio::time::sleep(step).await;
            quiet = if self.busy.load(Relaxed) == 0 {
                quiet + step
            } else {
                Duration::ZERO
            };
        }
    }

    /// When an HTTP/2 connection is due to be closed, and why, if nothing is in progress.
    fn http2_due(&self, client_timeout: Duration, idle: Duration) -> (Instant, Overdue) {
        if !self.http2_framed.load(Relaxed) {
            return (self.opened + client_timeout, Overdue::Handshake);
        }
        let since = self
            .instant(self.last_request.load(Relaxed))
            .unwrap_or(self.opened);
        (since + idle, Overdue::Http2Idle)
    }

    /// Resolves when the connection has overstayed: `client_timeout` after opening without its
    /// first request's headers, or `keep_alive` after its last write with no request in
    /// progress. Wakes only when one of those may have passed, or a timeout after finding a
    /// request in progress.
    pub(super) async fn overdue(
        &self,
        client_timeout: Duration,
        keep_alive: Duration,
        http2_idle: Duration,
    ) -> Overdue {
        let mut check_at = self.opened + client_timeout.min(keep_alive).min(http2_idle);
        loop {
            tokio::time::sleep_until(check_at).await;
            let now = Instant::now();
            let http2 = self.http2.load(Relaxed);
            if self.busy.load(Relaxed) > 0 {
                let every = if http2 { http2_idle } else { keep_alive };
                check_at = now + client_timeout.min(every);
                continue;
            }
            let (due, overdue) = match self.last_write() {
                _ if http2 => self.http2_due(client_timeout, http2_idle),
                None => (
                    self.opened + client_timeout,
                    Overdue::Headers {
                        within: client_timeout,
                        flag: "--client-timeout",
                    },
                ),
                Some(written) if self.read_since_write.load(Relaxed) => (
                    written + keep_alive,
                    Overdue::Headers {
                        within: keep_alive,
                        flag: "--keep-alive-timeout",
                    },
                ),
                Some(written) => (written + keep_alive, Overdue::Idle),
            };
            if now >= due {
                return overdue;
            }
            check_at = due;
        }
    }
}

/// One request in progress on a watched connection.
pub(super) struct Busy(Arc<HeadWatch>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.http2.load(Relaxed) {
            self.0.last_request.store(self.0.stamp(), Relaxed);
        }
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's socket that tells its [`HeadWatch`] about reads, writes and an HTTP/2 preface.
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
            // The first frame came in the same read as the preface's end.
            if read.len() > n {
                self.watch.http2_framed.store(true, Relaxed);
            }
            self.sniffed = None;
        } else {
            self.sniffed = Some(matched + n);
        }
    }
}

/// A socket that can be written without a context: best effort, for a last answer.
pub(super) trait TryWrite {
    fn try_write_all(&self, bytes: &[u8]);
}

impl TryWrite for tokio::net::TcpStream {
    fn try_write_all(&self, mut bytes: &[u8]) {
        // Non-blocking and small: a full send buffer or a gone client only loses the answer.
        while !bytes.is_empty() {
            match self.try_write(bytes) {
                Ok(n) if n > 0 => bytes = &bytes[n..],
                _ => return,
            }
        }
    }
}

impl<IO: AsyncRead + TryWrite + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(answer) = this.watch.take_notice() {
            this.io.try_write_all(&answer);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request headers arrived too late",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.read();
            if this.sniffed.is_some() {
                this.sniff(&buf.filled()[before..]);
            } else if this.watch.http2.load(Relaxed) && !this.watch.http2_framed.load(Relaxed) {
                this.watch.http2_framed.store(true, Relaxed);
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = polled
            && *n > 0
        {
            self.watch.wrote();
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

/// A response body that keeps its request counted in flight until it is sent or dropped.
pub(super) struct BusyBody {
    body: axum::body::Body,
    _busy: Busy,
}

impl BusyBody {
    pub(super) fn new(body: axum::body::Body, busy: Busy) -> Self {
        Self { body, _busy: busy }
    }
}

impl http_body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client did not send the whole request body in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (--client-timeout)")]
pub(crate) struct BodyTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// A request body that fails with [`BodyTimeout`] unless it is complete within the client
    /// timeout of its request's headers: tower-http's deadline body (one timer for the whole
    /// body, not one per frame), its error told apart for the 408 and counted.
    pub(super) struct DeadlineBody {
        #[pin]
        body: tower_http::timeout::DeadlineBody<Incoming>,
        timeout: Duration,
        listener: &'static str,
    }
}

impl DeadlineBody {
    pub(super) fn new(body: Incoming, timeout: Duration, listener: &'static str) -> Self {
        Self {
            body: tower_http::timeout::DeadlineBody::new(timeout, body),
            timeout,
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
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Err(e))) if e.is::<tower_http::timeout::TimeoutError>() => {
                metrics::counter!(m::CLIENT_TIMEOUTS, "listener" => *this.listener, "phase" => "body")
                    .increment(1);
                Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.timeout)))))
            }
            other => other,
        }
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
