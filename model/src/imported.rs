//! Models brought in as ONNX graphs: every directory of the model repository (`weights/<name>/`
//! with `model.onnx` and `config.json`) is compiled in by build.rs through burn-onnx, so each
//! runs on the same backends as the hand-written digits CNN.
//!
//! This module is the one interface the rest of the server needs for them: what a model takes
//! and gives (its [`ModelConfig`], checked against the graph at build time), loading its
//! weights, and a forward pass over flat FP32 tensors whose every value has been checked first.
//! The graphs themselves sit behind [`Graph`], an adapter build.rs writes for each.

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};
use std::path::Path;

use burn::tensor::{Bytes, Device, TensorData};

use crate::config::ModelConfig;
use crate::versions::{VersionError, WeightsVersion, sha256_hex, versions};

/// Why a model could not be loaded or could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportedError {
    #[error("no model named {0:?} is compiled into this binary (compiled in: {1})")]
    UnknownModel(String, String),
    #[error("{model}: config.json: {reason}")]
    Config { model: String, reason: String },
    #[error("{model}: the weights do not fit the graph: {reason}")]
    Weights { model: String, reason: String },
    #[error("{model}: {reason}")]
    Graph { model: String, reason: String },
    #[error(transparent)]
    Version(#[from] VersionError),
}

/// What is wrong with a request's tensors, naming the model, the tensor and the position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportedInputError {
    #[error("model {model} takes {expected} input tensors ({names}); {given} were sent")]
    Count {
        model: String,
        expected: usize,
        given: usize,
        names: String,
    },
    #[error("model {model}: a batch has 1 to {max_batch} rows; this one has {rows}")]
    BatchSize {
        model: String,
        rows: usize,
        max_batch: u32,
    },
    #[error(
        "model {model}, input {tensor}: {len} values is not {rows} rows of {row_len} (shape {shape:?})"
    )]
    Length {
        model: String,
        tensor: String,
        len: usize,
        rows: usize,
        row_len: usize,
        shape: Vec<i64>,
    },
    #[error("model {model}, input {tensor}[{row}][{index}] = {value} is {why}")]
    Value {
        model: String,
        tensor: String,
        row: usize,
        index: usize,
        value: f32,
        why: String,
    },
}

/// A generated burn module behind one call shape: a tensor per graph input, each
/// `[batch, ...]`, in; a tensor per graph output out. build.rs writes the impl for each model.
pub trait Graph: Send + Sync {
    fn run(&self, inputs: Vec<TensorData>, device: &Device) -> Result<Vec<TensorData>, GraphError>;
}

/// What a generated adapter can report.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("the graph takes {expected} inputs, {given} were given")]
    Arity { expected: usize, given: usize },
}

/// A model as build.rs compiled it in.
pub(crate) struct Compiled {
    /// `config.json`'s text (checked against the graph when it was compiled).
    pub config: &'static str,
    /// The weights burn-onnx extracted from the graph (a burnpack), the bundled version.
    pub weights: &'static [u8],
    /// The burn module burn-onnx generated, as text: its hash names the graph.
    pub source: &'static str,
    /// The generated module with `weights` loaded onto a device.
    #[allow(clippy::type_complexity)]
    pub load: fn(&[u8], &Device) -> Result<Box<dyn Graph>, String>,
}

/// Build a generated module's weights from burnpack bytes; shapes are checked as they load.
pub(crate) fn load<M>(mut model: M, weights: &[u8]) -> Result<Box<dyn Graph>, String>
where
    M: Module + Graph + 'static,
{
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(weights.to_vec())));
    let result = model.load_from(&mut store).map_err(|e| e.to_string())?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(format!(
            "errors {:?}, missing tensors {:?}",
            result.errors, result.missing
        ));
    }
    Ok(Box::new(model))
}

mod generated {
    include!(concat!(env!("OUT_DIR"), "/models.rs"));
}

