//! The digits model travels the road a user's model does: exported to ONNX by burn-onnx from
//! the committed weights (`export-onnx`), compiled back in from `weights/digits-onnx/`, and
//! served like any repository model. The committed graph is today's export, and the imported
//! model answers as the hand-written one on the held-out split: the same labels, probabilities
//! within 1e-5, on every backend this build has.

use std::path::{Path, PathBuf};

use ember_model::device::{self, SelectedDevice};
use ember_model::{Classifier, ImportedModel, NUM_CLASSES, argmax};
use ember_train::{dataset, onnx_export};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The CPU backends, and a wgpu adapter (lavapipe in CI) when there is one.
fn devices() -> Vec<SelectedDevice> {
    let (devices, no_gpu) = device::every_backend();
    if let Some(e) = no_gpu {
        eprintln!("SKIPPED the wgpu backend: {e}");
    }
    devices
}

#[test]
fn the_committed_graph_is_the_export_of_the_committed_weights() {
    let cpu = &device::cpu_backends()[0].device;
    let loaded = ember_model::weights::load(&repo("weights"), cpu).unwrap();
    let exported = onnx_export::export(&loaded.model, cpu).unwrap();
    let committed = std::fs::read(repo("weights/digits-onnx/model.onnx")).unwrap();
    assert!(
        exported == committed,
        "weights/digits-onnx/model.onnx is not the export of weights/: run \
         `cargo run -p ember-train --features flex --bin export-onnx` and examples.py beside it"
    );
}

#[test]
fn the_imported_digits_model_answers_as_the_hand_written_one() {
    let samples = dataset::load(&repo(dataset::DEFAULT_PATH)).unwrap();
    let (_, held_out) = dataset::split(samples, dataset::SPLIT_SEED);
    assert!(held_out.len() > 300, "{} held-out rows", held_out.len());
    for selected in devices() {
        let on = format!("{} on {}", selected.backend, selected.name);
        let (hand_written, _) = Classifier::load(&repo("weights"), &selected.device).unwrap();
        let imported = ImportedModel::load("digits-onnx", &selected.device).unwrap();
        let mut worst = 0f32;
        for chunk in held_out.chunks(imported.config().max_batch as usize) {
            let rows: Vec<_> = chunk.iter().map(|s| s.pixels).collect();
            let want = hand_written.probabilities(&rows).unwrap();
            let flat: Vec<f32> = rows.iter().flatten().copied().collect();
            let got = imported.infer(&[&flat], rows.len()).unwrap().remove(0);
            assert_eq!(got.len(), rows.len() * NUM_CLASSES, "{on}");
            for (i, (want, got)) in want.iter().zip(got.chunks_exact(NUM_CLASSES)).enumerate() {
                let got: [f32; NUM_CLASSES] = got.try_into().unwrap();
                assert_eq!(
                    argmax(&got).0,
                    argmax(want).0,
                    "{on}: row {i}: {got:?} {want:?}"
                );
                for (g, w) in got.iter().zip(want) {
                    worst = worst.max((g - w).abs());
                }
            }
        }
        eprintln!("{on}: largest probability difference {worst:e}");
        assert!(worst <= 1e-5, "{on}: probabilities differ by {worst}");
    }
}
