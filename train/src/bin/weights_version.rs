//! `cargo run -p ember-train --bin weights-version -- RETRAINED.onnx weights/<model>/<version>`:
//! a new weights version of a compiled-in model, served at the next start without a rebuild.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Make a weights version (<repository>/<model>/<version>/: model.bpk, manifest.json) from a retrained ONNX file of a compiled-in model's graph"
)]
struct Args {
    /// The retrained graph: the same operators and tensor shapes as the model's model.onnx.
    onnx: PathBuf,
    /// The version directory to create, e.g. weights/breast-cancer/1.1.0.
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // burn-onnx installs a DEBUG logger of its own unless one is set: a quiet one is.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    match ember_train::weights_version::make(&args.onnx, &args.dir) {
        Ok(version) => {
            println!(
                "{}: version {} (sha256 {}); the server serves it at its next start",
                version.dir.display(),
                version.version,
                version.manifest.sha256
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weights-version: {e}");
            ExitCode::FAILURE
        }
    }
}
