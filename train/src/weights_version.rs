//! A weights version of a compiled-in ONNX model, made from a retrained `model.onnx` of the same
//! graph: burn-onnx extracts the weights as it does at build time, and the version directory
//! gets them with a manifest (sha256, the graph's fingerprint) the server checks at start.
//!
//! The graph must be the one compiled in: the module burn-onnx generates from the new file is
//! fingerprinted like build.rs's, and a different graph is refused here rather than at start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ember_model::imported::{self, ImportedError, ImportedModel};
use ember_model::versions::{self, VersionError, VersionManifest, WeightsVersion};
use ember_model::{DeviceChoice, device};

// The generator with build.rs's own settings: the graph fingerprint depends on them.
#[allow(dead_code)] // each user runs it in one context
#[path = "../../model/build/generate.rs"]
mod generate;

/// Why no version was written.
#[derive(Debug, thiserror::Error)]
pub enum MakeError {
    #[error("{0}: the version directory must be <repository>/<model>/<version>")]
    Layout(PathBuf),
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{0} exists: a version is never overwritten (make a new version)")]
    Exists(PathBuf),
    #[error("burn-onnx could not import {path}: {reason}")]
    Import { path: PathBuf, reason: String },
    #[error(
        "{path} is another graph than the {model} compiled in (graph sha256 {made} vs {compiled}): weights alone cannot change it; rebuild with the new model.onnx in the model's directory"
    )]
    Graph {
        path: PathBuf,
        model: String,
        made: String,
        compiled: String,
    },
    #[error(transparent)]
    Model(#[from] ImportedError),
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("no CPU device: {0}")]
    Device(String),
}

/// Write `<repository>/<model>/<version>/` (`dir`) from `onnx`: `model.bpk` and `manifest.json`,
/// then load it as the server will. `dir` must not exist yet.
pub fn make(onnx: &Path, dir: &Path) -> Result<WeightsVersion, MakeError> {
    let layout = || MakeError::Layout(dir.to_path_buf());
    let name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .map(str::to_string)
    };
    let version = name(Some(dir)).ok_or_else(layout)?;
    let model = name(dir.parent()).ok_or_else(layout)?;
    semver::Version::parse(&version).map_err(|_| layout())?;
    let compiled = imported::graph_sha256(&model)?;
    if dir.exists() {
        return Err(MakeError::Exists(dir.to_path_buf()));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| MakeError::Io {
            path,
            reason: e.to_string(),
        }
    };

    // burn-onnx writes `<stem>.rs` and `<stem>.bpk` into a scratch directory, as at build time.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let scratch = std::env::temp_dir().join(format!("ember-weights-{}-{call}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let generated = extract(onnx, &scratch);
    let result = generated.and_then(|(source, weights)| {
        let made = imported::fingerprint(&source);
        if made != compiled {
            return Err(MakeError::Graph {
                path: onnx.to_path_buf(),
                model: model.clone(),
                made,
                compiled: compiled.clone(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let file = dir.join("model.bpk");
        std::fs::write(&file, &weights).map_err(io(&file))?;
        let manifest = VersionManifest {
            weights_file: "model.bpk".into(),
            sha256: versions::sha256_hex(&weights),
            graph_sha256: compiled.clone(),
            source: onnx
                .file_name()
                .map(|n| format!("{} (burn-onnx 0.22)", n.to_string_lossy())),
        };
        let path = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
        std::fs::write(&path, text).map_err(io(&path))?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result?;

    // Load it as the server will: sha256, graph and every tensor's shape.
    let version = WeightsVersion::at(dir)?;
    let cpu = device::select(DeviceChoice::Cpu).map_err(|e| MakeError::Device(e.to_string()))?;
    ImportedModel::load_version(&model, &version, &cpu.device)?;
    Ok(version)
}

/// The generated module's text and the weights' bytes.
fn extract(onnx: &Path, scratch: &Path) -> Result<(String, Vec<u8>), MakeError> {
    let import = |reason: String| MakeError::Import {
        path: onnx.to_path_buf(),
        reason,
    };
    let input = onnx
        .to_str()
        .ok_or_else(|| import("the path is not UTF-8".into()))?
        .to_string();
    let out = scratch
        .to_str()
        .ok_or_else(|| import("the path is not UTF-8".into()))?
        .to_string();
    if !onnx.is_file() {
        return Err(import("no such file".into()));
    }
    generate::generate(&input, &out, generate::Context::Cli).map_err(import)?;
    let stem = onnx.file_stem().unwrap_or_default();
    let source_path = scratch.join(stem).with_extension("rs");
    let weights_path = scratch.join(stem).with_extension("bpk");
    let source = std::fs::read_to_string(&source_path)
        .map_err(|e| import(format!("{}: {e}", source_path.display())))?;
    let weights = std::fs::read(&weights_path)
        .map_err(|e| import(format!("{}: {e}", weights_path.display())))?;
    Ok((source, weights))
}
