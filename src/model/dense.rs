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

/// One convolution + ReLU + 2×2/2 max-pool as four dense maps and a bias.
#[derive(Debug, Clone)]
struct PooledDense {
    /// `[in, out]` for window positions (0,0), (0,1), (1,0), (1,1).
    windows: [Tensor<2>; 4],
    /// `[1, out]`: the convolution's bias per output channel, repeated over the pooled map.
    bias: Tensor<2>,
}

impl PooledDense {
    /// Lower `conv` applied to maps of `[channels, height, width]` (height and width even).
    /// Outputs are laid out `[channel, row, column]` of the pooled map, as a reshape of the
    /// pooled convolution output would be.
    fn lower(conv: &Conv2d, [channels, height, width]: [usize; 3], device: &Device) -> Self {
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
        let window = |k: usize| {
            let w = windows.clone().narrow(0, k, 1).reshape([inputs, outputs]);
            Tensor::from_data(w.into_data(), device)
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
            windows: [window(0), window(1), window(2), window(3)],
            bias,
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [w00, w01, w10, w11] = self.windows.clone().map(|w| x.clone().matmul(w));
        relu(w00.max_pair(w01).max_pair(w10.max_pair(w11)) + self.bias.clone())
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
    /// Lower a trained network on `device` (a few small passes; done once at load).
    pub fn lower(model: &DigitCnn, device: &Device) -> Self {
        Self {
            stage1: PooledDense::lower(&model.conv1, [1, 8, 8], device),
            stage2: PooledDense::lower(&model.conv2, [8, 4, 4], device),
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
        let dense = DenseCnn::lower(&model, &dev).forward(pixels).into_data();
        assert_eq!(conv.shape(), dense.shape());
        let (a, b) = (
            conv.try_to_vec::<f32>().unwrap(),
            dense.try_to_vec::<f32>().unwrap(),
        );
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
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
