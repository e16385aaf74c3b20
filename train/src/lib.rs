//! ember-train: how the digits model's weights are made, kept out of the server's build.
//!
//! Training needs burn's autodiff and optimiser, the compressed data set and a seeded shuffle;
//! the server needs none of them. This crate holds the data set and its fixed split (which the
//! test suite's accuracy gate shares) and the `train` binary that writes `weights/`.

pub mod dataset;
pub mod onnx_export;
pub mod weights_version;
