//! Weights on disk: a safetensors file plus a JSON manifest that describes and pins it.
//!
//! The server trusts nothing it has not checked: [`load`] reads the manifest, verifies the
//! weights file's sha256 and the declared input/output shapes, then loads every tensor with
//! burn-store's shape validation on. Any failure names the file and what is wrong, so the
//! process can refuse to start with a message an operator can act on.

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cnn::{DigitCnn, INPUT_LEN, NUM_CLASSES};

/// File name of the manifest inside the weights directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Why weights could not be loaded. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "{path}: sha256 mismatch: the manifest expects {expected}, the file has {actual} \
         (the file was changed or corrupted; retrain or restore it)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: shape mismatch: {reason}")]
    Shape { path: PathBuf, reason: String },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("cannot encode the weights as safetensors: {0}")]
    Encode(String),
}

/// A tensor's name, dtype and shape (`-1` is the batch dimension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// How the weights were produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSettings {
    pub seed: u64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub optimizer: String,
    pub train_samples: usize,
    pub held_out_samples: usize,
    pub dataset: String,
    pub burn_version: String,
}

/// `weights/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Semantic version of the model (not of the server).
    pub version: String,
    pub weights_file: String,
    pub sha256: String,
    pub input: TensorSpec,
    pub output: TensorSpec,
    pub labels: Vec<String>,
    pub held_out_accuracy: f64,
    pub training: TrainingSettings,
}

impl Manifest {
    /// The input/output specs this build's network has.
    pub fn expected_specs() -> (TensorSpec, TensorSpec) {
        (
            TensorSpec {
                name: "pixels".into(),
                dtype: "float32".into(),
                shape: vec![-1, INPUT_LEN as i64],
            },
            TensorSpec {
                name: "probabilities".into(),
                dtype: "float32".into(),
                shape: vec![-1, NUM_CLASSES as i64],
            },
        )
    }

    fn check(&self, path: &Path) -> Result<(), WeightsError> {
        let bad = |reason: String| WeightsError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let shape_err = |reason: String| WeightsError::Shape {
            path: path.to_path_buf(),
            reason,
        };
        if semver_parts(&self.version).is_none() {
            return Err(bad(format!(
                "version {:?} is not semver (MAJOR.MINOR.PATCH)",
                self.version
            )));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("sha256 must be 64 hex digits".into()));
        }
        if self.weights_file.contains('/') || self.weights_file.contains("..") {
            return Err(bad(format!(
                "weights_file {:?} must be a plain file name",
                self.weights_file
            )));
        }
        let (input, output) = Self::expected_specs();
        if self.input.shape != input.shape {
            return Err(shape_err(format!(
                "input shape {:?} but this server's model takes {:?}",
                self.input.shape, input.shape
            )));
        }
        if self.output.shape != output.shape {
            return Err(shape_err(format!(
                "output shape {:?} but this server's model produces {:?}",
                self.output.shape, output.shape
            )));
        }
        if self.labels.len() != NUM_CLASSES {
            return Err(shape_err(format!(
                "{} labels for {NUM_CLASSES} output classes",
                self.labels.len()
            )));
        }
        Ok(())
    }
}

fn semver_parts(v: &str) -> Option<[u64; 3]> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let out = [parts.next()??, parts.next()??, parts.next()??];
    parts.next().is_none().then_some(out)
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A verified model, ready to run.
pub struct LoadedWeights {
    pub manifest: Manifest,
    pub model: DigitCnn,
}

/// Read `dir/manifest.json` and its weights file, verify both, and load the network on `device`.
pub fn load(dir: &Path, device: &Device) -> Result<LoadedWeights, WeightsError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).map_err(|source| WeightsError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| WeightsError::Manifest {
        path: manifest_path.clone(),
        reason: e.to_string(),
    })?;
    manifest.check(&manifest_path)?;

    let weights_path = dir.join(&manifest.weights_file);
    let bytes = std::fs::read(&weights_path).map_err(|source| WeightsError::Read {
        path: weights_path.clone(),
        source,
    })?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(WeightsError::Checksum {
            path: weights_path,
            expected: manifest.sha256.clone(),
            actual,
        });
    }

    let mut model = DigitCnn::new(device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    model
        .load_from(&mut store)
        .map_err(|e| WeightsError::Shape {
            path: weights_path.clone(),
            reason: e.to_string(),
        })?;
    Ok(LoadedWeights { manifest, model })
}

/// Serialize `model` to safetensors bytes (deterministic: no timestamps, one metadata key).
pub fn to_safetensors(model: &DigitCnn) -> Result<Vec<u8>, WeightsError> {
    let encode = |e: &dyn std::fmt::Display| WeightsError::Encode(e.to_string());
    let mut store = SafetensorsStore::from_bytes(None)
        .clear_metadata()
        .metadata("producer", "ember-serve");
    model.save_into(&mut store).map_err(|e| encode(&e))?;
    store.get_bytes().map_err(|e| encode(&e))
}

/// Write the weights and a manifest pinning their sha256 into `dir`.
pub fn save(
    dir: &Path,
    model: &DigitCnn,
    mut manifest: Manifest,
) -> Result<Manifest, WeightsError> {
    let write_err = |path: &Path, reason: String| WeightsError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let weights_path = dir.join(&manifest.weights_file);
    let bytes = to_safetensors(model)?;
    manifest.sha256 = sha256_hex(&bytes);
    std::fs::create_dir_all(dir).map_err(|e| write_err(dir, e.to_string()))?;
    std::fs::write(&weights_path, &bytes).map_err(|e| write_err(&weights_path, e.to_string()))?;
    let manifest_path = dir.join(MANIFEST_FILE);
    let json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| write_err(&manifest_path, e.to_string()))?;
    std::fs::write(&manifest_path, json + "\n")
        .map_err(|e| write_err(&manifest_path, e.to_string()))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::semver_parts;

    #[test]
    fn semver_parsing() {
        assert_eq!(semver_parts("1.2.3"), Some([1, 2, 3]));
        assert_eq!(semver_parts("1.2.3-rc.1"), Some([1, 2, 3]));
        assert_eq!(semver_parts("1.2"), None);
        assert_eq!(semver_parts("1.2.3.4"), None);
        assert_eq!(semver_parts("v1.2.3"), None);
    }
}
