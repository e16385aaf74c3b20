//! The models as a service: what every protocol surface calls to get predictions.
//!
//! It owns the rules that do not depend on the wire format: nothing is served before a warm-up
//! pass has succeeded, readiness turns off when shutdown begins, `--request-timeout` bounds the
//! wait, and refusals and predictions are counted. The HTTP surfaces (and any other) only
//! translate requests into [`ModelService::predict`] calls and its answers into their format.
//! [`ModelService`] is the digits model's service and holds the [`imported`] models' beside it,
//! so [`ModelService::find`] is where every surface looks a model up by name.

mod deadline;
mod errors;
pub mod imported;
pub mod lookup;
pub mod repository;
pub mod traffic;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use self::deadline::answers_within;
pub use self::errors::{INTERNAL_DETAIL, InstanceGroup, PredictError, WarmUpError};
use self::imported::ImportedService;
pub use self::lookup::ModelLookupError;
use self::lookup::check_version;
use self::repository::{Change, IndexEntry, ModelRepository, RepositoryError, policy_from_config};
use crate::metrics as m;
use crate::{InferenceQueue, Prediction};
use ember_model::weights::TensorSpec;
use ember_model::{INPUT_LEN, not_a_distribution};

/// The served model as clients see it: what it takes and gives, and where it runs.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[schema(as = ModelMetadata)]
pub struct ServedModel {
    #[schema(example = "digits-cnn")]
    pub name: String,
    #[schema(example = "2.0.0")]
    pub version: String,
    #[schema(value_type = Object)]
    pub input: TensorSpec,
    #[schema(value_type = Object)]
    pub output: TensorSpec,
    pub labels: Vec<String>,
    /// Backend the model runs on (`flex`, `ndarray` or `wgpu`).
    pub backend: String,
    /// `cpu` or the GPU adapter's name.
    pub device: String,
    /// Why `--device auto` runs on the CPU (no GPU backend, no adapter, only a software one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_fallback: Option<String>,
    /// Most inputs accepted in one request.
    pub max_batch_size: usize,
    /// Requests with fewer inputs than this run on CPU threads beside the GPU (absent: every
    /// request runs on `device`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_lane_below: Option<usize>,
    /// Devices opened on the GPU's adapter, each with its own command queue, that the
    /// inference threads are spread over (`--gpu-queues`; absent on the CPU backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_queues: Option<usize>,
    /// sha256 of the weights file, as verified at start-up.
    pub weights_sha256: String,
    /// Accuracy on the held-out 20 % of the data set, as recorded at training time.
    pub held_out_accuracy: f64,
}

/// A model a request names, as [`ModelService::find`] found it.
pub enum Served {
    /// The digits model ([`ModelService`] itself).
    Digits,
    /// A version of a model compiled in from ONNX, held until the request has its answer (an
    /// unload waits for that).
    Imported(Arc<ImportedService>),
}

pub struct ModelService {
    pub queue: InferenceQueue,
    pub model: ServedModel,
    /// `--request-timeout`, if set.
    pub(crate) request_timeout: Option<Duration>,
    /// The warm-up ([`ModelService::warm_up`]) has succeeded.
    warm: AtomicBool,
    /// A shutdown signal has arrived.
    draining: AtomicBool,
    /// [`ModelService::is_ready`], for surfaces that push it (gRPC health checking).
    readiness: watch::Sender<bool>,
    /// Inputs classified, one counter per class.
    predictions: Vec<metrics::Counter>,
    /// The models compiled in from ONNX, served beside the digits model, in the repository's
    /// order, with the versions each serves; their readiness is part of the server's.
    pub repository: ModelRepository,
}

impl ModelService {
    /// Not ready until [`ModelService::warm_up`] has succeeded.
    pub fn new(
        queue: InferenceQueue,
        model: ServedModel,
        request_timeout: Option<Duration>,
    ) -> Arc<Self> {
        Self::serving(queue, model, request_timeout, ModelRepository::default())
    }

