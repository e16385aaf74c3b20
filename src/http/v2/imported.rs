//! The V2 REST operations on a model compiled in from ONNX: the same answers as the digits
//! model's handlers give, with names, shapes and labels taken from the model's config.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use serde_json::Value;

use super::codec;
use super::error::V2Error;
use super::types::*;
use crate::protocol::imported::{self as tensors, OutputChoice, RequestInput, Values};
use crate::protocol::protocol_version;
use crate::service::imported::ImportedService;
use crate::service::traffic::Shadow;
use ember_model::TensorConfig;

/// Inputs and outputs as the model's config declares them, and the `versions` loaded.
pub(crate) fn metadata(model: &ImportedService, versions: Vec<String>) -> ModelMetadata {
    let config = model.config();
    let tensor = |t: &TensorConfig| TensorMetadata {
        name: t.name.clone(),
        datatype: t.datatype.clone(),
        shape: t.shape.clone(),
    };
    ModelMetadata {
        name: config.name.clone(),
        versions,
        platform: format!("burn_{}", model.backend),
        inputs: config.inputs.iter().map(tensor).collect(),
        outputs: config.outputs.iter().map(tensor).collect(),
    }
}

/// Triton's model configuration of the model, with this server's batching settings.
pub(crate) fn config(model: &ImportedService) -> ModelConfig {
    let config = model.config();
    let queue = model.queue.config();
    let tensor = |t: &TensorConfig| ConfigTensor {
        name: t.name.clone(),
        data_type: format!("TYPE_{}", t.datatype),
        dims: t.shape[1..].to_vec(),
        reshape: None,
    };
    let parameter = |value: String| ConfigParameter {
        string_value: value,
    };
    let mut parameters = BTreeMap::from([
        ("burn_backend".to_string(), parameter(model.backend.clone())),
        ("device".to_string(), parameter(model.device.clone())),
        (
            "model_version".to_string(),
            parameter(config.version.clone()),
        ),
    ]);
    if let Some(labelled) = config.outputs.iter().find(|t| !t.labels.is_empty()) {
        let labels = serde_json::to_string(&labelled.labels).unwrap_or_default();
        parameters.insert("labels".to_string(), parameter(labels));
    }
    ModelConfig {
        name: config.name.clone(),
        platform: "onnx".into(),
        backend: "burn".into(),
        max_batch_size: u64::from(config.max_batch),
        input: config.inputs.iter().map(tensor).collect(),
        output: config.outputs.iter().map(tensor).collect(),
        dynamic_batching: DynamicBatching::of(queue),
        instance_group: model
            .instance_groups()
            .into_iter()
            .map(InstanceGroup::from)
            .collect(),
        parameters,
    }
}

/// Run inference on the model: JSON or binary tensors in, the outputs asked for out.
pub(crate) async fn infer(
    model: &Arc<ImportedService>,
    shadow: Option<Shadow>,
    body: &[u8],
    header_length: Option<&str>,
) -> Result<Response, V2Error> {
    let (json_part, mut binary) = codec::split_body(body, header_length)?;
    let request: ModelInferRequest = serde_json::from_slice(json_part)
        .map_err(|e| V2Error::bad_request(format!("invalid inference request JSON: {e}")))?;
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let values = match (codec::binary_size(&input.parameters)?, &input.data) {
            (Some(_), Some(_)) => {
                return Err(V2Error::bad_request(format!(
                    "input '{}' has both binary_data_size and data",
                    input.name
                )));
            }
            (Some(n), None) => {
                if binary.len() < n {
                    return Err(V2Error::bad_request(format!(
                        "input '{}': binary_data_size {n} but only {} bytes are left after the \
                         JSON header",
                        input.name,
                        binary.len()
                    )));
                }
                let (chunk, rest) = binary.split_at(n);
                binary = rest;
                Values::Raw(chunk)
            }
            (None, Some(data)) => {
                if let Some(found) = &data.not_a_number {
                    return Err(V2Error::bad_request(format!(
                        "input '{}': data must be numbers (flat or nested arrays), found {found}",
                        input.name
                    )));
                }
                Values::Numbers(&data.values)
            }
            (None, None) => {
                return Err(V2Error::bad_request(format!(
                    "input '{}' has neither data nor binary_data_size",
                    input.name
                )));
            }
        };
        inputs.push(RequestInput {
            name: &input.name,
            shape: &input.shape,
            datatype: &input.datatype,
            values,
        });
    }
    if !binary.is_empty() {
        return Err(V2Error::bad_request(format!(
            "{} bytes after the JSON header belong to no input",
            binary.len()
        )));
    }
    let rows = tensors::rows(&model.model, &inputs)?;
    let requested = requested_outputs(model, &request)?;
    let answers = model.predict_shadowed(rows, shadow).await?;
    let config = model.config();
    let mut tail = Vec::new();
    let outputs = requested
        .into_iter()
        .map(|(choice, binary)| {
            let encoded = tensors::encode(config, &answers, choice);
            let name = &config.outputs[choice.index].name;
            codec::output_tensor(name, encoded, binary, &mut tail)
        })
        .collect();
    let response = InferResponse {
        model_name: config.name.clone(),
        model_version: protocol_version(&config.version).to_string(),
        id: request.id,
        // The protocol's version is the major; which version answered, in full.
        parameters: Some(serde_json::Map::from_iter([(
            "model_version".to_string(),
            serde_json::Value::String(config.version.clone()),
        )])),
        outputs,
    };
    codec::respond(&response, tail)
}

/// The outputs to return, each with whether it goes binary: those asked for, or all of them.
fn requested_outputs(
    model: &ImportedService,
    request: &ModelInferRequest,
) -> Result<Vec<(OutputChoice, bool)>, V2Error> {
    let config = model.config();
    let default_binary =
        codec::bool_parameter(&request.parameters, "binary_data_output").unwrap_or(false);
    let Some(outputs) = &request.outputs else {
        return Ok(tensors::all_outputs(config)
            .into_iter()
            .map(|c| (c, default_binary))
            .collect());
    };
    outputs
        .iter()
        .map(|o| {
            let parameters: OutputParameters = match &o.parameters {
                None => OutputParameters::default(),
                Some(map) => serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
                    V2Error::bad_request(format!("parameters of output '{}': {e}", o.name))
                })?,
            };
            let choice = tensors::output(config, &o.name, parameters.classification)?;
            Ok((choice, parameters.binary_data.unwrap_or(default_binary)))
        })
        .collect()
}
