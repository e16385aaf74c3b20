//! Tensors in and out of the protocol's two encodings: JSON `data` (flat or nested, row-major)
//! and Triton's binary tensor data extension (a JSON header of `Inference-Header-Content-Length`
//! bytes, then each binary tensor's raw little-endian bytes in order).

use serde_json::{Map, Value, json};

pub use super::datatype::Datatype;
use super::error::V2Error;
use super::types::{InferRequest, InputTensor, OutputName, OutputParameters, Tensor};
use crate::inference::Prediction;
use crate::model::{INPUT_LEN, NUM_CLASSES, input};

/// Header naming the length of the JSON part of a binary request or response.
pub const HEADER_LENGTH: &str = "inference-header-content-length";
/// The one input this model takes.
pub const INPUT_NAME: &str = "input";

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

impl OutputName {
    /// The datatype of the output tensor (classification results are BYTES instead).
    pub fn datatype(self) -> Datatype {
        match self {
            Self::Probabilities => Datatype::FP32,
            Self::Label => Datatype::INT64,
        }
    }
}

/// Flatten nested JSON arrays of numbers in row-major order.
fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<(), V2Error> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out)),
        Value::Number(n) => n
            .as_f64()
            .map(|f| out.push(f))
            .ok_or_else(|| V2Error::bad_request(format!("{n} is not a representable number"))),
        other => Err(V2Error::bad_request(format!(
            "input data must be numbers (flat or nested arrays), found {other}"
        ))),
    }
}

