//! The accept loop every listener runs, over real sockets: slow clients get 408 and lose their
//! connection, idle keep-alive connections are closed at `--keep-alive-timeout` without a word
//! (busy ones and HTTP/2 ones are not), a
//! connection over `--max-connections` is refused with 503, and a drain that outlives its
//! deadline reports what it abandoned.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ember_serve::connections::{self, ConnectionBudget, ConnectionLimits, Http2Limits, ServeError};
use ember_serve::service::ModelService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

mod common;

/// Serve `app` with `limits` on a free port; `stop` closes the listener with that drain deadline.
async fn serve(
    app: Router,
    limits: ConnectionLimits,
) -> (
    String,
    oneshot::Sender<Option<Instant>>,
    tokio::task::JoinHandle<Result<(), ServeError>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(connections::serve(listener, app, limits, async move {
        stopped.await.ok().flatten()
    }));
    (addr, stop, server)
}

/// `client_timeout` for headers and bodies, and as keep-alive timeout.
fn limits(client_timeout: Duration, max_connections: usize) -> ConnectionLimits {
    ConnectionLimits {
        listener: "http",
        client_timeout,
        keep_alive: client_timeout,
        budget: ConnectionBudget::new(max_connections),
        http2: Default::default(),
        drain: Default::default(),
    }
}

/// Everything the server sends until it closes the connection (or 10 s pass: a failure).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .expect("the server kept the connection open")
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// Send `bytes`, then read until the server closes: a 408 whose body says `detail`.
async fn sent_then_408(stream: &mut TcpStream, bytes: &[u8], detail: &str) -> String {
    stream.write_all(bytes).await.unwrap();
    let answer = read_until_closed(stream).await;
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(answer.contains(detail), "{answer}");
    answer
}

async fn ready() -> (Router, Arc<ModelService>) {
    common::ready_app(&[]).await
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_its_connection_closed() {
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app, limits(Duration::from_millis(600), 100)).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let answer = sent_then_408(
        &mut stream,
        b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 102400\r\n\r\n{",
        "urn:ember-serve:problem:request-timeout",
    )
    .await;
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("x-request-id:"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(600));
    // The same on V2, in its own error shape.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    sent_then_408(
        &mut stream,
        b"POST /v2/models/digits-cnn/infer HTTP/1.1\r\nhost: x\r\n\
          content-type: application/json\r\ncontent-length: 5000\r\n\r\n{\"in",
        "{\"error\":\"the request body did not arrive",
    )
    .await;
}

#[tokio::test]
async fn late_headers_get_408_and_idle_keep_alive_connections_are_closed() {
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app, limits(Duration::from_millis(500), 100)).await;

    let mut partial = TcpStream::connect(&addr).await.unwrap();
    sent_then_408(
        &mut partial,
        b"GET /health/live HTTP/1.1\r\nhost: x\r\n",
        "did not arrive within 500ms (--client-timeout)",
    )
    .await;

    // A finished request keeps the connection for the next one, but not forever.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let rest = read_until_closed(&mut idle).await;
    assert!(!rest.contains("HTTP/1.1 200"), "{rest}");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn the_keep_alive_timeout_is_its_own_and_an_idle_close_says_nothing() {
    let (app, _service) = ready().await;
    let get = b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n";
    // Longer than the client timeout: an idle connection outlives --client-timeout. (The idle
    // spell below is 5 client timeouts and 3.5 s short of the keep-alive timeout, so a stalled
    // machine cannot make it cross either.)
    let patient = ConnectionLimits {
        keep_alive: Duration::from_secs(5),
        ..limits(Duration::from_millis(300), 100)
    };
    let (addr, _stop, _server) = serve(app.clone(), patient).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(get).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(get).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));

    // Shorter than the client timeout: closed at the keep-alive timeout, not at the client's,
    // and with nothing written (a 408 there would be read as the answer to the client's next
    // request).
    // The bound on the close is far from both timeouts (0.5 s and 30 s): a busy machine
    // cannot push one past it, nor bring the other under it.
    let brief = ConnectionLimits {
        keep_alive: Duration::from_millis(500),
        ..limits(Duration::from_secs(30), 100)
    };
    let (addr, _stop, _server) = serve(app.clone(), brief.clone()).await;
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(get).await.unwrap();
    assert!(read_response(&mut idle).await.starts_with("HTTP/1.1 200"));
    let answered = Instant::now();
    let rest = read_until_closed(&mut idle).await;
    assert_eq!(rest, "", "an idle keep-alive connection was sent {rest:?}");
    let waited = answered.elapsed();
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(8),
        "closed {waited:?} after the last answer"
    );

    // A next request begun but not finished within the keep-alive timeout gets its 408.
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial.write_all(get).await.unwrap();
    assert!(
        read_response(&mut partial)
            .await
            .starts_with("HTTP/1.1 200")
    );
    sent_then_408(
        &mut partial,
        b"GET /health/live HTTP/1.1\r\n",
        "within 500ms (--keep-alive-timeout)",
    )
    .await;
}

