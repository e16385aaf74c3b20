//! Request ids over the real router: echoed when safe, generated otherwise, returned on every
//! answer (errors and preflights too), named in problem details, and carried by the request's
//! log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use ember_serve::config::LogFormat;
use tracing_subscriber::layer::SubscriberExt;

mod common;
use common::*;

/// tracing caches per call site whether anyone listens; a test on another thread registering a
/// call site while this file's log capture is installed can leave it cached as "nobody". The
/// tests here take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn get_with_id(app: &axum::Router, uri: &str, id: Option<&[u8]>) -> Reply {
    let mut req = Request::get(uri);
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

fn id_of(reply: &Reply) -> String {
    reply.headers["x-request-id"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn ids_are_echoed_generated_or_replaced_on_every_answer() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (app, _) = ready_app(&[]).await;
    let echoed = get_with_id(&app, "/health/ready", Some(b"trace-abc-123")).await;
    assert_eq!(id_of(&echoed), "trace-abc-123");

    let a = id_of(&get_with_id(&app, "/health/live", None).await);
    let b = id_of(&get_with_id(&app, "/health/live", None).await);
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a, b);

    let long = "x".repeat(200);
    for unsafe_id in [long.as_bytes(), b"two words", b"caf\xc3\xa9"] {
        let replaced = id_of(&get_with_id(&app, "/health/live", Some(unsafe_id)).await);
        assert_ne!(replaced.as_bytes(), unsafe_id);
        assert_eq!(replaced.len(), 32);
    }

    // Errors carry it in the header and the problem body; V2 errors in the header.
    let req = Request::post("/v1/predict")
        .header("x-request-id", "req-7")
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .unwrap();
    let bad = send(&app, req).await;
    assert_eq!(bad.status, 400);
    assert_eq!(id_of(&bad), "req-7");
    assert_eq!(bad.json()["request_id"], "req-7");
    let missing = get_with_id(&app, "/v2/models/nope", Some(b"req-8")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(id_of(&missing), "req-8");
    let unknown = get_with_id(&app, "/no/such/route", Some(b"req-9")).await;
    assert_eq!(unknown.json()["request_id"], "req-9");
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_request_id_is_in_the_request_s_json_log_lines() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("ember_serve=debug"))
        .with(ember_serve::telemetry::logging::fmt_layer(
            LogFormat::Json,
            move || writer.clone(),
            false,
        ));
    // This test's thread only: the current-thread runtime answers the request on it.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (app, _) = ready_app(&[]).await;
    let req = Request::post("/v1/predict")
        .header("x-request-id", "log-me-42")
        .header("content-type", "application/json")
        .body(Body::from(read("tests/data/predict-zero.json")))
        .unwrap();
    assert_eq!(send(&app, req).await.status, 200);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let answered: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message"] == "request answered")
        .collect();
    assert_eq!(answered.len(), 1, "{text}");
    let line = &answered[0];
    assert_eq!(line["request_id"], "log-me-42", "{line}");
    assert_eq!(line["method"], "POST", "{line}");
    assert_eq!(line["path"], "/v1/predict", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}
