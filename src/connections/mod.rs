//! The accept loop both listeners (REST and gRPC) run: what axum::serve does, plus the limits a
//! server facing clients directly needs.
//!
//! - A client gets `--client-timeout` to send a request's headers and then as long again for its
//!   body; past either it gets 408 and its connection is closed. An idle keep-alive connection
//!   is closed, without a word, `--keep-alive-timeout` after its last response, so a trickling
//!   or vanished client cannot hold a slot for long.
//! - HTTP/2 connections (gRPC, h2c) get `--client-timeout` for their first frame, keep-alive
//!   PINGs that a vanished peer fails to answer, and GOAWAY after `--http2-idle-timeout` with no
//!   stream open. Accepted sockets get TCP_NODELAY and TCP keep-alive.
//! - `--max-connections` caps open connections, one budget for both listeners and one file
//!   descriptor per connection (the 408 is written through the connection's own socket); one
//!   over the cap is answered 503 (GOAWAY on the gRPC port) and closed.
//! - After a shutdown signal the listener closes, every connection closes as soon as it has
//!   nothing in flight (GOAWAY for HTTP/2; a client that never answers is dropped shortly
//!   after), and in-flight requests get until the drain deadline (`--shutdown-timeout`);
//!   whatever is still running then is abandoned and counted.
//!
//! It knows nothing of routes or protocols: it serves any axum `Router`.

mod deadlines;

pub(crate) use deadlines::BodyTimeout;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::telemetry::metrics as m;
use deadlines::{BusyBody, DeadlineBody, HeadWatch, Overdue, Watched};

/// How one listener treats its clients.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// `http` or `grpc`: the `listener` label on the connection metrics.
    pub listener: &'static str,
    /// For the request headers, and again for the body; for HTTP/2, also for the first frame
    /// after the preface.
    pub client_timeout: Duration,
    /// How long a keep-alive connection waits for its next request before it is closed.
    pub keep_alive: Duration,
    /// Connections open at once, shared with the other listener.
    pub budget: ConnectionBudget,
    pub http2: Http2Limits,
    /// Told when this listener starts to drain; its routes subscribe at build time.
    pub drain: DrainNotice,
}

/// How many connections may be open at once across the listeners that share it: one file
/// descriptor each, so a budget below the open-file limit means `accept` never fails for want
/// of one, and a client over it is answered (503, or GOAWAY on the gRPC port) instead of
/// waiting in the backlog.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    slots: Arc<Semaphore>,
    max: usize,
    /// Refusals being written: each holds a descriptor for up to a second, so they are capped
    /// too (past the cap a client is closed without an answer).
    refusals: Arc<Semaphore>,
}

impl ConnectionBudget {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            refusals: Arc::new(Semaphore::new(REFUSALS)),
        }
    }
}

/// Refusals written at once; [`default_max_connections`] leaves room for them.
const REFUSALS: usize = 64;

/// What an HTTP/2 connection gets besides the client timeout: its streams are multiplexed and
/// an idle gRPC channel is normal, so it is not timed per request but pinged, and closed (with
/// GOAWAY) only after a long spell with no stream open.
#[derive(Debug, Clone, Copy)]
pub struct Http2Limits {
    /// How often the server PINGs; `None`: never.
    pub keep_alive_interval: Option<Duration>,
    /// How long a PING may go unanswered before the connection is closed.
    pub keep_alive_timeout: Duration,
    /// How long a connection may go with no stream open before it is closed.
    pub idle: Duration,
}

impl Default for Http2Limits {
    /// The flags' defaults: a ping every 20 s, 20 s to answer it, 5 minutes idle.
    fn default() -> Self {
        Self {
            keep_alive_interval: Some(Duration::from_secs(20)),
            keep_alive_timeout: Duration::from_secs(20),
            idle: Duration::from_secs(300),
        }
    }
}

