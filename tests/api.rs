//! Every route of the HTTP API and every error class, through the real router.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::{Value, json};

fn assert_problem(reply: &Reply, status: u16, slug: &str, detail_contains: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.text());
    assert_eq!(reply.content_type(), "application/problem+json");
    let body = reply.json();
    assert_eq!(body["type"], format!("urn:ember-serve:problem:{slug}"));
    assert_eq!(body["status"], status);
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_contains),
        "detail {detail:?} lacks {detail_contains:?}"
    );
}

#[tokio::test]
async fn predicts_real_digits_in_order() {
    let (app, _) = ready_app(&[]).await;
    let samples = digits(40);
    let inputs: Vec<_> = samples.iter().map(|(r, _)| r.clone()).collect();
    let reply = post_json(&app, "/v1/predict", json!({ "inputs": inputs }).to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["model"], "digits-cnn");
    assert_eq!(body["backend"], cpu_backend());
    assert_eq!(body["device"], "cpu");
    let preds = body["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 40);
    let mut correct = 0;
    for (p, (_, label)) in preds.iter().zip(&samples) {
        let probs: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        let class = p["class"].as_u64().unwrap() as usize;
        assert_eq!(p["label"], class.to_string());
        assert!((p["confidence"].as_f64().unwrap() - probs[class]).abs() < 1e-9);
        assert!(probs.iter().all(|&q| q <= probs[class]));
        correct += usize::from(class == *label);
    }
    assert!(correct >= 38, "only {correct}/40 right");
}

#[tokio::test]
async fn models_describes_the_served_model() {
    let (app, state) = ready_app(&["--max-batch", "32"]).await;
    let reply = get(&app, "/v1/models").await;
    assert_eq!(reply.status, StatusCode::OK);
    let m = &reply.json()["models"][0];
    assert_eq!(m["name"], "digits-cnn");
    assert_eq!(m["version"], "2.0.0");
    assert_eq!(m["input"]["shape"], json!([-1, 64]));
    assert_eq!(m["input"]["dtype"], "float32");
    assert_eq!(m["output"]["shape"], json!([-1, 10]));
    assert_eq!(m["labels"].as_array().unwrap().len(), 10);
    assert_eq!(m["backend"], cpu_backend());
    assert_eq!(m["device"], "cpu");
    assert_eq!(m["max_batch_size"], 32);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_path("weights/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["weights_sha256"], manifest["sha256"]);
    assert_eq!(
        state.model.weights_sha256,
        manifest["sha256"].as_str().unwrap()
    );
}

#[tokio::test]
async fn readiness_turns_on_only_after_warm_up() {
    let (app, state) = cold_app(&[]);
    assert_eq!(get(&app, "/health/live").await.json()["status"], "live");
    let reply = get(&app, "/health/ready").await;
    assert_problem(&reply, 503, "not-ready", "warming up");
    assert!(reply.headers.contains_key("retry-after"));
    // Predictions are refused too until the model has proven it runs.
    let row = vec![0.0; 64];
    let reply = post_json(&app, "/v1/predict", json!({ "inputs": [row] }).to_string()).await;
    assert_problem(&reply, 503, "not-ready", "not ready");

    state.warm_up().await.unwrap();
    let reply = get(&app, "/health/ready").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["status"], "ready");

    state.begin_shutdown(); // what SIGTERM does
    assert_eq!(
        get(&app, "/health/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&app, "/health/live").await.status, StatusCode::OK);
    // A request that reaches the handler while draining was accepted before: it is served.
    let row = vec![0.0; 64];
    let reply = post_json(&app, "/v1/predict", json!({ "inputs": [row] }).to_string()).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn warm_up_runs_every_padded_batch_size_before_readiness() {
    let flags = [
        "--batch-buckets",
        "pow2",
        "--max-batch",
        "8",
        "--workers",
        "2",
    ];
    let (app, state) = cold_app(&flags);
    let took = state.warm_up().await.unwrap();
    let sizes: Vec<usize> = took.iter().map(|(size, _)| *size).collect();
    assert_eq!(sizes, [1, 2, 4, 8]);
    // Each thread ran the sizes itself; the one probe through the queue is all it counts.
    let stats = state.queue.statistics();
    assert_eq!((stats.execution_count(), stats.inference_count()), (1, 1));
    assert_eq!(get(&app, "/health/ready").await.status, StatusCode::OK);
    let config = get(&app, "/v2/models/digits-cnn/config").await.json();
    assert_eq!(
        config["dynamic_batching"]["preferred_batch_size"],
        json!([1, 2, 4, 8])
    );

    // Three inputs run padded to four and get the answers an unpadded server gives.
    let rows: Vec<_> = digits(3).into_iter().map(|(row, _)| row).collect();
    let body = json!({ "inputs": rows }).to_string();
    let padded = post_json(&app, "/v1/predict", body.clone()).await.json();
    assert_eq!((stats.execution_count(), stats.inference_count()), (2, 4));
    let (plain_app, _) = ready_app(&["--batch-buckets", "none"]).await;
    let plain = post_json(&plain_app, "/v1/predict", body).await.json();
    let probabilities = |v: &Value| -> Vec<f64> {
        v["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["probabilities"].as_array().unwrap().clone())
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (a, b) = (probabilities(&padded), probabilities(&plain));
    assert_eq!(a.len(), 30);
    assert!(
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5),
        "{a:?} vs {b:?}"
    );
}

#[tokio::test]
async fn index_links_everything() {
    let (app, _) = ready_app(&[]).await;
    let body = get(&app, "/").await.json();
    for (key, path) in [
        ("docs", "/docs"),
        ("metrics", "/metrics"),
        ("ready", "/health/ready"),
        ("live", "/health/live"),
        ("openapi", "/api-docs/openapi.json"),
    ] {
        assert_eq!(body[key], path);
        let status = get(&app, path).await.status;
        assert!(
            status.is_success() || status.is_redirection(),
            "{path}: {status}"
        );
    }
}

#[tokio::test]
async fn browsers_get_the_page_and_api_clients_the_index() {
    let (app, _) = ready_app(&[]).await;
    let fetch = |accept: &'static str| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::get("/")
                .header("accept", accept)
                .body(axum::body::Body::empty())
                .unwrap();
            send(&app, req).await
        }
    };
    let page = fetch("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    let html = page.text();
    assert!(html.contains("<canvas id=\"pad\""), "no drawing pad");
    for api in ["application/json", "*/*"] {
        let index = fetch(api).await;
        assert!(
            index.content_type().starts_with("application/json"),
            "{api}"
        );
        assert_eq!(index.json()["predict"], "/v1/predict");
    }
    // Everything the page loads is served from the binary, with its type, and small.
    let mut total = html.len();
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        assert!(html.contains(path), "the page does not load {path}");
        let asset = get(&app, path).await;
        assert_eq!(asset.status, StatusCode::OK, "{path}");
        assert!(asset.content_type().starts_with(kind), "{path}");
        total += asset.body.len();
    }
    assert!(
        total <= 30 * 1024,
        "page, script and style are {total} bytes"
    );
    // No resource from elsewhere: the page works offline.
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let (app, _) = ready_app(&[]).await;
    let reply = get(&app, "/docs/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.text().to_lowercase().contains("swagger"));
    let init = get(&app, "/docs/swagger-initializer.js").await;
    assert!(init.text().contains("/api-docs/openapi.json"));
}

#[tokio::test]
async fn openapi_documents_every_route_and_its_example_works() {
    let (app, _) = ready_app(&[]).await;
    let spec = get(&app, "/api-docs/openapi.json").await.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    for route in [
        "/",
        "/health/live",
        "/health/ready",
        "/v1/models",
        "/v1/predict",
        "/metrics",
    ] {
        assert!(paths.contains_key(route), "{route} missing from the spec");
    }
    let predict = &spec["paths"]["/v1/predict"]["post"];
    for code in ["200", "400", "413", "415", "422", "503"] {
        assert!(
            predict["responses"][code].is_object(),
            "predict lacks a {code} response"
        );
    }
    let example = predict["requestBody"]["content"]["application/json"]["example"].clone();
    assert!(
        example["inputs"].is_array(),
        "no request example in the spec"
    );
    let reply = post_json(&app, "/v1/predict", example.to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["predictions"][0]["label"], "0");
    assert!(spec["components"]["schemas"]["Problem"].is_object());
}

#[tokio::test]
async fn the_request_schema_states_the_limits_the_server_enforces() {
    let (app, _) = ready_app(&["--max-batch", "5"]).await;
    let spec = get(&app, "/api-docs/openapi.json").await.json();
    let inputs = &spec["components"]["schemas"]["PredictRequest"]["properties"]["inputs"];
    assert_eq!(
        (inputs["minItems"].as_u64(), inputs["maxItems"].as_u64()),
        (Some(1), Some(5))
    );
    let image = &inputs["items"];
    assert_eq!(
        (image["minItems"].as_u64(), image["maxItems"].as_u64()),
        (Some(64), Some(64))
    );
    assert_eq!(
        (
            image["items"]["minimum"].as_f64(),
            image["items"]["maximum"].as_f64()
        ),
        (Some(0.0), Some(16.0))
    );
    // Just past each bound is refused; the bound itself is served.
    let row = vec![16.0; 64];
    let ok = json!({"inputs": vec![row.clone(); 5]});
    assert_eq!(
        post_json(&app, "/v1/predict", ok.to_string()).await.status,
        200
    );
    let too_many = json!({"inputs": vec![row; 6]});
    assert_eq!(
        post_json(&app, "/v1/predict", too_many.to_string())
            .await
            .status,
        422
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let (app, _) = ready_app(&[]).await;
    assert_problem(
        &post_json(&app, "/v1/predict", "{\"inputs\": [[1,2,").await,
        400,
        "malformed-json",
        "not valid JSON",
    );
    assert_problem(
        &post_json(&app, "/v1/predict", "{\"inputs\": [[NaN]]}").await,
        400,
        "malformed-json",
        "NaN",
    );
    assert_problem(
        &post_json(&app, "/v1/predict", "{\"inputs\": [[Infinity]]}").await,
        400,
        "malformed-json",
        "not valid JSON",
    );
    // A literal too large for f64 is rejected by the parser, never turned into infinity.
    let huge = format!("{{\"inputs\": [[1e999{}]]}}", ",0".repeat(63));
    assert_eq!(
        post_json(&app, "/v1/predict", huge).await.status.as_u16(),
        400
    );
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (app, _) = ready_app(&[]).await;
    let req = Request::post("/v1/predict")
        .header("content-type", "text/plain")
        .body(Body::from("{\"inputs\":[]}"))
        .unwrap();
    assert_problem(
        &send(&app, req).await,
        415,
        "unsupported-media-type",
        "application/json",
    );
    let req = Request::post("/v1/predict")
        .body(Body::from("{\"inputs\":[]}"))
        .unwrap();
    assert_eq!(send(&app, req).await.status.as_u16(), 415);
}

#[tokio::test]
async fn bad_shapes_and_values_are_422() {
    let (app, _) = ready_app(&["--max-batch", "4"]).await;
    let row = |v: f64| vec![v; 64];
    let cases = [
        (json!({"inputs": []}), "empty"),
        (json!({"inputs": vec![row(0.0); 5]}), "at most 4"),
        (
            json!({"inputs": [vec![1.0; 63]]}),
            "inputs[0] has 63 values",
        ),
        (
            json!({"inputs": [row(1.0), vec![1.0; 65]]}),
            "inputs[1] has 65 values",
        ),
        (json!({"inputs": [row(17.0)]}), "outside 0..=16"),
        (json!({"inputs": [row(-1.0)]}), "outside 0..=16"),
        (json!({"inputs": [row(1e300)]}), "outside 0..=16"),
        (json!({"inputs": [["x"]]}), "invalid type"),
        // The message names where the bad value is.
        (
            json!({"inputs": [row(1.0), [0, "x"]]}),
            "inputs[1][1]: invalid type",
        ),
        (json!({"inputs": "nope"}), "invalid type"),
        (json!({"pixels": [row(1.0)]}), "unknown field"),
        (json!({}), "missing field `inputs`"),
    ];
    for (body, detail) in cases {
        let reply = post_json(&app, "/v1/predict", body.to_string()).await;
        assert_problem(&reply, 422, "invalid-input", detail);
    }
    // Nothing was lost: a good request right after still works.
    let ok = post_json(
        &app,
        "/v1/predict",
        json!({"inputs": [row(0.0)]}).to_string(),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn oversize_body_is_413() {
    let (app, _) = ready_app(&["--body-limit", "2048"]).await;
    let body = json!({"inputs": vec![vec![1.0; 64]; 20]}).to_string();
    assert!(body.len() > 2048);
    assert_problem(
        &post_json(&app, "/v1/predict", body).await,
        413,
        "payload-too-large",
        "2048 bytes",
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let (app, _) = ready_app(&[]).await;
    assert_problem(
        &get(&app, "/v1/nothing").await,
        404,
        "not-found",
        "/v1/nothing",
    );
    assert_problem(
        &get(&app, "/v1/predict").await,
        405,
        "method-not-allowed",
        "not allowed",
    );
}

#[tokio::test]
async fn a_full_queue_is_503_with_retry_after_at_once() {
    // Room for one request.
    let (app, state) = paused_app(1, None);

    let body = json!({"inputs": [vec![0.0; 64]]}).to_string();
    let waiting = tokio::spawn({
        let app = app.clone();
        let body = body.clone();
        async move { post_json(&app, "/v1/predict", body).await }
    });
    let queued = async {
        while state
            .queue
            .stats()
            .depth
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), queued)
        .await
        .expect("the first request never reached the queue");
    let started = std::time::Instant::now();
    let reply = post_json(&app, "/v1/predict", body).await;
    assert_problem(&reply, 503, "overloaded", "queue is full");
    assert_eq!(reply.headers["retry-after"], "1");
    // Waiting for room would take until the held request ends, which this test never lets
    // happen; 5 s tells "at once" from that on however busy a machine.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a full queue must answer at once"
    );
    assert!(
        !waiting.is_finished(),
        "the queued request is still waiting, not dropped"
    );
    waiting.abort();
}

#[tokio::test]
async fn a_request_past_its_deadline_is_504() {
    // The request can only time out.
    let (app, state) = paused_app(8, Some(Duration::from_millis(50)));
    let reply = post_json(
        &app,
        "/v1/predict",
        json!({"inputs": [vec![0.0; 64]]}).to_string(),
    )
    .await;
    assert_problem(&reply, 504, "timeout", "request timeout of 50ms");
    // The caller is gone: nothing counts it as in flight any more (the batcher skips such jobs;
    // see inference::batcher's tests).
    assert_eq!(
        state
            .queue
            .stats()
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

/// `--device auto` that settles for the CPU says why, in `/v1/models`; `--device cpu` says nothing.
#[tokio::test]
async fn models_say_why_auto_chose_the_cpu() {
    let (app, _) = cold_app(&["--device", "auto"]);
    let model = get(&app, "/v1/models").await.json()["models"][0].clone();
    if model["backend"] == "wgpu" {
        assert!(model.get("device_fallback").is_none(), "{model}");
    } else {
        let reason = model["device_fallback"].as_str().unwrap_or_default();
        assert!(!reason.is_empty(), "{model}");
    }
    // --gpu-queues means nothing to a CPU backend: ignored, and not reported.
    let (app, _) = cold_app(&["--device", "cpu", "--gpu-queues", "3"]);
    let model = get(&app, "/v1/models").await.json()["models"][0].clone();
    assert!(model.get("device_fallback").is_none(), "{model}");
    assert!(model.get("gpu_queues").is_none(), "{model}");
}
