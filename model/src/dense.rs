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
//!
//! On a GPU the same maps are folded further, because there each kernel launch costs more than
//! the arithmetic: with a constant 1 appended to every input, a bias is one more row of the
//! matrix, and a block of zeros beside the four windows makes the max the ReLU too
//! (`relu(max(a, b, c, d)) = max(a, b, c, d, 0)`), so a stage is one multiply and one max.

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use super::cnn::{DigitCnn, INPUT_LEN, PIXEL_MAX, to_input};

/// One convolution + ReLU + 2×2/2 max-pool as four dense maps and a bias: the CPU backends'
/// form, where four small multiplies and three element-wise maxima beat one wide multiply and a
/// strided reduction (11–16 % more rows/s on batches of 64 to 4096, benches/README.md, "GPU").
#[derive(Debug, Clone)]
struct PooledDense {
    /// `[in, out]` maps for window positions (0,0), (0,1), (1,0), (1,1).
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
        let windows = std::array::from_fn(|k| {
            let w = windows.clone().narrow(0, k, 1).reshape([inputs, outputs]);
            Tensor::from_data(w.into_data(), device)
        });
        let bias = match &conv.bias {
            Some(b) => b
                .val()
                .reshape([out_channels, 1])
                .expand([out_channels, rows * cols])
                .reshape([1, outputs]),
            None => Tensor::zeros([1, outputs], device),
        };
        Self { windows, bias }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [w00, w01, w10, w11] = self.windows.clone().map(|w| x.clone().matmul(w));
        relu(w00.max_pair(w01).max_pair(w10.max_pair(w11)) + self.bias.clone())
    }

    /// The stage folded into one `[in′, 5 × out′]` matrix (see [`Folded`]): the four window
    /// maps with the bias as their last input row and a column that carries the constant 1 on,
    /// then a block of zeros, whose max with the windows is the ReLU.
    fn fold(&self, inputs: usize, device: &Device) -> Result<Folded, String> {
        let windows = (self.windows.iter().cloned().map(host)).collect::<Result<Vec<_>, _>>()?;
        let bias = host(self.bias.clone())?;
        let mut maps: Vec<Option<&[f32]>> = windows.iter().map(|w| Some(w.as_slice())).collect();
        maps.push(None);
        Ok(Folded::new(&maps, &bias, inputs, true, device))
    }
}

/// The GPU's form of one layer: a matrix whose inputs end with a constant-1 column, so the bias
/// is a row of the multiply rather than a kernel of its own.
///
/// Each input is `in′` wide: `in` values, the 1, and zeros up to a multiple of four (aligned
/// rows let the multiply load four floats at a time). A layer that feeds another puts its 1
/// back at position `out` of each `out′`-wide block. A ReLU is a block of zeros beside the
/// layer's and a max over the blocks, as a pooling is: on a GPU every kernel launch costs more
/// than this model's arithmetic, and a pass runs 7 kernels this way (a multiply and a max per
/// layer, the last layer's multiply alone) against 16 with burn's bias additions and ReLUs (a
/// compare and a masked fill each), measured with `CUBECL_DEBUG_OPTION=profile` on lavapipe.
#[derive(Debug, Clone)]
struct Folded {
    /// `[in′, blocks × out′]`.
    matrix: Tensor<2>,
    /// Blocks side by side: 5 for a pooled stage (4 windows and the zeros), 2 for a linear
    /// layer and its ReLU, 1 for the last layer.
    blocks: usize,
    /// `out′`: the width of one block, and of what the layer hands on.
    width: usize,
}

/// `tensor`'s values, read back to the host (at load time, to fold them).
fn host<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, String> {
    let data = tensor.try_into_data().map_err(|e| format!("{e:?}"))?;
    data.try_into_vec::<f32>().map_err(|e| format!("{e:?}"))
}

/// `n` rounded up to a multiple of four.
fn aligned(n: usize) -> usize {
    n.next_multiple_of(4)
}

impl Folded {
    /// Fold `maps` (`[inputs, outputs]` each, row-major; `None`: a block of zeros) and `bias`
    /// into one matrix; `carry` puts the constant 1 in each block's column `outputs`.
    fn new(
        maps: &[Option<&[f32]>],
        bias: &[f32],
        inputs: usize,
        carry: bool,
        device: &Device,
    ) -> Self {
        let outputs = bias.len();
        let width = if carry { aligned(outputs + 1) } else { outputs };
        let columns = maps.len() * width;
        let mut matrix = vec![0.0f32; aligned(inputs + 1) * columns];
        for (block, map) in maps.iter().enumerate() {
            let Some(map) = map else { continue };
            let at = |row: usize, col: usize| row * columns + block * width + col;
            for (row, values) in map.chunks_exact(outputs).enumerate() {
                matrix[at(row, 0)..at(row, outputs)].copy_from_slice(values);
            }
            matrix[at(inputs, 0)..at(inputs, outputs)].copy_from_slice(bias);
            if carry {
                matrix[at(inputs, outputs)] = 1.0;
            }
        }
        Self {
            matrix: Tensor::from_data(
                TensorData::new(matrix, [aligned(inputs + 1), columns]),
                device,
            ),
            blocks: maps.len(),
            width,
        }
    }

    /// Fold `linear`: its weight `[in, out]` and bias; `relu` adds the block of zeros.
    fn linear(linear: &Linear, relu: bool, device: &Device) -> Result<Self, String> {
        let weight = linear.weight.val();
        let [inputs, outputs] = weight.dims();
        let weight = host(weight)?;
        let bias = match &linear.bias {
            Some(b) => host(b.val())?,
            None => vec![0.0; outputs],
        };
        let maps: &[Option<&[f32]>] = if relu {
            &[Some(&weight), None]
        } else {
            &[Some(&weight)]
        };
        // A layer followed by a ReLU feeds another, so it carries the 1 on.
        Ok(Self::new(maps, &bias, inputs, relu, device))
    }

