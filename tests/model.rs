//! The committed weights: the quality gate, and the refusals a corrupted or mismatched weights
//! directory must cause (in-process and as the real binary's exit status).

mod common;

use std::path::Path;
use std::process::Command;

use common::{classifier, repo_path};
use ember_model::weights::{self, Manifest, WeightsError};
use ember_model::{Classifier, DeviceChoice, device};
use ember_train::dataset;

fn cpu() -> ember_model::Device {
    device::select(DeviceChoice::Cpu).unwrap().device
}

/// A copy of the committed weights directory that a test may damage.
fn scratch_weights(name: &str) -> common::ScratchDir {
    let dir = common::ScratchDir::new(&format!("weights-{name}"));
    for f in ["manifest.json", "digits-cnn.safetensors"] {
        std::fs::copy(repo_path("weights").join(f), dir.join(f)).unwrap();
    }
    dir
}

fn edit_manifest(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(path, m.to_string()).unwrap();
}

/// The largest absolute difference between two equally long lists of probabilities.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared lists differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn committed_weights_reach_97_percent_on_held_out_data_on_every_cpu_backend() {
    let samples = dataset::load(&repo_path(dataset::DEFAULT_PATH)).unwrap();
    assert_eq!(samples.len(), 1797);
    let (train, held_out) = dataset::split(samples, dataset::SPLIT_SEED);
    assert_eq!((train.len(), held_out.len()), (1438, 359));
    let backends = device::cpu_backends();
    assert!(!backends.is_empty(), "no CPU backend compiled in");
    let rows: Vec<_> = held_out.iter().map(|s| s.pixels).collect();
    let mut reference: Option<(&str, Vec<[f32; 10]>)> = None;
    for cpu in &backends {
        let (classifier, manifest) = Classifier::load(&repo_path("weights"), &cpu.device).unwrap();
        let accuracy = dataset::accuracy(&classifier, &held_out).unwrap();
        assert!(
            accuracy >= 0.97,
            "{}: held-out accuracy {accuracy:.4} is below the 97 % gate",
            cpu.backend
        );
        // The manifest records what training measured; it must agree with what we just measured.
        assert!((accuracy - manifest.held_out_accuracy).abs() < 1e-3);
        // Every CPU backend must serve the same answers from the same weights.
        let probs = classifier.probabilities(&rows).unwrap();
        match &reference {
            None => reference = Some((cpu.backend, probs)),
            Some((first, expected)) => {
                let worst = largest_difference(expected.as_flattened(), probs.as_flattened());
                assert!(
                    worst < 1e-4,
                    "{first} and {} differ by {worst}",
                    cpu.backend
                );
            }
        }
    }
}

/// On a CPU backend one input runs the convolutional form, two or more the dense form: every
/// held-out image must get the same answer either way, on every CPU backend.
#[test]
fn an_image_gets_the_same_answer_alone_and_in_a_batch() {
    let samples = dataset::load(&repo_path(dataset::DEFAULT_PATH)).unwrap();
    let (_, held_out) = dataset::split(samples, dataset::SPLIT_SEED);
    let rows: Vec<_> = held_out.iter().map(|s| s.pixels).collect();
    for cpu in device::cpu_backends() {
        let classifier = classifier(&cpu.device);
        let batched = classifier.probabilities(&rows).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let alone = classifier.probabilities(std::slice::from_ref(row)).unwrap();
            let worst = largest_difference(&alone[0], &batched[i]);
            assert!(
                worst < 1e-5,
                "{}: held-out image {i} differs by {worst} alone vs batched",
                cpu.backend
            );
        }
    }
}

#[test]
fn weights_stay_small_and_pinned() {
    let bytes = std::fs::read(repo_path("weights/digits-cnn.safetensors")).unwrap();
    assert!(
        bytes.len() < 512 * 1024,
        "weights grew to {} bytes",
        bytes.len()
    );
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(repo_path("weights/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(weights::sha256_hex(&bytes), manifest.sha256);
}

#[test]
fn save_then_load_round_trips_exactly() {
    let loaded = weights::load(&repo_path("weights"), &cpu()).unwrap();
    let dir = common::ScratchDir::new("roundtrip");
    let saved = weights::save(&dir, &loaded.model, loaded.manifest.clone()).unwrap();
    assert_eq!(
        saved.sha256, loaded.manifest.sha256,
        "serialization is not deterministic"
    );
    let again = weights::load(&dir, &cpu()).unwrap();
    let rows = [[3.0f32; 64], [12.0; 64]];
    let a = Classifier::new(loaded.model, cpu())
        .probabilities(&rows)
        .unwrap();
    let b = Classifier::new(again.model, cpu())
        .probabilities(&rows)
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_changed_weights_file_is_refused() {
    let dir = scratch_weights("sha");
    let path = dir.join("digits-cnn.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let err = weights::load(&dir, &cpu())
        .err()
        .expect("a corrupted file loaded");
    assert!(matches!(err, WeightsError::Checksum { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("digits-cnn.safetensors") && msg.contains("sha256 mismatch"),
        "{msg}"
    );
}

#[test]
fn a_missing_file_is_refused_by_name() {
    let dir = scratch_weights("missing");
    std::fs::remove_file(dir.join("digits-cnn.safetensors")).unwrap();
    let msg = weights::load(&dir, &cpu()).err().unwrap().to_string();
    assert!(
        msg.contains("digits-cnn.safetensors") && msg.contains("cannot read"),
        "{msg}"
    );
    let msg = weights::load(&dir.join("nowhere"), &cpu())
        .err()
        .unwrap()
        .to_string();
    assert!(msg.contains("manifest.json"), "{msg}");
}

#[test]
fn shape_mismatches_are_refused() {
    let dir = scratch_weights("shape");
    edit_manifest(&dir, |m| m["input"]["shape"] = serde_json::json!([-1, 784]));
    let err = weights::load(&dir, &cpu()).err().unwrap();
    assert!(
        matches!(err, WeightsError::Shape { .. }) && err.to_string().contains("784"),
        "{err}"
    );

    // A weights file whose tensors do not fit the network (pinned correctly in the manifest).
    let dir = scratch_weights("tensors");
    let mut store_bytes = std::fs::read(dir.join("digits-cnn.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(store_bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(store_bytes[8..8 + header_len].to_vec()).unwrap();
    // fc2 is 64→10; relabel its weight as 32×20 (same byte count, wrong shape).
    let patched = header.replacen("[64,10]", "[32,20]", 1);
    assert_ne!(patched, header, "fc2 weight shape not found in {header}");
    store_bytes.splice(8..8 + header_len, patched.into_bytes());
    std::fs::write(dir.join("digits-cnn.safetensors"), &store_bytes).unwrap();
    edit_manifest(&dir, |m| {
        m["sha256"] = weights::sha256_hex(&store_bytes).into()
    });
    let err = weights::load(&dir, &cpu())
        .err()
        .expect("wrong tensor shapes loaded");
    assert!(matches!(err, WeightsError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("digits-cnn.safetensors"));
}

#[test]
fn the_binary_exits_non_zero_naming_the_bad_file() {
    let dir = scratch_weights("binary");
    edit_manifest(&dir, |m| m["sha256"] = "0".repeat(64).into());
    let out = Command::new(env!("CARGO_BIN_EXE_ember-serve"))
        .args(["--port", "0", "--device", "cpu", "--weights"])
        .arg(&*dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("digits-cnn.safetensors") && stderr.contains("sha256 mismatch"),
        "{stderr}"
    );
}
