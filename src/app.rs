//! Start-up: wire config → device → verified weights → inference queue → model service → HTTP
//! and gRPC, in that order, and run the server until a shutdown signal; then drain, within
//! `--shutdown-timeout`.
//!
//! Everything that can refuse to start (bad weights, no device, an unreadable key file) fails
//! here, before the port is bound, with a message naming the cause.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use tokio::time::Instant;

use crate::auth::{ApiKeys, KeyFileError};
use crate::config::ServeArgs;
use crate::connections::{self, ConnectionLimits, ServeError};
use crate::grpc;
use crate::http::{self, RouterOptions};
use crate::inference::{InferenceQueue, QueueConfig};
use crate::model::{Classifier, DeviceError, WeightsError, device};
use crate::service::{ModelService, ServedModel};
use crate::telemetry::metrics::{self as m, RecorderError};

/// Why the server did not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Metrics(#[from] RecorderError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("cannot start the inference threads: {0}")]
    Threads(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Grpc(#[from] crate::grpc::GrpcError),
    #[error(transparent)]
    ApiKeys(#[from] KeyFileError),
    #[error("--shutdown-timeout ({timeout:?}) must be longer than --shutdown-delay ({delay:?})")]
    ShutdownTimeout { timeout: Duration, delay: Duration },
    #[error("shutdown: {0}")]
    Drain(#[from] ServeError),
}

/// A started (not yet warmed-up) model service, and the threads that run its forward passes.
pub struct Started {
    pub service: Arc<ModelService>,
    pub metrics: PrometheusHandle,
    pub inference_threads: Vec<JoinHandle<()>>,
    /// The keys `--api-key`/`--api-key-file` require, if any.
    pub api_keys: Option<Arc<ApiKeys>>,
}

impl Started {
    /// The HTTP router's options, as the flags set them.
    pub fn router_options(&self, args: &ServeArgs) -> RouterOptions {
        RouterOptions {
            body_limit: args.body_limit,
            api_keys: self.api_keys.clone(),
            cors_allow_origins: args.cors_allow_origins.clone(),
        }
    }
}

/// What `--workers` and `--batch-wait` mean when not given, on a CPU backend or a GPU.
#[derive(Debug)]
struct QueueDefaults {
    threads: usize,
    batch_wait: Duration,
}

impl QueueDefaults {
    fn for_device(cpu_backend: bool) -> Self {
        if cpu_backend {
            // A CPU pass runs on the calling thread: one thread per core. Whatever is queued is
            // already a batch, and an idle wait for a fuller one would leave a core unused.
            Self {
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                batch_wait: Duration::ZERO,
            }
        } else {
            // A GPU pass has a large fixed cost (launch, readback): one thread feeding the
            // device, and a short window so concurrent callers share a pass.
            Self {
                threads: 1,
                batch_wait: Duration::from_millis(1),
            }
        }
    }
}

/// Install the metrics recorder, choose the device, load and verify the weights, and start the
/// inference threads: everything that can refuse to start, before any port is bound.
pub fn start(args: &ServeArgs) -> Result<Started, StartError> {
    if !args.shutdown_timeout.is_zero() && args.shutdown_timeout <= args.shutdown_delay {
        return Err(StartError::ShutdownTimeout {
            timeout: args.shutdown_timeout,
            delay: args.shutdown_delay,
        });
    }
    let api_keys = ApiKeys::load(&args.api_keys, args.api_key_file.as_deref())?;
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
    if let Some(reason) = &selected.fallback {
        if device::compiled_backends().contains(&"wgpu") {
            tracing::warn!(%reason, "--device auto: no usable GPU, serving on the CPU");
        } else {
            tracing::info!(%reason, "--device auto: serving on the CPU");
        }
    }
    if selected.software {
        tracing::warn!(device = %selected.name, "this GPU adapter is a software renderer: expect CPU-speed or slower inference");
    }
    let (classifier, manifest) = Classifier::load(&args.weights, &selected.device)?;
    tracing::info!(
        model = %manifest.name, version = %manifest.version, sha256 = %manifest.sha256,
        dir = %args.weights.display(), "weights verified and loaded"
    );

    let max_batch = args.max_batch as usize;
    let defaults = QueueDefaults::for_device(selected.is_cpu_backend());
    let threads = args.workers.map_or(defaults.threads, |n| n as usize);
    let batch_wait = args.batch_wait.unwrap_or(defaults.batch_wait);
    tracing::info!(threads, batch_wait = ?batch_wait, max_batch, "inference threads");
    let (queue, inference_threads) = InferenceQueue::start(
        Arc::new(classifier),
        QueueConfig {
            max_batch,
            batch_wait,
            max_queue: args.max_queue as usize,
            threads,
            labels: m::ModelLabels {
                model: manifest.name.clone(),
                version: manifest.version.clone(),
            },
        },
    )
    .map_err(StartError::Threads)?;

    metrics::gauge!(m::BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "model" => manifest.name.clone(),
        "model_version" => manifest.version.clone(),
        "backend" => selected.backend,
        "device" => selected.name.clone(),
        "arch" => std::env::consts::ARCH,
    )
    .set(1.0);

    let model = ServedModel {
        name: manifest.name,
        version: manifest.version,
        input: manifest.input,
        output: manifest.output,
        labels: manifest.labels,
        backend: selected.backend.to_string(),
        device: selected.name,
        device_fallback: selected.fallback,
        max_batch_size: max_batch,
        weights_sha256: manifest.sha256,
        held_out_accuracy: manifest.held_out_accuracy,
    };
    let timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
    Ok(Started {
        service: ModelService::new(queue, model, timeout),
        metrics,
        inference_threads,
        api_keys,
    })
}

/// Run the server until SIGTERM/SIGINT; returns once in-flight requests have finished, or with
/// [`StartError::Drain`] when some were still running at the `--shutdown-timeout` deadline.
pub async fn run(args: ServeArgs) -> Result<(), StartError> {
    let started = start(&args)?;
    let options = started.router_options(&args);
    let Started {
        service,
        metrics,
        inference_threads,
        api_keys,
    } = started;
    m::spawn_upkeep(metrics.clone());
    if let Some(keys) = &api_keys {
        crate::auth::reload_on_sighup(keys.clone());
    }
    let listener = bind(args.addr()).await?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(%addr, docs = %format!("http://{addr}/docs"), "listening");
    let grpc_listener = match args.grpc_addr() {
        None => None,
        Some(addr) => {
            let listener = bind(addr).await?;
            let addr = listener.local_addr().map_err(StartError::Serve)?;
            tracing::info!(%addr, "gRPC listening (inference.GRPCInferenceService, health, reflection)");
            Some(listener)
        }
    };

    let warm = service.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match warm.warm_up().await {
            Ok(()) => {
                tracing::info!(elapsed = ?started.elapsed(), "warm-up forward pass succeeded: ready")
            }
            Err(e) => tracing::error!(error = %e, "warm-up failed: readiness stays 503"),
        }
    });

    // One signal stops both surfaces: readiness turns 503 at once, each listener stays open for
    // --shutdown-delay (so load balancers notice), then closes, and in-flight calls get until
    // the --shutdown-timeout deadline, counted from the signal.
    let (stop, stopped) = tokio::sync::watch::channel(None::<Instant>);
    let (delay, timeout) = (args.shutdown_delay, args.shutdown_timeout);
    let draining = service.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        draining.begin_shutdown();
        tracing::info!(delay = ?delay, timeout = ?timeout, "shutdown requested: readiness is now 503, draining");
        let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
        let _ = stop.send(deadline);
    });
    let close = move || {
        let mut stopped = stopped.clone();
        async move {
            let deadline = stopped
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|d| *d);
            tokio::time::sleep(delay).await;
            deadline
        }
    };
    let limits = |listener| ConnectionLimits {
        listener,
        client_timeout: args.client_timeout,
        max_connections: args
            .max_connections
            .map_or_else(connections::default_max_connections, |n| n as usize),
    };
    // Each surface owns its handle on the service, so once both have stopped the last queue
    // handle is gone and the inference threads drain and stop.
    let grpc = {
        let (service, limits, close) = (service.clone(), limits("grpc"), close());
        let keys = api_keys.clone();
        async move {
            let Some(listener) = grpc_listener else {
                return Ok(());
            };
            let app = grpc::router(service, args.body_limit, keys)?;
            connections::serve(listener, app, limits, close).await?;
            Ok::<_, StartError>(())
        }
    };
    let app = http::router(service, metrics, &options);
    let rest = connections::serve(listener, app, limits("http"), close());
    let (rest, grpc) = tokio::join!(rest, grpc);
    let abandoned = [rest.err().map(StartError::from), grpc.err()];
    if let Some(e) = abandoned.into_iter().flatten().next() {
        // The inference threads may be stuck in the abandoned work: exit without them.
        return Err(e);
    }

    // The routers (and with them the last queue handles) are gone: the threads drain and stop.
    for thread in inference_threads {
        let _ = thread.join();
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_backends_use_every_core_and_never_idle_wait() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = QueueDefaults::for_device(true);
        assert_eq!((d.threads, d.batch_wait), (cores, Duration::ZERO));
    }

    #[test]
    fn gpu_gets_one_feeder_thread_and_a_1ms_window() {
        let d = QueueDefaults::for_device(false);
        assert_eq!((d.threads, d.batch_wait), (1, Duration::from_millis(1)));
    }
}
