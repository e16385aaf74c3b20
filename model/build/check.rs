//! The checks a model directory must pass before it is compiled in: `config.json` parses, and
//! agrees with `model.onnx` (tensor names and order, datatypes, ranks, fixed dimensions, label
//! counts). Shared by build.rs, which fails the build on any of them, and by the tests, which
//! feed it broken directories. Both include `src/config.rs` as `crate::config`.

use std::path::{Path, PathBuf};

use crate::config::{ModelConfig, TensorConfig};

/// One model that passed every check.
pub struct Checked {
    pub dir: PathBuf,
    pub ident: String,
    pub inputs: Vec<usize>,
    pub outputs: usize,
}

/// Parse the graph and the config and check that they agree.
pub fn check(dir: &Path) -> Result<Checked, String> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid_name {
        return Err("a model directory's name starts with a lowercase letter and has only a-z, 0-9, '-' and '_'".into());
    }
    let onnx = dir.join("model.onnx");
    let config_path = dir.join("config.json");
    if !onnx.is_file() {
        return Err("no model.onnx beside config.json".into());
    }
    let text = std::fs::read_to_string(&config_path).map_err(|e| format!("config.json: {e}"))?;
    let config: ModelConfig =
        serde_json::from_str(&text).map_err(|e| format!("config.json: {e}"))?;
    if config.name != name {
        return Err(format!(
            "config.json names the model {:?}; it must be the directory's name, {name:?}",
            config.name
        ));
    }
    if config.version.is_empty() {
        return Err("config.json: `version` is empty".into());
    }
    if config.max_batch == 0 {
        return Err("config.json: `max_batch` must be at least 1".into());
    }
    if config.instance_count == Some(0) {
        return Err(
            "config.json: `instance_count` must be at least 1 (leave it out for --workers)".into(),
        );
    }
    if let Some(bad) = config
        .preferred_batch_sizes
        .iter()
        .find(|&&b| b == 0 || b > config.max_batch)
    {
        return Err(format!(
            "config.json: preferred batch size {bad} is outside 1..={}",
            config.max_batch
        ));
    }
    let graph = onnx_ir::OnnxGraphBuilder::new()
        .parse_file(&onnx)
        .map_err(|e| format!("model.onnx cannot be imported: {e}"))?;
    // onnx-ir renames tensors after the nodes that make them; the names a client sends are the
    // graph's own, read from the protobuf (inputs that are initializers are weights, not inputs).
    let bytes = std::fs::read(&onnx).map_err(|e| format!("model.onnx: {e}"))?;
    let proto = <onnx_ir::ModelProto as onnx_ir::Message>::parse_from_bytes(&bytes)
        .map_err(|e| format!("model.onnx: {e}"))?;
    let initializers: Vec<&str> = proto
        .graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let input_names: Vec<String> = proto
        .graph
        .input
        .iter()
        .map(|i| i.name.clone())
        .filter(|name| !initializers.contains(&name.as_str()))
        .collect();
    let output_names: Vec<String> = proto.graph.output.iter().map(|o| o.name.clone()).collect();
    let inputs = agree("input", &config.inputs, &input_names, &graph.inputs)?;
    agree("output", &config.outputs, &output_names, &graph.outputs)?;
    for input in &config.inputs {
        if let (Some(min), Some(max)) = (input.min, input.max)
            && min > max
        {
            return Err(format!(
                "config.json: input {:?} has min {min} above max {max}",
                input.name
            ));
        }
        if !input.labels.is_empty() {
            return Err(format!(
                "config.json: input {:?} has labels; only outputs do",
                input.name
            ));
        }
    }
    for output in &config.outputs {
        if output.min.is_some() || output.max.is_some() {
            return Err(format!(
                "config.json: output {:?} has a range; only inputs do",
                output.name
            ));
        }
        let classes = output.shape.iter().skip(1).product::<i64>();
        if !output.labels.is_empty()
            && (output.shape.len() != 2 || output.labels.len() as i64 != classes)
        {
            return Err(format!(
                "config.json: output {:?} has {} labels, but its shape {:?} (the graph's too) is not [-1, {}]",
                output.name,
                output.labels.len(),
                output.shape,
                output.labels.len()
            ));
        }
    }
    Ok(Checked {
        dir: dir.to_path_buf(),
        ident: name.replace('-', "_"),
        inputs,
        outputs: config.outputs.len(),
    })
}

/// The config's tensors against the graph's, in order: name, datatype, rank and every fixed
/// dimension. Returns each tensor's rank.
fn agree(
    kind: &str,
    config: &[TensorConfig],
    graph_names: &[String],
    graph: &[onnx_ir::Argument],
) -> Result<Vec<usize>, String> {
    let names = |c: &[TensorConfig]| c.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    if names(config) != graph_names || graph_names.len() != graph.len() {
        return Err(format!(
            "config.json's {kind}s {:?} are not model.onnx's {graph_names:?} (same names, same order)",
            names(config)
        ));
    }
    let mut ranks = Vec::new();
    for ((tensor, name), arg) in config.iter().zip(graph_names).zip(graph) {
        let onnx_ir::ArgType::Tensor(ty) = &arg.ty else {
            return Err(format!(
                "model.onnx's {kind} {name:?} is not a tensor ({:?})",
                arg.ty
            ));
        };
        let graph_datatype = match ty.dtype {
            onnx_ir::DType::F32 => "FP32",
            other => {
                return Err(format!(
                    "model.onnx's {kind} {name:?} is {other:?}; this server serves FP32 graph {kind}s so far"
                ));
            }
        };
        if tensor.datatype != graph_datatype {
            return Err(format!(
                "config.json's {kind} {:?} is {}, model.onnx's is {graph_datatype}",
                tensor.name, tensor.datatype
            ));
        }
        if tensor.shape.len() != ty.rank || tensor.shape.first() != Some(&-1) {
            return Err(format!(
                "config.json's {kind} {:?} has shape {:?}; model.onnx's has rank {}, and the first dimension is the batch (-1)",
                tensor.name, tensor.shape, ty.rank
            ));
        }
        let fixed = ty.static_shape.clone().unwrap_or_default();
        for (axis, &dim) in tensor.shape.iter().enumerate().skip(1) {
            let graph_dim = fixed.get(axis).copied().flatten();
            if dim < 1 || graph_dim.is_some_and(|g| g as i64 != dim) {
                return Err(format!(
                    "config.json's {kind} {:?} has shape {:?}; model.onnx's is {:?} (dimension {axis})",
                    tensor.name,
                    tensor.shape,
                    fixed
                        .iter()
                        .map(|d| d.map_or(-1, |d| d as i64))
                        .collect::<Vec<_>>()
                ));
            }
        }
        ranks.push(ty.rank);
    }
    Ok(ranks)
}