fn parse(compiled: &Compiled) -> Result<ModelConfig, ImportedError> {
    serde_json::from_str(compiled.config).map_err(|e| ImportedError::Config {
        model: "?".into(),
        reason: e.to_string(),
    })
}

/// The configs of every model compiled into this binary, in the repository's order.
pub fn catalogue() -> Result<Vec<ModelConfig>, ImportedError> {
    generated::COMPILED.iter().map(parse).collect()
}

fn compiled(name: &str) -> Result<(&'static Compiled, ModelConfig), ImportedError> {
    let mut names = Vec::new();
    for compiled in generated::COMPILED {
        let config = parse(compiled)?;
        if config.name == name {
            return Ok((compiled, config));
        }
        names.push(config.name);
    }
    Err(ImportedError::UnknownModel(name.into(), names.join(", ")))
}

/// The fingerprint of the graph compiled in for `name`: sha256 of the burn module burn-onnx
/// generated for it, less the first line (a comment naming the file's path). Weights made for
/// the same graph carry it in their manifest.
pub fn graph_sha256(name: &str) -> Result<String, ImportedError> {
    let (compiled, _) = compiled(name)?;
    Ok(fingerprint(compiled.source))
}

/// The fingerprint of a burn module burn-onnx generated ([`graph_sha256`]), from its text.
pub fn fingerprint(source: &str) -> String {
    let body = source.split_once('\n').map_or("", |(_, rest)| rest);
    sha256_hex(body.as_bytes())
}

/// Where a model's weights came from.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightsOrigin {
    /// Extracted from the graph at build time and embedded in the binary.
    Bundled,
    /// A version directory's file, read at start.
    File(std::path::PathBuf),
}

