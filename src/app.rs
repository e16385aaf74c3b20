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
use crate::config::ModelControlMode;
use crate::config::ServeArgs;
use crate::connections::{
    self, ConnectionBudget, ConnectionLimits, DrainNotice, Http2Limits, ServeError,
};
use crate::grpc;
use crate::http::{self, RouterOptions};
use crate::inference::{BucketError, Buckets, CpuLane, InferenceQueue, QueueConfig};
use crate::service::imported::ImportedSettings;
use crate::service::repository::{
    ModelPolicy, ModelRepository, RepositoryError, RepositoryOptions,
};
use crate::service::{ModelService, ServedModel};
use crate::telemetry::metrics::{self as m, RecorderError};
use ember_model::{Classifier, DeviceChoice, DeviceError, WeightsError, device};

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
    #[error("shutdown: the drain deadline passed and these were abandoned: {}", list(.0))]
    Drain(Vec<ServeError>),
    #[error(transparent)]
    Buckets(#[from] BucketError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(
        "--model-control-mode explicit serves the repository API, which is never open: give --admin-api-key or --admin-api-key-file"
    )]
    NoAdminKeys,
    #[error(
        "an admin key is also an inference key (--api-key): the repository API needs keys of its own"
    )]
    SharedAdminKey,
}

/// Each listener's part of a drain error, `; `-separated.
fn list(errors: &[ServeError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

/// A started (not yet warmed-up) model service, and the threads that run its forward passes.
pub struct Started {
    pub service: Arc<ModelService>,
    pub metrics: PrometheusHandle,
    pub(crate) inference_threads: Vec<JoinHandle<()>>,
    /// The keys `--api-key`/`--api-key-file` require, if any.
    pub api_keys: Option<Arc<ApiKeys>>,
    /// The repository API's keys, when `--model-control-mode explicit` serves it.
    pub admin_keys: Option<Arc<ApiKeys>>,
    /// `--body-limit`, or its default for this device's `--max-batch`.
    pub body_limit: usize,
}

impl Started {
    /// The keys the gRPC surface asks for, as the flags set them.
    pub fn grpc_keys(&self) -> grpc::Keys {
        grpc::Keys {
            inference: self.api_keys.clone(),
            admin: self.admin_keys.clone(),
        }
    }

    /// The HTTP router's options, as the flags set them.
    pub fn router_options(&self, args: &ServeArgs) -> RouterOptions {
        RouterOptions {
            body_limit: self.body_limit,
            api_keys: self.api_keys.clone(),
            admin_keys: self.admin_keys.clone(),
            cors_allow_origins: args.cors_allow_origins.clone(),
        }
    }
}

/// What the model runs on, as far as the defaults care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runs {
    Cpu,
    /// A software renderer such as lavapipe: GPU code paths on the CPU.
    SoftwareGpu,
    Gpu,
}

/// The queue and request-size settings, with what a flag left unset means on this device.
#[derive(Debug, Clone, PartialEq)]
struct Tuning {
    threads: usize,
    batch_wait: Duration,
    max_batch: usize,
    body_limit: usize,
    buckets: Buckets,
    /// Requests under this many inputs run on CPU threads beside the GPU's (0: none do).
    cpu_lane_below: usize,
}

/// The CPU backends' defaults: a CPU pass runs on the calling thread, so one thread per core,
/// each taking up to 64 inputs a pass.
fn cpu_threads_and_max_batch() -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores, 64)
}

