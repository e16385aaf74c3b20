//! The inference metrics: their names, help texts and the per-model handles the queue records
//! through. The server's telemetry installs the Prometheus recorder (with these histograms'
//! buckets) and describes these beside its own HTTP and gRPC metrics.

use metrics::{
    Counter, Gauge, Histogram, Label, Unit, describe_counter, describe_gauge, describe_histogram,
};

pub const QUEUE_DEPTH: &str = "ember_inference_queue_depth";
pub const IN_FLIGHT: &str = "ember_inference_requests_in_flight";
pub const QUEUE_WAIT: &str = "ember_inference_queue_wait_seconds";
pub const FORWARD_DURATION: &str = "ember_inference_forward_duration_seconds";
pub const FORWARD_ERRORS: &str = "ember_inference_forward_errors_total";
pub const THREAD_PANICS: &str = "ember_inference_thread_panics_total";
pub const BATCH_SIZE: &str = "ember_inference_batch_size";
pub const PREDICTIONS: &str = "ember_predictions_total";
pub const REJECTED: &str = "ember_inference_rejected_total";
pub const READY: &str = "ember_ready";
pub const MODEL_LOADED: &str = "ember_model_version_loaded";
pub const MODEL_WEIGHTS_BYTES: &str = "ember_model_weights_bytes";
pub const MODEL_LOADS: &str = "ember_model_loads_total";
pub const SHADOW_COMPARISONS: &str = "ember_shadow_comparisons_total";
pub const SHADOW_DIFFERENCE: &str = "ember_shadow_abs_difference";

/// Help texts for the metrics above.
pub fn describe() {
    describe_gauge!(QUEUE_DEPTH, "Requests waiting in the inference queue.");
    describe_gauge!(
        IN_FLIGHT,
        "Inference requests waiting for their answer, queued or in a forward pass (REST and gRPC; never probes or scrapes): what autoscaling scales on."
    );
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
        MODEL_LOADED,
        "1 while a version of a model from the repository serves, 0 once it is unloaded."
    );
    describe_gauge!(
        MODEL_WEIGHTS_BYTES,
        Unit::Bytes,
        "Bytes of weights a loaded version holds (0 once unloaded); --memory-budget caps their sum."
    );
    describe_counter!(
        MODEL_LOADS,
        "Loads through the repository API, by outcome (loaded, failed)."
    );
    describe_counter!(
        SHADOW_COMPARISONS,
        "Rows also run on a shadow version, by model, served and shadow version, and outcome: agree or disagree (the label), compared (no labels), failed."
    );
    describe_histogram!(
        SHADOW_DIFFERENCE,
        "Largest absolute difference between a shadow version's values and the served version's, per row."
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
    pub(crate) fn for_lane(&self, lane: &'static str) -> Self {
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
    pub(crate) queue_depth: Gauge,
    pub(crate) in_flight: Gauge,
    pub(crate) queue_wait: Histogram,
    pub(crate) forward_duration: Histogram,
    pub(crate) forward_errors: Counter,
    pub(crate) thread_panics: Counter,
    pub(crate) batch_size: Histogram,
    pub(crate) rejected_queue_full: Counter,
}

impl InferenceMetrics {
    pub(crate) fn new(model: &ModelLabels) -> Self {
        let labels = model.labels();
        Self {
            queue_depth: metrics::gauge!(QUEUE_DEPTH, labels.clone()),
            in_flight: metrics::gauge!(IN_FLIGHT, labels.clone()),
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
    pub(crate) fn predictions(&self, label: &str) -> Counter {
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
