//! `weights-version` makes the version the server loads from a retrained graph, answering as
//! the one committed under tests/versions/ does, and refuses what would not serve: another graph, an
//! existing version, a model not compiled in. Weights whose tensors do not fit the graph are
//! refused at load, naming the file.

use std::path::{Path, PathBuf};

use ember_model::device;
use ember_model::imported::{self, ImportedModel};
use ember_model::versions;
use ember_train::weights_version::{MakeError, make};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn scratch(test: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("ember-make-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

#[test]
fn a_retrained_graph_becomes_the_committed_version() {
    let committed = repo("tests/versions/breast-cancer/1.1.0");
    let dir = scratch("same").join("breast-cancer/1.1.0");
    let version = make(&committed.join("model.onnx"), &dir).unwrap();
    assert_eq!(version.version.to_string(), "1.1.0");
    // burnpacks carry random parameter ids, so the bytes differ run to run: the tensors do not.
    let cpu = &device::cpu_backends()[0].device;
    let made = ImportedModel::load_version("breast-cancer", &version, cpu).unwrap();
    let committed_version = versions::versions(&repo("tests/versions"), "breast-cancer")
        .unwrap()
        .pop()
        .unwrap();
    let kept = ImportedModel::load_version("breast-cancer", &committed_version, cpu).unwrap();
    let rows: Vec<f32> = (0..4 * 30).map(|i| (i % 17) as f32 * 3.5).collect();
    assert_eq!(
        made.infer(&[&rows], 4).unwrap(),
        kept.infer(&[&rows], 4).unwrap(),
        "the made weights answer otherwise than the committed ones"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["graph_sha256"],
        imported::graph_sha256("breast-cancer").unwrap().as_str()
    );
    assert_eq!(
        version.manifest.sha256,
        manifest["sha256"].as_str().unwrap()
    );

    // Made once, never overwritten.
    let again = make(&committed.join("model.onnx"), &dir).unwrap_err();
    assert!(matches!(again, MakeError::Exists(_)), "{again}");
}

#[test]
fn what_would_not_serve_is_refused() {
    let root = scratch("refused");
    // Another graph: weights alone cannot turn diabetes into breast-cancer.
    let e = make(
        &repo("weights/diabetes/model.onnx"),
        &root.join("breast-cancer/2.0.0"),
    )
    .unwrap_err();
    assert!(matches!(e, MakeError::Graph { .. }), "{e}");
    assert!(
        !root.join("breast-cancer/2.0.0").exists(),
        "a refused version left a directory"
    );
    // A model that is not compiled in, a directory that is not <model>/<version>, no file.
    let onnx = repo("tests/versions/breast-cancer/1.1.0/model.onnx");
    let e = make(&onnx, &root.join("nosuch/1.0.0")).unwrap_err();
    assert!(e.to_string().contains("no model named \"nosuch\""), "{e}");
    let e = make(&onnx, &root.join("breast-cancer/latest")).unwrap_err();
    assert!(matches!(e, MakeError::Layout(_)), "{e}");
    let e = make(&root.join("absent.onnx"), &root.join("breast-cancer/3.0.0")).unwrap_err();
    assert!(matches!(e, MakeError::Import { .. }), "{e}");
}

#[test]
fn weights_whose_tensors_do_not_fit_are_refused_at_load_naming_the_file() {
    // diabetes's weights (10×32, 32, 32×1, 1) under breast-cancer's manifest: right sha256,
    // right graph fingerprint, wrong shapes.
    let root = scratch("shapes");
    let out = root.join("generated");
    burn_onnx::ModelGen::new()
        .input(repo("weights/diabetes/model.onnx").to_str().unwrap())
        .out_dir(out.to_str().unwrap())
        .load_strategy(burn_onnx::LoadStrategy::None)
        .run_from_cli();
    let bytes = std::fs::read(out.join("model.bpk")).unwrap();
    let dir = root.join("breast-cancer/1.2.0");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.bpk"), &bytes).unwrap();
    let manifest = versions::VersionManifest {
        weights_file: "model.bpk".into(),
        sha256: versions::sha256_hex(&bytes),
        graph_sha256: imported::graph_sha256("breast-cancer").unwrap(),
        source: None,
    };
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string(&manifest).unwrap(),
    )
    .unwrap();

    let cpu = &device::cpu_backends()[0].device;
    let e = ImportedModel::load_newest("breast-cancer", &root, cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("breast-cancer: the weights do not fit the graph")
            && e.contains("1.2.0/model.bpk"),
        "{e}"
    );
}