impl Tuning {
    fn resolve(args: &ServeArgs, runs: Runs) -> Result<Self, BucketError> {
        let cpu_backend = runs == Runs::Cpu;
        let (threads, max_batch) = if cpu_backend {
            cpu_threads_and_max_batch()
        } else {
            // A GPU pass has a large fixed cost (launch, readback) that overlaps with other
            // threads' passes, and gains most from large batches (benches/README.md, "GPU").
            (GPU_WORKERS, GPU_MAX_BATCH)
        };
        let max_batch = args.max_batch.map_or(max_batch, |n| n as usize);
        Ok(Self {
            threads: args.workers.map_or(threads, |n| n as usize),
            batch_wait: args.batch_wait,
            max_batch,
            // Room for a full batch of JSON numbers (up to 16 bytes each), never under 1 MiB.
            body_limit: args
                .body_limit
                .unwrap_or((max_batch * ember_model::INPUT_LEN * 16).max(1 << 20)),
            buckets: Buckets::resolve(&args.batch_buckets, max_batch, !cpu_backend)?,
            // A software renderer's passes run on the CPU anyway; by default they all stay on
            // it, so what runs there is the GPU code.
            cpu_lane_below: match (runs, args.cpu_lane_below) {
                (Runs::Cpu, _) => 0,
                (_, Some(below)) => below as usize,
                (Runs::Gpu, None) if device::has_cpu_backend() => GPU_WINS_FROM,
                _ => 0,
            },
        })
    }
}

/// Inputs per request from which the GPU served more rows/s than the CPU backend of the same
/// machine (an H100 and 12 of its host's cores: benches/README.md, "GPU"): smaller requests
/// take the CPU lane by default.
const GPU_WINS_FROM: usize = 256;

/// Inputs per pass (and per request) on a GPU unless `--max-batch` says otherwise: large enough
/// for the binary lane's big requests; 16384, which joins queued 4096-row requests into one
/// pass, served fewer rows/s on an H100 (benches/README.md, "GPU").
const GPU_MAX_BATCH: usize = 4096;