    /// [`ModelService::new`] with the imported models served beside the digits model.
    pub fn serving(
        queue: InferenceQueue,
        model: ServedModel,
        request_timeout: Option<Duration>,
        repository: ModelRepository,
    ) -> Arc<Self> {
        metrics::gauge!(m::READY).set(0.0);
        let predictions = (0..ember_model::NUM_CLASSES)
            .map(|class| {
                let label = model
                    .labels
                    .get(class)
                    .cloned()
                    .unwrap_or_else(|| class.to_string());
                queue.metrics().predictions(&label)
            })
            .collect();
        Arc::new(Self {
            predictions,
            repository,
            queue,
            model,
            request_timeout,
            warm: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            readiness: watch::Sender::new(false),
        })
    }

    /// Ready for new traffic: warmed up, every model the repository's policies ask for ready,
    /// and not shutting down.
    pub fn is_ready(&self) -> bool {
        self.is_warm() && self.repository.is_ready() && !self.draining.load(Ordering::SeqCst)
    }

    /// The model has answered a warm-up pass. Requests are served from then on, also while
    /// draining: a request that reaches a handler during shutdown was accepted before it.
    pub fn is_warm(&self) -> bool {
        self.warm.load(Ordering::SeqCst)
    }

    /// The model `name` (and `version`, if given and not empty), or why none matches.
    pub fn find(&self, name: &str, version: Option<&str>) -> Result<Served, ModelLookupError> {
        if name == self.model.name {
            check_version(name, &self.model.version, version)?;
            return Ok(Served::Digits);
        }
        match self.repository.model(name) {
            Some(model) => Ok(Served::Imported(model.find(version)?)),
            None => Err(ModelLookupError::UnknownModel {
                asked: name.to_string(),
                served: self.model_names().join("', '"),
            }),
        }
    }

    /// Every served model's name: the digits model's, then the imported ones'.
    pub(crate) fn model_names(&self) -> Vec<&str> {
        std::iter::once(self.model.name.as_str())
            .chain(self.repository.models().iter().map(|m| m.name()))
            .collect()
    }

    /// The protocol's names of the loaded versions of repository model `name` (majors, newest
    /// first).
    pub fn versions_of(&self, name: &str) -> Vec<String> {
        self.repository
            .model(name)
            .map(|m| m.protocol_versions())
            .unwrap_or_default()
    }

    /// The repository index (Triton's): the built-in model, then every version of every
    /// repository model, loaded or not; only the ready ones where `ready_only`.
    pub fn repository_index(&self, ready_only: bool) -> Vec<IndexEntry> {
        let mut index = vec![IndexEntry {
            name: self.model.name.clone(),
            version: self.model.version.clone(),
            state: if self.is_warm() {
                "READY"
            } else {
                "UNAVAILABLE"
            },
            reason: if self.is_warm() {
                String::new()
            } else {
                "warming up".into()
            },
        }];
        index.extend(self.repository.index());
        if ready_only {
            index.retain(|e| e.state == "READY");
        }
        index
    }

    /// Load repository model `name` ([`ModelRepository::load`]) with the policy it has, or,
    /// given `config` (a Triton model configuration as JSON), with the policy the flags gave
    /// as `config` changes it: a config replaces the last one, as Triton's does.
    pub async fn load_model(
        &self,
        name: &str,
        config: Option<&str>,
    ) -> Result<Change, RepositoryError> {
        let model = self.repository_model(name)?;
        let policy = config
            .map(|c| policy_from_config(c, model.configured_policy()))
            .transpose()?;
        self.repository.load(name, policy).await
    }

    /// Unload repository model `name` ([`ModelRepository::unload`]).
    pub async fn unload_model(&self, name: &str) -> Result<Change, RepositoryError> {
        self.repository_model(name)?;
        self.repository.unload(name).await
    }

    fn repository_model(
        &self,
        name: &str,
    ) -> Result<&Arc<repository::RepositoryModel>, RepositoryError> {
        if name == self.model.name {
            return Err(RepositoryError::BuiltIn(name.to_string()));
        }
        self.repository.find_model(name)
    }

    /// Every loaded version of every model of the repository, in its order, newest first.
    pub fn imported(&self) -> Vec<Arc<ImportedService>> {
        self.repository.services()
    }

