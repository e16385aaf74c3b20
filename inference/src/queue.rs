//! The handle the serving layer holds: submit rows, await predictions.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use tokio::sync::oneshot;

use super::batcher::{self, Worker};
use super::buckets::Buckets;
use super::job::{InferenceError, Job, QueueStats};
use super::runner::Runner;
use super::stats::InferenceStatistics;
use super::warmup::WarmUp;
use crate::metrics::{InferenceMetrics, ModelLabels};
use crate::spans;
use ember_model::Classifier;

/// Queue and batching settings.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Most inputs in one forward pass.
    pub max_batch: usize,
    /// How long a batch waits for more work before it runs.
    pub batch_wait: Duration,
    /// Most requests waiting in the queue.
    pub max_queue: usize,
    /// Inference threads. 0 starts none: requests wait until the queue is full (a paused queue,
    /// which is how the backpressure path is tested).
    pub threads: usize,
    /// The sizes passes are padded up to (empty: no padding).
    pub buckets: Buckets,
    /// The model and version the queue's metrics are labelled with.
    pub labels: ModelLabels,
}

/// Counts a request in `in_flight` for as long as its caller waits, and in the statistics as a
/// success or a failure when it ends: a caller's future dropped before its answer (timeout,
/// client gone) counts as a failure.
struct InFlight<'a> {
    stats: &'a QueueStats,
    statistics: &'a InferenceStatistics,
    gauge: &'a metrics::Gauge,
    started: Instant,
    answered: bool,
}

impl<'a> InFlight<'a> {
    fn enter(
        stats: &'a QueueStats,
        statistics: &'a InferenceStatistics,
        gauge: &'a metrics::Gauge,
    ) -> Self {
        stats.in_flight.fetch_add(1, Ordering::SeqCst);
        gauge.increment(1.0);
        Self {
            stats,
            statistics,
            gauge,
            started: Instant::now(),
            answered: false,
        }
    }

    fn finish<T, E>(mut self, result: Result<T, E>) -> Result<T, E> {
        self.answered = result.is_ok();
        result
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.gauge.decrement(1.0);
        self.statistics
            .record_request(self.answered, self.started.elapsed());
    }
}

/// CPU inference threads beside a GPU's, for the requests a CPU serves faster: on the digits
/// model, single inputs and small batches (benches/README.md, "GPU").
pub struct CpuLane<R: Runner = Classifier> {
    /// The model on a CPU backend.
    pub runner: Arc<R>,
    /// Requests with fewer inputs than this take the lane.
    pub below: usize,
    pub threads: usize,
    /// Most inputs in one of the lane's passes.
    pub max_batch: usize,
}

/// One channel and the inference threads that take from it.
struct Lane<R: Runner> {
    tx: Sender<Job<R>>,
    /// Keeps the channel open even with no inference thread, so a paused queue fills up
    /// (503) instead of reporting itself stopped.
    _rx: Receiver<Job<R>>,
    /// What a new inference thread of the lane starts from.
    worker: Worker<R>,
    /// The models its threads take in turn: one per GPU queue.
    runners: Vec<Arc<R>>,
    /// Threads the lane started with.
    threads: usize,
}

impl<R: Runner> Clone for Lane<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            _rx: self._rx.clone(),
            worker: self.worker.clone(),
            runners: self.runners.clone(),
            threads: self.threads,
        }
    }
}

impl<R: Runner> Lane<R> {
    fn start(
        worker: Worker<R>,
        runners: Vec<Arc<R>>,
        rx: Receiver<Job<R>>,
        tx: Sender<Job<R>>,
        threads: usize,
    ) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let handles = batcher::spawn(worker.clone(), &runners, threads)?;
        Ok((
            Self {
                tx,
                _rx: rx,
                worker,
                runners,
                threads,
            },
            handles,
        ))
    }
}

/// Cloneable handle to the queue of one model (`R`: the digits classifier unless named). The
/// inference threads stop once every handle is dropped and the queue has drained.
pub struct InferenceQueue<R: Runner = Classifier> {
    /// The device's lane: every request, or those the CPU lane does not take.
    main: Lane<R>,
    /// Small requests beside a GPU, with the size they must stay under.
    cpu: Option<(usize, Lane<R>)>,
    stats: Arc<QueueStats>,
    statistics: Arc<InferenceStatistics>,
    metrics: InferenceMetrics,
    config: QueueConfig,
}

impl<R: Runner> Clone for InferenceQueue<R> {
    fn clone(&self) -> Self {
        Self {
            main: self.main.clone(),
            cpu: self.cpu.clone(),
            stats: self.stats.clone(),
            statistics: self.statistics.clone(),
            metrics: self.metrics.clone(),
            config: self.config.clone(),
        }
    }
}

