//! The tensors of an inference request and response, whatever carried them: the checks an input
//! must pass before its values become images, what a requested output returns, and each
//! output's values and little-endian bytes.

use super::{Datatype, INPUT_NAME, OutputName};
use crate::inference::Prediction;
use ember_model::{INPUT_LEN, InputError, NUM_CLASSES, input};

/// What is wrong with a request's tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("expected exactly one input named '{INPUT_NAME}', got {0}")]
    InputCount(usize),
    #[error("unknown input '{0}'; this model takes '{INPUT_NAME}' (FP32 [-1, {INPUT_LEN}])")]
    UnknownInput(String),
    #[error("input shape {0:?} must be [batch, {INPUT_LEN}]")]
    Shape(Vec<i64>),
    #[error("input shape {0:?} holds more values than a request can carry")]
    TooLarge(Vec<i64>),
    #[error("datatype {0} is not accepted; use FP32, FP64, INT8..INT64 or UINT8..UINT64")]
    Datatype(String),
    #[error("input data has {have} values but shape {shape:?} needs {need}")]
    Count {
        have: usize,
        shape: Vec<i64>,
        need: usize,
    },
    #[error("{0} data must be integers")]
    NotIntegers(&'static str),
    #[error("FP64 value {0} does not convert to FP32 without loss")]
    Lossy(f64),
    #[error("unknown output '{0}'; this model gives 'probabilities' and 'label'")]
    UnknownOutput(String),
    #[error("classification {0} is out of range: ask for 1 to {NUM_CLASSES} classes")]
    ClassificationRange(i64),
    #[error("classification applies to the 'probabilities' output, not 'label'")]
    ClassificationOfLabel,
    #[error(transparent)]
    Images(#[from] InputError),
}

/// The one input a request sends, as its header describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputHeader {
    /// Images in the batch.
    pub(crate) batch: usize,
    pub datatype: Datatype,
}

impl InputHeader {
    /// Check the input's name, shape and datatype.
    pub fn check(name: &str, shape: &[i64], datatype: &str) -> Result<Self, TensorError> {
        if name != INPUT_NAME {
            return Err(TensorError::UnknownInput(name.to_string()));
        }
        let batch = match shape {
            [n, w] if *w == INPUT_LEN as i64 && *n >= 0 => *n as usize,
            _ => return Err(TensorError::Shape(shape.to_vec())),
        };
        let datatype =
            Datatype::input(datatype).ok_or_else(|| TensorError::Datatype(datatype.to_string()))?;
        // Checked once here, so `values` and `bytes` cannot wrap (a wrapped count once made a
        // batch of 2^58 rows look like one).
        if batch
            .checked_mul(INPUT_LEN)
            .and_then(|n| n.checked_mul(datatype.size()))
            .is_none()
        {
            return Err(TensorError::TooLarge(shape.to_vec()));
        }
        Ok(Self { batch, datatype })
    }

    /// Values the shape holds.
    pub(crate) fn values(&self) -> usize {
        self.batch * INPUT_LEN
    }

    /// Bytes the shape holds in raw (binary) form.
    pub(crate) fn bytes(&self) -> usize {
        self.values() * self.datatype.size()
    }

    /// The images in `values` (row-major, as sent), checked as every surface checks them.
    pub fn images(
        &self,
        values: &[f64],
        max_batch: usize,
    ) -> Result<Vec<[f32; INPUT_LEN]>, TensorError> {
        if values.len() != self.values() {
            return Err(self.wrong_count(values.len()));
        }
        if self.datatype.is_integer() && values.iter().any(|v| v.fract() != 0.0) {
            return Err(TensorError::NotIntegers(self.datatype.as_str()));
        }
        if self.datatype == Datatype::FP64
            && let Some(v) = values
                .iter()
                .find(|v| (**v as f32) as f64 != **v && v.is_finite())
        {
            return Err(TensorError::Lossy(*v));
        }
        Ok(input::images_from_flat(values, max_batch)?)
    }

    /// The error for `have` values where the shape holds another number.
    fn wrong_count(&self, have: usize) -> TensorError {
        TensorError::Count {
            have,
            shape: vec![self.batch as i64, INPUT_LEN as i64],
            need: self.values(),
        }
    }

    /// The images in `raw`, the input's little-endian bytes (binary tensor data, gRPC's
    /// `raw_input_contents`), checked as [`Self::images`] checks decoded values.
    pub fn raw_images(
        &self,
        raw: &[u8],
        max_batch: usize,
    ) -> Result<Vec<[f32; INPUT_LEN]>, TensorError> {
        if raw.len() != self.bytes() {
            return Err(self.wrong_count(raw.len() / self.datatype.size().max(1)));
        }
        let images = match self.datatype {
            Datatype::FP32 => input::images_from_le(raw, max_batch, f32::from_le_bytes),
            Datatype::UINT8 => input::images_from_le(raw, max_batch, |[b]: [u8; 1]| f32::from(b)),
            _ => return self.images(&self.datatype.decode(raw), max_batch),
        };
        Ok(images?)
    }
}

