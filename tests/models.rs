//! Every model of the model repository served beside the digits model, on every surface: V2
//! REST (JSON and binary tensors), V2 gRPC, KServe V1 / TF Serving's `:predict`, `/v1/models`,
//! metadata, configuration, statistics and metrics; each answer checked against ONNX Runtime's
//! for the same rows (`weights/<name>/examples.json`), each refusal naming model, tensor and
//! position.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::*;
use ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use ember_serve::grpc::pb::infer_parameter::ParameterChoice;
use ember_serve::grpc::pb::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use ember_serve::grpc::pb::*;
use ember_serve::service::ModelService;
use serde_json::{Value, json};
use tonic::Code;

const HEADER: &str = "inference-header-content-length";

/// A model's examples: its input rows and ONNX Runtime's outputs for them.
struct Examples {
    input: Vec<Vec<f64>>,
    output: Vec<Vec<f64>>,
}

fn examples(model: &str, input: &str, output: &str) -> Examples {
    examples_in(&format!("weights/{model}"), input, output)
}

/// The examples.json of a directory of the repository (a model's, a weights version's).
fn examples_in(dir: &str, input: &str, output: &str) -> Examples {
    let file: Value = serde_json::from_str(&read(&format!("{dir}/examples.json"))).unwrap();
    let rows = |v: &Value| -> Vec<Vec<f64>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    Examples {
        input: rows(&file["inputs"][input]),
        output: rows(&file["outputs"][output]),
    }
}