/// Inference threads on a GPU unless `--workers` says otherwise: on an H100, 4 beat 1, 2 and 8
/// on single inputs, 64-row and 4096-row requests alike (benches/README.md, "GPU").
const GPU_WORKERS: usize = 4;

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
    let admin_keys = match args.model_control_mode {
        ModelControlMode::None => None,
        ModelControlMode::Explicit => Some(
            ApiKeys::load_admin(&args.admin_api_keys, args.admin_api_key_file.as_deref())?
                .ok_or(StartError::NoAdminKeys)?,
        ),
    };
    if let (Some(admin), Some(inference)) = (&admin_keys, &api_keys)
        && admin.shares_a_key_with(inference)
    {
        return Err(StartError::SharedAdminKey);
    }
    let metrics = m::handle()?;
    let selected = device::select(args.device.into())?;
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
    // The digits model's weights count in --memory-budget beside the repository's.
    let weights_bytes =
        std::fs::metadata(args.weights.join(&manifest.weights_file)).map_or(0, |m| m.len());
    tracing::info!(
        model = %manifest.name, version = %manifest.version, sha256 = %manifest.sha256,
        dir = %args.weights.display(), "weights verified and loaded"
    );

    let runs = match (selected.is_cpu_backend(), selected.software) {
        (true, _) => Runs::Cpu,
        (false, true) => Runs::SoftwareGpu,
        (false, false) => Runs::Gpu,
    };
    let tuning = Tuning::resolve(args, runs)?;
    let Tuning {
        threads,
        batch_wait,
        max_batch,
        body_limit,
        ..
    } = tuning;
    let classifier = Arc::new(classifier);
    let mut classifiers = vec![classifier.clone()];
    if runs == Runs::Cpu {
        if args.gpu_queues > 1 {
            tracing::warn!(
                gpu_queues = args.gpu_queues,
                "--gpu-queues is ignored on the CPU"
            );
        }
    } else {
        for device in device::more_queues(&selected, args.gpu_queues as usize - 1)? {
            classifiers.push(Arc::new(classifier.to_device(&device)));
        }
    }
    let gpu_queues = (runs != Runs::Cpu).then_some(classifiers.len());
    tracing::info!(
        threads, gpu_queues,
        batch_wait = ?batch_wait, max_batch, body_limit,
        padded_to = ?tuning.buckets.sizes(), "inference threads"
    );
    let cpu_lane = match tuning.cpu_lane_below {
        0 if runs == Runs::Gpu => {
            tracing::info!(
                "on this model a GPU serves more than the CPU backend from about {GPU_WINS_FROM} \
                 inputs per request (most as binary V2 tensors); smaller requests are faster on \
                 the CPU lane (--cpu-lane-below) or --device cpu (benches/README.md, \"GPU\")"
            );
            None
        }
        0 => None,
        below => {
            let cpu = device::select(DeviceChoice::Cpu)?;
            let (threads, max_batch) = cpu_threads_and_max_batch();
            tracing::info!(
                below,
                threads,
                max_batch,
                backend = cpu.backend,
                "CPU lane: requests with fewer inputs run on CPU threads beside the GPU, which on \
                 this model serves single inputs and small batches slower (benches/README.md, \
                 \"GPU\"); --cpu-lane-below 0 sends everything to the GPU"
            );
            Some(CpuLane {
                runner: Arc::new(classifier.to_device(&cpu.device)),
                below,
                threads,
                max_batch,
            })
        }
    };
    let (queue, inference_threads) = InferenceQueue::start_with_cpu_lane(
        classifiers,
        QueueConfig {
            max_batch,
            batch_wait,
            max_queue: args.max_queue as usize,
            threads,
            buckets: tuning.buckets,
            labels: ember_inference::metrics::ModelLabels {
                model: manifest.name.clone(),
                version: manifest.version.clone(),
                lane: None,
            },
        },
        cpu_lane,
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
        cpu_lane_below: queue.cpu_lane_below(),
        gpu_queues,
        weights_sha256: manifest.sha256,
        held_out_accuracy: manifest.held_out_accuracy,
    };
    let timeout = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
    // Every model compiled in from the model repository, on the same device and settings, with
    // the versions its policy selects.
    let repository = ModelRepository::start(
        &selected.device,
        ImportedSettings {
            threads,
            batch_wait,
            max_queue: args.max_queue as usize,
            pad: runs != Runs::Cpu,
            backend: model.backend.clone(),
            device_name: model.device.clone(),
            request_timeout: timeout,
            repository: args.weights.clone(),
            drain_timeout: args.shutdown_timeout,
        },
        repository_options(args, weights_bytes),
    )?;
    Ok(Started {
        service: ModelService::serving(queue, model, timeout, repository),
        metrics,
        inference_threads,
        api_keys,
        admin_keys,
        body_limit,
    })
}

/// The version policies and memory budget the flags give.
fn repository_options(args: &ServeArgs, fixed_bytes: u64) -> RepositoryOptions {
    let mut options = RepositoryOptions {
        budget: args.memory_budget,
        fixed_bytes,
        sticky_header: args.sticky_header.clone(),
        ..RepositoryOptions::default()
    };
    for (model, versions) in &args.version_policies {
        match model {
            None => options.policy.versions = versions.clone(),
            Some(name) => options.policies.push((
                name.clone(),
                ModelPolicy {
                    versions: versions.clone(),
                    ..ModelPolicy::default()
                },
            )),
        }
    }
    // Every other setting is per model: start from the model's policy so far.
    let policy_of = |options: &mut RepositoryOptions, model: &str| -> usize {
        match options.policies.iter().position(|(name, _)| name == model) {
            Some(i) => i,
            None => {
                let policy = ModelPolicy {
                    versions: options.policy.versions.clone(),
                    ..ModelPolicy::default()
                };
                options.policies.push((model.to_string(), policy));
                options.policies.len() - 1
            }
        }
    };
    for (model, version) in &args.default_versions {
        let i = policy_of(&mut options, model);
        options.policies[i].1.default_version = Some(version.clone());
    }
    for (model, version, percent) in &args.canaries {
        let i = policy_of(&mut options, model);
        options.policies[i]
            .1
            .traffic
            .canary
            .push((version.clone(), *percent));
    }
    for (model, version, percent) in &args.shadows {
        let i = policy_of(&mut options, model);
        options.policies[i].1.traffic.shadow = Some((version.clone(), *percent));
    }
    options
}