/// The most an HTTP/1.1 request head may take (request line and headers), which is also what
/// an unfinished head can pin per connection: hyper's default is about 400 KiB. Larger heads get
/// 431. HTTP/2 has hyper's own bound, 16 KiB of header list.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How long a draining connection with nothing in flight is given to close by itself (after
/// GOAWAY, or HTTP/1's close) before it is dropped: a client that never answers must not hold
/// the drain.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// Why serving ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The drain deadline passed with connections open; each listener reports its own, so a
    /// shutdown names the one that held it.
    #[error("{listener}: {abandoned} request(s) on {connections} connection(s)")]
    Abandoned {
        listener: &'static str,
        abandoned: usize,
        connections: usize,
    },
}

/// Serve `app` on `listener` until `close` resolves, then let in-flight requests finish. `close`
/// yields the drain deadline: requests still running then are abandoned (`None`: no bound).
pub async fn serve<F>(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    close: F,
) -> Result<(), ServeError>
where
    F: Future<Output = Option<Instant>> + Send + 'static,
{
    let max = limits.budget.max;
    // This listener's own connections, to wait for at the drain (the budget is shared).
    let mine = Arc::new(Semaphore::new(max));
    // Set once the listener closes: every connection then closes as soon as it has nothing in
    // flight (GOAWAY for HTTP/2).
    let drain = limits.drain.clone();
    let draining = drain.subscribe().0;
    // Every connection's watch, to count the requests a drain abandons: per connection, so a
    // request touches no counter another core is also writing.
    let mut connections: Vec<Weak<HeadWatch>> = Vec::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header deadlines are the connection's own watch (deadlines.rs), not hyper's timer.
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .enable_connect_protocol()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2.keep_alive_interval)
        .keep_alive_timeout(limits.http2.keep_alive_timeout);
    tokio::pin!(close);
    let deadline = loop {
        let stream = tokio::select! {
            deadline = &mut close => break deadline,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let permit = limits.budget.slots.clone().try_acquire_owned();
        let Some(permit) = permit.ok().zip(mine.clone().try_acquire_owned().ok()) else {
            metrics::counter!(m::CONNECTIONS_REFUSED, "listener" => limits.listener).increment(1);
            if let Ok(writing) = limits.budget.refusals.clone().try_acquire_owned() {
                tokio::spawn(refuse(stream, max, limits.listener, writing));
            }
            continue;
        };
        let watch = serve_connection(
            stream,
            permit,
            &builder,
            draining.clone(),
            app.clone(),
            &limits,
        );
        if connections.len() == connections.capacity() {
            connections.retain(|c| c.strong_count() > 0);
        }
        connections.push(Arc::downgrade(&watch));
    };
    drop(listener);
    drain.begin();
    // Every connection holds a slot until it ends: all slots back means all connections closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = mine.acquire_many(all);
    match deadline {
        None => {
            let _ = drained.await;
        }
        Some(deadline) => {
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                let open: Vec<_> = connections.iter().filter_map(Weak::upgrade).collect();
                let abandoned = open.iter().map(|c| c.in_flight()).sum();
                tracing::error!(
                    listener = limits.listener,
                    abandoned,
                    connections = open.len(),
                    "drain deadline (--shutdown-timeout) passed: abandoning requests still in flight"
                );
                return Err(ServeError::Abandoned {
                    listener: limits.listener,
                    abandoned,
                    connections: open.len(),
                });
            }
        }
    }
    Ok(())
}

