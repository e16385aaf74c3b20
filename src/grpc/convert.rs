//! Between the generated protobuf messages and the protocol's checks and encodings: request
//! tensors (typed `contents` or `raw_input_contents`) in, `raw_output_contents` out, and the
//! model configuration and statistics in Triton's gRPC shape.

use std::collections::HashMap;

use tonic::Status;

use super::pb;
use super::pb::infer_parameter::ParameterChoice;
use crate::inference::Prediction;
use crate::inference::stats::{StatisticsSnapshot, TimedSnapshot};
use crate::inference::{InferenceStatistics, QueueConfig};
use crate::protocol::tensors::{EncodedOutput, InputHeader, OutputKind, TensorError};
use crate::protocol::{self, Datatype, OutputName, protocol_version};
use crate::service::{InstanceGroup, ModelService};
use ember_model::INPUT_LEN;

/// The request's images, checked exactly as REST checks them.
pub(crate) fn images(
    request: &pb::ModelInferRequest,
    max_batch: usize,
) -> Result<Vec<[f32; INPUT_LEN]>, Status> {
    let [input] = request.inputs.as_slice() else {
        return Err(TensorError::InputCount(request.inputs.len()).into());
    };
    let header = InputHeader::check(&input.name, &input.shape, &input.datatype)?;
    let images = match (request.raw_input_contents.as_slice(), &input.contents) {
        ([], Some(contents)) => {
            header.images(&typed_values(contents, header.datatype), max_batch)?
        }
        ([], None) => {
            return Err(Status::invalid_argument(
                "input has neither contents nor raw_input_contents",
            ));
        }
        ([raw], None) => {
            if raw.len() != header.bytes() {
                return Err(Status::invalid_argument(format!(
                    "raw_input_contents[0] has {} bytes but shape {:?} of {} needs {}",
                    raw.len(),
                    input.shape,
                    input.datatype,
                    header.bytes()
                )));
            }
            header.raw_images(raw, max_batch)?
        }
        ([_], Some(_)) => {
            return Err(Status::invalid_argument(
                "input has both contents and raw_input_contents",
            ));
        }
        (raw, _) => {
            return Err(Status::invalid_argument(format!(
                "{} raw_input_contents for 1 input",
                raw.len()
            )));
        }
    };
    Ok(images)
}

/// The values of the `contents` field that carries `datatype`.
pub(super) fn typed_values(contents: &pb::InferTensorContents, datatype: Datatype) -> Vec<f64> {
    fn widen<T: Copy + Into<f64>>(values: &[T]) -> Vec<f64> {
        values.iter().map(|&v| v.into()).collect()
    }
    match datatype {
        Datatype::FP32 => widen(&contents.fp32_contents),
        Datatype::FP64 => contents.fp64_contents.clone(),
        Datatype::INT8 | Datatype::INT16 | Datatype::INT32 => widen(&contents.int_contents),
        Datatype::UINT8 | Datatype::UINT16 | Datatype::UINT32 => widen(&contents.uint_contents),
        // Pixel values are at most 16: anything beyond 2^53 is out of range either way.
        Datatype::INT64 => contents.int64_contents.iter().map(|&v| v as f64).collect(),
        Datatype::UINT64 => contents.uint64_contents.iter().map(|&v| v as f64).collect(),
        Datatype::BYTES => Vec::new(),
    }
}

/// The outputs to return, in order: those asked for, or both tensors when none are named.
pub(crate) fn requested_outputs(
    request: &pb::ModelInferRequest,
) -> Result<Vec<(OutputName, OutputKind)>, Status> {
    if request.outputs.is_empty() {
        return Ok(OutputName::ALL
            .into_iter()
            .map(|name| (name, OutputKind::Tensor))
            .collect());
    }
    request
        .outputs
        .iter()
        .map(|o| {
            let name = OutputName::parse(&o.name)
                .ok_or_else(|| TensorError::UnknownOutput(o.name.clone()))?;
            Ok((name, OutputKind::of(name, classification(o)?)?))
        })
        .collect()
}

/// The classification extension's k, if the output asks for its top classes.
pub(super) fn classification(
    output: &pb::model_infer_request::InferRequestedOutputTensor,
) -> Result<Option<i64>, Status> {
    match output
        .parameters
        .get("classification")
        .and_then(|p| p.parameter_choice.as_ref())
    {
        None => Ok(None),
        Some(ParameterChoice::Int64Param(k)) => Ok(Some(*k)),
        Some(ParameterChoice::Uint64Param(k)) => Ok(Some(i64::try_from(*k).unwrap_or(i64::MAX))),
        Some(_) => Err(Status::invalid_argument(
            "the classification parameter must be an integer",
        )),
    }
}

/// The response: every output's header, and its raw little-endian bytes in the same order.
pub(crate) fn response(
    service: &ModelService,
    id: String,
    predictions: &[Prediction],
    outputs: &[(OutputName, OutputKind)],
) -> pb::ModelInferResponse {
    let mut raw_output_contents = Vec::with_capacity(outputs.len());
    let outputs = outputs
        .iter()
        .map(|&(name, kind)| {
            let encoded = EncodedOutput::new(predictions, name, kind, &service.model.labels);
            raw_output_contents.push(encoded.bytes());
            pb::model_infer_response::InferOutputTensor {
                name: name.as_str().to_string(),
                datatype: encoded.datatype.as_str().to_string(),
                shape: encoded.shape,
                parameters: HashMap::new(),
                contents: None,
            }
        })
        .collect();
    pb::ModelInferResponse {
        model_name: service.model.name.clone(),
        model_version: protocol_version(&service.model.version).to_string(),
        id,
        parameters: HashMap::new(),
        outputs,
        raw_output_contents,
    }
}

