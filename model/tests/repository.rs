//! What a broken model directory gets at build time: build.rs runs these same checks
//! (`build/check.rs`) on every directory of the model repository and fails the build with the
//! message, prefixed by the directory. Here they run on broken copies of a bundled model and on a
//! graph with an operator burn-onnx cannot import.

// build.rs also reads `Checked::dir`; these tests need only the verdicts.
#[allow(dead_code)]
#[path = "../build/check.rs"]
mod check;
#[allow(dead_code)]
#[path = "../src/config.rs"]
mod config;

use std::path::{Path, PathBuf};

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../weights")
        .join(name)
}

/// A copy of the breast-cancer model's directory, named `name`, whose config.json is the
/// bundled one after `edit`.
fn broken(
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> (tempdir::Dir, Result<check::Checked, String>) {
    let dir = tempdir::Dir::new(name);
    std::fs::copy(
        bundled("breast-cancer").join("model.onnx"),
        dir.path().join("model.onnx"),
    )
    .unwrap();
    let text = std::fs::read_to_string(bundled("breast-cancer").join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["name"] = name.into();
    edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let result = check::check(dir.path());
    (dir, result)
}

fn error(result: Result<check::Checked, String>) -> String {
    match result {
        Ok(checked) => panic!("accepted: {:?} inputs", checked.inputs),
        Err(e) => e,
    }
}

#[test]
fn the_bundled_models_pass() {
    for (name, inputs, outputs) in [
        ("breast-cancer", vec![2], 1),
        ("diabetes", vec![2], 1),
        ("digits-onnx", vec![3], 1),
    ] {
        let checked = check::check(&bundled(name)).unwrap();
        assert_eq!(checked.inputs, inputs, "{name}: input ranks");
        assert_eq!(checked.outputs, outputs, "{name}: outputs");
        assert_eq!(checked.ident, name.replace('-', "_"));
    }
}

#[test]
fn an_operator_burn_onnx_cannot_import_is_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/repository/reverse-sequence");
    let e = error(check::check(&dir));
    assert!(e.contains("model.onnx cannot be imported"), "{e}");
    assert!(e.contains("ReverseSequence"), "{e}");
}

#[test]
fn a_config_that_disagrees_with_its_graph_names_both() {
    let (_d, r) = broken("renamed-input", |c| c["inputs"][0]["name"] = "x".into());
    let e = error(r);
    assert!(
        e.contains(r#"["x"]"#) && e.contains(r#"["features"]"#),
        "{e}"
    );

    let (_d, r) = broken("wider", |c| {
        c["inputs"][0]["shape"] = serde_json::json!([-1, 31])
    });
    let e = error(r);
    assert!(e.contains("[-1, 31]") && e.contains("[-1, 30]"), "{e}");

    let (_d, r) = broken("no-batch-dim", |c| {
        c["inputs"][0]["shape"] = serde_json::json!([1, 30])
    });
    let e = error(r);
    assert!(e.contains("the first dimension is the batch"), "{e}");

    let (_d, r) = broken("fp64", |c| c["outputs"][0]["datatype"] = "FP64".into());
    let e = error(r);
    assert!(
        e.contains("FP64") && e.contains("model.onnx's is FP32"),
        "{e}"
    );

    let (_d, r) = broken("three-labels", |c| {
        c["outputs"][0]["labels"] = serde_json::json!(["a", "b", "c"])
    });
    let e = error(r);
    assert!(e.contains("3 labels") && e.contains("[-1, 2]"), "{e}");

    let (_d, r) = broken("extra-output", |c| {
        let first = c["outputs"][0].clone();
        c["outputs"].as_array_mut().unwrap().push(first);
    });
    let e = error(r);
    assert!(
        e.contains("outputs") && e.contains(r#"["probabilities"]"#),
        "{e}"
    );
}

#[test]
fn a_config_that_cannot_be_meant_is_refused() {
    let (_d, r) = broken("typo", |c| c["max_bach"] = 64.into());
    assert!(error(r).contains("max_bach"));

    let (_d, r) = broken("other-name", |c| c["name"] = "something-else".into());
    assert!(error(r).contains("the directory's name"));

    let (_d, r) = broken("zero-batch", |c| c["max_batch"] = 0.into());
    assert!(error(r).contains("max_batch"));

    let (_d, r) = broken("big-preferred", |c| {
        c["preferred_batch_sizes"] = serde_json::json!([1, 1000])
    });
    assert!(error(r).contains("1000"));

    let (_d, r) = broken("no-threads", |c| c["instance_count"] = 0.into());
    assert!(error(r).contains("`instance_count` must be at least 1"));

    let (_d, r) = broken("inverted-range", |c| {
        c["inputs"][0]["min"] = 5.0.into();
        c["inputs"][0]["max"] = 1.0.into();
    });
    assert!(error(r).contains("min 5 above max 1"));

    let (_d, r) = broken("Capital", |_| {});
    assert!(error(r).contains("lowercase"));
}

/// A directory under the system's temp dir, removed when dropped.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf, PathBuf);

    impl Dir {
        /// `<tmp>/ember-model-<pid>-<n>/<name>`: the last component is what check() reads.
        pub fn new(name: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("ember-model-{}-{n}", std::process::id()));
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            Self(root, dir)
        }

        pub fn path(&self) -> &Path {
            &self.1
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
