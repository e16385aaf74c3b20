//! The served model: a loaded [`DigitCnn`] bound to its device, turning rows of 64 pixel values
//! into class probabilities, which is all the inference queue needs.
//!
//! It sits above both forms of the network ([`DigitCnn`] as trained, [`DenseCnn`] as lowered for
//! batches) and picks one per pass; neither form knows about the other's caller.

use std::path::Path;

use burn::tensor::Device;
use burn::tensor::activation::softmax;

use super::cnn::{DigitCnn, INPUT_LEN, NUM_CLASSES, to_input};
use super::dense::DenseCnn;
use super::weights::{self, Manifest, WeightsError};

/// Why a forward pass produced no probabilities.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ForwardError {
    #[error("reading results from the device failed: {0}")]
    Readback(String),
    #[error("unexpected result dtype: {0}")]
    Dtype(String),
    #[error("model returned {values} values for {rows} rows")]
    Shape { values: usize, rows: usize },
}

/// A loaded network bound to the device it runs on, in both of its forms.
///
/// A pass over one input runs the convolutional form, which launches fewer kernels (alone, an
/// input is all per-kernel overhead); from two inputs on the dense form is faster. Both compute
/// the same function.
#[derive(Debug)]
pub struct Classifier {
    conv: DigitCnn,
    dense: DenseCnn,
    device: Device,
}

impl Classifier {
    /// Bind `model` to `device` and lower it for batched passes (see [`DenseCnn`]).
    pub fn new(model: DigitCnn, device: Device) -> Self {
        Self {
            dense: DenseCnn::lower(&model, &device),
            conv: model,
            device,
        }
    }

    /// Load and verify the weights in `dir` (see [`weights::load`]) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<(Self, Manifest), WeightsError> {
        let loaded = weights::load(dir, device)?;
        Ok((Self::new(loaded.model, device.clone()), loaded.manifest))
    }

    /// Class probabilities for each row, in order. One forward pass for the whole slice.
    ///
    /// Blocks until the device has finished (GPU readback): call it from an inference thread,
    /// never from an async task.
    pub fn probabilities(
        &self,
        rows: &[[f32; INPUT_LEN]],
    ) -> Result<Vec<[f32; NUM_CLASSES]>, ForwardError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let input = to_input(&self.device, rows);
        let logits = if rows.len() == 1 {
            self.conv.forward(input)
        } else {
            self.dense.forward(input)
        };
        let probs = softmax(logits, 1)
            .try_into_data()
            .map_err(|e| ForwardError::Readback(format!("{e:?}")))?;
        let flat: Vec<f32> = probs
            .try_to_vec()
            .map_err(|e| ForwardError::Dtype(format!("{e:?}")))?;
        if flat.len() != rows.len() * NUM_CLASSES {
            return Err(ForwardError::Shape {
                values: flat.len(),
                rows: rows.len(),
            });
        }
        Ok(flat
            .chunks_exact(NUM_CLASSES)
            .map(|c| {
                let mut row = [0.0; NUM_CLASSES];
                row.copy_from_slice(c);
                row
            })
            .collect())
    }
}

/// Index and value of the largest probability.
pub fn argmax(probs: &[f32; NUM_CLASSES]) -> (usize, f32) {
    probs
        .iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, p)| {
            if p > best.1 { (i, p) } else { best }
        })
}
