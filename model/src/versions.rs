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
    #[error("{path}: the version directory resolves outside the model repository {repository}")]
    Outside { path: PathBuf, repository: PathBuf },
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
    // A version directory may be a link (a mounted volume's layout), but only to somewhere
    // inside the repository: weights are never read from outside what the operator mounted.
    let root = repository.canonicalize().map_err(|e| VersionError::Read {
        path: repository.to_path_buf(),
        reason: e.to_string(),
    })?;
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
        let resolved = path.canonicalize().map_err(|e| VersionError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if !resolved.starts_with(&root) {
            return Err(VersionError::Outside {
                path,
                repository: root,
            });
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

/// Which of a model's versions are loaded: Triton's `version_policy`. Flags and the repository
/// API spell it `latest:N`, `all` or `specific:V[,V…]`, where a version is a full semantic
/// version or a major (the newest version of that major).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The newest N versions.
    Latest(usize),
    /// Every version there is.
    All,
    /// The versions named.
    Specific(Vec<String>),
}

impl Default for VersionPolicy {
    /// The newest version only, as Triton does.
    fn default() -> Self {
        Self::Latest(1)
    }
}

impl std::fmt::Display for VersionPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Latest(n) => write!(f, "latest:{n}"),
            Self::All => f.write_str("all"),
            Self::Specific(names) => write!(f, "specific:{}", names.join(",")),
        }
    }
}

impl std::str::FromStr for VersionPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape =
            || format!("{s:?} is not a version policy: use latest:N, all or specific:V[,V…]");
        match s.trim().split_once(':') {
            None if s.trim() == "all" => Ok(Self::All),
            Some(("latest", n)) => match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Self::Latest(n)),
                _ => Err(format!("{s:?}: latest takes a count of at least 1")),
            },
            Some(("specific", names)) => {
                let names: Vec<String> = names.split(',').map(|n| n.trim().to_string()).collect();
                match names.iter().find(|n| !is_version_name(n)) {
                    Some(bad) => Err(format!(
                        "{s:?}: {bad:?} is neither a semantic version (1.2.0) nor a major (1)"
                    )),
                    None => Ok(Self::Specific(names)),
                }
            }
            _ => Err(shape()),
        }
    }
}

/// A full semantic version, or a major version alone (what Triton's tools send).
pub fn is_version_name(name: &str) -> bool {
    name.parse::<u64>().is_ok() || semver::Version::parse(name).is_ok()
}

/// The version `name` means among `versions` (any order): the one equal to it, or for a major
/// alone the newest of that major.
pub fn resolve_version<'a>(
    name: &str,
    versions: impl IntoIterator<Item = &'a semver::Version>,
) -> Option<&'a semver::Version> {
    match name.parse::<u64>() {
        Ok(major) => versions.into_iter().filter(|v| v.major == major).max(),
        Err(_) => {
            let wanted = semver::Version::parse(name).ok()?;
            versions.into_iter().find(|v| **v == wanted)
        }
    }
}

impl VersionPolicy {
    /// The versions of `available` the policy asks for, newest first; an error names the
    /// versions it asks for that are not there.
    pub fn select(&self, available: &[semver::Version]) -> Result<Vec<semver::Version>, String> {
        let mut newest_first: Vec<_> = available.to_vec();
        newest_first.sort_by(|a, b| b.cmp(a));
        match self {
            Self::Latest(n) => Ok(newest_first.into_iter().take(*n).collect()),
            Self::All => Ok(newest_first),
            Self::Specific(names) => {
                let mut chosen = Vec::new();
                let mut missing = Vec::new();
                for name in names {
                    match resolve_version(name, &newest_first) {
                        Some(v) if !chosen.contains(v) => chosen.push(v.clone()),
                        Some(_) => {}
                        None => missing.push(name.as_str()),
                    }
                }
                if !missing.is_empty() {
                    return Err(format!(
                        "no version {} in the repository (there: {})",
                        missing.join(", "),
                        newest_first
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                chosen.sort_by(|a, b| b.cmp(a));
                Ok(chosen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> semver::Version {
        semver::Version::parse(s).unwrap()
    }

    #[test]
    fn policies_parse_print_and_select_as_triton_names_them() {
        let there = [v("1.0.0"), v("2.0.0"), v("1.1.0")];
        let select = |p: &str| {
            let policy: VersionPolicy = p.parse().unwrap();
            assert_eq!(policy.to_string(), p.replace(' ', ""));
            policy.select(&there)
        };
        assert_eq!(select("latest:1"), Ok(vec![v("2.0.0")]));
        assert_eq!(select("latest:2"), Ok(vec![v("2.0.0"), v("1.1.0")]));
        assert_eq!(select("latest:9").unwrap().len(), 3);
        assert_eq!(select("all").unwrap().last(), Some(&v("1.0.0")));
        // A major means that major's newest.
        assert_eq!(select("specific:1,2.0.0"), Ok(vec![v("2.0.0"), v("1.1.0")]));
        assert_eq!(select("specific:1.0.0"), Ok(vec![v("1.0.0")]));
        let missing = select("specific:3,1.0.0").unwrap_err();
        assert!(
            missing.contains("no version 3") && missing.contains("2.0.0, 1.1.0, 1.0.0"),
            "{missing}"
        );
        for bad in [
            "latest:0",
            "latest",
            "newest:1",
            "specific:../1",
            "specific:",
            "",
        ] {
            assert!(bad.parse::<VersionPolicy>().is_err(), "{bad}");
        }
    }
}
