//! The KServe V2 extensions Triton's tools use: model configuration, statistics (exact counts
//! for known traffic), classification (JSON and binary), compressed bodies both ways (and a
//! gzip bomb), V2-shaped errors for unknown V2 routes, and the extensions `/v2` advertises.

mod common;

use std::io::{Read, Write};

use axum::body::Body;
use axum::http::Request;
use common::*;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::{GzEncoder, ZlibEncoder};
use serde_json::{Value, json};

const HEADER: &str = "inference-header-content-length";

fn infer_body(rows: &[Vec<f64>], outputs: Value) -> Value {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    json!({
        "inputs": [{"name": "input", "shape": [rows.len(), 64], "datatype": "FP32", "data": data}],
        "outputs": outputs,
    })
}

async fn infer(app: &axum::Router, body: Value) -> Reply {
    post_json(app, "/v2/models/digits-cnn/infer", body.to_string()).await
}

/// `/v1/predict`'s probabilities for `rows`, one vector per row.
async fn v1_probabilities(app: &axum::Router, rows: &[Vec<f64>]) -> Vec<Vec<f32>> {
    let reply = post_json(app, "/v1/predict", json!({"inputs": rows}).to_string()).await;
    assert_eq!(reply.status, 200);
    reply.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["probabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn error_of(reply: &Reply) -> String {
    reply.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a V2 error body: {}", reply.text()))
        .to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn server_metadata_lists_exactly_the_implemented_extensions() {
    let (app, _) = ready_app(&[]).await;
    let meta = get(&app, "/v2").await.json();
    assert_eq!(
        meta["extensions"],
        json!([
            "binary_tensor_data",
            "classification",
            "model_configuration",
            "statistics"
        ])
    );
}

#[tokio::test]
async fn model_configuration_reflects_the_real_settings() {
    let (app, state) = ready_app(&[
        "--max-batch",
        "32",
        "--workers",
        "3",
        "--batch-wait",
        "250us",
        "--max-queue",
        "77",
    ])
    .await;
    for uri in [
        "/v2/models/digits-cnn/config",
        "/v2/models/digits-cnn/versions/2/config",
        "/v2/models/digits-cnn/versions/2.0.0/config",
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, 200, "{uri}");
        let c = reply.json();
        assert_eq!(c["name"], "digits-cnn");
        assert_eq!(c["backend"], "burn");
        assert_eq!(c["max_batch_size"], 32);
        assert_eq!(
            c["input"],
            json!([{"name": "input", "data_type": "TYPE_FP32", "dims": [64]}])
        );
        assert_eq!(
            c["output"],
            json!([
                {"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]},
                {"name": "label", "data_type": "TYPE_INT64", "dims": [1], "reshape": {"shape": []}}
            ])
        );
        assert_eq!(c["dynamic_batching"]["max_queue_delay_microseconds"], 250);
        assert_eq!(
            c["dynamic_batching"]["default_queue_policy"]["max_queue_size"],
            77
        );
        assert_eq!(c["instance_group"][0]["count"], 3);
        assert_eq!(c["instance_group"][0]["kind"], "KIND_CPU");
        let labels: Vec<String> =
            serde_json::from_str(c["parameters"]["labels"]["string_value"].as_str().unwrap())
                .unwrap();
        assert_eq!(labels, state.model.labels);
        assert_eq!(c["parameters"]["model_version"]["string_value"], "2.0.0");
    }
    let missing = get(&app, "/v2/models/digits-cnn/versions/3/config").await;
    assert_eq!(missing.status, 404);
    assert!(error_of(&missing).contains("unknown version '3'"));
}

/// The counters of `/v2/models/digits-cnn/stats` as (name, value) pairs worth comparing.
async fn stats(app: &axum::Router) -> Value {
    let reply = get(app, "/v2/models/digits-cnn/stats").await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let all = get(app, "/v2/models/stats").await.json();
    assert_eq!(
        all["model_stats"][0]["name"],
        body["model_stats"][0]["name"]
    );
    body["model_stats"][0].clone()
}

fn count(v: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(v, |v, key| &v[*key])
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a count in {v}"))
}

fn batch_count(v: &Value, size: u64) -> u64 {
    v["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["batch_size"] == size)
        .map_or(0, |b| count(b, &["compute_infer", "count"]))
}

#[tokio::test]
async fn statistics_count_known_traffic_exactly() {
    // One inference thread and no batch window: sequential requests run one pass each.
    let (app, _) = ready_app(&["--workers", "1", "--batch-wait", "0ms"]).await;
    let before = stats(&app).await;
    assert_eq!(
        before["version"], "2",
        "Triton's tools parse the version as an integer"
    );
    let sizes = [3usize, 5, 1, 3];
    for (i, n) in sizes.iter().enumerate() {
        let batch = rows(*n);
        let status = if i % 2 == 0 {
            infer(&app, infer_body(&batch, json!(null))).await.status
        } else {
            post_json(&app, "/v1/predict", json!({"inputs": batch}).to_string())
                .await
                .status
        };
        assert_eq!(status, 200);
    }
    // A request that fails validation never reaches the queue and is not an inference.
    assert_eq!(
        infer(&app, infer_body(&[vec![99.0; 64]], json!(null)))
            .await
            .status,
        400
    );
    let after = stats(&app).await;
    let delta = |path: &[&str]| count(&after, path) - count(&before, path);
    assert_eq!(delta(&["inference_count"]), 12);
    assert_eq!(delta(&["execution_count"]), 4);
    for key in [
        "success",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
    ] {
        assert_eq!(delta(&["inference_stats", key, "count"]), 4, "{key}");
    }
    assert_eq!(delta(&["inference_stats", "fail", "count"]), 0);
    assert!(delta(&["inference_stats", "success", "ns"]) > 0);
    assert!(delta(&["inference_stats", "compute_infer", "ns"]) > 0);
    for (size, passes) in [(1, 1), (3, 2), (5, 1)] {
        assert_eq!(
            batch_count(&after, size) - batch_count(&before, size),
            passes,
            "passes of {size}"
        );
    }
    assert!(count(&after, &["last_inference"]) >= count(&before, &["last_inference"]));
}

/// `"<probability>:<index>:<label>"` → (probability, index).
fn parse_class(s: &str) -> (f32, usize) {
    let mut parts = s.split(':');
    let p = parts.next().unwrap().parse().unwrap();
    let i: usize = parts.next().unwrap().parse().unwrap();
    assert_eq!(parts.next(), Some(i.to_string().as_str()), "label of {s}");
    (p, i)
}

/// The top `k` of each probability vector, as (probability, index), most probable first.
fn top(probs: &[Vec<f32>], k: usize) -> Vec<Vec<(f32, usize)>> {
    probs
        .iter()
        .map(|p| {
            let mut idx: Vec<usize> = (0..p.len()).collect();
            idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
            idx.into_iter().take(k).map(|i| (p[i], i)).collect()
        })
        .collect()
}

fn assert_top_matches(got: &[String], want: &[Vec<(f32, usize)>], k: usize) {
    assert_eq!(got.len(), want.len() * k);
    for (row, chunk) in got.chunks(k).enumerate() {
        for (s, (p, i)) in chunk.iter().zip(&want[row]) {
            let (gp, gi) = parse_class(s);
            assert_eq!(gi, *i, "row {row}: {s}");
            assert!((gp - p).abs() < 1e-6, "row {row}: {s} vs {p}");
        }
    }
}

#[tokio::test]
async fn classification_returns_the_top_k_in_json_and_binary() {
    let (app, _) = ready_app(&[]).await;
    let batch = rows(6);
    let want = top(&v1_probabilities(&app, &batch).await, 3);

    let reply = infer(
        &app,
        infer_body(
            &batch,
            json!([{"name": "probabilities", "parameters": {"classification": 3}}]),
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let out = &reply.json()["outputs"][0];
    assert_eq!(out["datatype"], "BYTES");
    assert_eq!(out["shape"], json!([6, 3]));
    let strings: Vec<String> = serde_json::from_value(out["data"].clone()).unwrap();
    assert_top_matches(&strings, &want, 3);

    // Binary: each element is a little-endian u32 length, then the bytes.
    let reply = infer(
        &app,
        infer_body(
            &batch,
            json!([{"name": "probabilities", "parameters": {"classification": 3, "binary_data": true}}]),
        ),
    )
    .await;
    assert_eq!(reply.status, 200);
    let n: usize = reply.headers[HEADER].to_str().unwrap().parse().unwrap();
    let header: Value = serde_json::from_slice(&reply.body[..n]).unwrap();
    let mut tail = &reply.body[n..];
    assert_eq!(
        header["outputs"][0]["parameters"]["binary_data_size"],
        tail.len()
    );
    let mut strings = Vec::new();
    while !tail.is_empty() {
        let len = u32::from_le_bytes(tail[..4].try_into().unwrap()) as usize;
        strings.push(String::from_utf8(tail[4..4 + len].to_vec()).unwrap());
        tail = &tail[4 + len..];
    }
    assert_top_matches(&strings, &want, 3);

    for (k, says) in [
        (json!(0), "out of range"),
        (json!(11), "out of range"),
        (json!(-2), "out of range"),
        (json!(2.5), "invalid type"),
    ] {
        let reply = infer(
            &app,
            infer_body(
                &batch,
                json!([{"name": "probabilities", "parameters": {"classification": k}}]),
            ),
        )
        .await;
        assert_eq!(reply.status, 400, "classification {k}");
        assert!(error_of(&reply).contains(says), "{k}: {}", error_of(&reply));
    }
    let reply = infer(
        &app,
        infer_body(
            &batch,
            json!([{"name": "label", "parameters": {"classification": 2}}]),
        ),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(error_of(&reply).contains("'probabilities'"));
}

fn post(uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut req = Request::post(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn compressed_requests_and_responses() {
    let (app, _) = ready_app(&[]).await;
    let batch = rows(4);
    let plain = post_json(&app, "/v1/predict", json!({"inputs": batch}).to_string()).await;
    assert_eq!(plain.status, 200);
    assert!(
        !plain.headers.contains_key("content-encoding"),
        "compressed for a client that did not ask"
    );

    // gzip and deflate (zlib, as HTTP means it) request bodies, on both APIs.
    let v1_json = json!({"inputs": batch}).to_string();
    let gz = send(
        &app,
        post(
            "/v1/predict",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            gzip(v1_json.as_bytes()),
        ),
    )
    .await;
    assert_eq!(gz.status, 200, "{}", gz.text());
    assert_eq!(gz.json(), plain.json());
    let v2 = send(
        &app,
        post(
            "/v2/models/digits-cnn/infer",
            &[("content-encoding", "deflate")],
            {
                let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
                enc.write_all(infer_body(&batch, json!(null)).to_string().as_bytes())
                    .unwrap();
                enc.finish().unwrap()
            },
        ),
    )
    .await;
    assert_eq!(v2.status, 200, "{}", v2.text());

    // A gzip-compressed response for a client that accepts it.
    let req = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("accept-encoding", "gzip")
        .body(Body::from(v1_json.clone()))
        .unwrap();
    let zipped = send(&app, req).await;
    assert_eq!(zipped.status, 200);
    assert_eq!(zipped.headers["content-encoding"], "gzip");
    let mut text = String::new();
    GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), plain.json());
}

#[tokio::test]
async fn the_body_limit_applies_to_the_inflated_body() {
    let (app, _) = ready_app(&["--body-limit", "65536"]).await;
    // 1 MiB of spaces: about 1 KiB compressed, 16x the limit inflated.
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 2048, "{} bytes", bomb.len());
    let v1 = send(
        &app,
        post(
            "/v1/predict",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            bomb.clone(),
        ),
    )
    .await;
    assert_eq!(v1.status, 413);
    assert_eq!(
        v1.json()["type"],
        "urn:ember-serve:problem:payload-too-large"
    );
    let v2 = send(
        &app,
        post(
            "/v2/models/digits-cnn/infer",
            &[("content-encoding", "gzip")],
            bomb,
        ),
    )
    .await;
    assert_eq!(v2.status, 413);
    assert!(error_of(&v2).contains("65536"));

    // An encoding nobody can decode is refused with a reason, in each API's shape.
    let br = send(
        &app,
        post(
            "/v1/predict",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            b"{}".to_vec(),
        ),
    )
    .await;
    assert_eq!(br.status, 415);
    assert_eq!(
        br.json()["type"],
        "urn:ember-serve:problem:unsupported-content-encoding"
    );
    let br = send(
        &app,
        post(
            "/v2/models/digits-cnn/infer",
            &[("content-encoding", "br")],
            b"{}".to_vec(),
        ),
    )
    .await;
    assert_eq!(br.status, 415);
    assert!(error_of(&br).contains("\"br\""));
    // Stacked encodings, on one header line or two (the same thing in HTTP), are refused alike.
    let gzip = {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(br#"{"inputs": []}"#).unwrap();
        z.finish().unwrap()
    };
    let twice = {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&gzip).unwrap();
        z.finish().unwrap()
    };
    for headers in [
        &[("content-encoding", "gzip, gzip")][..],
        &[("content-encoding", "gzip"), ("content-encoding", "gzip")][..],
    ] {
        let stacked = send(
            &app,
            post("/v2/models/digits-cnn/infer", headers, twice.clone()),
        )
        .await;
        assert_eq!(stacked.status, 415, "{headers:?}: {}", stacked.text());
        assert!(error_of(&stacked).contains("\"gzip, gzip\""), "{headers:?}");
    }
    // Requests that name an encoding take their own path through the router: still counted.
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains(
            r#"ember_http_requests_total{route="/v2/models/{name}/infer",method="POST",status="415"}"#
        ),
        "the refused encoded request is not in the metrics"
    );
    // A corrupt gzip stream is a 400, not a hang or a 500.
    let corrupt = send(
        &app,
        post(
            "/v2/models/digits-cnn/infer",
            &[("content-encoding", "gzip")],
            b"\x1f\x8b\x08\x00garbage".to_vec(),
        ),
    )
    .await;
    assert_eq!(corrupt.status, 400);
    error_of(&corrupt);
}

#[tokio::test]
async fn unknown_v2_routes_answer_in_the_v2_error_shape() {
    let (app, _) = ready_app(&[]).await;
    for uri in ["/v2/nothing", "/v2/models/digits-cnn/explain"] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, 404, "{uri}");
        assert!(error_of(&reply).contains(uri), "{uri}");
    }
    let wrong_method = get(&app, "/v2/models/digits-cnn/infer").await;
    assert_eq!(wrong_method.status, 405);
    error_of(&wrong_method);
}

#[tokio::test]
async fn versioned_and_unversioned_routes_share_one_description() {
    let (app, _) = ready_app(&[]).await;
    let spec = get(&app, "/api-docs/openapi.json").await.json();
    let paths = spec["paths"].as_object().unwrap();
    let mut pairs = 0;
    for (path, item) in paths {
        let Some(short) = path
            .contains("/versions/{version}")
            .then(|| path.replace("/versions/{version}", ""))
        else {
            continue;
        };
        let alias = &paths[&short];
        for method in ["get", "post"] {
            if item[method].is_null() {
                continue;
            }
            assert_eq!(
                item[method]["responses"], alias[method]["responses"],
                "{method} {path} and {short} document different responses"
            );
            let params = |v: &Value| -> Vec<String> {
                v[method]["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(params(item), ["name", "version"]);
            assert_eq!(params(alias), ["name"]);
            pairs += 1;
        }
    }
    assert_eq!(pairs, 5, "metadata, ready, config, stats, infer");
    // The requested output names the server accepts are the ones the document allows.
    let names = &spec["components"]["schemas"]["V2OutputName"]["enum"];
    assert_eq!(names, &json!(["probabilities", "label"]));
    // v1 and v2 model metadata are different schemas with different names.
    assert!(spec["components"]["schemas"]["ModelMetadata"]["properties"]["labels"].is_object());
    assert!(spec["components"]["schemas"]["V2ModelMetadata"]["properties"]["versions"].is_object());
}