/// What to return for one requested output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputKind {
    /// The tensor itself.
    Tensor,
    /// The classification extension: the top k classes as BYTES strings.
    TopClasses(usize),
}

impl OutputKind {
    /// What `name` returns when the request asks for `classification` classes (or none).
    pub(crate) fn of(name: OutputName, classification: Option<i64>) -> Result<Self, TensorError> {
        match (name, classification) {
            (_, None) => Ok(Self::Tensor),
            (OutputName::Probabilities, Some(k)) if (1..=NUM_CLASSES as i64).contains(&k) => {
                Ok(Self::TopClasses(k as usize))
            }
            (OutputName::Probabilities, Some(k)) => Err(TensorError::ClassificationRange(k)),
            (OutputName::Label, Some(_)) => Err(TensorError::ClassificationOfLabel),
        }
    }
}

/// One output's values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutputValues {
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Strings(Vec<String>),
}

/// One output, ready for either encoding.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EncodedOutput {
    pub(crate) shape: Vec<i64>,
    pub(crate) datatype: Datatype,
    pub(crate) values: OutputValues,
}

impl EncodedOutput {
    /// The output's predictions for `kind`.
    pub(crate) fn new(
        predictions: &[Prediction],
        name: OutputName,
        kind: OutputKind,
        labels: &[String],
    ) -> Self {
        let n = predictions.len() as i64;
        match (name, kind) {
            (OutputName::Label, _) => Self {
                shape: vec![n],
                datatype: name.datatype(),
                values: OutputValues::Int64(predictions.iter().map(|p| p.label as i64).collect()),
            },
            (OutputName::Probabilities, OutputKind::Tensor) => Self {
                shape: vec![n, NUM_CLASSES as i64],
                datatype: name.datatype(),
                values: OutputValues::Fp32(
                    predictions.iter().flat_map(|p| p.probabilities).collect(),
                ),
            },
            (OutputName::Probabilities, OutputKind::TopClasses(k)) => Self {
                shape: vec![n, k as i64],
                datatype: Datatype::BYTES,
                values: OutputValues::Strings(
                    predictions
                        .iter()
                        .flat_map(|p| top_classes(&p.probabilities, k, labels))
                        .collect(),
                ),
            },
        }
    }

    /// The raw form: little-endian elements; BYTES elements each prefixed with their length as a
    /// little-endian u32 (the binary tensor extension's and gRPC's raw contents alike).
    pub(crate) fn bytes(&self) -> Vec<u8> {
        match &self.values {
            OutputValues::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OutputValues::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            OutputValues::Strings(v) => {
                let mut out = Vec::new();
                for s in v {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                out
            }
        }
    }
}

/// The `k` most probable classes as `"<probability>:<index>:<label>"`, most probable first (ties
/// by index), the probability printed as Triton prints it (six decimals).
pub(crate) fn top_classes(probabilities: &[f32], k: usize, labels: &[String]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_input_header_is_checked_before_its_values() {
        assert_eq!(
            InputHeader::check("input", &[2, 64], "UINT8"),
            Ok(InputHeader {
                batch: 2,
                datatype: Datatype::UINT8
            })
        );
        assert_eq!(
            InputHeader::check("pixels", &[1, 64], "FP32"),
            Err(TensorError::UnknownInput("pixels".into()))
        );
        assert_eq!(
            InputHeader::check("input", &[1, 63], "FP32"),
            Err(TensorError::Shape(vec![1, 63]))
        );
        assert_eq!(
            InputHeader::check("input", &[1, 64], "BYTES"),
            Err(TensorError::Datatype("BYTES".into()))
        );
        let header = InputHeader::check("input", &[1, 64], "INT32").unwrap();
        assert_eq!(header.bytes(), 256);
        let mut values = vec![1.0; 64];
        assert!(header.images(&values, 4).is_ok());
        values[3] = 1.5;
        assert_eq!(
            header.images(&values, 4),
            Err(TensorError::NotIntegers("INT32"))
        );
        assert!(matches!(
            header.images(&values[..10], 4),
            Err(TensorError::Count {
                have: 10,
                need: 64,
                ..
            })
        ));
    }

    #[test]
    fn bytes_outputs_are_length_prefixed() {
        let out = EncodedOutput {
            shape: vec![1, 1],
            datatype: Datatype::BYTES,
            values: OutputValues::Strings(vec!["ab".into()]),
        };
        assert_eq!(out.bytes(), [2, 0, 0, 0, b'a', b'b']);
    }
}
