//! Tensors in and out of the REST protocol's two encodings: JSON `data` (flat or nested,
//! row-major) and Triton's binary tensor data extension (a JSON header of
//! `Inference-Header-Content-Length` bytes, then each binary tensor's raw little-endian bytes in
//! order). The checks themselves are the protocol's (`crate::protocol::tensors`), shared with gRPC.

use serde_json::{Map, Value, json};

use super::error::V2Error;
use axum::body::Body;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};

use super::types::{InferRequest, InferResponse, InputTensor, OutputParameters, Tensor};
use crate::http::ApiError;
use crate::inference::Prediction;
use crate::protocol::OutputName;
use crate::protocol::tensors::{EncodedOutput, InputHeader, OutputKind, OutputValues, TensorError};
use ember_model::INPUT_LEN;

/// Header naming the length of the JSON part of a binary request or response.
pub(crate) const HEADER_LENGTH: &str = "inference-header-content-length";

/// Split a request body into its JSON header and binary tail.
pub fn split_body<'a>(
    body: &'a [u8],
    header_length: Option<&str>,
) -> Result<(&'a [u8], &'a [u8]), V2Error> {
    let Some(raw) = header_length else {
        return Ok((body, &[]));
    };
    let n: usize = raw.trim().parse().map_err(|_| {
        V2Error::bad_request(format!(
            "Inference-Header-Content-Length {raw:?} is not a byte count"
        ))
    })?;
    if n > body.len() {
        return Err(V2Error::bad_request(format!(
            "Inference-Header-Content-Length is {n} but the body has only {} bytes",
            body.len()
        )));
    }
    Ok(body.split_at(n))
}

pub(super) fn binary_size(
    parameters: &Option<Map<String, Value>>,
) -> Result<Option<usize>, V2Error> {
    match parameters.as_ref().and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| V2Error::bad_request("binary_data_size must be a non-negative integer")),
    }
}

/// The request's rows of 64 pixels, validated exactly as `/v1/predict` validates them.
pub fn decode_inputs(
    request: &InferRequest,
    mut binary: &[u8],
    max_batch: usize,
) -> Result<Vec<[f32; INPUT_LEN]>, V2Error> {
    let [input] = request.inputs.as_slice() else {
        return Err(TensorError::InputCount(request.inputs.len()).into());
    };
    let InputTensor {
        name,
        shape,
        datatype,
        parameters,
        data,
    } = input;
    let header = InputHeader::check(name, shape, datatype)?;
    let images = match (binary_size(parameters)?, data) {
        (Some(_), Some(_)) => {
            return Err(V2Error::bad_request(
                "input has both binary_data_size and data",
            ));
        }
        (Some(n), None) => {
            if n != header.bytes() {
                return Err(V2Error::bad_request(format!(
                    "binary_data_size {n} does not match shape {shape:?} of {datatype} ({} bytes)",
                    header.bytes()
                )));
            }
            if binary.len() < n {
                return Err(V2Error::bad_request(format!(
                    "binary_data_size {n} but only {} bytes follow the JSON header",
                    binary.len()
                )));
            }
            let (chunk, rest) = binary.split_at(n);
            binary = rest;
            header.raw_images(chunk, max_batch)?
        }
        (None, Some(data)) => {
            if let Some(found) = &data.not_a_number {
                return Err(V2Error::bad_request(format!(
                    "input data must be numbers (flat or nested arrays), found {found}"
                )));
            }
            header.images(&data.values, max_batch)?
        }
        (None, None) => {
            return Err(V2Error::bad_request(
                "input has neither data nor binary_data_size",
            ));
        }
    };
    if !binary.is_empty() {
        return Err(V2Error::bad_request(format!(
            "{} bytes after the JSON header belong to no input",
            binary.len()
        )));
    }
    Ok(images)
}

/// A boolean entry of the request's `parameters`, if present.
pub(super) fn bool_parameter(parameters: &Option<Map<String, Value>>, key: &str) -> Option<bool> {
    parameters.as_ref()?.get(key)?.as_bool()
}

/// One output to return, and whether it goes after the JSON header in binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedOutput {
    pub(crate) name: OutputName,
    pub(crate) kind: OutputKind,
    pub(crate) binary: bool,
}

/// The outputs to return: those asked for, or both tensors when none are named.
pub fn requested_outputs(request: &InferRequest) -> Result<Vec<RequestedOutput>, V2Error> {
    let default_binary = bool_parameter(&request.parameters, "binary_data_output").unwrap_or(false);
    let Some(outputs) = &request.outputs else {
        return Ok(OutputName::ALL
            .into_iter()
            .map(|name| RequestedOutput {
                name,
                kind: OutputKind::Tensor,
                binary: default_binary,
            })
            .collect());
    };
    outputs
        .iter()
        .map(|o| {
            let parameters: OutputParameters = match &o.parameters {
                None => OutputParameters::default(),
                Some(map) => serde_json::from_value(Value::Object(map.clone())).map_err(|e| {
                    V2Error::bad_request(format!("parameters of output '{}': {e}", o.name.as_str()))
                })?,
            };
            Ok(RequestedOutput {
                name: o.name,
                kind: OutputKind::of(o.name, parameters.classification)?,
                binary: parameters.binary_data.unwrap_or(default_binary),
            })
        })
        .collect()
}

/// Output tensors (JSON part) and the binary tail that follows them, in output order.
pub fn encode_outputs(
    predictions: &[Prediction],
    requested: &[RequestedOutput],
    labels: &[String],
) -> (Vec<Tensor>, Vec<u8>) {
    let mut tail = Vec::new();
    let outputs = requested
        .iter()
        .map(|output| {
            let encoded = EncodedOutput::new(predictions, output.name, output.kind, labels);
            output_tensor(output.name.as_str(), encoded, output.binary, &mut tail)
        })
        .collect();
    (outputs, tail)
}

/// The answer to an inference: JSON alone, or (when outputs went binary) the JSON header of
/// `Inference-Header-Content-Length` bytes followed by `tail`.
pub(crate) fn respond(response: &InferResponse, tail: Vec<u8>) -> Result<Response, V2Error> {
    let json = serde_json::to_vec(response)
        .map_err(|e| V2Error::from(ApiError::internal(format!("encoding the response: {e}"))))?;
    if tail.is_empty() {
        return Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response());
    }
    let json_len = json.len();
    let mut bytes = json;
    bytes.extend_from_slice(&tail);
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (HeaderName::from_static(HEADER_LENGTH), json_len.to_string()),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// One output's JSON tensor: its values in `data`, or (`binary`) its bytes appended to `tail`.
pub(super) fn output_tensor(
    name: &str,
    encoded: EncodedOutput,
    binary: bool,
    tail: &mut Vec<u8>,
) -> Tensor {
    let mut tensor = Tensor {
        name: name.to_string(),
        shape: encoded.shape.clone(),
        datatype: encoded.datatype.as_str().to_string(),
        parameters: None,
        data: None,
    };
    if binary {
        let bytes = encoded.bytes();
        let mut p = Map::new();
        p.insert("binary_data_size".into(), json!(bytes.len()));
        tensor.parameters = Some(p);
        tail.extend_from_slice(&bytes);
    } else {
        tensor.data = Some(match encoded.values {
            OutputValues::Int64(v) => json!(v),
            OutputValues::Fp32(v) => json!(v),
            OutputValues::Strings(v) => json!(v),
        });
    }
    tensor
}
