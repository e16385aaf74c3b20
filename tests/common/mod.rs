//! Helpers shared by the integration tests: build the real app in-process and call it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use clap::Parser;
use ember_serve::app;
use ember_serve::config::{Cli, ServeArgs};
use ember_serve::http::{RouterOptions, router};
use ember_serve::service::ModelService;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub mod otlp;

/// A fresh directory under the system's temp dir, removed with everything in it when dropped
/// (also when the test fails), so test runs leave nothing behind.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ember-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A file of the repository as text.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The backend `--device cpu` resolves to in this build (`flex` where compiled in, else `ndarray`).
#[allow(dead_code)] // not every test binary asks
pub fn cpu_backend() -> &'static str {
    ember_model::device::select(ember_model::DeviceChoice::Cpu)
        .map(|d| d.backend)
        .unwrap_or("none")
}

/// Serve args as the CLI would parse them, on the committed weights (unless `extra` names
/// other `--weights`) and the CPU backend.
pub fn args(extra: &[&str]) -> ServeArgs {
    let weights = repo_path("weights");
    let mut argv = vec!["ember-serve"];
    if !extra.contains(&"--weights") {
        argv.extend_from_slice(&["--weights", weights.to_str().unwrap()]);
    }
    if !extra.contains(&"--device") {
        argv.extend_from_slice(&["--device", "cpu"]);
    }
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().serve
}

/// The app, started but not warmed up.
pub fn cold_app(extra: &[&str]) -> (Router, Arc<ModelService>) {
    let a = args(extra);
    let started = app::start(&a).unwrap();
    let options = started.router_options(&a);
    let app = router(started.service.clone(), started.metrics, &options);
    (app, started.service)
}

/// The app after a successful warm-up (ready).
pub async fn ready_app(extra: &[&str]) -> (Router, Arc<ModelService>) {
    let (router, state) = cold_app(extra);
    state.warm_up().await.unwrap();
    (router, state)
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn send(router: &Router, req: Request<Body>) -> Reply {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(router: &Router, uri: &str) -> Reply {
    send(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn post_json(router: &Router, uri: &str, body: impl Into<Body>) -> Reply {
    send(
        router,
        Request::post(uri)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}

/// The real app's model and metrics over a paused queue (no inference thread): requests can
/// only queue, fill it, or time out.
pub fn paused_app(max_queue: usize, timeout: Option<Duration>) -> (Router, Arc<ModelService>) {
    use ember_model::{DeviceChoice, device};
    use ember_serve::inference::{InferenceQueue, QueueConfig};
    let (_, real) = cold_app(&[]);
    let dev = device::select(DeviceChoice::Cpu).unwrap().device;
    let config = QueueConfig {
        labels: Default::default(),
        max_batch: 64,
        batch_wait: Duration::ZERO,
        max_queue,
        threads: 0,
        buckets: Default::default(),
    };
    let (queue, _) = InferenceQueue::start(Arc::new(classifier(&dev)), config).unwrap();
    let service = ModelService::new(queue, real.model.clone(), timeout);
    service.mark_warm();
    let metrics = ember_serve::telemetry::metrics::handle().unwrap();
    (
        router(service.clone(), metrics, &RouterOptions::new(1 << 20)),
        service,
    )
}

/// The committed weights on `device`, as the server loads them.
pub fn classifier(device: &ember_model::Device) -> ember_model::Classifier {
    ember_model::Classifier::load(&repo_path("weights"), device)
        .unwrap()
        .0
}

/// Rows and labels of the first `n` images of the shipped data set.
pub fn digits(n: usize) -> Vec<(Vec<f64>, usize)> {
    let samples = ember_train::dataset::load(&repo_path("tests/data/digits.csv.gz")).unwrap();
    samples
        .into_iter()
        .take(n)
        .map(|s| (s.pixels.iter().map(|&p| p as f64).collect(), s.label))
        .collect()
}

/// The first `n` digits of the test set as the model's input rows.
pub fn pixels(n: usize) -> Vec<[f32; ember_model::INPUT_LEN]> {
    digits(n)
        .into_iter()
        .map(|(row, _)| std::array::from_fn(|i| row[i] as f32))
        .collect()
}

/// The pixel rows of the first `n` images of the shipped data set.
pub fn rows(n: usize) -> Vec<Vec<f64>> {
    digits(n).into_iter().map(|(r, _)| r).collect()
}

/// Little-endian FP32 values (a raw output tensor).
pub fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Little-endian INT64 values (a raw output tensor).
pub fn i64s(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Serve the gRPC router `router` builds (given the listener's drain signal) on a free loopback
/// port through the server's own accept loop until `shutdown`: a channel connected to it, its
/// address, and the serving task.
pub async fn serve_grpc(
    router: impl FnOnce(ember_serve::connections::Draining) -> Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    tonic::transport::Channel,
    String,
    tokio::task::JoinHandle<()>,
) {
    use ember_serve::connections::{self, ConnectionBudget, ConnectionLimits};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let limits = ConnectionLimits {
        listener: "grpc",
        client_timeout: Duration::from_secs(30),
        keep_alive: Duration::from_secs(75),
        budget: ConnectionBudget::new(1000),
        http2: Default::default(),
        drain: Default::default(),
    };
    let router = router(limits.drain.subscribe());
    let server = tokio::spawn(async move {
        connections::serve(listener, router, limits, async move {
            shutdown.await;
            None
        })
        .await
        .unwrap();
    });
    let channel = tonic::transport::Channel::from_shared(addr.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, addr, server)
}

/// A model repository (`--weights`) holding the digits weights, and breast-cancer's committed
/// 1.1.0 (tests/versions/) when `with_version`.
pub fn repository(test: &str, with_version: bool) -> ScratchDir {
    let root = ScratchDir::new(&format!("repository-{test}"));
    for file in ["manifest.json", "digits-cnn.safetensors"] {
        std::fs::copy(repo_path("weights").join(file), root.join(file)).unwrap();
    }
    if with_version {
        add_version(&root, "1.1.0");
    }
    root
}

/// Copy breast-cancer's committed 1.1.0 into `root` as `version`.
pub fn add_version(root: &std::path::Path, version: &str) -> PathBuf {
    let dir = root.join("breast-cancer").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["manifest.json", "model.bpk"] {
        let from = repo_path("tests/versions/breast-cancer/1.1.0").join(file);
        std::fs::copy(from, dir.join(file)).unwrap();
    }
    dir
}

/// Why the server refuses to start on `weights` with `extra` flags (panics if it starts).
pub fn start_refused(weights: &std::path::Path, extra: &[&str]) -> String {
    let mut flags = vec!["--weights", weights.to_str().unwrap()];
    flags.extend_from_slice(extra);
    match ember_serve::app::start(&args(&flags)) {
        Ok(_) => panic!("{extra:?} started"),
        Err(e) => e.to_string(),
    }
}
