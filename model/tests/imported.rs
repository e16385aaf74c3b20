//! The models compiled in from ONNX answer as ONNX Runtime does: each bundled model directory
//! carries `examples.json`, held-out rows and ONNX Runtime's outputs for them (written by the
//! model's train.py), and every backend compiled in must reproduce them. Bad requests get an
//! error naming the model, the tensor and the position.

mod common;

use std::path::Path;

use common::{close, flatten};
use ember_model::ImportedModel;
use ember_model::device::{self, SelectedDevice};
use ember_model::imported::{self, ImportedInputError, InferError};

/// Every backend this build can run the graphs on: the CPU backends, and a wgpu adapter
/// (lavapipe in CI) when there is one.
fn devices() -> Vec<SelectedDevice> {
    let (devices, no_gpu) = device::every_backend();
    if let Some(e) = no_gpu {
        eprintln!("SKIPPED the wgpu backend: {e}");
    }
    devices
}

struct Example {
    inputs: Vec<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    rows: usize,
}

/// A model's examples.json, its tensors flattened in the config's order.
fn example(model: &ImportedModel) -> Example {
    let config = model.config();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../weights")
        .join(&config.name)
        .join("examples.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let flat = |section: &str, name: &str| -> (Vec<f32>, usize) {
        let rows = json[section][name]
            .as_array()
            .unwrap_or_else(|| panic!("{path:?}: {section}.{name}"));
        let mut values = Vec::new();
        rows.iter().for_each(|row| flatten(row, &mut values));
        (values, rows.len())
    };
    let inputs: Vec<(Vec<f32>, usize)> = config
        .inputs
        .iter()
        .map(|t| flat("inputs", &t.name))
        .collect();
    let outputs = config
        .outputs
        .iter()
        .map(|t| flat("outputs", &t.name).0)
        .collect();
    Example {
        rows: inputs[0].1,
        inputs: inputs.into_iter().map(|(v, _)| v).collect(),
        outputs,
    }
}

#[test]
fn every_bundled_model_is_compiled_in() {
    let names: Vec<String> = imported::catalogue()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["breast-cancer", "diabetes", "digits-onnx"]);
    let err = ImportedModel::load("nope", &device::cpu_backends()[0].device).unwrap_err();
    assert!(
        err.to_string()
            .contains("breast-cancer, diabetes, digits-onnx"),
        "{err}"
    );
}

#[test]
fn imported_models_answer_as_onnx_runtime_on_every_backend() {
    for selected in devices() {
        for config in imported::catalogue().unwrap() {
            let model = ImportedModel::load(&config.name, &selected.device).unwrap();
            let example = example(&model);
            let inputs: Vec<&[f32]> = example.inputs.iter().map(Vec::as_slice).collect();
            // All rows in one pass, and each row alone: batching must not change an answer.
            let together = model.infer(&inputs, example.rows).unwrap();
            for (got, want) in together.iter().zip(&example.outputs) {
                assert_close(
                    got,
                    want,
                    &format!("{} on {}", config.name, selected.backend),
                );
            }
            for row in 0..example.rows {
                let one: Vec<&[f32]> = model
                    .config()
                    .inputs
                    .iter()
                    .zip(&example.inputs)
                    .map(|(t, v)| &v[row * t.row_len()..(row + 1) * t.row_len()])
                    .collect();
                let alone = model.infer(&one, 1).unwrap();
                for ((got, want), spec) in alone
                    .iter()
                    .zip(&example.outputs)
                    .zip(&model.config().outputs)
                {
                    let n = spec.row_len();
                    assert_close(
                        got,
                        &want[row * n..(row + 1) * n],
                        &format!("{} row {row}", config.name),
                    );
                }
            }
        }
    }
}

/// Within 1e-5 of ONNX Runtime, relative to the value's size (the regressor answers in the
/// hundreds).
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            close(*g, *w),
            "{what}: value {i} is {g}, ONNX Runtime says {w}"
        );
    }
}

#[test]
fn bad_tensors_are_refused_naming_model_tensor_and_position() {
    let cpu = &device::cpu_backends()[0].device;
    let model = ImportedModel::load("breast-cancer", cpu).unwrap();
    let row = vec![1.0f32; 30];

    let e = model.infer(&[], 1).unwrap_err();
    assert!(
        matches!(
            e,
            InferError::Input(ImportedInputError::Count {
                expected: 1,
                given: 0,
                ..
            })
        ),
        "{e}"
    );
    assert!(e.to_string().contains("features"), "{e}");

    let e = model.infer(&[&row[..29]], 1).unwrap_err();
    assert!(
        e.to_string().contains("29 values is not 1 rows of 30"),
        "{e}"
    );

    let e = model.infer(&[&row], 0).unwrap_err();
    assert!(
        matches!(e, InferError::Input(ImportedInputError::BatchSize { .. })),
        "{e}"
    );
    let many = vec![1.0f32; 30 * 257];
    assert!(
        model
            .infer(&[&many], 257)
            .unwrap_err()
            .to_string()
            .contains("1 to 256 rows")
    );

    let mut two = vec![1.0f32; 60];
    two[30 + 7] = -3.0;
    let e = model.infer(&[&two], 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "model breast-cancer, input features[1][7] = -3 is below the input's minimum 0"
    );
    two[30 + 7] = f32::NAN;
    assert!(
        model
            .infer(&[&two], 2)
            .unwrap_err()
            .to_string()
            .contains("[1][7] = NaN is not a finite number")
    );

    let diabetes = ImportedModel::load("diabetes", cpu).unwrap();
    let mut high = vec![0.0f32; 10];
    high[9] = 1.5;
    let e = diabetes.infer(&[&high], 1).unwrap_err();
    assert!(
        e.to_string()
            .contains("features[0][9] = 1.5 is above the input's maximum 1"),
        "{e}"
    );
    // Good rows still answer: one value per row, the regressor's units.
    let out = diabetes.infer(&[&[0.0f32; 20]], 2).unwrap();
    assert_eq!(out[0].len(), 2);
    assert!(out[0].iter().all(|v| v.is_finite()));
}
