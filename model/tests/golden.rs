//! Every bundled model gives the same answers on every CPU backend and every architecture: one
//! file of expected outputs (`tests/golden.json`: fixed inputs, the labels, the values) that the
//! x86-64 run and the arm64 run (`.ci/arm64.sh`, under QEMU; natively on GitHub's arm64 runner)
//! both compare against. Labels must be equal; values within 1e-5 (relative to their size, as
//! tests/imported.rs holds them to ONNX Runtime).
//!
//! The file was written on x86-64 by this test itself:
//! `EMBER_GOLDEN=write cargo test -p ember-model --features flex,ndarray --test golden`.
//! Rewrite it only when a model's weights change on purpose, and say so in the commit.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{close, flatten};
use ember_model::device::{self, SelectedDevice};
use ember_model::{Classifier, INPUT_LEN, ImportedModel, NUM_CLASSES, argmax, imported};
use serde::{Deserialize, Serialize};

/// The inputs a model is asked about and what it answered, per tensor name, row by row.
#[derive(Debug, Serialize, Deserialize)]
struct Golden {
    inputs: BTreeMap<String, Vec<Vec<f32>>>,
    outputs: BTreeMap<String, Vec<Vec<f32>>>,
    /// For outputs with class labels: each row's label.
    labels: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GoldenFile {
    about: String,
    models: BTreeMap<String, Golden>,
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden.json")
}

fn weights_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights")
}

/// The fixed inputs: each imported model's own examples (its examples.json), and for the
/// hand-written digits CNN the digits-onnx examples (the same 8×8 images) plus a blank and a
/// saturated image, the two ends of the pixel range.
fn fixed_inputs() -> BTreeMap<String, BTreeMap<String, Vec<Vec<f32>>>> {
    let mut all: BTreeMap<String, BTreeMap<String, Vec<Vec<f32>>>> = BTreeMap::new();
    for config in imported::catalogue().unwrap() {
        let path = weights_dir().join(&config.name).join("examples.json");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut inputs = BTreeMap::new();
        for tensor in &config.inputs {
            let rows = json["inputs"][&tensor.name]
                .as_array()
                .unwrap_or_else(|| panic!("{path:?}: inputs.{}", tensor.name));
            let rows: Vec<Vec<f32>> = rows
                .iter()
                .map(|row| {
                    let mut flat = Vec::new();
                    flatten(row, &mut flat);
                    flat
                })
                .collect();
            inputs.insert(tensor.name.clone(), rows);
        }
        all.insert(config.name, inputs);
    }
    let mut digits = all["digits-onnx"]["pixels"].clone();
    digits.push(vec![0.0; INPUT_LEN]);
    digits.push(vec![16.0; INPUT_LEN]);
    all.insert(
        "digits-cnn".to_string(),
        BTreeMap::from([("pixels".to_string(), digits)]),
    );
    all
}

/// What one model answers on `selected`, all rows in one pass and each row alone (the CNN's
/// two forms, convolutional and dense, answer the two; batching must not change an answer).
fn answers(
    name: &str,
    inputs: &BTreeMap<String, Vec<Vec<f32>>>,
    selected: &SelectedDevice,
) -> Vec<Golden> {
    if name == "digits-cnn" {
        let (model, _) = Classifier::load(&weights_dir(), &selected.device).unwrap();
        let rows: Vec<[f32; INPUT_LEN]> = inputs["pixels"]
            .iter()
            .map(|r| r.as_slice().try_into().unwrap())
            .collect();
        let together = model.probabilities(&rows).unwrap();
        let alone: Vec<[f32; NUM_CLASSES]> = rows
            .iter()
            .map(|r| model.probabilities(std::slice::from_ref(r)).unwrap()[0])
            .collect();
        return [together, alone]
            .into_iter()
            .map(|probs| Golden {
                inputs: inputs.clone(),
                labels: BTreeMap::from([(
                    "probabilities".to_string(),
                    probs.iter().map(|p| argmax(p).0.to_string()).collect(),
                )]),
                outputs: BTreeMap::from([(
                    "probabilities".to_string(),
                    probs.iter().map(|p| p.to_vec()).collect(),
                )]),
            })
            .collect();
    }
    let model = ImportedModel::load(name, &selected.device).unwrap();
    let config = model.config().clone();
    let rows = inputs[&config.inputs[0].name].len();
    let run = |from: usize, count: usize| -> Vec<Vec<f32>> {
        let owned: Vec<Vec<f32>> = config
            .inputs
            .iter()
            .map(|t| inputs[&t.name][from..from + count].concat())
            .collect();
        let slices: Vec<&[f32]> = owned.iter().map(Vec::as_slice).collect();
        model.infer(&slices, count).unwrap()
    };
    let together = run(0, rows);
    let alone: Vec<Vec<f32>> = (0..rows).map(|row| run(row, 1)).fold(
        vec![Vec::new(); config.outputs.len()],
        |mut acc, outs| {
            acc.iter_mut().zip(outs).for_each(|(a, o)| a.extend(o));
            acc
        },
    );
    [together, alone]
        .into_iter()
        .map(|flat_outputs| {
            let mut outputs = BTreeMap::new();
            let mut labels = BTreeMap::new();
            for (spec, flat) in config.outputs.iter().zip(flat_outputs) {
                let per_row: Vec<Vec<f32>> = flat
                    .chunks_exact(spec.row_len())
                    .map(<[f32]>::to_vec)
                    .collect();
                if !spec.labels.is_empty() {
                    let names = &spec.labels;
                    let label = |row: &Vec<f32>| {
                        let best = row
                            .iter()
                            .enumerate()
                            .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
                        names[best].clone()
                    };
                    labels.insert(spec.name.clone(), per_row.iter().map(label).collect());
                }
                outputs.insert(spec.name.clone(), per_row);
            }
            Golden {
                inputs: inputs.clone(),
                outputs,
                labels,
            }
        })
        .collect()
}

