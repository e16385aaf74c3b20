//! KServe V2 over gRPC, through a real tonic server and client: every RPC, agreement with REST on
//! real digits, every refusal's status code (with REST's wording), health checking, reflection,
//! metrics, and a drain that answers the call in flight.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use ember_serve::grpc::pb::infer_parameter::ParameterChoice;
use ember_serve::grpc::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use ember_serve::grpc::pb::*;
use ember_serve::service::ModelService;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

type Client = GrpcInferenceServiceClient<Channel>;

/// Serve gRPC for `service` on a free loopback port until `shutdown`; a connected client.
async fn serve_with(
    service: Arc<ModelService>,
    body_limit: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Client, tokio::task::JoinHandle<()>, String) {
    let router = |draining| {
        ember_serve::grpc::router(service, body_limit, Default::default(), draining).unwrap()
    };
    let (channel, addr, server) = serve_grpc(router, shutdown).await;
    (GrpcInferenceServiceClient::new(channel), server, addr)
}

async fn serve(service: Arc<ModelService>) -> Client {
    serve_with(service, 1 << 20, std::future::pending()).await.0
}

fn fp32_raw(rows: &[Vec<f64>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect()
}

fn input(datatype: &str, shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor {
        name: "input".into(),
        datatype: datatype.into(),
        shape,
        parameters: Default::default(),
        contents: None,
    }
}

/// A raw FP32 request for `rows`.
fn raw_request(rows: &[Vec<f64>]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "digits-cnn".into(),
        model_version: String::new(),
        id: "42".into(),
        inputs: vec![input("FP32", vec![rows.len() as i64, 64])],
        raw_input_contents: vec![fp32_raw(rows)],
        ..Default::default()
    }
}

