//! The digits model as an ONNX graph, so the hand-written network can travel the same road a
//! user's model does: burn-onnx's exporter traces the function the server computes (raw pixels
//! 0..=16 in, class probabilities out) from the committed weights, and the model repository
//! compiles the file back in (`weights/digits-onnx/`), where the tests hold it to the original.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use onnx_ir::{Message, ModelProto};

use ember_model::{DigitCnn, PIXEL_MAX};

/// Pixels per side of an image.
pub const SIDE: usize = 8;

/// The graph's input: `[batch, 8, 8]` images, pixel values 0..=16.
pub const INPUT: &str = "pixels";
/// The graph's output: `[batch, 10]` probabilities of the digits 0..=9.
pub const OUTPUT: &str = "probabilities";

/// Why no graph came out.
#[derive(Debug, thiserror::Error)]
pub enum OnnxExportError {
    #[error("burn-onnx could not export the digits model: {0}")]
    Export(#[from] ExportError),
    #[error("the exported graph does not parse as ONNX: {0}")]
    Parse(String),
    #[error("the exported graph has {inputs} inputs and {outputs} outputs, not one of each")]
    Boundary { inputs: usize, outputs: usize },
}

/// What the server computes for the digits model, as one traceable forward pass: the scaling
/// `to_input` does on the host and the softmax `Classifier` does after readback move into the
/// graph, so a client of the imported model sends and gets what `/v1/predict`'s do.
#[derive(Module, Debug)]
struct Served {
    cnn: DigitCnn,
}

impl Served {
    fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        let images = images.div_scalar(PIXEL_MAX).unsqueeze_dim(1);
        softmax_rows(self.cnn.forward_images(images))
    }
}

/// Softmax over each row, in the operations the exporter lowers (it has no fused softmax; the
/// largest logit comes from `max_dim_with_indices`, the one max reduction it knows).
fn softmax_rows(logits: Tensor<2>) -> Tensor<2> {
    let (largest, _) = logits.clone().max_dim_with_indices(1);
    let exp = (logits - largest).exp();
    let sum = exp.clone().sum_dim(1);
    exp / sum
}

/// The ONNX file of `model` (weights embedded), its batch axis dynamic.
pub fn export(model: &DigitCnn, device: &Device) -> Result<Vec<u8>, OnnxExportError> {
    let served = Served { cnn: model.clone() };
    // Two traces with different batch sizes tell the batch axis apart from the constants.
    let sample = Tensor::<3>::zeros([2, SIDE, SIDE], device);
    let validation = Tensor::<3>::zeros([3, SIDE, SIDE], device);
    let specs = [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
    ])];
    let onnx =
        OnnxExporter::new().export_dynamic(&served, sample, validation, &specs, Served::forward)?;
    name_boundary(onnx.as_bytes())
}

/// The exporter names tensors after their trace ids; the served model's input and output get
/// the names a client sends and reads (and config.json declares).
fn name_boundary(onnx: &[u8]) -> Result<Vec<u8>, OnnxExportError> {
    let mut model =
        ModelProto::parse_from_bytes(onnx).map_err(|e| OnnxExportError::Parse(e.to_string()))?;
    model.producer_name = "ember-train export-onnx (burn-onnx)".into();
    let graph = model.graph.mut_or_insert_default();
    let (inputs, outputs) = (graph.input.len(), graph.output.len());
    if inputs != 1 || outputs != 1 {
        return Err(OnnxExportError::Boundary { inputs, outputs });
    }
    let renames = [
        (
            std::mem::replace(&mut graph.input[0].name, INPUT.into()),
            INPUT,
        ),
        (
            std::mem::replace(&mut graph.output[0].name, OUTPUT.into()),
            OUTPUT,
        ),
    ];
    for node in &mut graph.node {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some((_, new)) = renames.iter().find(|(old, _)| old == name) {
                *name = (*new).into();
            }
        }
    }
    model
        .write_to_bytes()
        .map_err(|e| OnnxExportError::Parse(e.to_string()))
}
