//! ember-model: the model layer of ember-serve, as a crate of its own so the compiler keeps it
//! apart from the server. It holds the network itself, its weights on disk (verified before
//! they are trusted), what an input must look like, and the choice of backend and device.
//!
//! Besides the digits CNN, written by hand, every model directory of the repository
//! (`weights/<name>/`: an ONNX graph and its config) is compiled in by build.rs through
//! burn-onnx ([`imported`]); their weights can be replaced at start by a weights version on disk
//! ([`versions`]).
//!
//! Nothing here knows about HTTP, gRPC, command lines or queues: it depends on burn, serde and
//! a hash, and never on clap, utoipa or axum (they are not in its Cargo.toml, so a `use` of
//! them cannot compile). The server's inference layer drives a [`Classifier`]; training lives
//! in `ember-train`, so the optimiser and the data set stay out of the server's build.

pub mod classifier;
pub mod cnn;
pub mod config;
pub mod dense;
pub mod device;
#[cfg(all(feature = "wgpu", target_os = "linux"))]
pub mod icd;
pub mod imported;
pub mod input;
pub mod versions;
pub mod weights;

/// The device a model runs on, which selects its backend (burn 0.22 carries the backend in it).
pub use burn::tensor::Device;
pub use classifier::{Classifier, ForwardError, argmax, not_a_distribution};
pub use cnn::{DigitCnn, INPUT_LEN, NUM_CLASSES, PIXEL_MAX};
pub use config::{ModelConfig, TensorConfig};
pub use dense::DenseCnn;
pub use device::{DeviceChoice, DeviceError, SelectedDevice};
pub use imported::ImportedModel;
pub use input::InputError;
pub use weights::{Manifest, WeightsError};
