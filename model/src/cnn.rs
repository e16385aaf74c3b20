//! The digit classifier: a small CNN over 8×8 images with 17 grey levels (0..=16).
//!
//! [`DigitCnn`] is the burn module as trained (`train/src/main.rs`) and stored in the weights
//! file; [`super::Classifier`] is what serves it.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

/// Pixels per image (8×8, row-major).
pub const INPUT_LEN: usize = 64;
/// Number of classes (the digits 0..=9).
pub const NUM_CLASSES: usize = 10;
/// Largest pixel value in the data set: each pixel counts "on" bits in a 4×4 block.
pub const PIXEL_MAX: f32 = 16.0;

/// Two 3×3 convolutions (8 and 16 channels), each followed by a 2×2 max-pool, and two dense
/// layers: 6,058 parameters and ~28 k multiply-adds per image.
///
/// Pooling after each convolution (8×8 → 4×4 → 2×2) keeps the second convolution on a 4×4 map,
/// which is both cheaper and more accurate here than convolving at full resolution.
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
        self.forward_images(pixels.reshape([batch, 1, 8, 8]))
    }

    /// Logits `[batch, 10]` for images `[batch, 1, 8, 8]` already scaled to 0..=1 (the form
    /// burn-onnx's exporter can trace with a dynamic batch: it cannot tell both 8s of a
    /// reshape from 64 apart from the batch).
    pub fn forward_images(&self, images: Tensor<4>) -> Tensor<2> {
        let [batch, ..] = images.dims();
        let x = self.pool.forward(relu(self.conv1.forward(images)));
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