    /// The model an inference request names, as [`Self::find`] finds it, except that a request
    /// naming no version of a repository model meets the version the traffic split gives its
    /// sticky `key` (or a random draw), and may also be shadowed to a candidate version.
    pub fn route(
        &self,
        name: &str,
        version: Option<&str>,
        key: Option<&str>,
    ) -> Result<(Served, Option<traffic::Shadow>), ModelLookupError> {
        match self.repository.model(name) {
            Some(model) if version.is_none_or(str::is_empty) => {
                let (serve, shadow) = model.route(key)?;
                Ok((Served::Imported(serve), shadow))
            }
            _ => Ok((self.find(name, version)?, None)),
        }
    }

    /// Whether model `name` (at `version`, if given) is ready: false, not an error, for a
    /// repository model with no version loaded.
    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, ModelLookupError> {
        match self.find(name, version) {
            Ok(Served::Digits) => Ok(self.is_ready()),
            Ok(Served::Imported(model)) => Ok(self.is_imported_ready(&model)),
            Err(ModelLookupError::Unavailable { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// An imported model is ready: warmed up, and the server is not shutting down.
    pub fn is_imported_ready(&self, model: &ImportedService) -> bool {
        model.is_warm() && !self.draining.load(Ordering::SeqCst)
    }

    /// Ready without a warm-up pass, for a queue that cannot run one (started with no threads).
    pub fn mark_warm(&self) {
        self.warm.store(true, Ordering::SeqCst);
        self.publish_readiness();
    }

    /// Readiness turns off from now on; in-flight and already-connected requests still run.
    pub fn begin_shutdown(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.publish_readiness();
    }

    fn publish_readiness(&self) {
        let ready = self.is_ready();
        metrics::gauge!(m::READY).set(if ready { 1.0 } else { 0.0 });
        self.readiness.send_replace(ready);
    }

    /// Readiness now and every change of it from now on.
    pub fn watch_readiness(&self) -> watch::Receiver<bool> {
        self.readiness.subscribe()
    }

    /// Queue `rows` and await their predictions, within `--request-timeout` if one is set. A
    /// request that times out is dropped from its batch if its forward pass has not started.
    /// Every surface answers through here, so predictions are counted here, by label.
    pub async fn predict(
        &self,
        rows: Vec<[f32; INPUT_LEN]>,
    ) -> Result<Vec<Prediction>, PredictError> {
        if !self.is_warm() {
            return Err(PredictError::NotReady);
        }
        let predictions = answers_within(&self.queue, rows, self.request_timeout).await?;
        for p in &predictions {
            if let Some(counter) = self.predictions.get(p.label) {
                counter.increment(1);
            }
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

    /// The inference threads by kind: the device's, then the CPU lane's beside a GPU.
    pub fn instance_groups(&self) -> Vec<InstanceGroup> {
        let mut groups = vec![InstanceGroup {
            name: self.model.name.clone(),
            gpu: self.model.backend == "wgpu",
            count: self.queue.config().threads,
        }];
        let lane = self.queue.cpu_lane_threads();
        if lane > 0 {
            groups.push(InstanceGroup {
                name: format!("{}_cpu_lane", self.model.name),
                gpu: false,
                count: lane,
            });
        }
        groups
    }

    /// Wait for every inference thread to run every batch size passes run at, then send one
    /// probe through the whole queue; readiness turns on only if all of it succeeds. Returns
    /// each size with the slowest thread's time for it.
    pub async fn warm_up(&self) -> Result<Vec<(usize, Duration)>, WarmUpError> {
        let took = self.queue.warmed_up().await?;
        let preds = self.queue.predict(vec![[0.0f32; INPUT_LEN]]).await?;
        let bad = preds
            .first()
            .map_or(Some(0.0), |p| not_a_distribution(&p.probabilities));
        if let Some(sum) = bad {
            return Err(WarmUpError::NotAProbability(sum));
        }
        self.repository.warm_up().await?;
        self.mark_warm();
        Ok(took)
    }
}
