//! The accept loop both listeners (REST and gRPC) run: what axum::serve does, plus the limits a
//! server facing clients directly needs.
//!
//! - A client gets `--client-timeout` to send a request's headers and then as long again for its
//!   body; past either it gets 408 and its connection is closed. An idle keep-alive connection
//!   is closed, without a word, `--keep-alive-timeout` after its last response, so a trickling
//!   or vanished client cannot hold a slot for long.
//! - `--max-connections` caps open connections; one over the cap is answered 503 and closed.
//! - After a shutdown signal the listener closes and in-flight requests get until the drain
//!   deadline (`--shutdown-timeout`); whatever is still running then is abandoned and counted.
//!
//! It knows nothing of routes or protocols: it serves any axum `Router`.

mod deadlines;

pub use deadlines::BodyTimeout;

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::telemetry::metrics as m;
use deadlines::{DeadlineBody, HeadWatch, Overdue, Watched};

/// How one listener treats its clients.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// `http` or `grpc`: the `listener` label on the connection metrics.
    pub listener: &'static str,
    /// For the request headers, and again for the body.
    pub client_timeout: Duration,
    /// How long a keep-alive connection waits for its next request before it is closed.
    pub keep_alive: Duration,
    /// Most connections open at once on this listener.
    pub max_connections: usize,
}

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
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Every connection's watch, to count the requests a drain abandons: per connection, so a
    // request touches no counter another core is also writing.
    let mut connections: Vec<Weak<HeadWatch>> = Vec::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header deadlines are the connection's own watch (deadlines.rs), not hyper's timer.
    builder.http1().header_read_timeout(None);
    builder.http2().enable_connect_protocol();
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics::counter!(m::CONNECTIONS_REFUSED, "listener" => limits.listener).increment(1);
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let watch = serve_connection(stream, permit, &builder, &graceful, app.clone(), &limits);
        if connections.len() == connections.capacity() {
            connections.retain(|c| c.strong_count() > 0);
        }
        connections.push(Arc::downgrade(&watch));
    };
    drop(listener);
    let drained = graceful.shutdown();
    match deadline {
        None => drained.await,
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
    permit: OwnedSemaphorePermit,
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    app: Router,
    limits: &ConnectionLimits,
) -> Arc<HeadWatch> {
    let (listener, client_timeout, keep_alive) =
        (limits.listener, limits.client_timeout, limits.keep_alive);
    // A connection whose headers are late is dropped; a second handle on the socket lets us
    // say 408 first.
    let notice = TimeoutNotice::new(&stream);
    let watch = HeadWatch::new();
    let io = TokioIo::new(Watched::new(stream, watch.clone()));
    let (requests, returned) = (watch.clone(), watch.clone());
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let request = requests.request();
        let req = req.map(|body| Body::new(DeadlineBody::new(body, client_timeout, listener)));
        let answer = app.clone().oneshot(req);
        async move {
            let response = answer.await;
            drop(request);
            response
        }
    });
    let connection = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    let connection = graceful.watch(connection);
    let open = metrics::gauge!(m::CONNECTIONS_OPEN, "listener" => listener);
    open.increment(1.0);
    tokio::spawn(async move {
        tokio::select! {
            biased;
            _ = connection => {}
            overdue = watch.overdue(client_timeout, keep_alive) => {
                if let Overdue::Headers { within, flag } = overdue {
                    metrics::counter!(m::CLIENT_TIMEOUTS, "listener" => listener, "phase" => "headers")
                        .increment(1);
                    notice.send(within, flag);
                }
            }
        }
        open.decrement(1.0);
        drop(permit);
    });
    returned
}

/// A duplicate of the connection's socket, to answer 408 when the headers are late.
struct TimeoutNotice(#[cfg(unix)] Option<std::net::TcpStream>);

impl TimeoutNotice {
    #[cfg(unix)]
    fn new(stream: &TcpStream) -> Self {
        Self(rustix::io::dup(stream).ok().map(std::net::TcpStream::from))
    }

    #[cfg(not(unix))]
    fn new(_: &TcpStream) -> Self {
        Self()
    }

    /// Best effort: the socket is non-blocking and the answer is small; a full send buffer or a
    /// gone client only means the 408 is not seen.
    fn send(self, timeout: Duration, flag: &str) {
        #[cfg(unix)]
        if let Some(mut socket) = self.0 {
            use std::io::Write;
            let detail = format!("the request headers did not arrive within {timeout:?} ({flag})");
            let _ = socket.write_all(&plain_response(
                "408 Request Timeout",
                "request-timeout",
                "Request timeout",
                &detail,
            ));
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        #[cfg(not(unix))]
        let _ = (timeout, flag);
    }
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

/// Answer a connection over the cap with 503 and close it. Whatever the client already sent is
/// read (briefly) first, so closing does not reset the connection before it reads the answer.
async fn refuse(mut stream: TcpStream, max: usize) {
    let detail =
        format!("the server has {max} open connections (--max-connections); retry shortly");
    let answer = plain_response(
        "503 Service Unavailable",
        "too-many-connections",
        "Too many connections",
        &detail,
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
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
/// files, so accept() never fails for want of descriptors.
pub fn default_max_connections() -> usize {
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
