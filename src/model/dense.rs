//! The served form of [`DigitCnn`]: every convolution + 2×2 max-pool lowered to dense matmuls.
//!
//! A 3×3 convolution over a map this small is a linear map with a few hundred inputs, and on
//! the CPU backends burn's general convolution and pooling kernels cost far more per image than
//! a matrix multiply of the same map. So at load time each stage is rewritten, once, into four
//! matrices, one per position in the 2×2 pooling window:
//!
//! `pool(relu(conv(x) + b)) = relu(max(x·W₀₀, x·W₀₁, x·W₁₀, x·W₁₁) + b)`
//!
//! (`relu(· + b)` is monotonic, so it commutes with the max). The matrices are not derived by
//! hand: they are the trained convolution applied, without its bias, to every basis image, so
//! the lowering is exact whatever padding or layout burn uses. Only the order of additions
//! differs from the convolution; results agree to float rounding (tested below on untrained
//! networks, and in tests/model.rs on every held-out image on every backend). Training and the
//! weights file keep the convolutional [`DigitCnn`].

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::cnn::DigitCnn;

/// How a stage's four window maps are laid out, for the backend it runs on.
// Two of these per loaded model, built once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Windows {
    /// Four `[in, out]` maps for window positions (0,0), (0,1), (1,0), (1,1): on the CPU
    /// backends four small multiplies and three element-wise maxima beat one wide multiply and a
    /// strided reduction (11–16 % more rows/s on batches of 64 to 4096, benches/README.md, "GPU").
    Separate([Tensor<2>; 4]),
    /// The four side by side, `[in, 4 × out]`: one multiply and one reduction per pass, not
    /// seven kernels, because on a GPU each launch costs more than this model's arithmetic.
    Stacked(Tensor<2>),
}

/// One convolution + ReLU + 2×2/2 max-pool as four dense maps and a bias.
#[derive(Debug, Clone)]
struct PooledDense {
    windows: Windows,
    /// `out`: the width of one window's map.
    outputs: usize,
    /// `[1, out]`: the convolution's bias per output channel, repeated over the pooled map.
    bias: Tensor<2>,
}

impl PooledDense {
    /// Lower `conv` applied to maps of `[channels, height, width]` (height and width even).
    /// Outputs are laid out `[channel, row, column]` of the pooled map, as a reshape of the
    /// pooled convolution output would be.
    fn lower(
        conv: &Conv2d,
        [channels, height, width]: [usize; 3],
        device: &Device,
        stacked: bool,
    ) -> Self {
        let inputs = channels * height * width;
        let basis = Tensor::<2>::eye(inputs, device).reshape([inputs, channels, height, width]);
        let linear_part = Conv2d {
            bias: None,
            ..conv.clone()
        };
        let response = linear_part.forward(basis); // [inputs, out_channels, height, width]
        let [_, out_channels, _, _] = response.dims();
        let (rows, cols) = (height / 2, width / 2);
        let outputs = out_channels * rows * cols;
        // Split each row and column index into (pooled index, position in the window).
        let windows = response
            .reshape([inputs, out_channels, rows, 2, cols, 2])
            .permute([3, 5, 0, 1, 2, 4]) // [dy, dx, inputs, out_channels, rows, cols]
            .reshape([4, inputs, outputs]);
        // Materialised, so every pass multiplies plain row-major matrices, not strided views.
        let windows = if stacked {
            let stacked = windows.permute([1, 0, 2]).reshape([inputs, 4 * outputs]);
            Windows::Stacked(Tensor::from_data(stacked.into_data(), device))
        } else {
            Windows::Separate(std::array::from_fn(|k| {
                let w = windows.clone().narrow(0, k, 1).reshape([inputs, outputs]);
                Tensor::from_data(w.into_data(), device)
            }))
        };
        let bias = match &conv.bias {
            Some(b) => b
                .val()
                .reshape([out_channels, 1])
                .expand([out_channels, rows * cols])
                .reshape([1, outputs]),
            None => Tensor::zeros([1, outputs], device),
        };
        Self {
            windows,
            outputs,
            bias,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let pooled = match &self.windows {
            Windows::Separate(windows) => {
                let [w00, w01, w10, w11] = windows.clone().map(|w| x.clone().matmul(w));
                w00.max_pair(w01).max_pair(w10.max_pair(w11))
            }
            Windows::Stacked(windows) => {
                let [batch, _] = x.dims();
                x.matmul(windows.clone())
                    .reshape([batch, 4, self.outputs])
                    .max_dim(1)
                    .reshape([batch, self.outputs])
            }
        };
        relu(pooled + self.bias.clone())
    }
}

/// [`DigitCnn`] as two pooled dense stages and its two linear layers.
#[derive(Debug, Clone)]
pub struct DenseCnn {
    stage1: PooledDense,
    stage2: PooledDense,
    fc1: Linear,
    fc2: Linear,
}

impl DenseCnn {
    /// Lower a trained network on `device` (a few small passes; done once at load), in the
    /// layout that is faster on its backend.
    pub fn lower(model: &DigitCnn, device: &Device) -> Self {
        Self::lower_as(model, device, launches_kernels(device))
    }

    fn lower_as(model: &DigitCnn, device: &Device, stacked: bool) -> Self {
        Self {
            stage1: PooledDense::lower(&model.conv1, [1, 8, 8], device, stacked),
            stage2: PooledDense::lower(&model.conv2, [8, 4, 4], device, stacked),
            fc1: model.fc1.clone(),
            fc2: model.fc2.clone(),
        }
    }

    /// Logits `[batch, 10]` for pixels `[batch, 64]` already scaled to 0..=1, as
    /// [`DigitCnn::forward`] computes them.
    pub fn forward(&self, pixels: Tensor<2>) -> Tensor<2> {
        let x = self.stage2.forward(self.stage1.forward(pixels));
        self.fc2.forward(relu(self.fc1.forward(x)))
    }
}

/// Whether `device` runs every operation as a launched kernel (a cubecl device: wgpu), rather
/// than on the calling thread (flex, ndarray).
fn launches_kernels(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    {
        device.identity().is_some()
    }
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Tensor;

    use super::DenseCnn;
    use crate::model::{DigitCnn, device};

    /// Largest absolute difference between the two forms' logits for `rows` random images.
    fn worst_difference(seed: u64, rows: usize) -> f32 {
        let dev = device::cpu_backends().remove(0).device;
        dev.seed(seed);
        let model = DigitCnn::new(&dev); // untrained: biases of both signs, no structure
        let pixels: Tensor<2> = Tensor::random(
            [rows, 64],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &dev,
        );
        let conv = model.forward(pixels.clone()).into_data();
        let a = conv.try_to_vec::<f32>().unwrap();
        // Both layouts, whichever the CPU backend would pick.
        [false, true]
            .into_iter()
            .map(|stacked| {
                let dense = DenseCnn::lower_as(&model, &dev, stacked)
                    .forward(pixels.clone())
                    .into_data();
                assert_eq!(conv.shape(), dense.shape());
                let b = dense.try_to_vec::<f32>().unwrap();
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max)
            })
            .fold(0.0, f32::max)
    }

    #[test]
    fn the_dense_form_computes_the_same_logits_as_the_convolutions() {
        for seed in [1, 2, 3] {
            let worst = worst_difference(seed, 33);
            assert!(worst < 1e-5, "seed {seed}: logits differ by {worst}");
        }
    }
}
