//! The models compiled in from ONNX (`ember_model::imported`), each served as the digits model
//! is: its own inference queue with batching, warm-up, statistics and metrics labelled with its
//! name, behind the same readiness and `--request-timeout` rules. [`super::ModelService`]
//! holds them, so every surface finds a model by name in one place.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::deadline::answers_within;
use super::errors::{InstanceGroup, PredictError, WarmUpError};
use crate::BucketSpec;
use crate::metrics::ModelLabels;
use crate::{BucketError, Buckets, ImportedRow, InferenceQueue, QueueConfig, Runner};
use ember_model::imported::{Available, ImportedError, ImportedModel};
use ember_model::{Device, ModelConfig};

/// One imported model on its device, with its queue.
pub struct ImportedService {
    pub queue: InferenceQueue<ImportedModel>,
    /// The model the queue's threads share: its config, and the checks a request must pass.
    pub model: Arc<ImportedModel>,
    /// Backend the model runs on (`flex`, `ndarray` or `wgpu`).
    pub backend: String,
    /// `cpu` or the GPU adapter's name.
    pub device: String,
    request_timeout: Option<Duration>,
    warm: AtomicBool,
    /// Inputs classified, per output with labels: one counter per class.
    predictions: Vec<(usize, usize, Vec<metrics::Counter>)>,
    /// Its inference threads, joined when the version is unloaded (they stop once the last
    /// handle on the queue is gone).
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How the imported models' queues are set up: the digits model's settings where they apply.
#[derive(Debug, Clone, Default)]
pub struct ImportedSettings {
    /// Inference threads per model, where its config.json sets no `instance_count`.
    pub threads: usize,
    pub batch_wait: Duration,
    pub max_queue: usize,
    /// Pad passes to the models' preferred batch sizes (a GPU: every shape compiles once).
    pub pad: bool,
    pub backend: String,
    pub device_name: String,
    pub request_timeout: Option<Duration>,
    /// Where weights versions are looked for (`--weights`): `<repository>/<model>/<version>/`.
    pub repository: PathBuf,
    /// How long an unload waits for a version's queued and in-flight requests.
    pub drain_timeout: Duration,
}

/// Why an imported model could not start.
#[derive(Debug, thiserror::Error)]
pub enum ImportedStartError {
    #[error(transparent)]
    Model(#[from] ImportedError),
    #[error("{model}: {source}")]
    Buckets { model: String, source: BucketError },
    #[error("{model}: cannot start the inference threads: {source}")]
    Threads {
        model: String,
        source: std::io::Error,
    },
}

impl ImportedService {
    /// Load one version of the model `name` and start its queue (not ready until
    /// [`Self::warm_up`]). Blocking: the weights are read and checked.
    pub(crate) fn start(
        name: &str,
        version: &Available,
        device: &Device,
        settings: &ImportedSettings,
    ) -> Result<Arc<Self>, ImportedStartError> {
        let model = Arc::new(ImportedModel::load_available(name, version, device)?);
        let config = model.config().clone();
        let max_batch = config.max_batch as usize;
        let buckets = if settings.pad {
            let sizes: Vec<usize> = config
                .preferred_batch_sizes
                .iter()
                .map(|&n| n as usize)
                .collect();
            let spec = match sizes.is_empty() {
                true => BucketSpec::PowersOfTwo,
                false => BucketSpec::Sizes(sizes),
            };
            Buckets::resolve(&spec, max_batch, true).map_err(|source| {
                ImportedStartError::Buckets {
                    model: name.into(),
                    source,
                }
            })?
        } else {
            Buckets::default()
        };
        let (queue, threads) = InferenceQueue::start(
            model.clone(),
            QueueConfig {
                max_batch,
                batch_wait: settings.batch_wait,
                max_queue: settings.max_queue,
                threads: config
                    .instance_count
                    .map_or(settings.threads, |n| n as usize),
                buckets,
                labels: ModelLabels {
                    model: config.name.clone(),
                    version: config.version.clone(),
                    lane: None,
                },
            },
        )
        .map_err(|source| ImportedStartError::Threads {
            model: name.into(),
            source,
        })?;
        let mut offset = 0;
        let mut predictions = Vec::new();
        for output in &config.outputs {
            let width = output.row_len();
            if !output.labels.is_empty() {
                let counters = output
                    .labels
                    .iter()
                    .map(|l| queue.metrics().predictions(l))
                    .collect();
                predictions.push((offset, width, counters));
            }
            offset += width;
        }
        let service = Arc::new(Self {
            queue,
            model,
            backend: settings.backend.clone(),
            device: settings.device_name.clone(),
            request_timeout: settings.request_timeout,
            warm: AtomicBool::new(false),
            predictions,
            threads: Mutex::new(threads),
        });
        tracing::info!(
            model = %config.name, version = %config.version,
            inputs = config.inputs.len(), outputs = config.outputs.len(),
            max_batch = config.max_batch, weights = %service.model.weights_origin(),
            sha256 = service.model.weights_sha256(), "imported model loaded"
        );
        Ok(service)
    }

