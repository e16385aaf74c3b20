//! The protocol for models compiled in from ONNX: a request's tensors checked against the
//! model's config (names, shapes, datatypes, then values) and joined into rows, and each answer
//! split back into the outputs a client asked for. REST and gRPC both call these, so a wrong
//! tensor gets the same words from either, naming the model, the tensor and the position.

use super::Datatype;
use super::tensors::{EncodedOutput, OutputValues, top_classes};
use crate::inference::ImportedRow;
use ember_model::imported::{ImportedInputError, ImportedModel, join_rows};
use ember_model::{ModelConfig, TensorConfig};

/// What is wrong with a request's tensors for an imported model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ModelTensorError {
    #[error("model {model} takes {expected} inputs ({names}); {given} were sent")]
    InputCount {
        model: String,
        expected: usize,
        given: usize,
        names: String,
    },
    #[error("model {model} has no input '{name}'; its inputs are {names}")]
    UnknownInput {
        model: String,
        name: String,
        names: String,
    },
    #[error("model {model}: input '{name}' is sent twice")]
    DuplicateInput { model: String, name: String },
    #[error(
        "model {model}, input {tensor}: shape {shape:?} is not {expected:?} (-1: any batch size)"
    )]
    Shape {
        model: String,
        tensor: String,
        shape: Vec<i64>,
        expected: Vec<i64>,
    },
    #[error(
        "model {model}, input {tensor}: shape {shape:?} holds more values than a request can carry"
    )]
    TooLarge {
        model: String,
        tensor: String,
        shape: Vec<i64>,
    },
    #[error(
        "model {model}, input {tensor}: batch {batch} differs from input {first}'s {first_batch}"
    )]
    Batch {
        model: String,
        tensor: String,
        batch: i64,
        first: String,
        first_batch: i64,
    },
    #[error(
        "model {model}, input {tensor}: datatype {datatype} is not accepted; use FP32, FP64, \
         INT8..INT64 or UINT8..UINT64"
    )]
    Datatype {
        model: String,
        tensor: String,
        datatype: String,
    },
    #[error("model {model}, input {tensor}: {have} values, but shape {shape:?} needs {need}")]
    Count {
        model: String,
        tensor: String,
        have: usize,
        shape: Vec<i64>,
        need: usize,
    },
    #[error(
        "model {model}, input {tensor}: {datatype} data must be integers (value {index} is {value})"
    )]
    NotIntegers {
        model: String,
        tensor: String,
        datatype: &'static str,
        index: usize,
        value: f64,
    },
    #[error("model {model} has no output '{name}'; its outputs are {names}")]
    UnknownOutput {
        model: String,
        name: String,
        names: String,
    },
    #[error(
        "model {model}, output {output}: classification {k} is out of range: ask for 1 to {classes} classes"
    )]
    ClassificationRange {
        model: String,
        output: String,
        k: i64,
        classes: usize,
    },
    #[error(transparent)]
    Values(#[from] ImportedInputError),
}

/// An input's values as they arrived.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'a> {
    /// Decoded numbers (JSON `data`, gRPC typed contents).
    Numbers(&'a [f64]),
    /// Little-endian elements of the input's datatype (binary tensor data, gRPC raw contents).
    Raw(&'a [u8]),
}

/// One input tensor of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestInput<'a> {
    pub(crate) name: &'a str,
    pub(crate) shape: &'a [i64],
    pub(crate) datatype: &'a str,
    pub(crate) values: Values<'a>,
}