/// Run the server until SIGTERM/SIGINT; returns once in-flight requests have finished, or with
/// [`StartError::Drain`] when some were still running at the `--shutdown-timeout` deadline.
pub async fn run(mut args: ServeArgs) -> Result<(), StartError> {
    let started = start(&args)?;
    // Only their digests are kept (auth.rs): the keys themselves are zeroed now.
    drop(std::mem::take(&mut args.api_keys));
    let options = started.router_options(&args);
    let Started {
        service,
        metrics,
        inference_threads,
        api_keys,
        admin_keys,
        body_limit,
    } = started;
    m::spawn_upkeep(metrics.clone());
    for keys in api_keys.iter().chain(&admin_keys) {
        crate::auth::reload_on_sighup(keys.clone());
    }
    rescan_on_sighup(service.clone());
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
            Ok(took) => {
                let sizes: Vec<_> = took.iter().map(|(size, _)| size).collect();
                let slowest = took.iter().max_by_key(|(_, t)| *t);
                tracing::info!(
                    elapsed = ?started.elapsed(), batch_sizes = ?sizes,
                    slowest = ?slowest.map(|(size, t)| format!("{size}: {t:?}")),
                    "warm-up passes succeeded: ready"
                )
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
    // One budget for both listeners: descriptors are the process's, not a port's.
    let budget = ConnectionBudget::new(
        args.max_connections
            .map_or_else(connections::default_max_connections, |n| n as usize),
    );
    let limits = |listener| ConnectionLimits {
        listener,
        client_timeout: args.client_timeout,
        keep_alive: args.keep_alive_timeout,
        budget: budget.clone(),
        http2: Http2Limits {
            keep_alive_interval: Some(args.http2_keep_alive_interval).filter(|d| !d.is_zero()),
            keep_alive_timeout: args.http2_keep_alive_timeout,
            idle: args.http2_idle_timeout,
        },
        drain: DrainNotice::default(),
    };
    // Each surface owns its handle on the service, so once both have stopped the last queue
    // handle is gone and the inference threads drain and stop.
    let grpc = {
        let (service, limits, close) = (service.clone(), limits("grpc"), close());
        let keys = grpc::Keys {
            inference: api_keys.clone(),
            admin: admin_keys.clone(),
        };
        async move {
            let Some(listener) = grpc_listener else {
                return Ok(None);
            };
            let app = grpc::router(service, body_limit, keys, limits.drain.subscribe())?;
            Ok::<_, StartError>(connections::serve(listener, app, limits, close).await.err())
        }
    };
    let app = http::router(service, metrics, &options);
    let rest = connections::serve(listener, app, limits("http"), close());
    let (rest, grpc) = tokio::join!(rest, grpc);
    let abandoned: Vec<ServeError> = rest.err().into_iter().chain(grpc?).collect();
    if !abandoned.is_empty() {
        // The inference threads may be stuck in the abandoned work: exit without them.
        return Err(StartError::Drain(abandoned));
    }

    // The routers (and with them the last queue handles) are gone: the threads drain and stop.
    for thread in inference_threads {
        let _ = thread.join();
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Re-scan the model repository on every SIGHUP (version directories added or removed since are
/// loaded or drained, as each model's policy says), for the life of the process.
#[cfg(unix)]
fn rescan_on_sighup(service: Arc<ModelService>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: the model repository will not be re-scanned");
            return;
        }
    };
    // Only a weak handle: the service must be free to shut down.
    let service = Arc::downgrade(&service);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            let Some(service) = service.upgrade() else {
                return;
            };
            let failed = service.repository.rescan().await;
            tracing::info!(failed, "SIGHUP: model repository re-scanned");
        }
    });
}