/// Inputs and outputs with their datatypes and shapes (`-1`: any batch size).
pub(crate) fn metadata(service: &ModelService) -> pb::ModelMetadataResponse {
    let tensor = |t: protocol::TensorDescription| pb::model_metadata_response::TensorMetadata {
        name: t.name.into(),
        datatype: t.datatype.as_str().into(),
        shape: t.shape,
    };
    let model = &service.model;
    pb::ModelMetadataResponse {
        name: model.name.clone(),
        versions: vec![protocol_version(&model.version).to_string()],
        platform: format!("burn_{}", model.backend),
        inputs: protocol::inputs().into_iter().map(tensor).collect(),
        outputs: protocol::outputs().into_iter().map(tensor).collect(),
    }
}

fn data_type(datatype: Datatype) -> i32 {
    pb::DataType::from_str_name(&datatype.config_name()).map_or(0, |t| t as i32)
}

/// The model's configuration in Triton's terms, with this server's real batching settings (the
/// same content as REST's `/config`).
pub(crate) fn config(service: &ModelService) -> pb::ModelConfig {
    let model = &service.model;
    let queue = service.queue.config();
    let parameter = |value: &str| pb::ModelParameter {
        string_value: value.to_string(),
    };
    let labels = serde_json::to_string(&model.labels).unwrap_or_default();
    pb::ModelConfig {
        name: model.name.clone(),
        platform: String::new(),
        backend: "burn".into(),
        max_batch_size: i32::try_from(model.max_batch_size).unwrap_or(i32::MAX),
        input: protocol::inputs()
            .into_iter()
            .map(|t| {
                let (dims, reshape) = t.config_dims();
                pb::ModelInput {
                    name: t.name.into(),
                    data_type: data_type(t.datatype),
                    dims,
                    reshape: reshape.map(|shape| pb::ModelTensorReshape { shape }),
                }
            })
            .collect(),
        output: protocol::outputs()
            .into_iter()
            .map(|t| {
                let (dims, reshape) = t.config_dims();
                pb::ModelOutput {
                    name: t.name.into(),
                    data_type: data_type(t.datatype),
                    dims,
                    reshape: reshape.map(|shape| pb::ModelTensorReshape { shape }),
                }
            })
            .collect(),
        instance_group: instance_groups(service.instance_groups()),
        parameters: HashMap::from([
            ("labels".to_string(), parameter(&labels)),
            ("burn_backend".to_string(), parameter(&model.backend)),
            ("device".to_string(), parameter(&model.device)),
            ("model_version".to_string(), parameter(&model.version)),
            (
                "weights_sha256".to_string(),
                parameter(&model.weights_sha256),
            ),
        ]),
        scheduling_choice: Some(dynamic_batching(queue)),
    }
}

/// Inference threads by kind, in Triton's terms.
pub(super) fn instance_groups(groups: Vec<InstanceGroup>) -> Vec<pb::ModelInstanceGroup> {
    groups
        .into_iter()
        .map(|g| {
            let kind = if g.gpu {
                pb::model_instance_group::Kind::Gpu
            } else {
                pb::model_instance_group::Kind::Cpu
            };
            pb::ModelInstanceGroup {
                name: g.name,
                count: i32::try_from(g.count).unwrap_or(i32::MAX),
                kind: kind as i32,
            }
        })
        .collect()
}

/// A queue's batching settings, in Triton's terms.
pub(super) fn dynamic_batching(queue: &QueueConfig) -> pb::model_config::SchedulingChoice {
    pb::model_config::SchedulingChoice::DynamicBatching(pb::ModelDynamicBatching {
        preferred_batch_size: queue
            .buckets
            .sizes()
            .iter()
            .map(|&n| i32::try_from(n).unwrap_or(i32::MAX))
            .collect(),
        max_queue_delay_microseconds: queue.batch_wait.as_micros() as u64,
        default_queue_policy: Some(pb::ModelQueuePolicy {
            max_queue_size: u32::try_from(queue.max_queue).unwrap_or(u32::MAX),
        }),
    })
}

fn duration(t: TimedSnapshot) -> Option<pb::StatisticDuration> {
    Some(pb::StatisticDuration {
        count: t.count,
        ns: t.ns,
    })
}

/// Cumulative statistics of one model (REST's `/stats`, in Triton's gRPC shape).
pub(crate) fn statistics(
    name: &str,
    semver: &str,
    statistics: &InferenceStatistics,
) -> pb::ModelStatistics {
    let stats: StatisticsSnapshot = statistics.snapshot();
    pb::ModelStatistics {
        name: name.to_string(),
        version: protocol_version(semver).to_string(),
        last_inference: stats.last_inference_ms,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(pb::InferStatistics {
            success: duration(stats.success),
            fail: duration(stats.fail),
            queue: duration(stats.queue),
            compute_input: duration(stats.compute_input),
            compute_infer: duration(stats.compute_infer),
            compute_output: duration(stats.compute_output),
            cache_hit: duration(TimedSnapshot::default()),
            cache_miss: duration(TimedSnapshot::default()),
        }),
        batch_stats: stats
            .batches
            .into_iter()
            .map(|b| pb::InferBatchStatistics {
                batch_size: b.batch_size as u64,
                compute_input: duration(b.compute_input),
                compute_infer: duration(b.compute_infer),
                compute_output: duration(b.compute_output),
            })
            .collect(),
    }
}