/// What the server serves: the digits model, then every model directory of the repository
/// (the build's order: by directory name), whatever models a user has added.
fn served() -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(repo_path("weights"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").is_file())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    dirs.sort();
    std::iter::once("digits-cnn".to_string())
        .chain(dirs)
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        // ONNX Runtime's answers; the graph ran in FP32 on both.
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn flat(rows: &[Vec<f64>]) -> Vec<f64> {
    rows.iter().flatten().copied().collect()
}

async fn error_of(app: &axum::Router, uri: &str, body: Value, status: u16) -> String {
    let reply = post_json(app, uri, body.to_string()).await;
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    body.get("error")
        .or_else(|| body.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no error text: {body}"))
        .to_string()
}

#[tokio::test]
async fn every_model_is_listed_described_and_ready() {
    let (app, _) = ready_app(&[]).await;
    let models = get(&app, "/v1/models").await.json();
    let names: Vec<_> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, served());
    // The digits model's entry is what it always was.
    assert_eq!(models["models"][0]["labels"][3], "3");
    let cancer = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "breast-cancer")
        .unwrap();
    assert_eq!(
        cancer["outputs"][0]["labels"],
        json!(["malignant", "benign"])
    );
    assert_eq!(cancer["inputs"][0]["shape"], json!([-1, 30]));
    assert_eq!(
        get(&app, "/v1/models/diabetes").await.json()["outputs"][0]["name"],
        "progression"
    );
    assert_eq!(get(&app, "/v1/models/mnist").await.status, 404);

    let meta = get(&app, "/v2/models/diabetes").await.json();
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["inputs"],
        json!([{"name": "features", "datatype": "FP32", "shape": [-1, 10]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([{"name": "progression", "datatype": "FP32", "shape": [-1, 1]}])
    );
    for path in [
        "/v2/models/breast-cancer/ready",
        "/v2/models/breast-cancer/versions/1/ready",
        "/v2/models/diabetes/versions/1.0.0/ready",
    ] {
        assert_eq!(get(&app, path).await.status, 200, "{path}");
    }
    assert_eq!(
        get(&app, "/v2/models/diabetes/versions/2/ready")
            .await
            .status,
        404
    );
    let unknown = get(&app, "/v2/models/mnist").await.json();
    assert_eq!(
        unknown["error"],
        format!(
            "unknown model 'mnist'; this server serves '{}'",
            served().join("', '")
        )
    );

    let config = get(&app, "/v2/models/breast-cancer/config").await.json();
    assert_eq!(config["max_batch_size"], 256);
    assert_eq!(config["input"][0]["dims"], json!([30]));
    assert_eq!(config["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(config["output"][0]["dims"], json!([2]));
    assert_eq!(
        config["parameters"]["labels"]["string_value"],
        r#"["malignant","benign"]"#
    );
}

#[tokio::test]
async fn a_models_instance_count_is_its_thread_count() {
    // diabetes's config.json asks for one inference thread; the others take --workers.
    let (app, _) = ready_app(&["--workers", "3"]).await;
    for (model, threads) in [("breast-cancer", 3), ("diabetes", 1)] {
        let config = get(&app, &format!("/v2/models/{model}/config"))
            .await
            .json();
        assert_eq!(
            config["instance_group"][0]["count"], threads,
            "{model}: {config}"
        );
    }
}

#[tokio::test]
async fn v2_json_answers_equal_onnx_runtime_and_are_counted() {
    let (app, _) = ready_app(&[]).await;
    let cancer = examples("breast-cancer", "features", "probabilities");
    let body = json!({
        "id": "c1",
        "inputs": [{"name": "features", "shape": [cancer.input.len(), 30], "datatype": "FP32",
                    "data": cancer.input}],
    });
    let reply = post_json(&app, "/v2/models/breast-cancer/infer", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let out = reply.json();
    assert_eq!(out["id"], "c1");
    assert_eq!(out["model_name"], "breast-cancer");
    assert_eq!(out["outputs"][0]["name"], "probabilities");
    assert_eq!(out["outputs"][0]["shape"], json!([cancer.input.len(), 2]));
    assert_close(
        &numbers(&out["outputs"][0]["data"]),
        &flat(&cancer.output),
        "breast-cancer",
    );

    // The classification extension names each row's class by its label.
    let body = json!({
        "inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP64",
                    "data": [cancer.input[0].iter().map(|&v| v as f32 as f64).collect::<Vec<_>>()]}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}],
    });
    let reply = post_json(&app, "/v2/models/breast-cancer/infer", body.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let top = reply.json()["outputs"][0]["data"][0]
        .as_str()
        .unwrap()
        .to_string();
    let best = if cancer.output[0][0] > cancer.output[0][1] {
        "0:malignant"
    } else {
        "1:benign"
    };
    assert!(
        top.ends_with(best),
        "{top} (ONNX Runtime: {:?})",
        cancer.output[0]
    );

    // Statistics and metrics carry the model's own name.
    let stats = get(&app, "/v2/models/breast-cancer/stats").await.json();
    assert_eq!(stats["model_stats"][0]["name"], "breast-cancer");
    // The warm-up's probe, the examples, the classified row.
    assert_eq!(
        stats["model_stats"][0]["inference_count"].as_u64(),
        Some(1 + cancer.input.len() as u64 + 1)
    );
    let all = get(&app, "/v2/models/stats").await.json();
    assert_eq!(all["model_stats"].as_array().unwrap().len(), served().len());
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ember_predictions_total")
                && l.contains(r#"model="breast-cancer""#)
                && l.contains(r#"label="benign""#)),
        "no breast-cancer predictions counted:\n{metrics}"
    );
}

#[tokio::test]
async fn v2_binary_tensors_both_ways() {
    let (app, _) = ready_app(&[]).await;
    let diabetes = examples("diabetes", "features", "progression");
    let raw: Vec<u8> = flat(&diabetes.input)
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let header = json!({
        "inputs": [{"name": "features", "shape": [diabetes.input.len(), 10], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    let req = Request::post("/v2/models/diabetes/infer")
        .header(HEADER, header.len().to_string())
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let n: usize = reply.headers[HEADER].to_str().unwrap().parse().unwrap();
    let json: Value = serde_json::from_slice(&reply.body[..n]).unwrap();
    assert_eq!(
        json["outputs"][0]["shape"],
        json!([diabetes.input.len(), 1])
    );
    let got: Vec<f64> = reply.body[n..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_close(&got, &flat(&diabetes.output), "diabetes");
}

#[tokio::test]
async fn kserve_v1_instances_get_predictions() {
    let (app, _) = ready_app(&[]).await;
    let cancer = examples("breast-cancer", "features", "probabilities");
    let reply = post_json(
        &app,
        "/v1/models/breast-cancer:predict",
        json!({"instances": cancer.input}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let predictions = reply.json()["predictions"].clone();
    for (got, want) in predictions.as_array().unwrap().iter().zip(&cancer.output) {
        assert_close(&numbers(got), want, "breast-cancer :predict");
    }
    // Named inputs too; and the digits model answers the same route.
    let named = json!({"instances": [{"features": cancer.input[0]}]});
    let reply = post_json(&app, "/v1/models/breast-cancer:predict", named.to_string()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let digit = rows(1);
    let reply = post_json(
        &app,
        "/v1/models/digits-cnn:predict",
        json!({"instances": digit}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let label = reply.json()["predictions"][0]["label"].as_u64().unwrap();
    let v1 = post_json(&app, "/v1/predict", json!({"inputs": digit}).to_string()).await;
    assert_eq!(v1.json()["predictions"][0]["class"].as_u64(), Some(label));

    // Refusals name the instance, the input and the rule.
    let short = json!({"instances": [cancer.input[0][..29].to_vec()]});
    let error = error_of(&app, "/v1/models/breast-cancer:predict", short, 422).await;
    assert!(
        error.contains("instance 0, input 'features': 29 values"),
        "{error}"
    );
    let mut negative = cancer.input[1].clone();
    negative[4] = -1.0;
    let error = error_of(
        &app,
        "/v1/models/breast-cancer:predict",
        json!({"instances": [cancer.input[0], negative]}),
        422,
    )
    .await;
    assert!(
        error.contains(
            "model breast-cancer, input features[1][4] = -1 is below the input's minimum 0"
        ),
        "{error}"
    );
    let error = error_of(
        &app,
        "/v1/models/breast-cancer:predict",
        json!({"instances": [{"feature": cancer.input[0]}]}),
        422,
    )
    .await;
    assert!(error.contains("no input 'feature'"), "{error}");
    let error = error_of(
        &app,
        "/v1/models/breast-cancer:explain",
        json!({"instances": []}),
        404,
    )
    .await;
    assert!(error.contains(":predict"), "{error}");
    // The model's own path takes no POST, whatever the body.
    let reply = send(
        &app,
        Request::post("/v1/models/breast-cancer")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 405, "{}", reply.text());
}

#[tokio::test]
async fn v2_refusals_name_model_tensor_and_position() {
    let (app, _) = ready_app(&[]).await;
    let uri = "/v2/models/diabetes/infer";
    let row = vec![0.01; 10];
    let input = |name: &str, shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        (
            input("x", json!([1, 10]), "FP32", json!(row)),
            "model diabetes has no input 'x'; its inputs are 'features'",
        ),
        (
            input("features", json!([1, 9]), "FP32", json!(row)),
            "model diabetes, input features: shape [1, 9] is not [-1, 10]",
        ),
        (
            input("features", json!([1, 10]), "BYTES", json!(row)),
            "model diabetes, input features: datatype BYTES is not accepted",
        ),
        (
            input(
                "features",
                json!([500000000000000000u64, 10]),
                "FP32",
                json!(row),
            ),
            "model diabetes, input features: shape [500000000000000000, 10] holds more values than a request can carry",
        ),
        (
            input("features", json!([2, 10]), "FP32", json!(row)),
            "model diabetes, input features: 10 values, but shape [2, 10] needs 20",
        ),
        (
            input(
                "features",
                json!([1, 10]),
                "FP32",
                json!([0, 0, 0, 0, 0, 0, 0, 2.5, 0, 0]),
            ),
            "model diabetes, input features[0][7] = 2.5 is above the input's maximum 1",
        ),
        (
            input(
                "features",
                json!([1, 10]),
                "INT32",
                json!([0, 0, 0, 0.5, 0, 0, 0, 0, 0, 0]),
            ),
            "INT32 data must be integers (value 3 is 0.5)",
        ),
        (
            input("features", json!([0, 10]), "FP32", json!([])),
            "model diabetes: a batch has 1 to 256 rows; this one has 0",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP32", "data": row}],
                   "outputs": [{"name": "label"}]}),
            "model diabetes has no output 'label'; its outputs are 'progression'",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP32", "data": row}],
                   "outputs": [{"name": "progression", "parameters": {"classification": 2}}]}),
            "model diabetes, output progression: classification 2 is out of range",
        ),
    ];
    for (body, want) in cases {
        let error = error_of(&app, uri, body.clone(), 400).await;
        assert!(error.contains(want), "{body}: {error}");
    }
    // A request that is refused leaves the model serving.
    let ok = post_json(
        &app,
        uri,
        input("features", json!([1, 10]), "FP32", json!(row)).to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

async fn grpc_client(
    service: Arc<ModelService>,
) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    let router = |draining| {
        ember_serve::grpc::router(service, 1 << 20, Default::default(), draining).unwrap()
    };
    let (channel, _addr, _server) = serve_grpc(router, std::future::pending()).await;
    GrpcInferenceServiceClient::new(channel)
}

#[tokio::test]
async fn grpc_serves_every_model() {
    let (_, service) = ready_app(&[]).await;
    let mut client = grpc_client(service).await;
    let meta = client
        .model_metadata(ModelMetadataRequest {
            name: "breast-cancer".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.inputs[0].name, "features");
    assert_eq!(meta.inputs[0].shape, [-1, 30]);
    let config = client
        .model_config(ModelConfigRequest {
            name: "diabetes".into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        (config.max_batch_size, config.input[0].dims.clone()),
        (256, vec![10])
    );
    let ready = client
        .model_ready(ModelReadyRequest {
            name: "diabetes".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ready.ready);

    let cancer = examples("breast-cancer", "features", "probabilities");
    let raw: Vec<u8> = flat(&cancer.input)
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let request = |raw: Vec<u8>, rows: i64, outputs| ModelInferRequest {
        model_name: "breast-cancer".into(),
        id: "g1".into(),
        inputs: vec![InferInputTensor {
            name: "features".into(),
            datatype: "FP32".into(),
            shape: vec![rows, 30],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        outputs,
        ..Default::default()
    };
    let reply = client
        .model_infer(request(raw.clone(), cancer.input.len() as i64, vec![]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.id, "g1");
    assert_eq!(reply.outputs[0].name, "probabilities");
    let got: Vec<f64> = reply.raw_output_contents[0]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_close(&got, &flat(&cancer.output), "breast-cancer over gRPC");

    let top = InferRequestedOutputTensor {
        name: "probabilities".into(),
        parameters: [(
            "classification".to_string(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(2)),
            },
        )]
        .into(),
    };
    let reply = client
        .model_infer(request(raw[..120].to_vec(), 1, vec![top]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.outputs[0].datatype, "BYTES");
    assert_eq!(reply.outputs[0].shape, [1, 2]);

    // The same refusal words as REST, as INVALID_ARGUMENT.
    let error = client
        .model_infer(request(raw[..116].to_vec(), 1, vec![]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error
            .message()
            .contains("model breast-cancer, input features: 29 values, but shape [1, 30] needs 30"),
        "{}",
        error.message()
    );
    let stats = client
        .model_statistics(ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = stats.model_stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, served());
}

/// `--weights` with breast-cancer's committed 1.1.0 (tests/versions/) beside the digits weights.
fn weights_with_version(test: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("ember-models-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let version = root.join("breast-cancer/1.1.0");
    std::fs::create_dir_all(&version).unwrap();
    for file in ["manifest.json", "digits-cnn.safetensors"] {
        std::fs::copy(repo_path("weights").join(file), root.join(file)).unwrap();
    }
    for file in ["manifest.json", "model.bpk"] {
        let from = repo_path("tests/versions/breast-cancer/1.1.0").join(file);
        std::fs::copy(from, version.join(file)).unwrap();
    }
    root
}

#[tokio::test]
async fn a_weights_version_on_disk_serves_without_a_rebuild() {
    let root = weights_with_version("serves");
    let (app, _) = ready_app(&["--weights", root.to_str().unwrap()]).await;
    let entry = get(&app, "/v1/models/breast-cancer").await.json();
    assert_eq!(entry["version"], "1.1.0");
    let manifest: Value =
        serde_json::from_str(&read("tests/versions/breast-cancer/1.1.0/manifest.json")).unwrap();
    assert_eq!(entry["weights_sha256"], manifest["sha256"]);
    assert!(
        entry["weights"]
            .as_str()
            .unwrap()
            .ends_with("breast-cancer/1.1.0/model.bpk"),
        "{entry}"
    );
    let diabetes = get(&app, "/v1/models/diabetes").await.json();
    assert_eq!(
        (diabetes["version"].as_str(), diabetes["weights"].as_str()),
        (Some("1.0.0"), Some("bundled"))
    );

    // Its answers are the retrained graph's (ONNX Runtime's), not the bundled weights'.
    let retrained = examples_in(
        "tests/versions/breast-cancer/1.1.0",
        "features",
        "probabilities",
    );
    let bundled = examples("breast-cancer", "features", "probabilities");
    let infer = async |rows: &Vec<Vec<f64>>| {
        let body = json!({"inputs": [{"name": "features", "shape": [rows.len(), 30],
                                      "datatype": "FP32", "data": rows}]});
        let reply = post_json(&app, "/v2/models/breast-cancer/infer", body.to_string()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        numbers(&reply.json()["outputs"][0]["data"])
    };
    assert_close(
        &infer(&retrained.input).await,
        &flat(&retrained.output),
        "1.1.0",
    );
    let got = infer(&bundled.input).await;
    assert!(
        got.iter()
            .zip(flat(&bundled.output))
            .any(|(g, b)| (g - b).abs() > 1e-3),
        "1.1.0 answers as the bundled 1.0.0 does"
    );
    let reply = post_json(
        &app,
        "/v1/models/breast-cancer:predict",
        json!({"instances": [retrained.input[0]]}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn a_weights_version_that_does_not_check_out_stops_the_start_naming_the_file() {
    let root = weights_with_version("tampered");
    let file = root.join("breast-cancer/1.1.0/model.bpk");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let err = match ember_serve::app::start(&args(&["--weights", root.to_str().unwrap()])) {
        Ok(_) => panic!("a version whose sha256 is not its manifest's was served"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&file.display().to_string()) && err.contains("sha256"),
        "{err}"
    );
}

#[tokio::test]
async fn the_openapi_document_has_an_example_per_model_that_the_server_accepts() {
    let (app, _) = ready_app(&[]).await;
    let doc = get(&app, "/api-docs/openapi.json").await.json();
    let models: Vec<String> = served().into_iter().filter(|m| m != "digits-cnn").collect();
    assert!(!models.is_empty());
    for path in [
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/models/{name}/infer",
        "/v1/models/{name}:predict",
    ] {
        let examples =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"];
        for model in &models {
            let example = &examples[model.as_str()];
            assert!(
                example["summary"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(model.as_str()),
                "{path}: no example for {model}: {examples}"
            );
            // What Swagger UI would send, sent: the example must be a request the model takes.
            let meta = get(&app, &format!("/v2/models/{model}")).await.json();
            let version = meta["versions"][0].as_str().unwrap().to_string();
            let uri = path.replace("{name}", model).replace("{version}", &version);
            let reply = post_json(&app, &uri, example["value"].to_string()).await;
            assert_eq!(reply.status, 200, "{uri}: {}", reply.text());
        }
    }
}
