//! Generates the gRPC service (`proto/inference.proto`) with a protoc that ships as a crate, so a
//! fresh machine needs nothing installed, and writes the descriptor set that server reflection
//! serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // The client is generic over its channel: the tests bring tonic's transport, the
        // server binary does not.
        .build_transport(false)
        .file_descriptor_set_path(out.join("inference_descriptor.bin"))
        .compile_protos(&["proto/inference.proto"], &["proto"])?;
    Ok(())
}
