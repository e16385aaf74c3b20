//! The messages, client and server generated from `proto/inference.proto` by `build.rs`.
#![allow(clippy::all, missing_docs)]

tonic::include_proto!("inference");

/// The encoded descriptors of `proto/inference.proto`, served by reflection.
pub(crate) const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("inference_descriptor");