impl<R: Runner> InferenceQueue<R> {
    /// Start `config.threads` inference threads sharing `runner`.
    pub fn start(
        runner: Arc<R>,
        config: QueueConfig,
    ) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        Self::start_with_cpu_lane(vec![runner], config, None)
    }

    /// [`InferenceQueue::start`] with the device's threads spread over `runners` (the same
    /// model on each of a GPU's queues, taken in turn), plus the CPU lane's threads when there
    /// is one. Both lanes share the queue's limits and statistics; the lane's metrics carry
    /// `lane="cpu"`.
    pub fn start_with_cpu_lane(
        runners: Vec<Arc<R>>,
        config: QueueConfig,
        cpu_lane: Option<CpuLane<R>>,
    ) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let stats = Arc::new(QueueStats::default());
        let statistics = Arc::new(InferenceStatistics::new(config.max_batch));
        let metrics = InferenceMetrics::new(&config.labels);
        let start_lane =
            |runners: Vec<Arc<R>>, metrics, max_batch: usize, buckets: Buckets, threads| {
                let Some(runner) = runners.first().cloned() else {
                    return Err(std::io::Error::other("an inference lane needs a model"));
                };
                let (tx, rx) = bounded(config.max_queue.max(1));
                let worker = Worker {
                    metrics,
                    rx: rx.clone(),
                    runner,
                    stats: stats.clone(),
                    statistics: statistics.clone(),
                    max_batch: max_batch.max(1),
                    batch_wait: config.batch_wait,
                    warm_up: Arc::new(WarmUp::new(buckets.warm_up_sizes(), threads)),
                    buckets,
                };
                Lane::start(worker, runners, rx, tx, threads)
            };
        let (main, mut threads) = start_lane(
            runners,
            metrics.clone(),
            config.max_batch,
            config.buckets.clone(),
            config.threads,
        )?;
        let cpu = match cpu_lane {
            None => None,
            Some(lane) => {
                let lane_metrics = InferenceMetrics::new(&config.labels.for_lane("cpu"));
                let (cpu, more) = start_lane(
                    vec![lane.runner],
                    lane_metrics,
                    lane.max_batch,
                    Buckets::default(),
                    lane.threads,
                )?;
                threads.extend(more);
                Some((lane.below, cpu))
            }
        };
        let queue = Self {
            main,
            cpu,
            stats,
            statistics,
            metrics,
            config,
        };
        Ok((queue, threads))
    }

    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    /// Cumulative request and forward-pass statistics (the V2 statistics extension).
    pub fn statistics(&self) -> &InferenceStatistics {
        &self.statistics
    }

    /// Start `threads` more inference threads on this queue (on a paused queue: resume it).
    pub fn add_threads(&self, threads: usize) -> std::io::Result<Vec<JoinHandle<()>>> {
        batcher::spawn(self.main.worker.clone(), &self.main.runners, threads)
    }

    /// The model's inference metrics.
    pub fn metrics(&self) -> &InferenceMetrics {
        &self.metrics
    }

    /// Once every inference thread the queue started with has run every batch size passes run
    /// at (every bucket, or a single input when passes are not padded): each size with the
    /// slowest thread's time for it.
    pub(crate) async fn warmed_up(&self) -> Result<Vec<(usize, Duration)>, InferenceError> {
        let took = self.main.worker.warm_up.wait().await?;
        if let Some((_, lane)) = &self.cpu {
            lane.worker.warm_up.wait().await?;
        }
        Ok(took)
    }

    /// Requests with fewer inputs than this run on the CPU lane, when there is one.
    pub fn cpu_lane_below(&self) -> Option<usize> {
        self.cpu.as_ref().map(|(below, _)| *below)
    }

    /// The CPU lane's inference threads (0 without a lane).
    pub(crate) fn cpu_lane_threads(&self) -> usize {
        self.cpu.as_ref().map_or(0, |(_, lane)| lane.threads)
    }

    /// The settings the queue and its threads were started with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Queue `rows` and wait for their predictions, in the same order. Never blocks the caller's
    /// thread: a full queue is an immediate [`InferenceError::QueueFull`].
    pub async fn predict(&self, rows: Vec<R::Row>) -> Result<Vec<R::Answer>, InferenceError> {
        let in_flight = InFlight::enter(&self.stats, &self.statistics, &self.metrics.in_flight);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            rows,
            enqueued: Instant::now(),
            spans: spans::queued(),
            reply,
        };
        // Count before sending so a fast worker never decrements below zero; the gauge moves by
        // increments only, so its updates commute with the worker's.
        self.stats.depth.fetch_add(1, Ordering::SeqCst);
        let small = self
            .cpu
            .as_ref()
            .filter(|(below, _)| job.rows.len() < *below)
            .map(|(_, lane)| lane);
        // A small request goes to the CPU lane; when that is full (or there is none), to the
        // device's, which refuses only once it is full too.
        let mut sent = match small {
            Some(lane) => lane.tx.try_send(job).map(|()| lane),
            None => Err(TrySendError::Full(job)),
        };
        if let Err(TrySendError::Full(job)) = sent {
            sent = self.main.tx.try_send(job).map(|()| &self.main);
        }
        match sent {
            Ok(lane) => lane.worker.metrics.queue_depth.increment(1.0),
            Err(e) => {
                self.stats.depth.fetch_sub(1, Ordering::SeqCst);
                return in_flight.finish(Err(match e {
                    TrySendError::Full(_) => {
                        self.metrics.rejected_queue_full.increment(1);
                        InferenceError::QueueFull(self.config.max_queue)
                    }
                    TrySendError::Disconnected(_) => InferenceError::Stopped,
                }));
            }
        }
        // Threads answer every job they take, also while stopping: a reply dropped unanswered
        // means the thread holding it panicked (batcher.rs).
        in_flight.finish(answer.await.unwrap_or_else(|_| {
            Err(InferenceError::Failed(
                "the inference thread answering it panicked".into(),
            ))
        }))
    }
}
