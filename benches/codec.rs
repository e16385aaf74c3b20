//! `cargo bench --bench codec`: the host's own work for one binary V2 request of 1024 and 4096
//! rows, without the forward pass: parse the JSON header and decode and check the FP32 tail into
//! images (`decode`; the images alone: `raw-images`, and `images-via-f64` as the datatypes
//! without a direct path are decoded; `raw-images-uint8` from UINT8 bytes), then encode both
//! outputs as binary (`encode`). On a GPU this is CPU time every request pays beside the
//! device's. The `json` group does the same for JSON bodies of 64 and 1024 rows: `/v1/predict`
//! and V2 requests read and checked, a `/v1/predict` answer written. Allocates with mimalloc, as
//! the server does.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ember_model::input;
use ember_serve::http::types::{PredictRequest, PredictResponse, PredictionBody};
use ember_serve::http::v2::codec;
use ember_serve::http::v2::types::InferRequest;
use ember_serve::inference::Prediction;
use ember_serve::protocol::tensors::InputHeader;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn body(rows: usize) -> (Vec<u8>, String) {
    let raw: Vec<u8> = (0..rows * 64)
        .flat_map(|i| ((i % 17) as f32).to_le_bytes())
        .collect();
    let header = serde_json::json!({
        "inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}},
                    {"name": "label", "parameters": {"binary_data": true}}]
    })
    .to_string()
    .into_bytes();
    let len = header.len().to_string();
    ([header, raw].concat(), len)
}

fn codec(c: &mut Criterion) {
    let labels: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let mut group = c.benchmark_group("codec");
    for rows in [1024usize, 4096] {
        let (body, header_len) = body(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("decode", rows), &body, |b, body| {
            b.iter(|| {
                let (json, tail) = codec::split_body(body, Some(&header_len)).unwrap();
                let request: InferRequest = serde_json::from_slice(json).unwrap();
                codec::decode_inputs(&request, tail, 65536).unwrap()
            })
        });
        let (json, tail) = codec::split_body(&body, Some(&header_len)).unwrap();
        let header = InputHeader::check("input", &[rows as i64, 64], "FP32").unwrap();
        group.bench_with_input(BenchmarkId::new("raw-images", rows), &tail, |b, tail| {
            b.iter(|| header.raw_images(tail, 65536).unwrap())
        });
        group.bench_with_input(
            BenchmarkId::new("images-via-f64", rows),
            &tail,
            |b, tail| b.iter(|| header.images(&header.datatype.decode(tail), 65536).unwrap()),
        );
        let uint8: Vec<u8> = (0..rows * 64).map(|i| (i % 17) as u8).collect();
        let uint8_header = InputHeader::check("input", &[rows as i64, 64], "UINT8").unwrap();
        group.bench_with_input(
            BenchmarkId::new("raw-images-uint8", rows),
            &uint8,
            |b, raw| b.iter(|| uint8_header.raw_images(raw, 65536).unwrap()),
        );
        let request: InferRequest = serde_json::from_slice(json).unwrap();
        let requested = codec::requested_outputs(&request).unwrap();
        let predictions: Vec<Prediction> = (0..rows)
            .map(|i| Prediction {
                label: i % 10,
                confidence: 0.5,
                probabilities: [0.05; 10],
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("encode", rows), &predictions, |b, p| {
            b.iter(|| codec::encode_outputs(p, &requested, &labels))
        });
    }
    group.finish();
}

/// A `/v1/predict` body of `rows` images, pixels written as a client's JSON encoder writes
/// whole-number floats (`13.0`), and the same request as a V2 JSON tensor.
fn json_bodies(rows: usize) -> (Vec<u8>, Vec<u8>) {
    let images: Vec<Vec<f64>> = (0..rows)
        .map(|r| (0..64).map(|p| ((r + p) % 17) as f64).collect())
        .collect();
    let predict = serde_json::to_vec(&serde_json::json!({ "inputs": images })).unwrap();
    let v2 = serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [rows, 64], "datatype": "FP32", "data": images}]
    }))
    .unwrap();
    (predict, v2)
}

/// JSON bodies: what `/v1/predict` and V2 JSON requests cost before and after the forward pass.
fn json(c: &mut Criterion) {
    let mut group = c.benchmark_group("json");
    for rows in [64usize, 1024] {
        let (predict, v2) = json_bodies(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(
            BenchmarkId::new("predict-decode", rows),
            &predict,
            |b, body| {
                b.iter(|| {
                    let request: PredictRequest = serde_json::from_slice(body).unwrap();
                    input::images_from_rows(request.inputs.iter().map(Vec::as_slice), 65536)
                        .unwrap()
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("v2-decode", rows), &v2, |b, body| {
            b.iter(|| {
                let request: InferRequest = serde_json::from_slice(body).unwrap();
                codec::decode_inputs(&request, &[], 65536).unwrap()
            })
        });
        let response = PredictResponse {
            model: "digits-cnn".into(),
            model_version: "2.0.0".into(),
            backend: "flex".into(),
            device: "cpu".into(),
            predictions: (0..rows)
                .map(|i| PredictionBody {
                    label: (i % 10).to_string(),
                    class: i % 10,
                    confidence: 0.912_345_6,
                    probabilities: vec![0.009_753_1; 10],
                })
                .collect(),
        };
        group.bench_with_input(
            BenchmarkId::new("predict-encode", rows),
            &response,
            |b, r| b.iter(|| serde_json::to_vec(r).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, codec, json);
criterion_main!(benches);
