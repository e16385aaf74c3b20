//! Metric names, their help texts and buckets, and the process-wide Prometheus recorder.
//!
//! Names follow Prometheus conventions (base units, `_total` for counters) so that
//! `promtool check metrics` has nothing to say about `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, Label, Unit, describe_counter, describe_gauge, describe_histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "ember_http_requests_total";
pub const HTTP_DURATION: &str = "ember_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "ember_http_requests_in_flight";
pub const HTTP_CANCELLED: &str = "ember_http_requests_cancelled_total";
pub const QUEUE_DEPTH: &str = "ember_inference_queue_depth";
pub const QUEUE_WAIT: &str = "ember_inference_queue_wait_seconds";
pub const FORWARD_DURATION: &str = "ember_inference_forward_duration_seconds";
pub const FORWARD_ERRORS: &str = "ember_inference_forward_errors_total";
pub const THREAD_PANICS: &str = "ember_inference_thread_panics_total";
pub const BATCH_SIZE: &str = "ember_inference_batch_size";
pub const PREDICTIONS: &str = "ember_predictions_total";
pub const REJECTED: &str = "ember_inference_rejected_total";
pub const GRPC_REQUESTS: &str = "ember_grpc_requests_total";
pub const GRPC_DURATION: &str = "ember_grpc_request_duration_seconds";
pub const CONNECTIONS_OPEN: &str = "ember_connections_open";
pub const CONNECTIONS_REFUSED: &str = "ember_connections_refused_total";
pub const CLIENT_TIMEOUTS: &str = "ember_client_timeouts_total";
pub const API_KEYS: &str = "ember_api_keys";
pub const API_KEY_RELOADS: &str = "ember_api_key_reloads_total";
pub const BUILD_INFO: &str = "ember_build_info";
pub const READY: &str = "ember_ready";

/// Sub-millisecond to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Why the Prometheus recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("installing the Prometheus recorder failed: {0}")]
pub struct RecorderError(String);

static HANDLE: OnceLock<Result<PrometheusHandle, RecorderError>> = OnceLock::new();

/// The process-wide recorder, installed on first use (the `metrics` facade has one global
/// recorder per process, so every app built in this process shares it).
pub fn handle() -> Result<PrometheusHandle, RecorderError> {
    HANDLE.get_or_init(install).clone()
}