/// Labels equal, values within 1e-5 relative to their size.
fn assert_matches(got: &Golden, want: &Golden, what: &str) {
    assert_eq!(got.labels, want.labels, "{what}: labels differ");
    assert_eq!(
        got.outputs.keys().collect::<Vec<_>>(),
        want.outputs.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (name, rows) in &want.outputs {
        assert_eq!(got.outputs[name].len(), rows.len(), "{what}: {name} rows");
        for (r, (g_row, w_row)) in got.outputs[name].iter().zip(rows).enumerate() {
            assert_eq!(g_row.len(), w_row.len(), "{what}: {name}[{r}]");
            for (i, (g, w)) in g_row.iter().zip(w_row).enumerate() {
                assert!(
                    close(*g, *w),
                    "{what}: {name}[{r}][{i}] is {g}, tests/golden.json says {w} (written on x86-64)"
                );
            }
        }
    }
}

#[test]
fn every_bundled_model_answers_as_the_golden_file_on_every_cpu_backend() {
    let backends = device::cpu_backends();
    assert!(!backends.is_empty(), "no CPU backend compiled in");
    let inputs = fixed_inputs();

    if std::env::var("EMBER_GOLDEN").as_deref() == Ok("write") {
        assert_eq!(
            std::env::consts::ARCH,
            "x86_64",
            "the golden file is written on x86-64 and checked everywhere else"
        );
        let models = inputs
            .iter()
            .map(|(name, inputs)| {
                let mut first = answers(name, inputs, &backends[0]);
                (name.clone(), first.swap_remove(0))
            })
            .collect();
        let file = GoldenFile {
            about: format!(
                "Expected outputs of every bundled model on fixed inputs, written on {} by \
                 `EMBER_GOLDEN=write cargo test -p ember-model --features flex,ndarray --test \
                 golden` ({} backend); model/tests/golden.rs checks every CPU backend on every \
                 architecture against it.",
                std::env::consts::ARCH,
                backends[0].backend
            ),
            models,
        };
        let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
        std::fs::write(golden_path(), text).unwrap();
    }

    let file: GoldenFile =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    assert_eq!(
        file.models.keys().collect::<Vec<_>>(),
        inputs.keys().collect::<Vec<_>>(),
        "tests/golden.json must hold every bundled model (rewrite it: see this file's header)"
    );
    for (name, want) in &file.models {
        assert_eq!(
            want.inputs, inputs[name],
            "{name}: the fixed inputs changed; rewrite tests/golden.json on purpose"
        );
        for selected in &backends {
            let [together, alone]: [Golden; 2] =
                answers(name, &want.inputs, selected).try_into().unwrap();
            let on = format!(
                "{name} on {} ({})",
                selected.backend,
                std::env::consts::ARCH
            );
            assert_matches(&together, want, &format!("{on}, one batch"));
            assert_matches(&alone, want, &format!("{on}, row by row"));
        }
    }
}

/// The check above is not vacuous: a value moved by more than the tolerance, or a label
/// swapped, is caught.
#[test]
fn a_changed_value_or_label_is_caught() {
    let want = Golden {
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("y".to_string(), vec![vec![0.25, 300.0]])]),
        labels: BTreeMap::from([("y".to_string(), vec!["b".to_string()])]),
    };
    let with = |value: f32, label: &str| Golden {
        inputs: BTreeMap::new(),
        outputs: BTreeMap::from([("y".to_string(), vec![vec![0.25, value]])]),
        labels: BTreeMap::from([("y".to_string(), vec![label.to_string()])]),
    };
    let ok = std::panic::catch_unwind(|| assert_matches(&with(300.002, "b"), &want, "t"));
    assert!(ok.is_ok(), "within 1e-5 relative to 300");
    for (value, label) in [(300.01, "b"), (300.0, "a")] {
        let caught = std::panic::catch_unwind(|| assert_matches(&with(value, label), &want, "t"));
        assert!(caught.is_err(), "{value} {label} should differ");
    }
}