    /// Its inference threads, to join once the last handle on it is dropped.
    pub(crate) fn take_threads(&self) -> Vec<JoinHandle<()>> {
        self.threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    /// The version it serves, as a semantic version.
    pub fn version(&self) -> &str {
        &self.config().version
    }

    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    pub fn name(&self) -> &str {
        &self.config().name
    }

    /// Its warm-up has succeeded.
    pub(crate) fn is_warm(&self) -> bool {
        self.warm.load(Ordering::SeqCst)
    }

    /// Ready without a warm-up, for a queue started with no threads.
    pub(crate) fn mark_warm(&self) {
        self.warm.store(true, Ordering::SeqCst);
    }

    /// Every inference thread runs every padded size, then one probe goes through the queue.
    pub(crate) async fn warm_up(&self) -> Result<Vec<(usize, Duration)>, WarmUpError> {
        let took = self.queue.warmed_up().await?;
        let answers = self.queue.predict(vec![self.model.padding_row()]).await?;
        if let Some(reason) = answers.first().and_then(|a| self.model.implausible(a)) {
            return Err(WarmUpError::Implausible(reason));
        }
        self.mark_warm();
        Ok(took)
    }

    /// Queue `rows` (checked by the surface) and await one answer per row, within
    /// `--request-timeout`.
    pub async fn predict(&self, rows: Vec<ImportedRow>) -> Result<Vec<Box<[f32]>>, PredictError> {
        if !self.is_warm() {
            return Err(PredictError::NotReady);
        }
        let answers = answers_within(&self.queue, rows, self.request_timeout).await?;
        for (offset, width, counters) in &self.predictions {
            for answer in &answers {
                let Some(values) = answer.get(*offset..offset + width) else {
                    continue;
                };
                let best = values
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i);
                if let Some(counter) = best.and_then(|i| counters.get(i)) {
                    counter.increment(1);
                }
            }
        }
        Ok(answers)
    }

    /// [`Self::predict`], and with `shadow` the same rows also go to a candidate version
    /// afterwards, for comparison only.
    pub async fn predict_shadowed(
        &self,
        rows: Vec<ImportedRow>,
        shadow: Option<super::traffic::Shadow>,
    ) -> Result<Vec<Box<[f32]>>, PredictError> {
        match shadow {
            Some(shadow) => shadow.beside(self, rows).await,
            None => self.predict(rows).await,
        }
    }

    /// Its inference threads, as Triton's model configuration lists them.
    pub fn instance_groups(&self) -> Vec<InstanceGroup> {
        vec![InstanceGroup {
            name: self.name().to_string(),
            gpu: self.backend == "wgpu",
            count: self.queue.config().threads,
        }]
    }
}
