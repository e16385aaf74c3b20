//! The served model: a loaded [`DigitCnn`] bound to its device, turning rows of 64 pixel values
//! into class probabilities, which is all the inference queue needs.
//!
//! It sits above both forms of the network ([`DigitCnn`] as trained, [`DenseCnn`] as lowered for
//! batches) and picks one per pass; neither form knows about the other's caller.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;

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
/// On a CPU backend a pass over one input runs the convolutional form (11 against 13 µs on
/// flex, benches/README.md); from two inputs on the dense form is faster. On a GPU the dense
/// form is folded into 7 kernels against the convolutions' 18, and serves every size. Both
/// compute the same function.
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

    /// The same network on `device` (the CPU lane's copy of a GPU's model, or another GPU
    /// queue's), without reading the weights file again.
    pub fn to_device(&self, device: &Device) -> Self {
        Self::new(self.conv.clone().to_device(device), device.clone())
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
        let logits = if rows.len() == 1 && !self.dense.is_folded() {
            self.conv.forward(to_input(&self.device, rows))
        } else {
            self.dense.forward(self.dense.input(&self.device, rows))
        };
        // The softmax runs here, on ten numbers a row, rather than as the device's last five
        // kernels: on a GPU each launch costs more than the whole softmax does on the host.
        let logits = logits
            .try_into_data()
            .map_err(|e| ForwardError::Readback(format!("{e:?}")))?;
        let flat: Vec<f32> = logits
            .try_to_vec()
            .map_err(|e| ForwardError::Dtype(format!("{e:?}")))?;
        if flat.len() != rows.len() * NUM_CLASSES {
            return Err(ForwardError::Shape {
                values: flat.len(),
                rows: rows.len(),
            });
        }
        Ok(flat.chunks_exact(NUM_CLASSES).map(softmax).collect())
    }
}

/// The probabilities one row of logits stands for (shifted by the largest, so `exp` cannot
/// overflow).
fn softmax(logits: &[f32]) -> [f32; NUM_CLASSES] {
    let largest = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut row = [0.0; NUM_CLASSES];
    for (p, &l) in row.iter_mut().zip(logits) {
        *p = (l - largest).exp();
    }
    let sum: f32 = row.iter().sum();
    row.iter_mut().for_each(|p| *p /= sum);
    row
}

/// The sum of `probs` when it is not 1 within float rounding: the model gave something other
/// than a distribution (what a warm-up checks before readiness turns on).
pub fn not_a_distribution(probs: &[f32; NUM_CLASSES]) -> Option<f32> {
    let sum: f32 = probs.iter().sum();
    (!(0.99..=1.01).contains(&sum)).then_some(sum)
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

#[cfg(test)]
mod tests {
    use burn::tensor::{Tensor, TensorData, activation};

    use super::{NUM_CLASSES, not_a_distribution, softmax};
    use crate::device;

    #[test]
    fn the_host_softmax_is_burns() {
        let dev = device::cpu_backends().remove(0).device;
        let rows = [
            [0.0; NUM_CLASSES],
            [1.0, -2.0, 3.5, 0.0, 80.0, -80.0, 2.0, 2.0, 0.5, -0.5],
            [
                -1e3,
                -1e3 + 1.0,
                -999.0,
                -1e3,
                -1e3,
                -1e3,
                -1e3,
                -1e3,
                -1e3,
                -1e3,
            ],
        ];
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let logits = Tensor::<2>::from_data(TensorData::new(flat, [3, NUM_CLASSES]), &dev);
        let burn: Vec<f32> = activation::softmax(logits, 1)
            .into_data()
            .try_to_vec()
            .unwrap();
        for (row, want) in rows.iter().zip(burn.chunks_exact(NUM_CLASSES)) {
            let got = softmax(row);
            assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{got:?}");
            assert_eq!(not_a_distribution(&got), None);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        }
        assert_eq!(not_a_distribution(&[0.5; NUM_CLASSES]), Some(5.0));
        assert_eq!(not_a_distribution(&[0.0; NUM_CLASSES]), Some(0.0));
    }
}