/// What the V2 REST surface says about the same request, as `{"error": ...}`'s text.
async fn rest_error(app: &axum::Router, body: serde_json::Value) -> String {
    let reply = post_json(app, "/v2/models/digits-cnn/infer", body.to_string()).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    reply.json()["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn metadata_config_statistics_health_and_reflection() {
    let (_, service) = ready_app(&[]).await;
    let (mut client, _server, addr) = serve_with(service, 1 << 20, std::future::pending()).await;
    assert!(
        client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let ready = client
        .model_ready(ModelReadyRequest {
            name: "digits-cnn".into(),
            version: "2".into(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let server = client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(server.name, "ember-serve");
    assert!(server.extensions.iter().any(|e| e == "statistics"));
    let model = client
        .model_metadata(ModelMetadataRequest {
            name: "digits-cnn".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(model.versions, ["2"]);
    assert_eq!(model.inputs[0].name, "input");
    assert_eq!(model.inputs[0].shape, [-1, 64]);
    assert_eq!(
        model
            .outputs
            .iter()
            .map(|o| o.datatype.as_str())
            .collect::<Vec<_>>(),
        ["FP32", "INT64"]
    );

    let config = client
        .model_config(ModelConfigRequest {
            name: "digits-cnn".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.max_batch_size, 64);
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
    assert_eq!(config.input[0].dims, [64]);
    assert_eq!(
        config.output[1].reshape.as_ref().unwrap().shape,
        Vec::<i64>::new()
    );
    assert!(matches!(
        config.scheduling_choice,
        Some(model_config::SchedulingChoice::DynamicBatching(_))
    ));

    // Statistics count gRPC inferences.
    let stats = |client: &mut Client| {
        let mut client = client.clone();
        async move {
            client
                .model_statistics(ModelStatisticsRequest {
                    name: "digits-cnn".into(),
                    version: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .model_stats[0]
                .inference_count
        }
    };
    let before = stats(&mut client).await;
    client.model_infer(raw_request(&rows(3))).await.unwrap();
    assert_eq!(stats(&mut client).await, before + 3);

    // gRPC health checking follows readiness.
    let channel = Channel::from_shared(addr).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "inference.GRPCInferenceService"] {
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    // Reflection lists the inference service, so tools need no copy of the .proto.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"inference.GRPCInferenceService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn health_is_not_serving_until_warm_up() {
    let (_, service) = cold_app(&[]);
    let (_client, _server, addr) =
        serve_with(service.clone(), 1 << 20, std::future::pending()).await;
    let channel = Channel::from_shared(addr).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = |mut health: tonic_health::pb::health_client::HealthClient<Channel>| async move {
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "inference.GRPCInferenceService".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    use tonic_health::pb::health_check_response::ServingStatus;
    assert_eq!(
        check(health.clone()).await,
        ServingStatus::NotServing as i32
    );
    service.warm_up().await.unwrap();
    // The health service learns of readiness through a channel: give it a moment.
    for _ in 0..100 {
        if check(health.clone()).await == ServingStatus::Serving as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(check(health.clone()).await, ServingStatus::Serving as i32);
    service.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    health = health.clone();
    assert_eq!(check(health).await, ServingStatus::NotServing as i32);
}

#[tokio::test]
async fn a_health_watch_gets_not_serving_and_ends_when_the_server_drains() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let (_, service) = ready_app(&[]).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (_client, server, addr) = serve_with(service.clone(), 1 << 20, async {
        let _ = stopped.await;
    })
    .await;
    let channel = Channel::from_shared(addr).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "inference.GRPCInferenceService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    async fn next(
        watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    ) -> Result<Option<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
        tokio::time::timeout(Duration::from_secs(5), watch.message())
            .await
            .expect("the watch stream neither sent nor ended")
    }
    // SERVING (warm-up may still be publishing), then the signal: NOT_SERVING, then the drain.
    let mut status = next(&mut watch).await.unwrap().unwrap().status;
    if status != ServingStatus::Serving as i32 {
        status = next(&mut watch).await.unwrap().unwrap().status;
    }
    assert_eq!(status, ServingStatus::Serving as i32);
    service.begin_shutdown();
    assert_eq!(
        next(&mut watch).await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    stop.send(()).unwrap();
    let end = next(&mut watch).await.unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    // Nothing else held the drain: the server stops (with no deadline, it would wait forever).
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the watch stream held the drain")
        .unwrap();
}

#[tokio::test]
async fn inferences_agree_with_rest_in_every_encoding() {
    let (app, service) = ready_app(&[]).await;
    let mut client = serve(service).await;
    let rows = rows(16);
    let rest = post_json(&app, "/v1/predict", json!({"inputs": rows}).to_string())
        .await
        .json();

    // Raw FP32, as tritonclient and perf_analyzer send it.
    let reply = client
        .model_infer(raw_request(&rows))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.id, "42");
    assert_eq!(reply.model_version, "2");
    assert_eq!(reply.outputs[0].name, "probabilities");
    assert_eq!(reply.outputs[0].shape, [16, 10]);
    assert_eq!(reply.outputs[1].name, "label");
    let probs = f32s(&reply.raw_output_contents[0]);
    let labels = i64s(&reply.raw_output_contents[1]);
    for (i, p) in rest["predictions"].as_array().unwrap().iter().enumerate() {
        assert_eq!(labels[i], p["class"].as_i64().unwrap(), "image {i}");
        for (j, q) in p["probabilities"].as_array().unwrap().iter().enumerate() {
            assert!((probs[i * 10 + j] - q.as_f64().unwrap() as f32).abs() < 1e-6);
        }
    }

    // Typed contents: FP32, INT32 and UINT8 (raw) give the same labels.
    let mut typed = raw_request(&rows);
    typed.raw_input_contents.clear();
    typed.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: rows.iter().flatten().map(|&v| v as f32).collect(),
        ..Default::default()
    });
    let fp32 = client
        .model_infer(typed.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(i64s(&fp32.raw_output_contents[1]), labels);
    typed.inputs[0].datatype = "INT32".into();
    typed.inputs[0].contents = Some(InferTensorContents {
        int_contents: rows.iter().flatten().map(|&v| v as i32).collect(),
        ..Default::default()
    });
    let int32 = client.model_infer(typed).await.unwrap().into_inner();
    assert_eq!(i64s(&int32.raw_output_contents[1]), labels);
    let mut uint8 = raw_request(&rows);
    uint8.inputs[0].datatype = "UINT8".into();
    uint8.raw_input_contents = vec![rows.iter().flatten().map(|&v| v as u8).collect()];
    let uint8 = client.model_infer(uint8).await.unwrap().into_inner();
    assert_eq!(i64s(&uint8.raw_output_contents[1]), labels);

    // Requested outputs, in the order asked, with the classification extension.
    let mut asked = raw_request(&rows[..2]);
    asked.outputs = vec![
        InferRequestedOutputTensor {
            name: "label".into(),
            parameters: Default::default(),
        },
        InferRequestedOutputTensor {
            name: "probabilities".into(),
            parameters: [(
                "classification".to_string(),
                InferParameter {
                    parameter_choice: Some(ParameterChoice::Int64Param(2)),
                },
            )]
            .into(),
        },
    ];
    let reply = client.model_infer(asked).await.unwrap().into_inner();
    assert_eq!(reply.outputs.len(), 2);
    assert_eq!(reply.outputs[0].name, "label");
    assert_eq!(reply.outputs[1].datatype, "BYTES");
    assert_eq!(reply.outputs[1].shape, [2, 2]);
    let first = &reply.raw_output_contents[1];
    let len = u32::from_le_bytes(first[..4].try_into().unwrap()) as usize;
    let top = std::str::from_utf8(&first[4..4 + len]).unwrap();
    assert!(
        top.ends_with(&format!(":{}:{}", labels[0], labels[0])),
        "top class {top} vs label {}",
        labels[0]
    );

    // gRPC calls are counted by method and status code.
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains(r#"ember_grpc_requests_total{method="ModelInfer",code="OK"}"#),
        "no gRPC metrics"
    );
}

#[tokio::test]
async fn bad_requests_get_invalid_argument_or_not_found_with_rests_wording() {
    let (app, service) = ready_app(&[]).await;
    let mut client = serve(service).await;
    let rows = rows(1);

    let mut unknown = raw_request(&rows);
    unknown.model_name = "mnist".into();
    let status = client.model_infer(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let rest = get(&app, "/v2/models/mnist").await;
    assert_eq!(status.message(), rest.json()["error"]);
    let mut version = raw_request(&rows);
    version.model_version = "7".into();
    assert_eq!(
        client.model_infer(version).await.unwrap_err().code(),
        Code::NotFound
    );

    // A wrong shape, a pixel out of range, a wrong datatype: same words as REST.
    let mut shape = raw_request(&rows);
    shape.inputs[0].shape = vec![1, 63];
    let status = client.model_infer(shape).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let body = json!({"inputs": [{"name": "input", "shape": [1, 63], "datatype": "FP32", "data": vec![0.0; 63]}]});
    assert_eq!(status.message(), rest_error(&app, body).await);

    let mut bright = rows.clone();
    bright[0][5] = 17.0;
    let status = client.model_infer(raw_request(&bright)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": bright[0]}]});
    assert_eq!(status.message(), rest_error(&app, body).await);
    assert!(status.message().contains("inputs[0][5] = 17"));

    let mut datatype = raw_request(&rows);
    datatype.inputs[0].datatype = "BYTES".into();
    let status = client.model_infer(datatype).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("datatype BYTES is not accepted"));

    let mut short = raw_request(&rows);
    short.raw_input_contents[0].truncate(100);
    let status = client.model_infer(short).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("100 bytes"),
        "{}",
        status.message()
    );

    // Shapes whose counts wrap in unchecked arithmetic (2^56 + 1 rows: 256 bytes, as one row
    // sends) are refused by shape, raw and typed.
    let mut huge = raw_request(&rows);
    huge.inputs[0].shape = vec![72057594037927937, 64];
    let status = client.model_infer(huge.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "input shape [72057594037927937, 64] holds more values than a request can carry"
    );
    let values: Vec<f32> = rows[0].iter().map(|v| *v as f32).collect();
    huge.raw_input_contents.clear();
    huge.inputs[0].contents = Some(InferTensorContents {
        fp32_contents: values,
        ..Default::default()
    });
    let status = client.model_infer(huge).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("holds more values"),
        "{}",
        status.message()
    );

    let mut output = raw_request(&rows);
    output.outputs = vec![InferRequestedOutputTensor {
        name: "logits".into(),
        parameters: Default::default(),
    }];
    let status = client.model_infer(output).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("unknown output 'logits'"));

    // More images than --max-batch.
    let many = common::rows(65);
    let status = client.model_infer(raw_request(&many)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("at most 64"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn messages_over_the_body_limit_are_refused() {
    let (_, service) = ready_app(&["--body-limit", "4096", "--max-batch", "4096"]).await;
    let (mut client, _server, _) = serve_with(service, 4096, std::future::pending()).await;
    // 64 images of 64 FP32 values: 16 KiB.
    let status = client
        .model_infer(raw_request(&rows(64)))
        .await
        .unwrap_err();
    // RESOURCE_EXHAUSTED, as the gRPC spec says (tonic's own answer is OUT_OF_RANGE).
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("4096"), "{}", status.message());
    // A request under the limit still works on the same connection.
    client.model_infer(raw_request(&rows(2))).await.unwrap();
}

#[tokio::test]
async fn not_ready_is_unavailable() {
    let (_, service) = cold_app(&[]);
    let mut client = serve(service).await;
    let status = client.model_infer(raw_request(&rows(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        !client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
}

#[tokio::test]
async fn a_full_queue_is_resource_exhausted() {
    let (_, service) = paused_app(1, None);
    let mut client = serve(service).await;
    // The first call fills the one-slot queue and waits there (no inference thread).
    let mut waiting = client.clone();
    let first = tokio::spawn(async move { waiting.model_infer(raw_request(&rows(1))).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = client.model_infer(raw_request(&rows(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("queue is full"),
        "{}",
        status.message()
    );
    first.abort();
}

#[tokio::test]
async fn server_and_client_deadlines_are_deadline_exceeded() {
    // --request-timeout.
    let (_, service) = paused_app(8, Some(Duration::from_millis(100)));
    let mut client = serve(service).await;
    let status = client.model_infer(raw_request(&rows(1))).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("--request-timeout"),
        "{}",
        status.message()
    );

    // The client's deadline, with no server timeout: a bare `grpc-timeout` header sent to the
    // router in-process, since a tonic client would also time the call itself and cancel it.
    let (_, service) = paused_app(8, None);
    let draining = ember_serve::connections::DrainNotice::default().subscribe();
    let grpc =
        ember_serve::grpc::router(service.clone(), 1 << 20, Default::default(), draining).unwrap();
    let message = prost::Message::encode_to_vec(&raw_request(&rows(1)));
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let request = axum::http::Request::post("/inference.GRPCInferenceService/ModelInfer")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "300m")
        .body(axum::body::Body::from(framed))
        .unwrap();
    let started = std::time::Instant::now();
    let response = tower::ServiceExt::oneshot(grpc, request).await.unwrap();
    let headers = response.headers().clone();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    let trailers = body.trailers().cloned().unwrap_or_default();
    let grpc_status = headers
        .get("grpc-status")
        .or(trailers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(
        grpc_status.as_deref(),
        Some("4"),
        "DEADLINE_EXCEEDED expected: {headers:?} {trailers:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );
    // The abandoned request left the queue's in-flight count.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        service
            .queue
            .stats()
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn shutdown_answers_the_call_in_flight_before_the_server_stops() {
    let (_, service) = paused_app(8, Some(Duration::from_millis(600)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (client, server, _) = serve_with(service, 1 << 20, async {
        let _ = stopped.await;
    })
    .await;
    let mut caller = client.clone();
    let call = tokio::spawn(async move { caller.model_infer(raw_request(&rows(1))).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !server.is_finished(),
        "the server stopped with a call in flight"
    );
    // The call ends with its own answer (the queue's timeout here), not a broken connection.
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server did not stop after its last call")
        .unwrap();
}