impl std::fmt::Display for WeightsOrigin {
    /// `bundled`, or the file's path: what `/v1/models` and the start-up log show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bundled => f.write_str("bundled"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A version of a model that can be loaded: the bundled weights (`config.json`'s version) or a
/// version directory, which wins over the bundled weights of the same version.
#[derive(Debug, Clone, PartialEq)]
pub struct Available {
    pub version: semver::Version,
    /// `None`: the bundled weights.
    pub dir: Option<WeightsVersion>,
    /// Size of the weights file: what loading it adds to the server's memory, give or take
    /// the graph's working buffers.
    pub weights_bytes: u64,
}

/// Every version of `name` there is to load, lowest first: the bundled one and each version
/// directory under `<repository>/<name>/`. Reading a directory is checked as
/// [`crate::versions::versions`] checks it; the weights are not read yet.
pub fn available(name: &str, repository: &Path) -> Result<Vec<Available>, ImportedError> {
    let (compiled, config) = compiled(name)?;
    let mut found: Vec<Available> = Vec::new();
    if let Ok(version) = semver::Version::parse(&config.version) {
        found.push(Available {
            version,
            dir: None,
            weights_bytes: compiled.weights.len() as u64,
        });
    }
    for dir in versions(repository, name)? {
        let weights_bytes = std::fs::metadata(dir.weights_path()).map_or(0, |m| m.len());
        found.retain(|a| a.version != dir.version);
        found.push(Available {
            version: dir.version.clone(),
            dir: Some(dir),
            weights_bytes,
        });
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(found)
}

/// A compiled-in model with its weights on a device.
pub struct ImportedModel {
    /// The compiled-in config, its `version` the one of the weights loaded.
    config: ModelConfig,
    graph: Box<dyn Graph>,
    device: Device,
    origin: WeightsOrigin,
    weights_sha256: String,
    weights_bytes: u64,
}

impl std::fmt::Debug for ImportedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedModel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ImportedModel {
    /// The model `name` with the weights bundled at build time.
    pub fn load(name: &str, device: &Device) -> Result<Self, ImportedError> {
        let (compiled, config) = compiled(name)?;
        Self::with_weights(
            compiled,
            config,
            compiled.weights,
            WeightsOrigin::Bundled,
            device,
        )
    }

    /// The model `name` with its newest weights: the highest version directory under
    /// `<repository>/<name>/` when it is at least the bundled version (`config.json`'s), the
    /// bundled weights otherwise. A version directory that cannot be read, whose sha256 or graph
    /// is not its manifest's, or whose tensors do not fit the graph is an error naming the file.
    pub fn load_newest(
        name: &str,
        repository: &Path,
        device: &Device,
    ) -> Result<Self, ImportedError> {
        let (compiled, config) = compiled(name)?;
        let newest = versions(repository, name)?.pop();
        let bundled = semver::Version::parse(&config.version).ok();
        match newest {
            Some(version) if bundled.as_ref().is_none_or(|b| version.version >= *b) => {
                Self::with_version(compiled, config, &version, device)
            }
            _ => Self::with_weights(
                compiled,
                config,
                compiled.weights,
                WeightsOrigin::Bundled,
                device,
            ),
        }
    }

    /// The model `name` with the weights of one of its [`available`] versions.
    pub fn load_available(
        name: &str,
        version: &Available,
        device: &Device,
    ) -> Result<Self, ImportedError> {
        let (compiled, config) = compiled(name)?;
        match &version.dir {
            Some(dir) => Self::with_version(compiled, config, dir, device),
            None => Self::with_weights(
                compiled,
                config,
                compiled.weights,
                WeightsOrigin::Bundled,
                device,
            ),
        }
    }

    /// The model `name` with the weights of one version directory.
    pub fn load_version(
        name: &str,
        version: &WeightsVersion,
        device: &Device,
    ) -> Result<Self, ImportedError> {
        let (compiled, config) = compiled(name)?;
        Self::with_version(compiled, config, version, device)
    }

    fn with_version(
        compiled: &Compiled,
        mut config: ModelConfig,
        version: &WeightsVersion,
        device: &Device,
    ) -> Result<Self, ImportedError> {
        let bytes = version.read(&fingerprint(compiled.source))?;
        config.version = version.version.to_string();
        let origin = WeightsOrigin::File(version.weights_path());
        Self::with_weights(compiled, config, &bytes, origin, device)
    }

    fn with_weights(
        compiled: &Compiled,
        config: ModelConfig,
        weights: &[u8],
        origin: WeightsOrigin,
        device: &Device,
    ) -> Result<Self, ImportedError> {
        let graph = (compiled.load)(weights, device).map_err(|reason| ImportedError::Weights {
            model: config.name.clone(),
            reason: match &origin {
                WeightsOrigin::Bundled => reason,
                WeightsOrigin::File(path) => format!("{}: {reason}", path.display()),
            },
        })?;
        Ok(Self {
            config,
            graph,
            device: device.clone(),
            origin,
            weights_sha256: sha256_hex(weights),
            weights_bytes: weights.len() as u64,
        })
    }

    /// Where the weights came from.
    pub fn weights_origin(&self) -> &WeightsOrigin {
        &self.origin
    }

    /// sha256 of the weights loaded (the burnpack's bytes).
    pub fn weights_sha256(&self) -> &str {
        &self.weights_sha256
    }

    /// Size of the weights loaded, in bytes.
    pub fn weights_bytes(&self) -> u64 {
        self.weights_bytes
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Check a request's tensors: one per input, in the config's order, each `rows` rows of
    /// its row length, every value finite and inside the input's range.
    pub fn check(&self, inputs: &[&[f32]], rows: usize) -> Result<(), ImportedInputError> {
        let model = || self.config.name.clone();
        if inputs.len() != self.config.inputs.len() {
            return Err(ImportedInputError::Count {
                model: model(),
                expected: self.config.inputs.len(),
                given: inputs.len(),
                names: self
                    .config
                    .inputs
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if rows == 0 || rows > self.config.max_batch as usize {
            return Err(ImportedInputError::BatchSize {
                model: model(),
                rows,
                max_batch: self.config.max_batch,
            });
        }
        for (spec, values) in self.config.inputs.iter().zip(inputs) {
            let row_len = spec.row_len();
            if rows.checked_mul(row_len) != Some(values.len()) {
                return Err(ImportedInputError::Length {
                    model: model(),
                    tensor: spec.name.clone(),
                    len: values.len(),
                    rows,
                    row_len,
                    shape: spec.shape.clone(),
                });
            }
            let bad = values.iter().enumerate().find_map(|(i, &v)| {
                let why = if !v.is_finite() {
                    "not a finite number".to_string()
                } else if spec.min.is_some_and(|min| f64::from(v) < min) {
                    format!("below the input's minimum {}", spec.min.unwrap_or_default())
                } else if spec.max.is_some_and(|max| f64::from(v) > max) {
                    format!("above the input's maximum {}", spec.max.unwrap_or_default())
                } else {
                    return None;
                };
                Some((i, v, why))
            });
            if let Some((i, value, why)) = bad {
                return Err(ImportedInputError::Value {
                    model: model(),
                    tensor: spec.name.clone(),
                    row: i / row_len.max(1),
                    index: i % row_len.max(1),
                    value,
                    why,
                });
            }
        }
        Ok(())
    }

    /// One forward pass over `rows` rows: the inputs are checked ([`Self::check`]), and each
    /// output comes back flat, `rows` × its row length.
    pub fn infer(&self, inputs: &[&[f32]], rows: usize) -> Result<Vec<Vec<f32>>, InferError> {
        self.check(inputs, rows)?;
        let tensors = self
            .config
            .inputs
            .iter()
            .zip(inputs)
            .map(|(spec, values)| {
                let mut shape = vec![rows];
                shape.extend(spec.shape.iter().skip(1).map(|&d| d as usize));
                TensorData::new(values.to_vec(), shape)
            })
            .collect();
        let outputs = self
            .graph
            .run(tensors, &self.device)
            .map_err(|e| InferError::Graph(e.to_string()))?;
        outputs
            .into_iter()
            .zip(&self.config.outputs)
            .map(|(data, spec)| {
                let values: Vec<f32> = data
                    .convert::<f32>()
                    .try_into_vec()
                    .map_err(|e| InferError::Readback(format!("{e:?}")))?;
                if values.len() != rows * spec.row_len() {
                    return Err(InferError::Readback(format!(
                        "output {} has {} values for {rows} rows of {}",
                        spec.name,
                        values.len(),
                        spec.row_len()
                    )));
                }
                Ok(values)
            })
            .collect()
    }
}

/// Why a forward pass gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    #[error(transparent)]
    Input(#[from] ImportedInputError),
    #[error("the graph failed: {0}")]
    Graph(String),
    #[error("reading the outputs failed: {0}")]
    Readback(String),
}

/// Rows out of batched tensors: row `r` is every tensor's `r`-th row (`widths[i]` values of
/// tensor `i`), joined in the tensors' order. How a batch's inputs become requests' rows and a
/// batch's outputs become answers; a tensor shorter than `rows` gives empty parts, not a panic.
pub fn join_rows(tensors: &[Vec<f32>], widths: &[usize], rows: usize) -> Vec<Box<[f32]>> {
    (0..rows)
        .map(|r| {
            tensors
                .iter()
                .zip(widths)
                .flat_map(|(values, &w)| values.get(r * w..(r + 1) * w).unwrap_or_default())
                .copied()
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod join_rows_tests {
    use super::join_rows;

    #[test]
    fn each_row_takes_its_slice_of_every_tensor_in_order() {
        let tensors = vec![vec![1.0, 2.0, 3.0, 4.0], vec![10.0, 20.0]];
        let rows = join_rows(&tensors, &[2, 1], 2);
        assert_eq!(rows, [[1.0, 2.0, 10.0].into(), [3.0, 4.0, 20.0].into()]);
        // A short tensor gives nothing for the rows it lacks.
        let rows = join_rows(&tensors, &[2, 1], 3);
        assert!(rows[2].is_empty(), "{rows:?}");
    }
}
