//! KServe V2 / Open Inference Protocol: every route, JSON and binary tensor encodings both ways,
//! every error path, and agreement with `/v1/predict`.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::{Value, json};

const HEADER: &str = "inference-header-content-length";

fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

async fn infer(app: &axum::Router, body: Value) -> Reply {
    post_json(app, "/v2/models/digits-cnn/infer", body.to_string()).await
}

/// POST a Triton binary request: JSON header, then raw bytes.
async fn infer_binary(app: &axum::Router, uri: &str, header: Value, tail: &[u8]) -> Reply {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(tail);
    let req = Request::post(uri)
        .header(HEADER, json.len().to_string())
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    send(app, req).await
}

/// Split a binary response into its JSON header and the tensors' bytes.
fn split(reply: &Reply) -> (Value, Vec<u8>) {
    match reply.headers.get(HEADER) {
        Some(n) => {
            let n: usize = n.to_str().unwrap().parse().unwrap();
            (
                serde_json::from_slice(&reply.body[..n]).unwrap(),
                reply.body[n..].to_vec(),
            )
        }
        None => (reply.json(), Vec::new()),
    }
}

fn output<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {body}"))
}

/// The reference answer: `/v1/predict` on the same rows.
async fn v1(app: &axum::Router, rows: &[Vec<f64>]) -> (Vec<f32>, Vec<i64>) {
    let reply = post_json(app, "/v1/predict", json!({"inputs": rows}).to_string()).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let preds = body["predictions"].as_array().unwrap();
    let probs = preds
        .iter()
        .flat_map(|p| {
            p["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let labels = preds.iter().map(|p| p["class"].as_i64().unwrap()).collect();
    (probs, labels)
}

fn json_f32s(v: &Value) -> Vec<f32> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn json_i64s(v: &Value) -> Vec<i64> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn assert_error(reply: &Reply, status: u16, contains: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    let body = reply.json();
    let error = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"));
    assert!(
        error.contains(contains),
        "error {error:?} lacks {contains:?}"
    );
}

#[tokio::test]
async fn server_metadata_and_health() {
    let (app, state) = cold_app(&[]);
    let meta = get(&app, "/v2").await.json();
    assert_eq!(meta["name"], "ember-serve");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("binary_tensor_data"))
    );
    assert_eq!(get(&app, "/v2/health/live").await.status, 200);
    // Not warmed up yet: the protocol says "false" with a 4xx.
    assert_eq!(get(&app, "/v2/health/ready").await.status, 400);
    assert_eq!(get(&app, "/v2/models/digits-cnn/ready").await.status, 400);
    state.warm_up().await.unwrap();
    assert_eq!(get(&app, "/v2/health/ready").await.status, 200);
    let ready = get(&app, "/v2/models/digits-cnn/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["ready"], true);
    for version in ["2", "2.0.0"] {
        let uri = format!("/v2/models/digits-cnn/versions/{version}/ready");
        assert_eq!(get(&app, &uri).await.status, 200, "{uri}");
    }
}

#[tokio::test]
async fn model_metadata_declares_the_tensors() {
    let (app, _) = ready_app(&[]).await;
    // Triton's tools parse versions as integers: the V2 name of model 2.0.0 is "2", and the
    // full version is accepted in paths too.
    for uri in [
        "/v2/models/digits-cnn",
        "/v2/models/digits-cnn/versions/2",
        "/v2/models/digits-cnn/versions/2.0.0",
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, 200);
        let m = reply.json();
        assert_eq!(m["name"], "digits-cnn");
        assert_eq!(m["versions"], json!(["2"]));
        assert_eq!(
            m["inputs"],
            json!([{"name": "input", "datatype": "FP32", "shape": [-1, 64]}])
        );
        assert_eq!(
            m["outputs"],
            json!([
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                {"name": "label", "datatype": "INT64", "shape": [-1]}
            ])
        );
    }
}

#[tokio::test]
async fn unknown_models_and_versions_are_404() {
    let (app, _) = ready_app(&[]).await;
    assert_error(
        &get(&app, "/v2/models/mnist").await,
        404,
        "unknown model 'mnist'",
    );
    assert_error(
        &get(&app, "/v2/models/digits-cnn/versions/1.0.0").await,
        404,
        "unknown version '1.0.0'",
    );
    assert_error(
        &get(&app, "/v2/models/mnist/ready").await,
        404,
        "unknown model",
    );
    assert_error(
        &get(&app, "/v2/models/digits-cnn/versions/9/ready").await,
        404,
        "unknown version",
    );
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": flat(&rows(1))}]});
    assert_error(
        &post_json(&app, "/v2/models/mnist/infer", body.to_string()).await,
        404,
        "unknown model",
    );
    assert_error(
        &post_json(
            &app,
            "/v2/models/digits-cnn/versions/0.9.0/infer",
            body.to_string(),
        )
        .await,
        404,
        "unknown version",
    );
    assert_eq!(
        post_json(
            &app,
            "/v2/models/digits-cnn/versions/2.0.0/infer",
            body.to_string()
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn json_inference_matches_v1_and_echoes_the_id() {
    let (app, _) = ready_app(&[]).await;
    let rows = rows(12);
    let (probs, labels) = v1(&app, &rows).await;
    // Flat data.
    let reply = infer(&app, json!({"id": "req-7", "inputs": [{"name": "input", "shape": [12, 64], "datatype": "FP32", "data": flat(&rows)}]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["id"], "req-7");
    assert_eq!(body["model_name"], "digits-cnn");
    assert_eq!(body["model_version"], "2");
    let p = output(&body, "probabilities");
    assert_eq!(p["shape"], json!([12, 10]));
    assert_eq!(p["datatype"], "FP32");
    assert_eq!(json_f32s(p), probs);
    let l = output(&body, "label");
    assert_eq!(
        (l["shape"].clone(), l["datatype"].clone()),
        (json!([12]), json!("INT64"))
    );
    assert_eq!(json_i64s(l), labels);
    // Nested data, no id.
    let body = infer(
        &app,
        json!({"inputs": [{"name": "input", "shape": [12, 64], "datatype": "FP32", "data": rows}]}),
    )
    .await
    .json();
    assert!(body.get("id").is_none());
    assert_eq!(json_i64s(output(&body, "label")), labels);
}

#[tokio::test]
async fn integer_and_fp64_inputs_convert_losslessly() {
    let (app, _) = ready_app(&[]).await;
    let rows = rows(3);
    let (_, labels) = v1(&app, &rows).await;
    for datatype in ["INT32", "INT64", "UINT8", "INT8", "UINT16", "FP64"] {
        let body = json!({"inputs": [{"name": "input", "shape": [3, 64], "datatype": datatype, "data": flat(&rows)}]});
        let reply = infer(&app, body).await;
        assert_eq!(reply.status, 200, "{datatype}: {}", reply.text());
        assert_eq!(
            json_i64s(output(&reply.json(), "label")),
            labels,
            "{datatype}"
        );
    }
    let mut lossy = flat(&rows);
    lossy[0] = 0.1; // not exactly representable in FP32
    assert_error(&infer(&app, json!({"inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP64", "data": lossy}]})).await, 400, "without loss");
    let mut fractional = flat(&rows);
    fractional[0] = 2.5;
    assert_error(&infer(&app, json!({"inputs": [{"name": "input", "shape": [3, 64], "datatype": "INT32", "data": fractional}]})).await, 400, "must be integers");
}

#[tokio::test]
async fn requested_outputs_are_honoured() {
    let (app, _) = ready_app(&[]).await;
    let body = json!({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": flat(&rows(2))}], "outputs": [{"name": "label"}]});
    let reply = infer(&app, body).await.json();
    let outputs = reply["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "label");
}

#[tokio::test]
async fn binary_inputs_and_outputs_both_ways() {
    let (app, _) = ready_app(&[]).await;
    let rows = rows(5);
    let (probs, labels) = v1(&app, &rows).await;
    let fp32: Vec<u8> = flat(&rows)
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let uint8: Vec<u8> = flat(&rows).iter().map(|v| *v as u8).collect();

    // What a stock tritonclient sends by default: binary input, no outputs listed,
    // binary_data_output: all outputs come back binary.
    let header = json!({"inputs": [{"name": "input", "shape": [5, 64], "datatype": "FP32", "parameters": {"binary_data_size": fp32.len()}}],
                        "parameters": {"binary_data_output": true}});
    let reply = infer_binary(&app, "/v2/models/digits-cnn/infer", header, &fp32).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/octet-stream");
    let (json_part, tail) = split(&reply);
    let p = output(&json_part, "probabilities");
    let l = output(&json_part, "label");
    assert!(p.get("data").is_none() && l.get("data").is_none());
    let p_len = p["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    let l_len = l["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
    assert_eq!(
        (p_len, l_len, tail.len()),
        (5 * 10 * 4, 5 * 8, 5 * 10 * 4 + 5 * 8)
    );
    assert_eq!(f32s(&tail[..p_len]), probs);
    assert_eq!(i64s(&tail[p_len..]), labels);

    // Binary UINT8 in, JSON out (no binary_data anywhere).
    let header = json!({"inputs": [{"name": "input", "shape": [5, 64], "datatype": "UINT8", "parameters": {"binary_data_size": uint8.len()}}]});
    let reply = infer_binary(
        &app,
        "/v2/models/digits-cnn/versions/2.0.0/infer",
        header,
        &uint8,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.headers.get(HEADER).is_none());
    assert_eq!(json_i64s(output(&reply.json(), "label")), labels);

    // JSON in, mixed out: labels as JSON, probabilities binary.
    let body = json!({"inputs": [{"name": "input", "shape": [5, 64], "datatype": "FP32", "data": flat(&rows)}],
                      "outputs": [{"name": "label", "parameters": {"binary_data": false}}, {"name": "probabilities", "parameters": {"binary_data": true}}]});
    let reply = infer(&app, body).await;
    let (json_part, tail) = split(&reply);
    assert_eq!(json_i64s(output(&json_part, "label")), labels);
    assert_eq!(
        output(&json_part, "probabilities")["parameters"]["binary_data_size"],
        200
    );
    assert_eq!(f32s(&tail), probs);
}

#[tokio::test]
async fn bad_requests_are_400_with_an_error_body() {
    let (app, _) = ready_app(&["--max-batch", "4"]).await;
    let one = flat(&rows(1));
    let input = |name: &str, shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        (
            input("pixels", json!([1, 64]), "FP32", json!(one)),
            "unknown input 'pixels'",
        ),
        (
            input("input", json!([8, 8]), "FP32", json!(one)),
            "must be [batch, 64]",
        ),
        (
            input("input", json!([1, 64]), "BYTES", json!(one)),
            "datatype BYTES",
        ),
        (
            input("input", json!([1, 64]), "FP16", json!(one)),
            "datatype FP16",
        ),
        (
            input("input", json!([2, 64]), "FP32", json!(one)),
            "needs 128",
        ),
        (
            input("input", json!([1, 64]), "FP32", json!(vec![17.0; 64])),
            "outside 0..=16",
        ),
        (
            input("input", json!([1, 64]), "FP32", json!(vec!["a"; 64])),
            "must be numbers (flat or nested arrays), found \"a\"",
        ),
        (
            input(
                "input",
                json!([1, 64]),
                "FP32",
                json!([vec![1.0; 63], vec![true]]),
            ),
            "must be numbers (flat or nested arrays), found true",
        ),
        // The tensor's declaration is checked before its values, as for numbers.
        (
            input("input", json!([1, 64]), "BYTES", json!(vec!["a"; 64])),
            "datatype BYTES",
        ),
        (input("input", json!([0, 64]), "FP32", json!([])), "empty"),
        // 2^58 + 1 rows of 64 values wrap to 64 in unchecked arithmetic: one row's worth.
        (
            input(
                "input",
                json!([288230376151711745u64, 64]),
                "FP32",
                json!(one),
            ),
            "input shape [288230376151711745, 64] holds more values than a request can carry",
        ),
        (
            input(
                "input",
                json!([72057594037927937u64, 64]),
                "FP64",
                json!(one),
            ),
            "holds more values than a request can carry",
        ),
        (
            input("input", json!([5, 64]), "FP32", json!(vec![1.0; 320])),
            "at most 4",
        ),
        (json!({"inputs": []}), "exactly one input"),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32"}]}),
            "neither data nor binary_data_size",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": one}], "outputs": [{"name": "logits"}]}),
            "unknown variant `logits`, expected `probabilities` or `label`",
        ),
        (json!({"input": []}), "invalid inference request JSON"),
    ];
    for (body, detail) in cases {
        assert_error(&infer(&app, body).await, 400, detail);
    }
    assert_error(
        &post_json(&app, "/v2/models/digits-cnn/infer", "{not json").await,
        400,
        "invalid inference request JSON",
    );

    let fp32: Vec<u8> = one.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
    let header = |size: usize| json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "parameters": {"binary_data_size": size}}]});
    let uri = "/v2/models/digits-cnn/infer";
    assert_error(
        &infer_binary(&app, uri, header(255), &fp32[..255]).await,
        400,
        "does not match shape",
    );
    assert_error(
        &infer_binary(&app, uri, header(256), &fp32[..100]).await,
        400,
        "only 100 bytes",
    );
    // The byte length wraps too (2^56 + 1 rows × 64 values × 4 bytes ≡ 256): refused by shape.
    let huge = json!({"inputs": [{"name": "input", "shape": [72057594037927937u64, 64], "datatype": "FP32", "parameters": {"binary_data_size": 256}}]});
    assert_error(
        &infer_binary(&app, uri, huge, &fp32).await,
        400,
        "input shape [72057594037927937, 64] holds more values",
    );
    let mut extra = fp32.clone();
    extra.extend_from_slice(&[0; 8]);
    assert_error(
        &infer_binary(&app, uri, header(256), &extra).await,
        400,
        "belong to no input",
    );
    let req = Request::post(uri)
        .header(HEADER, "99999")
        .body(Body::from("{}"))
        .unwrap();
    assert_error(&send(&app, req).await, 400, "has only 2 bytes");
    let req = Request::post(uri)
        .header(HEADER, "ten")
        .body(Body::from("{}"))
        .unwrap();
    assert_error(&send(&app, req).await, 400, "not a byte count");

    // Nothing accepted was lost: a good request still works afterwards.
    assert_eq!(
        infer(&app, input("input", json!([1, 64]), "FP32", json!(one)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn limits_and_load_use_the_shared_queue() {
    let (app, state) = ready_app(&["--body-limit", "1024"]).await;
    let big = json!({"inputs": [{"name": "input", "shape": [4, 64], "datatype": "FP32", "data": vec![1.0; 256]}]});
    assert_eq!(infer(&app, big).await.status, 413);
    let before = state.queue.statistics().inference_count();
    let body = json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": flat(&rows(1))}]});
    assert_eq!(infer(&app, body).await.status, 200);
    assert_eq!(state.queue.statistics().inference_count(), before + 1);
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains(r#"route="/v2/models/{name}/infer",method="POST",status="200""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn v2_routes_are_documented_and_the_example_works() {
    let (app, _) = ready_app(&[]).await;
    let spec = get(&app, "/api-docs/openapi.json").await.json();
    let paths = spec["paths"].as_object().unwrap();
    for route in [
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/models/{name}/config",
        "/v2/models/{name}/versions/{version}/config",
        "/v2/models/stats",
        "/v2/models/{name}/stats",
        "/v2/models/{name}/versions/{version}/stats",
    ] {
        assert!(paths.contains_key(route), "{route} missing from the spec");
    }
    for schema in [
        "V2ServerMetadata",
        "V2ModelMetadata",
        "V2ModelReady",
        "V2InferRequest",
        "V2InferResponse",
        "V2ErrorBody",
    ] {
        assert!(
            spec["components"]["schemas"][schema]["example"].is_object(),
            "{schema} has no example"
        );
    }
    let example = spec["components"]["schemas"]["V2InferRequest"]["example"].clone();
    assert!(example["inputs"].is_array());
    let reply = infer(&app, example).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(json_i64s(output(&reply.json(), "label")), vec![0]);
}