/// Spawn the task that serves one accepted connection; its watch.
fn serve_connection(
    stream: TcpStream,
    permit: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    builder: &auto::Builder<TokioExecutor>,
    mut draining: tokio::sync::watch::Receiver<bool>,
    app: Router,
    limits: &ConnectionLimits,
) -> Arc<HeadWatch> {
    let (listener, client_timeout, keep_alive, http2_idle) = (
        limits.listener,
        limits.client_timeout,
        limits.keep_alive,
        limits.http2.idle,
    );
    tune(&stream);
    let watch = HeadWatch::new();
    let io = TokioIo::new(Watched::new(stream, watch.clone()));
    let (requests, returned) = (watch.clone(), watch.clone());
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let request = requests.request();
        let req = req.map(|body| Body::new(DeadlineBody::new(body, client_timeout, listener)));
        let answer = app.clone().oneshot(req);
        async move {
            // In flight until the answer's body is sent (or dropped), not only its head: a drain
            // must not cut a response off halfway.
            let response = answer.await?;
            Ok::<_, std::convert::Infallible>(
                response.map(|body| Body::new(BusyBody::new(body, request))),
            )
        }
    });
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    let open = metrics::gauge!(m::CONNECTIONS_OPEN, "listener" => listener);
    open.increment(1.0);
    tokio::spawn(async move {
        tokio::pin!(connection);
        let (mut closing, mut refusing) = (false, false);
        loop {
            tokio::select! {
                biased;
                _ = connection.as_mut() => break,
                overdue = watch.overdue(client_timeout, keep_alive, http2_idle), if !closing && !refusing => {
                    match overdue {
                        Overdue::Headers { within, flag } => {
                            metrics::counter!(m::CLIENT_TIMEOUTS, "listener" => listener, "phase" => "headers")
                                .increment(1);
                            // Written by the socket on hyper's next read, which then fails and
                            // ends the connection.
                            watch.close_with(late_headers(within, flag));
                            refusing = true;
                        }
                        Overdue::Idle | Overdue::Handshake => break,
                        // GOAWAY: the client learns it must open a new connection.
                        Overdue::Http2Idle => {
                            connection.as_mut().graceful_shutdown();
                            closing = true;
                        }
                    }
                }
                _ = draining.wait_for(|d| *d), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = watch.settled(DRAIN_GRACE), if closing => break,
                // hyper reads at once when polled; this only bounds a connection that did not.
                _ = tokio::time::sleep(DRAIN_GRACE), if refusing => break,
            }
        }
        open.decrement(1.0);
        drop(permit);
    });
    returned
}

