//! Weights versions read at start (`<repository>/<model>/<version>/`): the newest one serves,
//! with its answers and its version; anything wrong with one (its name, its manifest, its
//! sha256, the graph it was made for, its tensors) is an error naming the path at fault, never
//! a silent fallback to other weights. tests/versions/breast-cancer/1.1.0 is a retrained
//! breast-cancer (train.py --seed 7) with ONNX Runtime's answers for it.

use std::path::{Path, PathBuf};

use ember_model::ImportedModel;
use ember_model::device;
use ember_model::imported::{ImportedError, WeightsOrigin};
use ember_model::versions::{self, VersionError};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/versions/breast-cancer/1.1.0")
}

/// A fresh repository holding breast-cancer's committed 1.1.0 under the given version names.
fn repository(test: &str, versions: &[&str]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("ember-versions-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for v in versions {
        let dir = root.join("breast-cancer").join(v);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["manifest.json", "model.bpk"] {
            std::fs::copy(committed().join(file), dir.join(file)).unwrap();
        }
    }
    root
}

fn edit_manifest(dir: &Path, key: &str, value: &str) {
    let path = dir.join("manifest.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json[key] = value.into();
    std::fs::write(&path, json.to_string()).unwrap();
}

/// ONNX Runtime's rows and answers for the retrained graph.
fn examples() -> (Vec<f32>, Vec<f32>, usize) {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(committed().join("examples.json")).unwrap())
            .unwrap();
    let flat = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    let rows = json["inputs"]["features"].as_array().unwrap().len();
    (
        flat(&json["inputs"]["features"]),
        flat(&json["outputs"]["probabilities"]),
        rows,
    )
}

#[test]
fn the_newest_version_serves_with_its_answers_and_its_version() {
    let root = repository("newest", &["1.1.0", "1.0.5"]);
    let cpu = &device::cpu_backends()[0].device;
    let model = ImportedModel::load_newest("breast-cancer", &root, cpu).unwrap();
    assert_eq!(model.config().version, "1.1.0");
    let path = root.join("breast-cancer/1.1.0/model.bpk");
    assert_eq!(model.weights_origin(), &WeightsOrigin::File(path.clone()));
    assert_eq!(
        model.weights_sha256(),
        versions::sha256_hex(&std::fs::read(&path).unwrap())
    );

    let (inputs, want, rows) = examples();
    let got = model.infer(&[&inputs], rows).unwrap();
    for (i, (g, w)) in got[0].iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5,
            "value {i}: {g}, ONNX Runtime says {w}"
        );
    }
    // The bundled 1.0.0 answers differently: the version's weights are the ones in use.
    let bundled = ImportedModel::load("breast-cancer", cpu).unwrap();
    assert_eq!(bundled.config().version, "1.0.0");
    assert_eq!(bundled.weights_origin(), &WeightsOrigin::Bundled);
    let old = bundled.infer(&[&inputs], rows).unwrap();
    assert!(
        old[0]
            .iter()
            .zip(&got[0])
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "1.1.0 answers as 1.0.0 does"
    );

    // Another model without a directory, and a version older than the bundled one, are bundled.
    let diabetes = ImportedModel::load_newest("diabetes", &root, cpu).unwrap();
    assert_eq!(diabetes.weights_origin(), &WeightsOrigin::Bundled);
    let older = repository("older", &["0.9.0", ".hidden"]);
    let model = ImportedModel::load_newest("breast-cancer", &older, cpu).unwrap();
    assert_eq!(model.weights_origin(), &WeightsOrigin::Bundled);
    assert_eq!(model.config().version, "1.0.0");
    // A missing repository is no error: the bundled weights serve.
    let none = ImportedModel::load_newest("breast-cancer", &root.join("absent"), cpu).unwrap();
    assert_eq!(none.weights_origin(), &WeightsOrigin::Bundled);
}

fn refused(root: &Path) -> String {
    let cpu = &device::cpu_backends()[0].device;
    ImportedModel::load_newest("breast-cancer", root, cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_bad_version_is_refused_naming_the_path() {
    // A directory that is not a semantic version.
    let root = repository("name", &["v2"]);
    let e = refused(&root);
    assert!(
        e.contains("breast-cancer/v2") && e.contains("semantic version"),
        "{e}"
    );

    // No manifest; a manifest with an unknown field; a weights file outside the directory.
    let root = repository("manifest", &["1.1.0"]);
    let dir = root.join("breast-cancer/1.1.0");
    std::fs::remove_file(dir.join("manifest.json")).unwrap();
    let e = refused(&root);
    assert!(e.contains("1.1.0/manifest.json"), "{e}");
    std::fs::copy(committed().join("manifest.json"), dir.join("manifest.json")).unwrap();
    edit_manifest(&dir, "sha265", "typo");
    assert!(refused(&root).contains("unknown field `sha265`"));
    std::fs::copy(committed().join("manifest.json"), dir.join("manifest.json")).unwrap();
    edit_manifest(&dir, "weights_file", "../../../diabetes/model.bpk");
    let e = refused(&root);
    assert!(
        e.contains("not a file name inside the version directory"),
        "{e}"
    );

    // A sha256 that is not the file's.
    let root = repository("sha", &["1.1.0"]);
    let dir = root.join("breast-cancer/1.1.0");
    edit_manifest(&dir, "sha256", &"0".repeat(64));
    let e = refused(&root);
    assert!(
        e.contains("1.1.0/model.bpk") && e.contains("the manifest says 0000"),
        "{e}"
    );

    // Weights made for another graph, however well their shapes fit.
    let root = repository("graph", &["1.1.0"]);
    let dir = root.join("breast-cancer/1.1.0");
    edit_manifest(&dir, "graph_sha256", &"1".repeat(64));
    let cpu = &device::cpu_backends()[0].device;
    let e = ImportedModel::load_newest("breast-cancer", &root, cpu).unwrap_err();
    assert!(
        matches!(&e, ImportedError::Version(VersionError::Graph { path, .. }) if path.ends_with("1.1.0/manifest.json")),
        "{e}"
    );

    // Bytes that are not a burnpack of this graph's tensors (sha256 updated to match them).
    let root = repository("tensors", &["1.1.0"]);
    let dir = root.join("breast-cancer/1.1.0");
    let bytes = std::fs::read(dir.join("model.bpk")).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    std::fs::write(dir.join("model.bpk"), cut).unwrap();
    edit_manifest(&dir, "sha256", &versions::sha256_hex(cut));
    let e = refused(&root);
    assert!(
        e.starts_with("breast-cancer: the weights do not fit the graph")
            && e.contains("1.1.0/model.bpk"),
        "{e}"
    );
}
