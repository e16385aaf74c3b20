//! Start-up: wire config → device → verified weights → inference queue → HTTP state, in that
//! order, and run the server until a shutdown signal.
//!
//! Everything that can refuse to start (bad weights, no device) fails here, before the port is
//! bound, with a message naming the cause.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::ServeArgs;
use crate::http::{AppState, ModelInfo};
use crate::inference::{InferenceQueue, QueueConfig};
use crate::model::{Classifier, device, weights};
use crate::telemetry::metrics as m;

/// A started (but not yet warmed-up) server: state for the router, and the inference threads.
pub struct App {
    pub state: Arc<AppState>,
    pub workers: Vec<JoinHandle<()>>,
}

/// What `--workers` and `--batch-wait` mean when not given, on a CPU backend or a GPU
/// (measured: RUNBOOK.md, "Performance").
#[derive(Debug)]
struct QueueDefaults {
    workers: usize,
    batch_wait: Duration,
}

impl QueueDefaults {
    fn for_device(cpu_backend: bool) -> Self {
        if cpu_backend {
            // A CPU pass runs on the calling thread: one thread per core. Whatever is queued is
            // already a batch (a pass over 64 inputs costs 6.5x less per input than over one),
            // but an idle wait for a fuller one leaves a core unused: on 2 cores a 0.2 or 1 ms
            // window lost 5-25 % req/s at c=16..64 (RUNBOOK.md, "Performance").
            Self {
                workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
                batch_wait: Duration::ZERO,
            }
        } else {
            // A GPU pass has a large fixed cost (launch, readback): one thread feeding the
            // device, and a short window so concurrent callers share a pass.
            Self {
                workers: 1,
                batch_wait: Duration::from_millis(1),
            }
        }
    }
}

/// Load and verify everything `args` names and start the inference threads.
pub fn build(args: &ServeArgs) -> Result<App, String> {
    let metrics = m::handle()?;
    let selected = device::select(args.device)?;
    tracing::info!(
        requested = ?args.device,
        backend = selected.backend,
        device = %selected.name,
        software = selected.software,
        compiled = ?device::compiled_backends(),
        "device selected"
    );
    if selected.software {
        tracing::warn!(device = %selected.name, "this GPU adapter is a software renderer: expect CPU-speed or slower inference");
    }
    let loaded = weights::load(&args.weights, &selected.device).map_err(|e| e.to_string())?;
    let manifest = loaded.manifest;
    tracing::info!(
        model = %manifest.name, version = %manifest.version, sha256 = %manifest.sha256,
        dir = %args.weights.display(), "weights verified and loaded"
    );

    let classifier = Arc::new(Classifier::new(loaded.model, selected.device.clone()));
    let max_batch = args.max_batch as usize;
    let defaults = QueueDefaults::for_device(selected.is_cpu_backend());
    let workers = args.workers.map_or(defaults.workers, |n| n as usize);
    let batch_wait = args.batch_wait.unwrap_or(defaults.batch_wait);
    tracing::info!(workers, batch_wait = ?batch_wait, max_batch, "inference threads");
    let (queue, workers) = InferenceQueue::start(
        classifier,
        QueueConfig {
            max_batch,
            batch_wait,
            max_queue: args.max_queue as usize,
            workers,
        },
    )
    .map_err(|e| format!("cannot start the inference thread: {e}"))?;

    metrics::gauge!(m::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "model" => manifest.name.clone(),
        "model_version" => manifest.version.clone(),
        "backend" => selected.backend,
        "device" => selected.name.clone(),
        "arch" => std::env::consts::ARCH,
    )
    .set(1.0);

    let info = ModelInfo {
        name: manifest.name,
        version: manifest.version,
        input: manifest.input,
        output: manifest.output,
        labels: manifest.labels,
        backend: selected.backend.to_string(),
        device: selected.name,
        max_batch_size: max_batch,
        weights_sha256: manifest.sha256,
        held_out_accuracy: manifest.held_out_accuracy,
    };
    let timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
    Ok(App {
        state: AppState::new(queue, info, metrics, timeout),
        workers,
    })
}

/// Run the server until SIGTERM/SIGINT; returns once in-flight requests have finished.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    let App { state, workers } = build(&args)?;
    m::spawn_upkeep(state.metrics.clone());
    let listener = tokio::net::TcpListener::bind(args.addr())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr()))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "listening");

    let warm = state.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match warm.warm_up().await {
            Ok(()) => {
                tracing::info!(elapsed = ?started.elapsed(), "warm-up forward pass succeeded: ready")
            }
            Err(e) => tracing::error!(error = %e, "warm-up failed: readiness stays 503"),
        }
    });

    crate::http::serve(
        listener,
        state,
        args.body_limit,
        crate::http::server::shutdown_signal(),
        args.shutdown_delay,
    )
    .await
    .map_err(|e| format!("server error: {e}"))?;

    // The router (and with it the last queue handle) is gone: the threads drain and stop.
    for worker in workers {
        let _ = worker.join();
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_use_every_core_and_never_idle_wait() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = QueueDefaults::for_device(true);
        assert_eq!((d.workers, d.batch_wait), (cores, Duration::ZERO));
    }

    #[test]
    fn gpu_gets_one_feeder_thread_and_a_1ms_window() {
        let d = QueueDefaults::for_device(false);
        assert_eq!((d.workers, d.batch_wait), (1, Duration::from_millis(1)));
    }
}
