//! `cargo run --release -p ember-train`: train the digit CNN with burn's autodiff on the fixed,
//! seeded 80/20 split, evaluate it on the held-out 20 %, and write `weights/` (safetensors +
//! manifest). Same seed, same machine → byte-identical weights.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use clap::Parser;
use ember_model::cnn::to_input;
use ember_model::weights::{self, Manifest, TrainingSettings};
use ember_model::{Classifier, DeviceChoice, DigitCnn, device};
use ember_train::dataset;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Parser)]
#[command(about = "Train the digit CNN and write weights/ (safetensors + manifest.json)")]
struct Args {
    /// The gzip'd digits CSV.
    #[arg(long, default_value = dataset::DEFAULT_PATH)]
    data: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "weights")]
    out: PathBuf,
    /// Seed for the split, the initial weights and the batch order.
    #[arg(long, default_value_t = dataset::SPLIT_SEED)]
    seed: u64,
    #[arg(long, default_value_t = 60)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Semantic version written into the manifest.
    #[arg(long, default_value = "2.0.0")]
    model_version: String,
}

fn main() -> ExitCode {
    match train(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let samples = dataset::load(&args.data)?;
    let (train, held_out) = dataset::split(samples, args.seed);
    let cpu = device::select(DeviceChoice::Cpu)?;
    let device = cpu.device.clone().autodiff();
    device.seed(args.seed);

    let mut model = DigitCnn::new(&device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    for epoch in 1..=args.epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0f64;
        for batch in order.chunks(args.batch_size) {
            let rows: Vec<_> = batch.iter().map(|&i| train[i].pixels).collect();
            let labels: Vec<i64> = batch.iter().map(|&i| train[i].label as i64).collect();
            let targets =
                Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.len()]), &device);
            let loss = loss_fn.forward(model.forward(to_input(&device, &rows)), targets);
            total += loss
                .clone()
                .try_into_data()
                .ok()
                .and_then(|d| d.try_to_vec::<f32>().ok())
                .and_then(|v| v.first().copied())
                .unwrap_or(f32::NAN) as f64
                * batch.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(args.learning_rate, model, grads);
        }
        eprintln!(
            "epoch {epoch:>3}/{}: mean loss {:.4}",
            args.epochs,
            total / train.len() as f64
        );
    }

    // Evaluate exactly as the server will run it: from the serialized bytes, on a plain device.
    let bytes = weights::to_safetensors(&model)?;
    let mut eval_model = DigitCnn::new(&cpu.device);
    {
        use burn::store::{ModuleSnapshot, SafetensorsStore};
        let mut store = SafetensorsStore::from_bytes(Some(bytes));
        eval_model
            .load_from(&mut store)
            .map_err(|e| format!("reloading the trained weights: {e}"))?;
    }
    let classifier = Classifier::new(eval_model, cpu.device.clone());
    let accuracy = dataset::accuracy(&classifier, &held_out)?;

    let (input, output) = Manifest::expected_specs();
    let manifest = Manifest {
        name: "digits-cnn".into(),
        version: args.model_version.clone(),
        weights_file: "digits-cnn.safetensors".into(),
        sha256: String::new(),
        input,
        output,
        labels: (0..10).map(|d| d.to_string()).collect(),
        held_out_accuracy: (accuracy * 1e4).round() / 1e4,
        training: TrainingSettings {
            seed: args.seed,
            epochs: args.epochs,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            optimizer: "adam".into(),
            train_samples: train.len(),
            held_out_samples: held_out.len(),
            dataset: "UCI optical recognition of handwritten digits (8x8), CC BY 4.0".into(),
            burn_version: "0.22.1".into(),
        },
    };
    let manifest = weights::save(&args.out, &model, manifest)?;
    eprintln!(
        "held-out accuracy {:.2}% on {} samples; wrote {} (sha256 {}) in {:.1} s",
        accuracy * 100.0,
        held_out.len(),
        args.out.join(&manifest.weights_file).display(),
        manifest.sha256,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
