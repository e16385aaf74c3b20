//! The UCI optical digits (8×8) data set as the project ships it (`tests/data/digits.csv.gz`),
//! and the fixed, seeded 80/20 split that training and the accuracy gate share.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use ember_model::{Classifier, ForwardError, argmax};
use ember_model::{INPUT_LEN, NUM_CLASSES, PIXEL_MAX};

/// Where the data set lives in the repository.
pub const DEFAULT_PATH: &str = "tests/data/digits.csv.gz";
/// Seed of the train/held-out split (and of training itself unless overridden).
pub const SPLIT_SEED: u64 = 42;
/// Share of the rows held out for evaluation.
pub const HELD_OUT_FRACTION: f64 = 0.2;

/// One labelled image.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub pixels: [f32; INPUT_LEN],
    pub label: usize,
}

/// Why the data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: not a readable gzip'd CSV: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Row {
        path: std::path::PathBuf,
        line: usize,
        reason: RowError,
    },
}

/// What is wrong with one CSV row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("expected {expected} columns, found {found}", expected = INPUT_LEN + 1)]
    Columns { found: usize },
    #[error("pixel outside 0..=16")]
    Pixel,
    #[error("label {0} is not a digit")]
    Label(f32),
}

/// Read a gzip'd CSV of 64 pixel columns and a label column.
pub fn load(path: &Path) -> Result<Vec<Sample>, DatasetError> {
    let read_err = |source| DatasetError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            parse_row(line).map_err(|reason| DatasetError::Row {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            })
        })
        .collect()
}

fn parse_row(line: &str) -> Result<Sample, RowError> {
    let values: Vec<f32> = line
        .split(',')
        .map(|v| {
            v.trim()
                .parse::<f32>()
                .map_err(|_| RowError::NotANumber(v.to_string()))
        })
        .collect::<Result<_, _>>()?;
    if values.len() != INPUT_LEN + 1 {
        return Err(RowError::Columns {
            found: values.len(),
        });
    }
    let mut pixels = [0.0; INPUT_LEN];
    pixels.copy_from_slice(&values[..INPUT_LEN]);
    if pixels.iter().any(|p| !(0.0..=PIXEL_MAX).contains(p)) {
        return Err(RowError::Pixel);
    }
    let label = values[INPUT_LEN];
    if label.fract() != 0.0 || !(0.0..NUM_CLASSES as f32).contains(&label) {
        return Err(RowError::Label(label));
    }
    Ok(Sample {
        pixels,
        label: label as usize,
    })
}

/// Shuffle with `seed` and split into (train, held-out), the held-out part being 20 %.
pub fn split(mut samples: Vec<Sample>, seed: u64) -> (Vec<Sample>, Vec<Sample>) {
    samples.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let held_out = (samples.len() as f64 * HELD_OUT_FRACTION).round() as usize;
    let train = samples.split_off(held_out);
    (train, samples)
}

/// Share of `samples` the classifier labels correctly (one forward pass per 256 samples); 0 for
/// no samples.
pub fn accuracy(classifier: &Classifier, samples: &[Sample]) -> Result<f64, ForwardError> {
    if samples.is_empty() {
        return Ok(0.0);
    }
    let mut correct = 0usize;
    for chunk in samples.chunks(256) {
        let rows: Vec<_> = chunk.iter().map(|s| s.pixels).collect();
        let probs = classifier.probabilities(&rows)?;
        correct += probs
            .iter()
            .zip(chunk)
            .filter(|(p, s)| argmax(p).0 == s.label)
            .count();
    }
    Ok(correct as f64 / samples.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_row_and_rejects_bad_ones() {
        let row = format!("{},7", vec!["3"; 64].join(","));
        let s = parse_row(&row).unwrap();
        assert_eq!(s.label, 7);
        assert_eq!(s.pixels[63], 3.0);
        assert!(parse_row(&format!("{},7", vec!["17"; 64].join(","))).is_err());
        assert!(parse_row(&format!("{},10", vec!["1"; 64].join(","))).is_err());
        assert!(parse_row("1,2,3").is_err());
    }

    #[test]
    fn split_is_seeded_disjoint_and_80_20() {
        let samples: Vec<Sample> = (0..100)
            .map(|i| Sample {
                pixels: [i as f32 / 10.0; INPUT_LEN],
                label: i % 10,
            })
            .collect();
        let (a_train, a_test) = split(samples.clone(), 1);
        let (b_train, b_test) = split(samples.clone(), 1);
        let (_, c_test) = split(samples, 2);
        assert_eq!((a_train.len(), a_test.len()), (80, 20));
        assert_eq!(a_test, b_test);
        assert_eq!(a_train, b_train);
        assert_ne!(a_test, c_test);
        assert!(a_test.iter().all(|t| !a_train.contains(t)));
    }
}
