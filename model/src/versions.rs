//! Weights versions on disk, for the models compiled in from ONNX: the graph is in the binary,
//! a version is only its weights, so a retrained model of the same graph needs no rebuild.
//!
//! A version is a directory `<repository>/<model>/<version>/` (the version a semantic version,
//! as `config.json`'s) holding `manifest.json` and the burnpack it names. The manifest carries
//! the file's sha256 and the fingerprint of the graph the weights were made for; both are
//! checked before a byte is trusted. `cargo run -p ember-train --bin weights-version` writes one
//! from a retrained `model.onnx`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `manifest.json` of a weights version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionManifest {
    /// The burnpack's file name, inside the version directory.
    pub weights_file: String,
    /// sha256 of that file, lowercase hex.
    pub sha256: String,
    /// sha256 of the burn module burn-onnx generates for the graph the weights were made for
    /// ([`crate::imported::graph_sha256`]): weights for another graph are refused even where
    /// their shapes happen to fit.
    pub graph_sha256: String,
    /// Where the weights came from (a file name, a training run); shown, never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One version directory, its manifest read, its weights not yet.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightsVersion {
    pub version: semver::Version,
    pub dir: PathBuf,
    pub manifest: VersionManifest,
}

/// What is wrong with a version directory; each names the path at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VersionError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: a version directory is named by a semantic version (e.g. 1.2.0): {reason}")]
    Name { path: PathBuf, reason: String },
    #[error("{path}: manifest.json: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: sha256 is {actual}, the manifest says {expected}")]
    Sha256 {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path}: these weights were made for another graph (graph sha256 {made_for}; this binary's is {compiled}): rebuild with the new model.onnx, or make the weights from this graph"
    )]
    Graph {
        path: PathBuf,
        made_for: String,
        compiled: String,
    },
}

/// Every version directory of `model` under `repository`, lowest version first; none when the
/// model has no directory there. Hidden entries and plain files are skipped; any other entry
/// that is not a readable version is an error, so a typo never silently serves old weights.
pub fn versions(repository: &Path, model: &str) -> Result<Vec<WeightsVersion>, VersionError> {
    let dir = repository.join(model);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(VersionError::Read {
                path: dir,
                reason: e.to_string(),
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| VersionError::Read {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        found.push(WeightsVersion::at(&path)?);
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(found)
}

fn read_manifest(path: &Path) -> Result<VersionManifest, VersionError> {
    let manifest = |reason: String| VersionError::Manifest {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| manifest(e.to_string()))?;
    let parsed: VersionManifest =
        serde_json::from_str(&text).map_err(|e| manifest(e.to_string()))?;
    // The weights live in the version directory: a name with a separator could point anywhere.
    if parsed.weights_file.is_empty()
        || parsed.weights_file.contains(['/', '\\'])
        || parsed.weights_file.starts_with('.')
    {
        return Err(manifest(format!(
            "weights_file {:?} is not a file name inside the version directory",
            parsed.weights_file
        )));
    }
    Ok(parsed)
}

impl WeightsVersion {
    /// The version directory `dir`: its name as the version, its manifest read.
    pub fn at(dir: &Path) -> Result<Self, VersionError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let version = semver::Version::parse(&name).map_err(|e| VersionError::Name {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            version,
            dir: dir.to_path_buf(),
            manifest: read_manifest(&dir.join("manifest.json"))?,
        })
    }

    /// The weights file's path.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.weights_file)
    }

    /// The weights' bytes, once their sha256 and graph are the manifest's and `graph_sha256`.
    pub fn read(&self, graph_sha256: &str) -> Result<Vec<u8>, VersionError> {
        let path = self.weights_path();
        if self.manifest.graph_sha256 != graph_sha256 {
            return Err(VersionError::Graph {
                path: self.dir.join("manifest.json"),
                made_for: self.manifest.graph_sha256.clone(),
                compiled: graph_sha256.to_string(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| VersionError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&self.manifest.sha256) {
            return Err(VersionError::Sha256 {
                path,
                expected: self.manifest.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