fn install() -> Result<PrometheusHandle, RecorderError> {
    let latency = |name: &str| Matcher::Full(name.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(latency(HTTP_DURATION), LATENCY_BUCKETS)
        .and_then(|b| b.set_buckets_for_metric(latency(GRPC_DURATION), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(latency(QUEUE_WAIT), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(latency(FORWARD_DURATION), LATENCY_BUCKETS))
        .and_then(|b| b.set_buckets_for_metric(latency(BATCH_SIZE), BATCH_BUCKETS))
        .map_err(|e| RecorderError(e.to_string()))?
        .install_recorder()
        .map_err(|e| RecorderError(e.to_string()))?;
    describe();
    Ok(handle)
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by route."
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being answered now.");
    describe_counter!(
        HTTP_CANCELLED,
        "HTTP requests whose client hung up before the answer, by route and method."
    );
    describe_counter!(
        GRPC_REQUESTS,
        "gRPC calls answered, by method and status code."
    );
    describe_histogram!(
        GRPC_DURATION,
        Unit::Seconds,
        "Time to answer a gRPC call, by method."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Open client connections, by listener.");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections answered 503 and closed because --max-connections were open, by listener."
    );
    describe_counter!(
        CLIENT_TIMEOUTS,
        "Requests answered 408 because the client sent its headers or body too slowly (--client-timeout), by listener and phase."
    );
    describe_gauge!(API_KEYS, "API keys accepted now.");
    describe_counter!(
        API_KEY_RELOADS,
        "Reloads of --api-key-file on SIGHUP, by result."
    );
    describe_gauge!(QUEUE_DEPTH, "Requests waiting in the inference queue.");
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a request waited in the inference queue."
    );
    describe_histogram!(
        FORWARD_DURATION,
        Unit::Seconds,
        "Duration of one forward pass (one batch)."
    );
    describe_counter!(FORWARD_ERRORS, "Forward passes that failed.");
    describe_counter!(
        THREAD_PANICS,
        "Panics in an inference thread outside a forward pass; the thread serves on."
    );
    describe_histogram!(BATCH_SIZE, "Inputs per forward pass.");
    describe_counter!(PREDICTIONS, "Inputs classified, by predicted label.");
    describe_counter!(
        REJECTED,
        "Requests refused by the inference queue, by reason."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels describe the build, model and device."
    );
    describe_gauge!(
        READY,
        "1 when the model is loaded, warmed up and not shutting down."
    );
}

/// The served model's name and version: labels on every inference metric, so a canary's
/// numbers can be told from the stable version's. The CPU lane beside a GPU adds
/// `lane="cpu"`, so its passes are told from the GPU's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelLabels {
    pub model: String,
    pub version: String,
    pub lane: Option<&'static str>,
}

impl ModelLabels {
    /// The same model's labels for the named lane.
    pub fn for_lane(&self, lane: &'static str) -> Self {
        Self {
            lane: Some(lane),
            ..self.clone()
        }
    }

    fn labels(&self) -> Vec<Label> {
        let mut labels = vec![
            Label::new("model", self.model.clone()),
            Label::new("version", self.version.clone()),
        ];
        labels.extend(self.lane.map(|lane| Label::new("lane", lane)));
        labels
    }
}

/// The inference metrics of one model, registered once: recording through a handle costs an
/// atomic update, not a registry lookup.
#[derive(Clone)]
pub struct InferenceMetrics {
    labels: Vec<Label>,
    pub queue_depth: Gauge,
    pub queue_wait: Histogram,
    pub forward_duration: Histogram,
    pub forward_errors: Counter,
    pub thread_panics: Counter,
    pub batch_size: Histogram,
    pub rejected_queue_full: Counter,
}

impl InferenceMetrics {
    pub fn new(model: &ModelLabels) -> Self {
        let labels = model.labels();
        Self {
            queue_depth: metrics::gauge!(QUEUE_DEPTH, labels.clone()),
            queue_wait: metrics::histogram!(QUEUE_WAIT, labels.clone()),
            forward_duration: metrics::histogram!(FORWARD_DURATION, labels.clone()),
            forward_errors: metrics::counter!(FORWARD_ERRORS, labels.clone()),
            thread_panics: metrics::counter!(THREAD_PANICS, labels.clone()),
            batch_size: metrics::histogram!(BATCH_SIZE, labels.clone()),
            rejected_queue_full: metrics::counter!(
                REJECTED,
                Self::with(&labels, "reason", "queue_full")
            ),
            labels,
        }
    }

    /// Requests refused for `reason`.
    pub fn rejected(&self, reason: &'static str) -> Counter {
        metrics::counter!(REJECTED, Self::with(&self.labels, "reason", reason))
    }

    /// Inputs classified as `label`.
    pub fn predictions(&self, label: &str) -> Counter {
        metrics::counter!(
            PREDICTIONS,
            Self::with(&self.labels, "label", label.to_string())
        )
    }

    fn with(
        labels: &[Label],
        key: &'static str,
        value: impl Into<metrics::SharedString>,
    ) -> Vec<Label> {
        let mut all = labels.to_vec();
        all.push(Label::new(key, value));
        all
    }
}

impl std::fmt::Debug for InferenceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceMetrics")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// `/metrics`: the process's own metrics (CPU, memory, open files, threads), sampled now, and
/// everything recorded.
pub fn render(handle: &PrometheusHandle) -> String {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS
        .get_or_init(|| {
            let collector = metrics_process::Collector::default();
            collector.describe();
            collector
        })
        .collect();
    handle.render()
}

/// Drain histogram buffers periodically (the 0.18 exporter spawns no upkeep task).
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}
