//! What an inference thread runs a pass with. The queue, batching, padding, warm-up and
//! statistics are the same for every model; only the rows a request carries, the answer each row
//! gets and the forward pass itself differ. [`Runner`] is that difference, so the hand-written
//! digits classifier and every model compiled in from ONNX share one queue (monomorphised: the
//! digits path pays nothing for it).

use ember_model::imported::{ImportedModel, join_rows};
use ember_model::{Classifier, INPUT_LEN, NUM_CLASSES, argmax, not_a_distribution};

/// One input's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub label: usize,
    pub confidence: f32,
    pub probabilities: [f32; NUM_CLASSES],
}

/// A model as the inference threads see it.
pub trait Runner: Send + Sync + 'static {
    /// One input: what a request's batch holds one of.
    type Row: Clone + Send + 'static;
    /// One input's answer.
    type Answer: Send + 'static;

    /// A row every check accepts: what passes are padded with and the warm-up runs.
    fn padding_row(&self) -> Self::Row;

    /// One forward pass: an answer per row, in order.
    fn run(&self, rows: &[Self::Row]) -> Result<Vec<Self::Answer>, String>;

    /// Why a warm-up answer shows the model is broken (`None`: it looks like an answer).
    fn implausible(&self, answer: &Self::Answer) -> Option<String>;
}

impl Runner for Classifier {
    type Row = [f32; INPUT_LEN];
    type Answer = Prediction;

    fn padding_row(&self) -> Self::Row {
        [0.0; INPUT_LEN]
    }

    fn run(&self, rows: &[Self::Row]) -> Result<Vec<Prediction>, String> {
        let probabilities = self.probabilities(rows).map_err(|e| e.to_string())?;
        Ok(probabilities
            .into_iter()
            .map(|p| {
                let (label, confidence) = argmax(&p);
                Prediction {
                    label,
                    confidence,
                    probabilities: p,
                }
            })
            .collect())
    }

    fn implausible(&self, answer: &Prediction) -> Option<String> {
        not_a_distribution(&answer.probabilities)
            .map(|sum| format!("probabilities sum to {sum}, not 1"))
    }
}

/// A row of an imported model: every input's values for one batch entry, the inputs one after
/// another in the config's order (so a row is one allocation however many inputs there are).
pub type ImportedRow = Box<[f32]>;

impl Runner for ImportedModel {
    type Row = ImportedRow;
    /// Every output's values for one batch entry, the outputs one after another.
    type Answer = Box<[f32]>;

    fn padding_row(&self) -> ImportedRow {
        // Zero where the inputs' ranges allow it, else the nearest value they do.
        self.config()
            .inputs
            .iter()
            .flat_map(|t| {
                let v = t.min.map_or(0.0, |min| min.max(0.0));
                let v = t.max.map_or(v, |max| v.min(max)) as f32;
                std::iter::repeat_n(v, t.row_len())
            })
            .collect()
    }

    fn run(&self, rows: &[ImportedRow]) -> Result<Vec<Box<[f32]>>, String> {
        let config = self.config();
        let mut offset = 0;
        let tensors: Vec<Vec<f32>> = config
            .inputs
            .iter()
            .map(|t| {
                let range = offset..offset + t.row_len();
                offset = range.end;
                rows.iter()
                    .flat_map(|row| row.get(range.clone()).unwrap_or_default())
                    .copied()
                    .collect()
            })
            .collect();
        let slices: Vec<&[f32]> = tensors.iter().map(Vec::as_slice).collect();
        let outputs = self.infer(&slices, rows.len()).map_err(|e| e.to_string())?;
        let widths: Vec<usize> = config.outputs.iter().map(|t| t.row_len()).collect();
        Ok(join_rows(&outputs, &widths, rows.len()))
    }

    fn implausible(&self, answer: &Box<[f32]>) -> Option<String> {
        answer
            .iter()
            .find(|v| !v.is_finite())
            .map(|v| format!("the model answered {v}"))
    }
}
