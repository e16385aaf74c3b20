//! The model half of the server: the CNN itself, its weights on disk, the digits data it was
//! trained on, and the choice of backend and device it runs on.
//!
//! Nothing here knows about HTTP or queues: [`crate::inference`] drives a [`Classifier`].

pub mod classifier;
pub mod cnn;
pub mod dataset;
pub mod dense;
pub mod device;
#[cfg(all(feature = "wgpu", target_os = "linux"))]
pub mod icd;
pub mod input;
pub mod weights;

pub use classifier::{Classifier, ForwardError, argmax, not_a_distribution};
pub use cnn::{DigitCnn, INPUT_LEN, NUM_CLASSES, PIXEL_MAX};
pub use dense::DenseCnn;
pub use device::{DeviceChoice, DeviceError, SelectedDevice};
pub use input::InputError;
pub use weights::{Manifest, WeightsError};