#[cfg(not(unix))]
fn rescan_on_sighup(_: Arc<ModelService>) {}

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
    use clap::Parser;

    fn tuning(flags: &[&str], cpu_backend: bool) -> Result<Tuning, BucketError> {
        let runs = if cpu_backend { Runs::Cpu } else { Runs::Gpu };
        tuning_on(flags, runs)
    }

    fn tuning_on(flags: &[&str], runs: Runs) -> Result<Tuning, BucketError> {
        let cli = crate::config::Cli::try_parse_from(
            std::iter::once("ember-serve").chain(flags.iter().copied()),
        )
        .unwrap();
        Tuning::resolve(&cli.serve, runs)
    }

    #[test]
    fn cpu_backends_use_every_core_never_idle_wait_and_never_pad() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let t = tuning(&[], true).unwrap();
        assert_eq!((t.threads, t.batch_wait), (cores, Duration::ZERO));
        assert_eq!((t.max_batch, t.body_limit), (64, 1 << 20));
        assert!(t.buckets.sizes().is_empty());
    }

    #[test]
    fn a_gpu_keeps_passes_in_flight_and_pads_to_warmed_sizes() {
        let t = tuning(&[], false).unwrap();
        assert_eq!((t.threads, t.batch_wait), (GPU_WORKERS, Duration::ZERO));
        assert_eq!(t.max_batch, GPU_MAX_BATCH);
        assert_eq!(t.buckets.sizes().len(), 13);
        assert_eq!(t.buckets.padded(300), 512);
        // A full batch of JSON numbers fits the default body limit.
        assert!(t.body_limit >= GPU_MAX_BATCH * 64 * 8, "{}", t.body_limit);
    }

    #[test]
    fn small_requests_beside_a_hardware_gpu_run_on_the_cpu_by_default() {
        let below = |flags: &[&str], runs| tuning_on(flags, runs).unwrap().cpu_lane_below;
        let default = if device::has_cpu_backend() {
            GPU_WINS_FROM
        } else {
            0
        };
        assert_eq!(below(&[], Runs::Gpu), default);
        assert_eq!(below(&["--cpu-lane-below", "0"], Runs::Gpu), 0);
        assert_eq!(below(&["--cpu-lane-below", "32"], Runs::Gpu), 32);
        // A software renderer runs its GPU code unless told otherwise; a CPU backend never has
        // a lane beside it.
        assert_eq!(below(&[], Runs::SoftwareGpu), 0);
        assert_eq!(below(&["--cpu-lane-below", "8"], Runs::SoftwareGpu), 8);
        assert_eq!(below(&["--cpu-lane-below", "8"], Runs::Cpu), 0);
    }

    #[test]
    fn flags_win_over_device_defaults() {
        let flags = [
            "--workers",
            "2",
            "--batch-wait",
            "3ms",
            "--max-batch",
            "100",
            "--body-limit",
            "5000",
            "--batch-buckets",
            "1,10",
        ];
        let t = tuning(&flags, false).unwrap();
        assert_eq!(
            (t.threads, t.batch_wait, t.max_batch),
            (2, Duration::from_millis(3), 100)
        );
        assert_eq!((t.body_limit, t.buckets.sizes()), (5000, &[1, 10, 100][..]));
        assert_eq!(
            tuning(&["--batch-buckets", "pow2", "--max-batch", "8"], true)
                .unwrap()
                .buckets
                .sizes(),
            [1, 2, 4, 8]
        );
        assert!(
            tuning(&["--batch-buckets", "none"], false)
                .unwrap()
                .buckets
                .sizes()
                .is_empty()
        );
        assert!(
            tuning(&["--batch-buckets", "128"], true).is_err(),
            "a bucket above --max-batch"
        );
    }
}
