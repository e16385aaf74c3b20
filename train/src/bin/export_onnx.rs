//! `cargo run -p ember-train --bin export-onnx`: writes the digits model, from the committed
//! weights, as the ONNX graph of `weights/digits-onnx/` (which the build compiles back in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ember_model::{device, weights};

#[derive(Debug, Parser)]
#[command(about = "Export the digits model (raw pixels in, probabilities out) as an ONNX graph")]
struct Args {
    /// The weights directory (digits-cnn.safetensors and its manifest).
    #[arg(long, default_value = "weights")]
    weights: PathBuf,
    /// Where the graph goes.
    #[arg(long, default_value = "weights/digits-onnx/model.onnx")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(cpu) = device::cpu_backends().into_iter().next() else {
        eprintln!("export-onnx: no CPU backend compiled in");
        return ExitCode::FAILURE;
    };
    let model = match weights::load(&args.weights, &cpu.device) {
        Ok(loaded) => loaded.model,
        Err(e) => {
            eprintln!("export-onnx: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = ember_train::onnx_export::export(&model, &cpu.device)
        .map_err(|e| e.to_string())
        .and_then(|onnx| {
            std::fs::write(&args.out, &onnx)
                .map(|()| onnx.len())
                .map_err(|e| format!("{}: {e}", args.out.display()))
        });
    match written {
        Ok(bytes) => {
            println!("{}: {bytes} bytes", args.out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("export-onnx: {e}");
            ExitCode::FAILURE
        }
    }
}
