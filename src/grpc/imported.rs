//! The gRPC operations on a model compiled in from ONNX: requests' typed or raw contents into
//! the protocol's checks (`crate::protocol::imported`), answers into raw output contents, and
//! metadata and configuration from the model's config.

use std::collections::HashMap;

use tonic::Status;

use super::convert::{classification, typed_values};
use super::pb;
use crate::inference::ImportedRow;
use crate::protocol::imported::{self as tensors, OutputChoice, RequestInput, Values};
use crate::protocol::{Datatype, protocol_version};
use crate::service::imported::ImportedService;
use ember_model::TensorConfig;

/// The request's rows, checked as REST checks them.
pub(crate) fn rows(
    model: &ImportedService,
    request: &pb::ModelInferRequest,
) -> Result<Vec<ImportedRow>, Status> {
    let raw = &request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(Status::invalid_argument(format!(
            "{} raw_input_contents for {} inputs",
            raw.len(),
            request.inputs.len()
        )));
    }
    // Typed contents decode to numbers first; they must outlive the borrowed inputs.
    let mut decoded: Vec<Option<Vec<f64>>> = Vec::with_capacity(request.inputs.len());
    for (i, input) in request.inputs.iter().enumerate() {
        decoded.push(match (raw.get(i), &input.contents) {
            (Some(_), Some(_)) => {
                return Err(Status::invalid_argument(format!(
                    "input '{}' has both contents and raw_input_contents",
                    input.name
                )));
            }
            (Some(_), None) => None,
            (None, Some(contents)) => {
                let datatype = Datatype::input(&input.datatype).unwrap_or(Datatype::FP32);
                Some(typed_values(contents, datatype))
            }
            (None, None) => {
                return Err(Status::invalid_argument(format!(
                    "input '{}' has neither contents nor raw_input_contents",
                    input.name
                )));
            }
        });
    }
    let inputs: Vec<RequestInput> = request
        .inputs
        .iter()
        .zip(&decoded)
        .enumerate()
        .map(|(i, (input, numbers))| RequestInput {
            name: &input.name,
            shape: &input.shape,
            datatype: &input.datatype,
            values: match numbers {
                Some(numbers) => Values::Numbers(numbers),
                None => Values::Raw(raw.get(i).map_or(&[][..], Vec::as_slice)),
            },
        })
        .collect();
    Ok(tensors::rows(&model.model, &inputs)?)
}

/// The outputs to return: those asked for, or all of them.
pub(crate) fn requested_outputs(
    model: &ImportedService,
    request: &pb::ModelInferRequest,
) -> Result<Vec<OutputChoice>, Status> {
    let config = model.config();
    if request.outputs.is_empty() {
        return Ok(tensors::all_outputs(config));
    }
    request
        .outputs
        .iter()
        .map(|o| Ok(tensors::output(config, &o.name, classification(o)?)?))
        .collect()
}

/// The response: every requested output's header, and its raw bytes in the same order.
pub(crate) fn response(
    model: &ImportedService,
    id: String,
    answers: &[Box<[f32]>],
    outputs: &[OutputChoice],
) -> pb::ModelInferResponse {
    let config = model.config();
    let mut raw_output_contents = Vec::with_capacity(outputs.len());
    let outputs = outputs
        .iter()
        .map(|&choice| {
            let encoded = tensors::encode(config, answers, choice);
            raw_output_contents.push(encoded.bytes());
            pb::model_infer_response::InferOutputTensor {
                name: config.outputs[choice.index].name.clone(),
                datatype: encoded.datatype.as_str().to_string(),
                shape: encoded.shape,
                parameters: HashMap::new(),
                contents: None,
            }
        })
        .collect();
    pb::ModelInferResponse {
        model_name: config.name.clone(),
        model_version: protocol_version(&config.version).to_string(),
        id,
        // The protocol's version is the major; which version answered, in full.
        parameters: HashMap::from([(
            "model_version".to_string(),
            pb::InferParameter {
                parameter_choice: Some(pb::infer_parameter::ParameterChoice::StringParam(
                    config.version.clone(),
                )),
            },
        )]),
        outputs,
        raw_output_contents,
    }
}

/// Inputs and outputs as the model's config declares them, and the `versions` loaded.
pub(crate) fn metadata(
    model: &ImportedService,
    versions: Vec<String>,
) -> pb::ModelMetadataResponse {
    let config = model.config();
    let tensor = |t: &TensorConfig| pb::model_metadata_response::TensorMetadata {
        name: t.name.clone(),
        datatype: t.datatype.clone(),
        shape: t.shape.clone(),
    };
    pb::ModelMetadataResponse {
        name: config.name.clone(),
        versions,
        platform: format!("burn_{}", model.backend),
        inputs: config.inputs.iter().map(tensor).collect(),
        outputs: config.outputs.iter().map(tensor).collect(),
    }
}

fn data_type(datatype: &str) -> i32 {
    pb::DataType::from_str_name(&format!("TYPE_{datatype}")).map_or(0, |t| t as i32)
}

/// The model's configuration in Triton's terms (REST's `/config`, in gRPC's shape).
pub(crate) fn config(model: &ImportedService) -> pb::ModelConfig {
    let config = model.config();
    let queue = model.queue.config();
    let parameter = |value: &str| pb::ModelParameter {
        string_value: value.to_string(),
    };
    let mut parameters = HashMap::from([
        ("burn_backend".to_string(), parameter(&model.backend)),
        ("device".to_string(), parameter(&model.device)),
        ("model_version".to_string(), parameter(&config.version)),
    ]);
    if let Some(labelled) = config.outputs.iter().find(|t| !t.labels.is_empty()) {
        let labels = serde_json::to_string(&labelled.labels).unwrap_or_default();
        parameters.insert("labels".to_string(), parameter(&labels));
    }
    pb::ModelConfig {
        name: config.name.clone(),
        platform: "onnx".into(),
        backend: "burn".into(),
        max_batch_size: i32::try_from(config.max_batch).unwrap_or(i32::MAX),
        input: config
            .inputs
            .iter()
            .map(|t| pb::ModelInput {
                name: t.name.clone(),
                data_type: data_type(&t.datatype),
                dims: t.shape[1..].to_vec(),
                reshape: None,
            })
            .collect(),
        output: config
            .outputs
            .iter()
            .map(|t| pb::ModelOutput {
                name: t.name.clone(),
                data_type: data_type(&t.datatype),
                dims: t.shape[1..].to_vec(),
                reshape: None,
            })
            .collect(),
        instance_group: super::convert::instance_groups(model.instance_groups()),
        parameters,
        scheduling_choice: Some(super::convert::dynamic_batching(queue)),
    }
}