fn names(tensors: &[TensorConfig]) -> String {
    tensors
        .iter()
        .map(|t| format!("'{}'", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The request's rows: every input checked against `model`'s config and values, then each
/// batch entry's inputs joined in the config's order.
pub(crate) fn rows(
    model: &ImportedModel,
    inputs: &[RequestInput<'_>],
) -> Result<Vec<ImportedRow>, ModelTensorError> {
    let config = model.config();
    let name = || config.name.clone();
    if inputs.len() != config.inputs.len() {
        return Err(ModelTensorError::InputCount {
            model: name(),
            expected: config.inputs.len(),
            given: inputs.len(),
            names: names(&config.inputs),
        });
    }
    // The request's inputs in the config's order.
    let mut ordered: Vec<Option<&RequestInput>> = vec![None; config.inputs.len()];
    for input in inputs {
        let Some(i) = config.inputs.iter().position(|t| t.name == input.name) else {
            return Err(ModelTensorError::UnknownInput {
                model: name(),
                name: input.name.to_string(),
                names: names(&config.inputs),
            });
        };
        if ordered[i].replace(input).is_some() {
            return Err(ModelTensorError::DuplicateInput {
                model: name(),
                name: input.name.to_string(),
            });
        }
    }
    let mut batch: Option<(i64, &str)> = None;
    let mut tensors = Vec::with_capacity(ordered.len());
    for (spec, input) in config.inputs.iter().zip(ordered.into_iter().flatten()) {
        let values = decode(config, spec, input)?;
        let rows = input.shape.first().copied().unwrap_or(0);
        match batch {
            None => batch = Some((rows, input.name)),
            Some((first_batch, first)) if first_batch != rows => {
                return Err(ModelTensorError::Batch {
                    model: name(),
                    tensor: spec.name.clone(),
                    batch: rows,
                    first: first.to_string(),
                    first_batch,
                });
            }
            Some(_) => {}
        }
        tensors.push(values);
    }
    let rows = batch.map_or(0, |(rows, _)| rows as usize);
    let slices: Vec<&[f32]> = tensors.iter().map(Vec::as_slice).collect();
    model.check(&slices, rows)?;
    let widths: Vec<usize> = config.inputs.iter().map(TensorConfig::row_len).collect();
    Ok(join_rows(&tensors, &widths, rows))
}

/// One input's values as FP32, after its shape, datatype and count are checked.
fn decode(
    config: &ModelConfig,
    spec: &TensorConfig,
    input: &RequestInput<'_>,
) -> Result<Vec<f32>, ModelTensorError> {
    let model = || config.name.clone();
    let tensor = || spec.name.clone();
    let fits = input.shape.len() == spec.shape.len()
        && input.shape.first().is_some_and(|&n| n >= 0)
        && input.shape[1..] == spec.shape[1..];
    if !fits {
        return Err(ModelTensorError::Shape {
            model: model(),
            tensor: tensor(),
            shape: input.shape.to_vec(),
            expected: spec.shape.clone(),
        });
    }
    let datatype = Datatype::input(input.datatype).ok_or_else(|| ModelTensorError::Datatype {
        model: model(),
        tensor: tensor(),
        datatype: input.datatype.to_string(),
    })?;
    // Counts and byte lengths are checked here once, so nothing below can wrap.
    let need = input
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
        .filter(|n| n.checked_mul(datatype.size()).is_some())
        .ok_or_else(|| ModelTensorError::TooLarge {
            model: model(),
            tensor: tensor(),
            shape: input.shape.to_vec(),
        })?;
    let count = |have| ModelTensorError::Count {
        model: model(),
        tensor: tensor(),
        have,
        shape: input.shape.to_vec(),
        need,
    };
    let numbers = match input.values {
        Values::Raw(raw) if raw.len() != need * datatype.size() => {
            return Err(count(raw.len() / datatype.size().max(1)));
        }
        // FP32 is the model's own type: no detour through f64.
        Values::Raw(raw) if datatype == Datatype::FP32 => {
            return Ok(raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect());
        }
        Values::Raw(raw) => datatype.decode(raw),
        Values::Numbers(values) if values.len() != need => return Err(count(values.len())),
        Values::Numbers(values) => values.to_vec(),
    };
    if datatype.is_integer()
        && let Some((index, &value)) = numbers.iter().enumerate().find(|(_, v)| v.fract() != 0.0)
    {
        return Err(ModelTensorError::NotIntegers {
            model: model(),
            tensor: tensor(),
            datatype: datatype.as_str(),
            index,
            value,
        });
    }
    // FP64 rounds to the nearest FP32, the model's own type (a value beyond its range becomes
    // infinite, which the value check refuses).
    Ok(numbers.into_iter().map(|v| v as f32).collect())
}

/// One output to return: which of the model's outputs, and whether as its top classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputChoice {
    /// Index into the config's outputs.
    pub(crate) index: usize,
    /// The classification extension's k, if asked for.
    pub(crate) top: Option<usize>,
}

/// The output `name`, with `classification` classes if asked for (any output may be classified:
/// its values' indices stand in for labels it lacks, as in Triton).
pub(crate) fn output(
    config: &ModelConfig,
    name: &str,
    classification: Option<i64>,
) -> Result<OutputChoice, ModelTensorError> {
    let Some(index) = config.outputs.iter().position(|t| t.name == name) else {
        return Err(ModelTensorError::UnknownOutput {
            model: config.name.clone(),
            name: name.to_string(),
            names: names(&config.outputs),
        });
    };
    let classes = config.outputs[index].row_len();
    let top = match classification {
        None => None,
        Some(k) if k >= 1 && k as u64 <= classes as u64 => Some(k as usize),
        Some(k) => {
            return Err(ModelTensorError::ClassificationRange {
                model: config.name.clone(),
                output: name.to_string(),
                k,
                classes,
            });
        }
    };
    Ok(OutputChoice { index, top })
}

/// Every output as a tensor: what a request that names none gets.
pub(crate) fn all_outputs(config: &ModelConfig) -> Vec<OutputChoice> {
    (0..config.outputs.len())
        .map(|index| OutputChoice { index, top: None })
        .collect()
}

/// One requested output of `answers` (one per row, the outputs one after another), ready for
/// either encoding.
pub(crate) fn encode(
    config: &ModelConfig,
    answers: &[Box<[f32]>],
    choice: OutputChoice,
) -> EncodedOutput {
    let offset: usize = config.outputs[..choice.index]
        .iter()
        .map(TensorConfig::row_len)
        .sum();
    let spec = &config.outputs[choice.index];
    let width = spec.row_len();
    let rows = answers
        .iter()
        .map(|a| a.get(offset..offset + width).unwrap_or_default());
    let n = answers.len() as i64;
    match choice.top {
        None => {
            let mut shape = vec![n];
            shape.extend(&spec.shape[1..]);
            EncodedOutput {
                shape,
                datatype: Datatype::FP32,
                values: OutputValues::Fp32(rows.flatten().copied().collect()),
            }
        }
        Some(k) => EncodedOutput {
            shape: vec![n, k as i64],
            datatype: Datatype::BYTES,
            values: OutputValues::Strings(
                rows.flat_map(|values| top_classes(values, k, &spec.labels))
                    .collect(),
            ),
        },
    }
}