/// A listener's drain signal, set once it stops accepting. Routes whose answers would otherwise
/// stream forever (a health `Watch`) subscribe when they are built, so no request pays for it.
#[derive(Debug, Clone)]
pub struct DrainNotice(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for DrainNotice {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl DrainNotice {
    pub fn subscribe(&self) -> Draining {
        Draining(self.0.subscribe())
    }

    fn begin(&self) {
        self.0.send_replace(true);
    }
}

/// Whether the listener is draining (the server is shutting down); see [`DrainNotice`].
#[derive(Debug, Clone)]
pub struct Draining(pub tokio::sync::watch::Receiver<bool>);

/// What a connection's socket needs that the listener does not set: no Nagle delay on small
/// answers (tonic's own server sets it too), and TCP keep-alive so a peer that vanished without
/// a FIN frees its slot even where no HTTP/2 ping is sent.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// The 408 for a request whose headers did not arrive within `timeout` (`flag` names it).
fn late_headers(timeout: Duration, flag: &str) -> Vec<u8> {
    let detail = format!("the request headers did not arrive within {timeout:?} ({flag})");
    plain_response(
        "408 Request Timeout",
        "request-timeout",
        "Request timeout",
        &detail,
    )
}

/// An HTTP/1.1 response with a problem-details body that closes the connection, for the cases
/// where no router runs (headers too late, too many connections).
fn plain_response(status: &str, slug: &str, title: &str, detail: &str) -> Vec<u8> {
    let code: u16 = status
        .split(' ')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500);
    let body = serde_json::json!({
        "type": format!("urn:ember-serve:problem:{slug}"),
        "title": title,
        "status": code,
        "detail": detail,
    })
    .to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answer a connection over the cap and close it: 503 on the HTTP port; on the gRPC port,
/// SETTINGS and GOAWAY with REFUSED_STREAM, which gRPC clients report as UNAVAILABLE and
/// retry. An HTTP client's request is waited for (briefly) first, and whatever it sent is read
/// before the close, so closing does not reset
/// the connection before it reads the answer.
async fn refuse(mut stream: TcpStream, max: usize, listener: &str, _writing: OwnedSemaphorePermit) {
    let detail =
        format!("the server has {max} open connections (--max-connections); retry shortly");
    let answer = if listener == "grpc" {
        goaway_refused(&detail)
    } else {
        plain_response(
            "503 Service Unavailable",
            "too-many-connections",
            "Too many connections",
            &detail,
        )
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut sink = [0u8; 1024];
        // Wait (briefly) for the request to begin: an HTTP/1.1 client takes an answer before
        // its request for a protocol error, and an HTTP/2 client whose request is not out yet
        // reports the GOAWAY as a closed connection (CANCELLED) instead of a refused stream.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            let mut seen = Vec::new();
            loop {
                let n = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await?;
                seen.extend_from_slice(&sink[..n]);
                if n == 0 || listener != "grpc" || has_headers_frame(&seen) || seen.len() > 1 << 16
                {
                    return std::io::Result::Ok(());
                }
            }
        })
        .await;
        stream.write_all(&answer).await?;
        // An HTTP/2 client closes by itself on GOAWAY; closing first could reach it before the
        // GOAWAY does (it would report CANCELLED, not UNAVAILABLE).
        if listener != "grpc" {
            stream.shutdown().await?;
        }
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Whether `seen` (what an HTTP/2 client sent: the preface, then frames) holds a HEADERS frame.
fn has_headers_frame(seen: &[u8]) -> bool {
    const PREFACE: usize = 24;
    let mut at = PREFACE;
    while let Some(head) = seen.get(at..at + 9) {
        if head[3] == 0x1 {
            return true;
        }
        at += 9 + u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    }
    false
}

/// An HTTP/2 server's first frames that refuse the connection: an empty SETTINGS (the preface
/// every server sends) and GOAWAY (last stream 0, REFUSED_STREAM, `detail` as debug data).
fn goaway_refused(detail: &str) -> Vec<u8> {
    const SETTINGS: u8 = 0x4;
    const GOAWAY: u8 = 0x7;
    const REFUSED_STREAM: u32 = 0x7;
    let frame = |kind: u8, payload: &[u8]| {
        let length = (payload.len() as u32).to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, 0, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let mut goaway = vec![0u8; 4];
    goaway.extend_from_slice(&REFUSED_STREAM.to_be_bytes());
    goaway.extend_from_slice(detail.as_bytes());
    [frame(SETTINGS, &[]), frame(GOAWAY, &goaway)].concat()
}

/// Errors on a single connection (reset, aborted) end that connection only; running out of
/// descriptors would make accept spin, so it waits a moment first.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// `--max-connections` when not given: the process's open-file limit, less room for its own
/// files and for refusals, so accept() never fails for want of descriptors (a connection
/// holds one).
pub(crate) fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let files = limit.current.unwrap_or(65_536);
        (files.saturating_sub(256) as usize).clamp(64, 1 << 20)
    }
    #[cfg(not(unix))]
    {
        10_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_answers_are_well_formed_http() {
        let raw = plain_response("503 Service Unavailable", "x", "X", "full");
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["detail"], "full");
    }

    #[tokio::test]
    async fn accepted_sockets_get_no_delay_and_tcp_keep_alive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap());
        tune(&accepted);
        assert!(accepted.nodelay().unwrap());
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_default_connection_cap_leaves_room_below_the_file_limit() {
        let cap = default_max_connections();
        assert!(cap >= 64);
        #[cfg(unix)]
        if let Some(files) = rustix::process::getrlimit(rustix::process::Resource::Nofile).current
            && files > 512
        {
            assert!((cap as u64) < files);
        }
    }
}
