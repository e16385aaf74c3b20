//! OpenTelemetry traces end to end: the server's own exporter (`--otlp-endpoint`'s code path)
//! posts OTLP/HTTP protobuf to a receiver this test runs, which decodes what arrives.
//!
//! One test in this binary: it installs the process-wide subscriber.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use ember_serve::config::LogFormat;
use ember_serve::grpc::pb::ServerMetadataRequest;
use ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use ember_serve::telemetry::{logging, traces};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

mod common;
use common::*;

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?} on {}", span.name),
    }
}

fn int(span: &Span, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::IntValue(i)) => *i,
        other => panic!("{key}: {other:?} on {}", span.name),
    }
}

async fn predict(app: &axum::Router, traceparent: &str, request_id: &str) -> u16 {
    let mut req = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("x-request-id", request_id);
    if !traceparent.is_empty() {
        req = req.header("traceparent", traceparent);
    }
    let req = req
        .body(Body::from(read("tests/data/predict-zero.json")))
        .unwrap();
    send(app, req).await.status.as_u16()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const GRPC_TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const UNSAMPLED_TRACE: &str = "6bf92f3577b34da6a3ce929d0e0e4738";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn requests_queue_waits_and_batched_passes_become_linked_spans() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, received) = runtime.block_on(common::otlp::receiver());
    // Inside the runtime, as main does: the exporter runs on it. Callers' decisions are
    // followed; no trace this server starts itself is kept.
    let sampler = traces::sampler_from(Some("parentbased_traceidratio"), Some("0")).unwrap();
    let (export, tracer) = {
        let _inside = runtime.enter();
        traces::export_sampled(&url, sampler).unwrap()
    };
    logging::init(LogFormat::Json, "warn", Some(tracer)).unwrap();

    runtime.block_on(async {
        // One request continuing the caller's trace.
        let (app, _) = ready_app(&[]).await;
        let parent = format!("00-{TRACE}-{CALLER_SPAN}-01");
        assert_eq!(predict(&app, &parent, "traced-1").await, 200);
        // Not sampled by the caller, and not by the server: no span at all.
        let unsampled = format!("00-{UNSAMPLED_TRACE}-{CALLER_SPAN}-00");
        assert_eq!(predict(&app, &unsampled, "unsampled").await, 200);
        assert_eq!(predict(&app, "", "root").await, 200);

        // Two requests queued behind a paused queue, then served by one pass.
        let (paused, service) = paused_app(8, None);
        let calls: Vec<_> = ["a", "b"]
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let app = paused.clone();
                let parent = format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
                tokio::spawn(async move { predict(&app, &parent, id).await })
            })
            .collect();
        while service
            .queue
            .stats()
            .depth
            .load(std::sync::atomic::Ordering::SeqCst)
            < 2
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        service.queue.add_threads(1).unwrap();
        for call in calls {
            assert_eq!(call.await.unwrap(), 200);
        }

        // A gRPC call continues its caller's trace too.
        let grpc = |draining| {
            ember_serve::grpc::router(service.clone(), 1 << 20, Default::default(), draining)
                .unwrap()
        };
        let (channel, _, _server) = serve_grpc(grpc, std::future::pending()).await;
        let mut client = GrpcInferenceServiceClient::new(channel);
        let mut call = tonic::Request::new(ServerMetadataRequest {});
        let parent = format!("00-{GRPC_TRACE}-{CALLER_SPAN}-01");
        call.metadata_mut()
            .insert("traceparent", parent.parse().unwrap());
        client.server_metadata(call).await.unwrap();
    });
    // Flushes the batch processor (on the still-running runtime): everything above is sent
    // before this returns.
    export.shutdown();

    let spans = received.lock().unwrap().clone();
    let named = |name: &str| -> Vec<&Span> { spans.iter().filter(|s| s.name == name).collect() };
    let by_id = |id: &str| -> &Span {
        spans
            .iter()
            .find(|s| s.name == "POST /v1/predict" && string(s, "request_id") == id)
            .unwrap_or_else(|| {
                panic!(
                    "no server span for {id}: {:?}",
                    spans.iter().map(|s| &s.name).collect::<Vec<_>>()
                )
            })
    };

    // The request span continues the caller's trace, with route, status and request id.
    let server = by_id("traced-1");
    assert_eq!(hex::encode(&server.trace_id), TRACE);
    assert_eq!(hex::encode(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(string(server, "http.route"), "/v1/predict");
    assert_eq!(int(server, "http.response.status_code"), 200);

    // Its queue wait and its forward pass are its children.
    let child_of = |name: &str, parent: &Span| -> Vec<&Span> {
        named(name)
            .into_iter()
            .filter(|s| s.parent_span_id == parent.span_id)
            .collect()
    };
    assert_eq!(child_of("queue wait", server).len(), 1);
    let pass = child_of("forward pass", server);
    assert_eq!(pass.len(), 1);
    assert_eq!(pass[0].trace_id, server.trace_id);
    assert_eq!(int(pass[0], "batch_size"), 1);

    // The batched pass: child of one request, linked to the other.
    let (a, b) = (by_id("a"), by_id("b"));
    assert_ne!(a.trace_id, b.trace_id);
    let batched: Vec<&Span> = named("forward pass")
        .into_iter()
        .filter(|s| s.parent_span_id == a.span_id || s.parent_span_id == b.span_id)
        .collect();
    assert_eq!(batched.len(), 1, "both requests must share one pass");
    let batched = batched[0];
    assert_eq!(int(batched, "batch_size"), 2);
    assert_eq!(int(batched, "requests"), 2);
    let other = if batched.parent_span_id == a.span_id {
        b
    } else {
        a
    };
    assert_eq!(batched.links.len(), 1);
    assert_eq!(batched.links[0].trace_id, other.trace_id);
    assert_eq!(batched.links[0].span_id, other.span_id);
    for request in [a, b] {
        assert_eq!(child_of("queue wait", request).len(), 1);
    }

    // The requests not sampled left nothing: no server span, no queue wait, no pass.
    assert!(
        spans
            .iter()
            .all(|s| hex::encode(&s.trace_id) != UNSAMPLED_TRACE),
        "an unsampled caller's request was traced"
    );
    let request_ids: Vec<String> = spans
        .iter()
        .filter(|s| s.name == "POST /v1/predict")
        .map(|s| string(s, "request_id"))
        .collect();
    assert_eq!(request_ids.len(), 3, "{request_ids:?}");
    assert_eq!(named("forward pass").len(), 2);
    assert_eq!(named("queue wait").len(), 3);

    let rpc = spans
        .iter()
        .find(|s| hex::encode(&s.trace_id) == GRPC_TRACE)
        .expect("no span for the gRPC call");
    assert_eq!(rpc.name, "inference.GRPCInferenceService/ServerMetadata");
    assert_eq!(hex::encode(&rpc.parent_span_id), CALLER_SPAN);
    assert_eq!(int(rpc, "rpc.grpc.status_code"), 0);
}