/// Read one HTTP/1.1 response with a `content-length` body from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_slow_answer_and_a_busy_keep_alive_connection_outlast_the_client_timeout() {
    // The header deadline runs only while the connection waits for headers: not while a
    // request is answered, and not for a client that keeps sending requests.
    let app = Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                "slow"
            }),
        )
        .route("/fast", axum::routing::get(|| async { "fast" }));
    let (addr, _stop, _server) = serve(app, limits(Duration::from_millis(300), 100)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut client).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("slow"),
        "{answer}"
    );
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        client
            .write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_response(&mut client).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("fast"),
            "{answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/2 frame: (type, flags, payload).
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], payload))
}

#[tokio::test]
async fn an_idle_http2_connection_is_not_given_a_header_deadline() {
    // gRPC channels sit idle between calls; hyper never timed HTTP/2 headers, nor do we.
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app, limits(Duration::from_millis(200), 100)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A PING after three timeouts of silence is still answered (type 6, flag ACK).
    client
        .write_all(b"\0\0\x08\x06\0\0\0\0\0pingpong")
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some((kind, flags, payload)) = read_frame(&mut client).await {
            if kind == 6 && flags & 1 == 1 {
                return Some(payload);
            }
        }
        None
    })
    .await
    .expect("no answer to the ping");
    assert_eq!(pong.as_deref(), Some(&b"pingpong"[..]));
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: the first frame every HTTP/2 client sends.
const SETTINGS: &[u8] = b"\0\0\0\x04\0\0\0\0\0";

/// How long the server keeps `stream` open, reading (and dropping) whatever it sends; the frame
/// types it sent, when `http2`. Fails after 10 s.
async fn held_for(stream: &mut TcpStream, http2: bool) -> (Duration, Vec<u8>) {
    let opened = Instant::now();
    let mut kinds = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        if http2 {
            while let Some((kind, ..)) = read_frame(stream).await {
                kinds.push(kind);
            }
        } else {
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink).await;
        }
    })
    .await
    .expect("the server kept the silent connection open");
    (opened.elapsed(), kinds)
}

fn http2(client_timeout: Duration, http2: Http2Limits) -> ConnectionLimits {
    ConnectionLimits {
        http2,
        ..limits(client_timeout, 100)
    }
}

#[tokio::test]
async fn an_http2_client_that_stops_after_the_preface_is_closed_at_the_client_timeout() {
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app, limits(Duration::from_millis(300), 100)).await;
    // The whole preface and nothing more, or only part of it.
    for sent in [PREFACE, &PREFACE[..10]] {
        let mut client = TcpStream::connect(&addr).await.unwrap();
        client.write_all(sent).await.unwrap();
        let (held, _) = held_for(&mut client, false).await;
        assert!(
            // Nothing else closes it before held_for gives up at 10 s.
            held >= Duration::from_millis(250) && held < Duration::from_secs(8),
            "{} preface bytes held {held:?}",
            sent.len()
        );
    }
}

