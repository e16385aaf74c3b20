//! The digit classifier: a small CNN over 8×8 images with 17 grey levels (0..=16).
//!
//! [`DigitCnn`] is the burn module (trained by `src/bin/train.rs`); [`Classifier`] wraps a loaded
//! module with its device and turns rows of 64 pixel values into class probabilities, which is
//! all the inference queue needs.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use super::dense::DenseCnn;

/// Pixels per image (8×8, row-major).
pub const INPUT_LEN: usize = 64;
/// Number of classes (the digits 0..=9).
pub const NUM_CLASSES: usize = 10;
/// Largest pixel value in the data set: each pixel counts "on" bits in a 4×4 block.
pub const PIXEL_MAX: f32 = 16.0;

/// Two 3×3 convolutions (8 and 16 channels), each followed by a 2×2 max-pool, and two dense
/// layers: 6,058 parameters and ~28 k multiply-adds per image.
///
/// Pooling after each convolution (8×8 → 4×4 → 2×2) keeps the second convolution on a 4×4 map;
/// model 1.0.0 ran 16→32 channels at full 8×8 resolution, cost 12× more per image and scored
/// lower on the held-out split (98.05 % vs 98.61 %). RUNBOOK.md, "Performance", has both.
#[derive(Module, Debug)]
pub struct DigitCnn {
    pub(super) conv1: Conv2d,
    pub(super) conv2: Conv2d,
    pool: MaxPool2d,
    pub(super) fc1: Linear,
    pub(super) fc2: Linear,
}

impl DigitCnn {
    /// A freshly initialised network on `device` (random weights; seed the device first).
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([1, 8], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            conv2: Conv2dConfig::new([8, 16], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(16 * 2 * 2, 64).init(device),
            fc2: LinearConfig::new(64, NUM_CLASSES).init(device),
        }
    }

    /// Logits `[batch, 10]` for pixels `[batch, 64]` already scaled to 0..=1.
    pub fn forward(&self, pixels: Tensor<2>) -> Tensor<2> {
        let [batch, _] = pixels.dims();
        let x = pixels.reshape([batch, 1, 8, 8]);
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let x = x.reshape([batch, 16 * 2 * 2]);
        let x = relu(self.fc1.forward(x));
        self.fc2.forward(x)
    }
}

/// Scale raw pixel values (0..=16) into the network's input range.
pub fn to_input(device: &Device, rows: &[[f32; INPUT_LEN]]) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flatten().map(|v| v / PIXEL_MAX).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), INPUT_LEN]), device)
}

/// A loaded network bound to the device it runs on, in both of its forms: the convolutional
/// network as trained, and the same network lowered to dense matmuls ([`DenseCnn`]).
///
/// A pass over one input runs the convolutional form: it launches less than half as many
/// kernels, and alone an input is all per-kernel overhead (flex 11 µs vs 13 µs, ndarray 17 µs vs
/// 26 µs). From two inputs on the dense form wins and keeps winning (batch 64: 3.4× on flex,
/// 4.7× on ndarray).
/// Both compute the same function; RUNBOOK.md, "Performance", has the measurements.
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

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Class probabilities for each row, in order. One forward pass for the whole slice.
    ///
    /// Blocks until the device has finished (GPU readback): call it from an inference thread,
    /// never from an async task.
    pub fn probabilities(
        &self,
        rows: &[[f32; INPUT_LEN]],
    ) -> Result<Vec<[f32; NUM_CLASSES]>, String> {
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
            .map_err(|e| format!("reading results from the device failed: {e:?}"))?;
        let flat: Vec<f32> = probs
            .try_to_vec()
            .map_err(|e| format!("unexpected result dtype: {e:?}"))?;
        if flat.len() != rows.len() * NUM_CLASSES {
            return Err(format!(
                "model returned {} values for {} rows",
                flat.len(),
                rows.len()
            ));
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