    /// The layer's output `[batch, width]`; a pooled stage's max over its blocks.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.matrix.clone());
        if self.blocks == 1 {
            return y;
        }
        let [batch, _] = y.dims();
        y.reshape([batch, self.blocks, self.width])
            .max_dim(1)
            .reshape([batch, self.width])
    }
}

/// [`DigitCnn`] in the form its backend runs fastest.
#[derive(Debug, Clone)]
pub struct DenseCnn {
    form: Form,
}

// One per loaded model, built once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Form {
    /// The CPU backends': two pooled dense stages and the network's two linear layers.
    Separate {
        stage1: PooledDense,
        stage2: PooledDense,
        fc1: Linear,
        fc2: Linear,
    },
    /// A GPU's: four folded matrices, 7 kernels a pass.
    Folded {
        stage1: Folded,
        stage2: Folded,
        fc1: Folded,
        fc2: Folded,
    },
}

impl DenseCnn {
    /// Lower a trained network on `device` (a few small passes; done once at load), in the
    /// form that is faster on its backend.
    pub fn lower(model: &DigitCnn, device: &Device) -> Self {
        Self::lower_as(model, device, launches_kernels(device))
    }

    fn lower_as(model: &DigitCnn, device: &Device, folded: bool) -> Self {
        let stage1 = PooledDense::lower(&model.conv1, [1, 8, 8], device);
        let stage2 = PooledDense::lower(&model.conv2, [8, 4, 4], device);
        if folded {
            match fold(&stage1, &stage2, model, device) {
                Ok(form) => return Self { form },
                // Reading the weights back from the device failed: the separate form is still
                // correct, only slower on a GPU.
                Err(e) => {
                    tracing::warn!(error = %e, "folding the model for the GPU failed; serving it unfolded");
                }
            }
        }
        Self {
            form: Form::Separate {
                stage1,
                stage2,
                fc1: model.fc1.clone(),
                fc2: model.fc2.clone(),
            },
        }
    }

    /// Whether this is the GPU's folded form.
    pub fn is_folded(&self) -> bool {
        matches!(self.form, Form::Folded { .. })
    }

    /// The network's input for `rows` of raw pixel values (0..=16), laid out for this form.
    pub fn input(&self, device: &Device, rows: &[[f32; INPUT_LEN]]) -> Tensor<2> {
        if !self.is_folded() {
            return to_input(device, rows);
        }
        let width = aligned(INPUT_LEN + 1);
        let mut flat = vec![0.0f32; rows.len() * width];
        for (row, out) in rows.iter().zip(flat.chunks_exact_mut(width)) {
            for (o, v) in out.iter_mut().zip(row) {
                *o = v / PIXEL_MAX;
            }
            out[INPUT_LEN] = 1.0;
        }
        Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
    }

    /// Logits `[batch, 10]` for an input made by [`Self::input`], as [`DigitCnn::forward`]
    /// computes them.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        match &self.form {
            Form::Separate {
                stage1,
                stage2,
                fc1,
                fc2,
            } => {
                let x = stage2.forward(stage1.forward(input));
                fc2.forward(relu(fc1.forward(x)))
            }
            Form::Folded {
                stage1,
                stage2,
                fc1,
                fc2,
            } => fc2.forward(fc1.forward(stage2.forward(stage1.forward(input)))),
        }
    }
}

/// The folded form of `model`, from its two pooled stages as lowered.
fn fold(
    stage1: &PooledDense,
    stage2: &PooledDense,
    model: &DigitCnn,
    device: &Device,
) -> Result<Form, String> {
    Ok(Form::Folded {
        stage1: stage1.fold(INPUT_LEN, device)?,
        stage2: stage2.fold(stage1.bias.dims()[1], device)?,
        fc1: Folded::linear(&model.fc1, true, device)?,
        fc2: Folded::linear(&model.fc2, false, device)?,
    })
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
    use crate::cnn::{INPUT_LEN, to_input};
    use crate::{DigitCnn, device};

    /// Largest absolute difference between the convolutional form's logits and each dense
    /// form's (separate and folded, whichever the CPU backend would pick) for `rows` random
    /// images.
    fn worst_difference(seed: u64, rows: usize) -> f32 {
        let dev = device::cpu_backends().remove(0).device;
        dev.seed(seed);
        let model = DigitCnn::new(&dev); // untrained: biases of both signs, no structure
        let pixels: Tensor<2> = Tensor::random(
            [rows, INPUT_LEN],
            burn::tensor::Distribution::Uniform(0.0, 16.0),
            &dev,
        );
        let flat: Vec<f32> = pixels.into_data().try_to_vec().unwrap();
        let images: Vec<[f32; INPUT_LEN]> = flat
            .chunks_exact(INPUT_LEN)
            .map(|row| row.try_into().unwrap())
            .collect();
        let conv = model.forward(to_input(&dev, &images)).into_data();
        let a = conv.try_to_vec::<f32>().unwrap();
        [false, true]
            .into_iter()
            .map(|folded| {
                let form = DenseCnn::lower_as(&model, &dev, folded);
                assert_eq!(form.is_folded(), folded);
                let dense = form.forward(form.input(&dev, &images)).into_data();
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
    fn the_dense_forms_compute_the_same_logits_as_the_convolutions() {
        for seed in [1, 2, 3] {
            let worst = worst_difference(seed, 33);
            assert!(worst < 1e-5, "seed {seed}: logits differ by {worst}");
        }
    }
}
