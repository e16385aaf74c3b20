//! What every handler shares: the queue handle, the model's description, and readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use super::types::ModelMetadata;
use crate::inference::InferenceQueue;
use crate::telemetry::metrics as m;

/// The served model as the API describes it.
pub type ModelInfo = ModelMetadata;

pub struct AppState {
    pub queue: InferenceQueue,
    pub model: ModelInfo,
    pub metrics: PrometheusHandle,
    /// `--request-timeout`, if set.
    pub request_timeout: Option<Duration>,
    /// A warm-up forward pass has succeeded.
    warm: AtomicBool,
    /// A shutdown signal has arrived.
    draining: AtomicBool,
}

impl AppState {
    /// Not ready until [`AppState::warm_up`] has succeeded.
    pub fn new(
        queue: InferenceQueue,
        model: ModelInfo,
        metrics: PrometheusHandle,
        request_timeout: Option<Duration>,
    ) -> Arc<Self> {
        metrics::gauge!(m::READY).set(0.0);
        Arc::new(Self {
            queue,
            model,
            metrics,
            request_timeout,
            warm: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        })
    }

    /// Ready for new traffic: warmed up and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.is_warm() && !self.draining.load(Ordering::SeqCst)
    }

    /// The model has answered a warm-up pass. Requests are served from then on, also while
    /// draining: a request that reaches a handler during shutdown was accepted before it.
    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::SeqCst)
    }

    pub fn mark_warm(&self) {
        self.warm.store(true, Ordering::SeqCst);
        self.publish_readiness();
    }

    /// Readiness turns 503 from now on; in-flight and already-connected requests still run.
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.publish_readiness();
    }

    fn publish_readiness(&self) {
        metrics::gauge!(m::READY).set(if self.is_ready() { 1.0 } else { 0.0 });
    }

    /// Queue `rows` and await their predictions, within `--request-timeout` if one is set. A
    /// request that times out is dropped from its batch if its forward pass has not started.
    /// Every API answers through here, so predictions are counted here, by label.
    pub async fn predict(
        &self,
        rows: Vec<[f32; crate::model::INPUT_LEN]>,
    ) -> Result<Vec<crate::inference::Prediction>, super::ApiError> {
        if !self.is_warm() {
            return Err(super::ApiError::NotReady(
                "the model is not ready yet".into(),
            ));
        }
        let answer = self.queue.predict(rows);
        let predictions = match self.request_timeout {
            None => answer.await?,
            Some(limit) => match tokio::time::timeout(limit, answer).await {
                Ok(result) => result?,
                Err(_) => {
                    metrics::counter!(m::REJECTED, "reason" => "timeout").increment(1);
                    return Err(super::ApiError::Timeout(limit));
                }
            },
        };
        for p in &predictions {
            metrics::counter!(m::PREDICTIONS, "label" => self.label(p.label)).increment(1);
        }
        Ok(predictions)
    }

    /// The label of class `class` (its index where the manifest names none).
    pub fn label(&self, class: usize) -> String {
        self.model
            .labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }

    /// One forward pass through the whole queue; readiness turns on only if it succeeds.
    pub async fn warm_up(&self) -> Result<(), String> {
        let probe = vec![[0.0f32; crate::model::INPUT_LEN]];
        let preds = self.queue.predict(probe).await.map_err(|e| e.to_string())?;
        let sum: f32 = preds.first().map_or(0.0, |p| p.probabilities.iter().sum());
        if !(0.99..=1.01).contains(&sum) {
            return Err(format!("warm-up probabilities sum to {sum}, not 1"));
        }
        self.mark_warm();
        Ok(())
    }
}
