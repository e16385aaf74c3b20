//! Metric names, their help texts and buckets, and the process-wide Prometheus recorder.
//!
//! Names follow Prometheus conventions (base units, `_total` for counters) so that
//! `promtool check metrics` has nothing to say about `/metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use ember_inference::metrics::{BATCH_SIZE, FORWARD_DURATION, QUEUE_WAIT, SHADOW_DIFFERENCE};

pub(crate) const HTTP_REQUESTS: &str = "ember_http_requests_total";
pub(crate) const HTTP_DURATION: &str = "ember_http_request_duration_seconds";
pub(crate) const HTTP_IN_FLIGHT: &str = "ember_http_requests_in_flight";
pub(crate) const HTTP_CANCELLED: &str = "ember_http_requests_cancelled_total";
pub(crate) const GRPC_REQUESTS: &str = "ember_grpc_requests_total";
pub(crate) const GRPC_DURATION: &str = "ember_grpc_request_duration_seconds";
pub(crate) const CONNECTIONS_OPEN: &str = "ember_connections_open";
pub(crate) const CONNECTIONS_REFUSED: &str = "ember_connections_refused_total";
pub(crate) const CLIENT_TIMEOUTS: &str = "ember_client_timeouts_total";
pub(crate) const API_KEYS: &str = "ember_api_keys";
pub(crate) const API_KEY_RELOADS: &str = "ember_api_key_reloads_total";
pub(crate) const BUILD_INFO: &str = "ember_build_info";

/// Sub-millisecond to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Largest absolute difference between a shadow version's values and the served ones: from
/// float noise (1e-6) to a different answer (1).
const DIFFERENCE_BUCKETS: &[f64] = &[1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0];
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
        .and_then(|b| b.set_buckets_for_metric(latency(SHADOW_DIFFERENCE), DIFFERENCE_BUCKETS))
        .map_err(|e| RecorderError(e.to_string()))?
        .install_recorder()
        .map_err(|e| RecorderError(e.to_string()))?;
    describe();
    Ok(handle)
}

fn describe() {
    ember_inference::metrics::describe();
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
    describe_gauge!(
        BUILD_INFO,
        "Always 1; labels describe the build, model and device."
    );
}

/// `/metrics`: the process's own metrics (CPU, memory, open files, threads), sampled now, and
/// everything recorded.
pub(crate) fn render(handle: &PrometheusHandle) -> String {
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
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}