#[tokio::test]
async fn an_http2_peer_that_never_answers_a_ping_is_closed() {
    let (app, _service) = ready().await;
    let pinging = Http2Limits {
        keep_alive_interval: Some(Duration::from_millis(200)),
        keep_alive_timeout: Duration::from_millis(200),
        idle: Duration::from_secs(60),
    };
    let (addr, _stop, _server) = serve(app, http2(Duration::from_secs(30), pinging)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(SETTINGS).await.unwrap();
    let (held, kinds) = held_for(&mut client, true).await;
    assert!(kinds.contains(&6), "never pinged: frames {kinds:?}");
    // The client timeout (30 s) would close it only after held_for gives up at 10 s.
    assert!(held < Duration::from_secs(8), "held {held:?}");
}

#[tokio::test]
async fn an_http2_connection_idle_past_its_idle_timeout_gets_goaway() {
    let (app, _service) = ready().await;
    let idle = Http2Limits {
        keep_alive_interval: None,
        idle: Duration::from_millis(500),
        ..Http2Limits::default()
    };
    let (addr, _stop, _server) = serve(app, http2(Duration::from_secs(30), idle)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client.write_all(PREFACE).await.unwrap();
    client.write_all(SETTINGS).await.unwrap();
    // A request first: the idle spell starts when it ends.
    // HEADERS (stream 1, END_STREAM | END_HEADERS): GET /health/live, HPACK literals.
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    block.extend([0x44, 12]); // :path, literal, 12 bytes
    block.extend(b"/health/live");
    block.extend([0x41, 1, b'x']); // :authority x
    let mut headers = (block.len() as u32).to_be_bytes()[1..].to_vec();
    headers.extend([1, 0x05, 0, 0, 0, 1]);
    headers.extend(&block);
    client.write_all(&headers).await.unwrap();
    let (held, kinds) = held_for(&mut client, true).await;
    assert!(
        kinds.contains(&1),
        "the request was not answered: {kinds:?}"
    );
    // GOAWAY (7), then hyper's PING (6) to learn which streams the client started meanwhile.
    let goaway = kinds.iter().position(|&k| k == 7);
    assert!(
        goaway > kinds.iter().position(|&k| k == 0),
        "no GOAWAY after the answer: {kinds:?}"
    );
    assert!(
        // The idle timeout, not the 30 s client timeout (past held_for's 10 s).
        held >= Duration::from_millis(400) && held < Duration::from_secs(8),
        "held {held:?}"
    );
}

#[tokio::test]
async fn request_heads_are_bounded_to_what_a_legitimate_one_needs() {
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app, limits(Duration::from_secs(30), 100)).await;
    let head = |filler: usize| {
        format!(
            "GET /health/live HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\n\r\n",
            "a".repeat(filler)
        )
    };
    // A large legitimate head (a long token, many cookies) still fits...
    let mut fits = TcpStream::connect(&addr).await.unwrap();
    fits.write_all(head(connections::MAX_HEADER_BYTES - 1024).as_bytes())
        .await
        .unwrap();
    assert!(read_response(&mut fits).await.starts_with("HTTP/1.1 200"));
    // ...one past the bound is refused, and its connection closed, rather than buffered.
    let mut over = TcpStream::connect(&addr).await.unwrap();
    let _ = over
        .write_all(head(connections::MAX_HEADER_BYTES + 1024).as_bytes())
        .await;
    let answer = read_until_closed(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
}

#[tokio::test]
async fn a_drain_lets_an_answer_that_is_still_streaming_finish() {
    // An answer whose body takes 600 ms to send, in three parts.
    let slow = Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            let parts = tokio_stream::StreamExt::throttle(
                tokio_stream::iter(
                    ["one ", "two ", "three"].map(Ok::<_, std::convert::Infallible>),
                ),
                Duration::from_millis(200),
            );
            axum::body::Body::from_stream(parts)
        }),
    );
    let (addr, stop, server) = serve(slow, limits(Duration::from_secs(30), 100)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stop.send(Some(Instant::now() + Duration::from_secs(5)))
        .unwrap();
    let rest = read_until_closed(&mut client).await;
    assert!(rest.contains("one ") && rest.contains("three"), "{rest:?}");
    let result = server.await.unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn silent_http2_connections_do_not_hold_a_drain() {
    let (app, _service) = ready().await;
    let (addr, stop, server) = serve(app, limits(Duration::from_secs(30), 100)).await;
    let mut silent = Vec::new();
    for first in [PREFACE, &[PREFACE, SETTINGS].concat()[..], &PREFACE[..5]] {
        let mut client = TcpStream::connect(&addr).await.unwrap();
        client.write_all(first).await.unwrap();
        silent.push(client);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    // Held, the drain would last until its 20 s deadline; the bound is far from both that and
    // the instant an idle drain takes, so a busy machine cannot fail it.
    stop.send(Some(Instant::now() + Duration::from_secs(20)))
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the drain never ended")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503_and_counted() {
    let (app, _service) = ready().await;
    let (addr, _stop, _server) = serve(app.clone(), limits(Duration::from_secs(30), 2)).await;
    let held = [
        TcpStream::connect(&addr).await.unwrap(),
        TcpStream::connect(&addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(
        answer.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");

    // A slot frees when a connection closes.
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(&addr).await.unwrap();
    again
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_until_closed(&mut again)
            .await
            .starts_with("HTTP/1.1 200")
    );

    let metrics = common::get(&app, "/metrics").await.text();
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("ember_connections_refused_total{listener=\"http\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "{metrics}");
}

#[tokio::test]
async fn a_drain_past_its_deadline_reports_the_requests_it_abandoned() {
    // A paused queue: a prediction waits forever.
    let (app, service) = common::paused_app(8, None);
    service.mark_warm();
    let (addr, stop, server) = serve(app, limits(Duration::from_secs(30), 100)).await;
    let mut stuck = TcpStream::connect(&addr).await.unwrap();
    let body = common::read("tests/data/predict-zero.json");
    stuck
        .write_all(
            format!(
                "POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    while service
        .queue
        .stats()
        .depth
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    stop.send(Some(Instant::now() + Duration::from_millis(300)))
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the drain never ended")
        .unwrap();
    assert!(
        matches!(result, Err(ServeError::Abandoned { abandoned: 1, .. })),
        "{result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_drain_within_its_deadline_ends_cleanly() {
    let (app, _service) = ready().await;
    let (addr, stop, server) = serve(app, limits(Duration::from_secs(30), 100)).await;
    let mut client = TcpStream::connect(&addr).await.unwrap();
    client
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    assert!(client.read(&mut buf).await.unwrap() > 0);
    stop.send(Some(Instant::now() + Duration::from_secs(5)))
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
}