fn binary_size(parameters: &Option<Map<String, Value>>) -> Result<Option<usize>, V2Error> {
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
        return Err(V2Error::bad_request(format!(
            "expected exactly one input named '{INPUT_NAME}', got {}",
            request.inputs.len()
        )));
    };
    let InputTensor {
        name,
        shape,
        datatype,
        parameters,
        data,
    } = input;
    if name != INPUT_NAME {
        return Err(V2Error::bad_request(format!(
            "unknown input '{name}'; this model takes '{INPUT_NAME}' (FP32 [-1, {INPUT_LEN}])"
        )));
    }
    let batch = match shape.as_slice() {
        [n, w] if *w == INPUT_LEN as i64 && *n >= 0 => *n as usize,
        _ => {
            return Err(V2Error::bad_request(format!(
                "input shape {shape:?} must be [batch, {INPUT_LEN}]"
            )));
        }
    };
    let dtype = Datatype::input(datatype).ok_or_else(|| {
        V2Error::bad_request(format!(
            "datatype {datatype} is not accepted; use FP32, FP64, INT8..INT64 or UINT8..UINT64"
        ))
    })?;
    let size = dtype.size();
    let expected = batch * INPUT_LEN;
    let values = match (binary_size(parameters)?, data) {
        (Some(_), Some(_)) => {
            return Err(V2Error::bad_request(
                "input has both binary_data_size and data",
            ));
        }
        (Some(n), None) => {
            if n != expected * size {
                return Err(V2Error::bad_request(format!(
                    "binary_data_size {n} does not match shape {shape:?} of {datatype} ({} bytes)",
                    expected * size
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
            dtype.decode(chunk)
        }
        (None, Some(data)) => {
            let mut out = Vec::with_capacity(expected);
            flatten(data, &mut out)?;
            if out.len() != expected {
                return Err(V2Error::bad_request(format!(
                    "input data has {} values but shape {shape:?} needs {expected}",
                    out.len()
                )));
            }
            if dtype.is_integer() && out.iter().any(|v| v.fract() != 0.0) {
                return Err(V2Error::bad_request(format!(
                    "{datatype} data must be integers"
                )));
            }
            out
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
    if dtype == Datatype::FP64
        && let Some(v) = values
            .iter()
            .find(|v| (**v as f32) as f64 != **v && v.is_finite())
    {
        return Err(V2Error::bad_request(format!(
            "FP64 value {v} does not convert to FP32 without loss"
        )));
    }
    Ok(input::images_from_flat(&values, max_batch)?)
}

/// A boolean entry of the request's `parameters`, if present.
fn bool_parameter(parameters: &Option<Map<String, Value>>, key: &str) -> Option<bool> {
    parameters.as_ref()?.get(key)?.as_bool()
}

/// What to return for one requested output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// The tensor itself.
    Tensor,
    /// The classification extension: the top k classes as BYTES strings.
    TopClasses(usize),
}

/// One output to return, and whether it goes after the JSON header in binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedOutput {
    pub name: OutputName,
    pub kind: OutputKind,
    pub binary: bool,
}

/// The outputs to return: those asked for, or both tensors when none are named.
pub fn requested_outputs(request: &InferRequest) -> Result<Vec<RequestedOutput>, V2Error> {
    let default_binary = bool_parameter(&request.parameters, "binary_data_output").unwrap_or(false);
    let Some(outputs) = &request.outputs else {
        return Ok([OutputName::Probabilities, OutputName::Label]
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
            let kind = match (o.name, parameters.classification) {
                (_, None) => OutputKind::Tensor,
                (OutputName::Probabilities, Some(k)) if (1..=NUM_CLASSES as i64).contains(&k) => {
                    OutputKind::TopClasses(k as usize)
                }
                (OutputName::Probabilities, Some(k)) => {
                    return Err(V2Error::bad_request(format!(
                        "classification {k} is out of range: ask for 1 to {NUM_CLASSES} classes"
                    )));
                }
                (OutputName::Label, Some(_)) => {
                    return Err(V2Error::bad_request(
                        "classification applies to the 'probabilities' output, not 'label'",
                    ));
                }
            };
            Ok(RequestedOutput {
                name: o.name,
                kind,
                binary: parameters.binary_data.unwrap_or(default_binary),
            })
        })
        .collect()
}

/// One output's JSON values and its binary encoding (little-endian; BYTES elements each
/// prefixed with their length as a little-endian u32, as the binary tensor extension says).
struct Encoded {
    shape: Vec<i64>,
    datatype: Datatype,
    values: Value,
    bytes: Vec<u8>,
}

fn encode(predictions: &[Prediction], output: &RequestedOutput, labels: &[String]) -> Encoded {
    let n = predictions.len() as i64;
    match (output.name, output.kind) {
        (OutputName::Label, _) => {
            let classes: Vec<i64> = predictions.iter().map(|p| p.label as i64).collect();
            Encoded {
                shape: vec![n],
                datatype: OutputName::Label.datatype(),
                bytes: classes.iter().flat_map(|l| l.to_le_bytes()).collect(),
                values: json!(classes),
            }
        }
        (OutputName::Probabilities, OutputKind::Tensor) => {
            let probs: Vec<f32> = predictions.iter().flat_map(|p| p.probabilities).collect();
            Encoded {
                shape: vec![n, NUM_CLASSES as i64],
                datatype: OutputName::Probabilities.datatype(),
                bytes: probs.iter().flat_map(|p| p.to_le_bytes()).collect(),
                values: json!(probs),
            }
        }
        (OutputName::Probabilities, OutputKind::TopClasses(k)) => {
            let strings: Vec<String> = predictions
                .iter()
                .flat_map(|p| top_classes(&p.probabilities, k, labels))
                .collect();
            let mut bytes = Vec::new();
            for s in &strings {
                bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
                bytes.extend_from_slice(s.as_bytes());
            }
            Encoded {
                shape: vec![n, k as i64],
                datatype: Datatype::BYTES,
                bytes,
                values: json!(strings),
            }
        }
    }
}

/// The `k` most probable classes as `"<probability>:<index>:<label>"`, most probable first (ties
/// by index), the probability printed as Triton prints it (six decimals).
pub fn top_classes(probabilities: &[f32], k: usize, labels: &[String]) -> Vec<String> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| {
        probabilities[b]
            .total_cmp(&probabilities[a])
            .then(a.cmp(&b))
    });
    order
        .into_iter()
        .take(k)
        .map(|i| {
            let label = labels.get(i).map_or_else(|| i.to_string(), Clone::clone);
            format!("{:.6}:{i}:{label}", probabilities[i])
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
            let encoded = encode(predictions, output, labels);
            let mut tensor = Tensor {
                name: output.name.as_str().to_string(),
                shape: encoded.shape,
                datatype: encoded.datatype.as_str().to_string(),
                parameters: None,
                data: None,
            };
            if output.binary {
                let mut p = Map::new();
                p.insert("binary_data_size".into(), json!(encoded.bytes.len()));
                tensor.parameters = Some(p);
                tail.extend_from_slice(&encoded.bytes);
            } else {
                tensor.data = Some(encoded.values);
            }
            tensor
        })
        .collect();
    (outputs, tail)
}

#[cfg(test)]
mod tests {
    use super::top_classes;

    #[test]
    fn top_classes_are_ordered_by_probability_then_index() {
        let labels: Vec<String> = ["zero", "one", "two", "three"].map(String::from).to_vec();
        let probs = [0.1, 0.6, 0.1, 0.2];
        assert_eq!(
            top_classes(&probs, 3, &labels),
            ["0.600000:1:one", "0.200000:3:three", "0.100000:0:zero"]
        );
        assert_eq!(top_classes(&probs, 1, &[]), ["0.600000:1:1"]);
    }
}
