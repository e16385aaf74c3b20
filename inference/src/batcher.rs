//! The inference thread: gather queued jobs into a batch, run one forward pass, reply to each.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::buckets::Buckets;
use super::job::{InferenceError, Job, QueueStats};
use super::pass::{guarded_pass, panic_message};
use super::runner::Runner;
use super::stats::{InferenceStatistics, PassTimes};
use super::warmup::WarmUp;
use crate::metrics::InferenceMetrics;
use crate::spans;

/// What an inference thread needs; each thread gets a clone.
pub(super) struct Worker<R: Runner> {
    pub(crate) rx: Receiver<Job<R>>,
    pub(crate) runner: Arc<R>,
    pub(crate) stats: Arc<QueueStats>,
    pub(crate) statistics: Arc<InferenceStatistics>,
    pub(crate) metrics: InferenceMetrics,
    pub(crate) max_batch: usize,
    pub(crate) batch_wait: Duration,
    /// The sizes passes are padded up to (none: passes run at their own size).
    pub(crate) buckets: Buckets,
    /// Run by the thread before it takes work.
    pub(crate) warm_up: Arc<WarmUp>,
}

// Not derived: a derive would ask the model itself to be `Clone`; only its `Arc` is cloned.
impl<R: Runner> Clone for Worker<R> {
    fn clone(&self) -> Self {
        Self {
            rx: self.rx.clone(),
            runner: self.runner.clone(),
            stats: self.stats.clone(),
            statistics: self.statistics.clone(),
            metrics: self.metrics.clone(),
            max_batch: self.max_batch,
            batch_wait: self.batch_wait,
            buckets: self.buckets.clone(),
            warm_up: self.warm_up.clone(),
        }
    }
}

/// Start `threads` inference threads, each running a clone of `worker` on the next of
/// `runners` in turn (one per GPU queue; `worker`'s own when there are none).
pub(super) fn spawn<R: Runner>(
    worker: Worker<R>,
    runners: &[Arc<R>],
    threads: usize,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..threads)
        .map(|i| {
            let mut worker = worker.clone();
            if let Some(runner) = runners.get(i % runners.len().max(1)) {
                worker.runner = runner.clone();
            }
            std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker.run())
        })
        .collect()
}

impl<R: Runner> Worker<R> {
    /// Warm up, then serve batches until every sender is gone and the queue is empty.
    ///
    /// A panic outside a forward pass (those are caught in `guarded_pass`) would end the thread
    /// silently, leaving the server ready with fewer threads than it says: it is caught here,
    /// logged and counted, the batch it hit gets an error (its replies are dropped), and the
    /// thread serves on.
    pub(crate) fn run(self) {
        self.warm_up.run(&*self.runner);
        // Jobs this thread has taken and not answered, to give back if a panic drops them.
        let held_here = AtomicUsize::new(0);
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.serve(&held_here))) {
                Ok(()) => return,
                Err(panic) => {
                    let lost = held_here.swap(0, Ordering::SeqCst);
                    self.stats.held.fetch_sub(lost, Ordering::SeqCst);
                    self.metrics.thread_panics.increment(1);
                    tracing::error!(
                        thread = std::thread::current().name().unwrap_or("inference"),
                        reason = %panic_message(&panic),
                        requests = lost,
                        "an inference thread panicked outside a forward pass: its batch got an error, the thread serves on"
                    );
                }
            }
        }
    }

    /// Serve batches until every sender is gone and the queue is empty.
    fn serve(&self, held_here: &AtomicUsize) {
        let mut carry: Option<Job<R>> = None;
        loop {
            let first = match carry.take() {
                Some(job) => job,
                None => match self.rx.recv() {
                    Ok(job) => self.taken(job, held_here),
                    Err(_) => return,
                },
            };
            let (batch, next) = self.gather(first, held_here);
            carry = next;
            let taken = batch.len();
            self.run_batch(batch);
            held_here.fetch_sub(taken, Ordering::SeqCst);
        }
    }

    fn taken(&self, job: Job<R>, held_here: &AtomicUsize) -> Job<R> {
        held_here.fetch_add(1, Ordering::SeqCst);
        self.stats.held.fetch_add(1, Ordering::SeqCst);
        self.stats.depth.fetch_sub(1, Ordering::SeqCst);
        self.metrics.queue_depth.decrement(1.0);
        let waited = job.enqueued.elapsed();
        self.metrics.queue_wait.record(waited.as_secs_f64());
        self.statistics.record_queued(waited);
        job
    }

    /// Add jobs to `first` until `max_batch` inputs or `batch_wait` has passed. A job that would
    /// overflow the batch is handed back to start the next one.
    ///
    /// The window stays open only while some caller is in flight that no inference thread
    /// holds yet (queued, or being enqueued right now): a lone request runs at once, and a batch
    /// stops waiting once every other caller is in this batch or in another thread's pass
    /// (nobody else could join it; waiting would only idle this thread). Everything queued is
    /// always taken.
    fn gather(&self, first: Job<R>, held_here: &AtomicUsize) -> (Vec<Job<R>>, Option<Job<R>>) {
        let mut inputs = first.rows.len();
        let mut batch = vec![first];
        let deadline = Instant::now() + self.batch_wait;
        while inputs < self.max_batch {
            let in_flight = self.stats.in_flight.load(Ordering::SeqCst);
            let others = in_flight > self.stats.held.load(Ordering::SeqCst);
            let next = if self.batch_wait.is_zero() || !others {
                self.rx.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                self.rx.recv_deadline(deadline)
            };
            let Ok(job) = next else { break };
            let job = self.taken(job, held_here);
            if inputs + job.rows.len() > self.max_batch {
                return (batch, Some(job));
            }
            inputs += job.rows.len();
            batch.push(job);
        }
        (batch, None)
    }

    fn run_batch(&self, batch: Vec<Job<R>>) {
        let taken = batch.len();
        self.answer(batch);
        self.stats.held.fetch_sub(taken, Ordering::SeqCst);
    }

    fn answer(&self, batch: Vec<Job<R>>) {
        // Drop jobs whose caller has gone away (client disconnected) before spending a pass.
        let mut batch: Vec<Job<R>> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        let gathering = Instant::now();
        let mut rows: Vec<R::Row> = batch.iter().flat_map(|j| j.rows.iter().cloned()).collect();
        let inputs = rows.len();
        // Padding rows up to the bucket size: the device runs only shapes warmed before
        // readiness. Their results are never read (each job takes its own rows' answers).
        let padded = self.buckets.padded(inputs);
        if padded > inputs {
            rows.resize(padded, self.runner.padding_row());
        }
        // Their wait ends here; the pass is one span for the whole batch.
        for spans in batch.iter_mut().filter_map(|j| j.spans.as_mut()) {
            spans.wait = None;
        }
        let requests: Vec<_> = batch
            .iter()
            .filter_map(|j| j.spans.as_ref())
            .map(|s| &s.request)
            .collect();
        let pass = spans::forward_pass(&requests, inputs);
        let started = Instant::now();
        let result = pass.in_scope(|| guarded_pass(&*self.runner, &rows));
        drop(pass);
        let mut times = PassTimes {
            input: started - gathering,
            infer: started.elapsed(),
            output: Duration::ZERO,
        };
        self.metrics
            .forward_duration
            .record(times.infer.as_secs_f64());
        self.metrics.batch_size.record(inputs as f64);

        match result {
            Ok(answers) => {
                let answering = Instant::now();
                let mut answers = answers.into_iter();
                let answers: Vec<Vec<R::Answer>> = batch
                    .iter()
                    .map(|job| answers.by_ref().take(job.rows.len()).collect())
                    .collect();
                times.output = answering.elapsed();
                // Recorded before anyone is answered, so a caller that reads the statistics
                // after its answer sees its own pass.
                self.statistics.record_pass(batch.len(), inputs, times);
                for (job, preds) in batch.into_iter().zip(answers) {
                    let _ = job.reply.send(Ok(preds));
                }
            }
            Err(reason) => {
                tracing::error!(%reason, inputs, padded = rows.len(), "forward pass failed");
                self.metrics.forward_errors.increment(1);
                for job in batch {
                    let _ = job.reply.send(Err(InferenceError::Failed(reason.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use tokio::sync::oneshot;

    use super::{AtomicUsize, Buckets, InferenceStatistics, Job, QueueStats, WarmUp, Worker};
    use ember_model::{Classifier, DeviceChoice, device};

    fn worker(
        rx: crossbeam_channel::Receiver<Job<Classifier>>,
        stats: Arc<QueueStats>,
    ) -> Worker<Classifier> {
        let dev = device::select(DeviceChoice::Cpu).unwrap().device;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights");
        let (classifier, _) = Classifier::load(&dir, &dev).unwrap();
        Worker {
            rx,
            runner: Arc::new(classifier),
            stats,
            statistics: Arc::new(InferenceStatistics::new(64)),
            metrics: crate::metrics::InferenceMetrics::new(&Default::default()),
            max_batch: 64,
            batch_wait: Duration::ZERO,
            buckets: Buckets::default(),
            warm_up: Arc::new(WarmUp::new(vec![], 0)),
        }
    }

    type Answer<R = Classifier> =
        oneshot::Receiver<Result<Vec<<R as crate::Runner>::Answer>, super::InferenceError>>;

    fn job(rows: usize) -> (Job<Classifier>, Answer) {
        job_of(vec![[1.0; 64]; rows])
    }

    /// A job of `rows` for a runner `R`, and the receiver of its answer.
    fn job_of<R: crate::Runner>(rows: Vec<R::Row>) -> (Job<R>, Answer<R>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            rows,
            enqueued: Instant::now(),
            spans: None,
            reply,
        };
        (job, answer)
    }

    /// Echoes its rows; padding a pass panics (outside the guarded forward pass) while armed.
    struct PanicsWhenPadding(std::sync::atomic::AtomicBool);

    impl crate::Runner for PanicsWhenPadding {
        type Row = u8;
        type Answer = u8;
        fn padding_row(&self) -> u8 {
            assert!(!self.0.load(Ordering::SeqCst), "padding blew up");
            0
        }
        fn run(&self, rows: &[u8]) -> Result<Vec<u8>, String> {
            Ok(rows.to_vec())
        }
        fn implausible(&self, _: &u8) -> Option<String> {
            None
        }
    }

    #[test]
    fn a_panic_outside_the_forward_pass_fails_its_batch_and_the_thread_serves_on() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(QueueStats::default());
        let runner = Arc::new(PanicsWhenPadding(true.into()));
        // Three rows pad to four (a panic); two need no padding.
        let (padded, padded_answer) = job_of::<PanicsWhenPadding>(vec![1, 2, 3]);
        let (plain, plain_answer) = job_of::<PanicsWhenPadding>(vec![4, 5]);
        let worker = Worker {
            rx,
            runner: runner.clone(),
            stats: stats.clone(),
            statistics: Arc::new(InferenceStatistics::new(8)),
            metrics: crate::metrics::InferenceMetrics::new(&Default::default()),
            max_batch: 3,
            batch_wait: Duration::ZERO,
            buckets: Buckets::resolve(&crate::BucketSpec::PowersOfTwo, 8, false).unwrap(),
            warm_up: Arc::new(WarmUp::new(vec![], 0)),
        };
        let thread = std::thread::spawn(move || worker.run());
        for j in [padded, plain] {
            stats.depth.fetch_add(1, Ordering::SeqCst);
            tx.send(j).unwrap();
        }
        assert!(
            padded_answer.blocking_recv().is_err(),
            "the batch that panicked was answered"
        );
        assert_eq!(plain_answer.blocking_recv().unwrap().unwrap(), [4, 5]);
        drop(tx);
        thread.join().expect("the thread died");
        assert_eq!(stats.held.load(Ordering::SeqCst), 0, "jobs still held");
    }

    #[test]
    fn jobs_whose_caller_is_gone_never_run() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(QueueStats::default());
        let (abandoned, answer) = job(2);
        drop(answer); // timed out or disconnected before its pass started
        let (kept, kept_answer) = job(1);
        for j in [abandoned, kept] {
            stats.depth.fetch_add(1, Ordering::SeqCst);
            tx.send(j).unwrap();
        }
        drop(tx);
        let worker = worker(rx, stats.clone());
        let statistics = worker.statistics.clone();
        worker.run();
        assert_eq!(kept_answer.blocking_recv().unwrap().unwrap().len(), 1);
        assert_eq!(statistics.execution_count(), 1);
        assert_eq!(
            statistics.inference_count(),
            1,
            "the abandoned job's inputs ran"
        );
        assert_eq!(stats.depth.load(Ordering::SeqCst), 0);
        assert_eq!(
            stats.held.load(Ordering::SeqCst),
            0,
            "answered jobs still held"
        );
    }

    #[test]
    fn padded_passes_answer_each_caller_its_own_inputs_and_count_only_those() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(QueueStats::default());
        let rows: Vec<[f32; 64]> = (0..5)
            .map(|i| std::array::from_fn(|p| ((p * (i + 3)) % 17) as f32))
            .collect();
        let (first, first_answer) = job_of(rows[..2].to_vec());
        let (second, second_answer) = job_of(rows[2..].to_vec());
        for j in [first, second] {
            stats.depth.fetch_add(1, Ordering::SeqCst);
            tx.send(j).unwrap();
        }
        drop(tx);
        let worker = Worker {
            buckets: Buckets::resolve(&crate::BucketSpec::PowersOfTwo, 64, false).unwrap(),
            ..worker(rx, stats)
        };
        let (classifier, statistics) = (worker.runner.clone(), worker.statistics.clone());
        worker.run();
        let expected = classifier.probabilities(&rows).unwrap();
        let answered: Vec<_> = [first_answer, second_answer]
            .into_iter()
            .flat_map(|a| a.blocking_recv().unwrap().unwrap())
            .map(|p| p.probabilities)
            .collect();
        assert_eq!(answered.len(), 5, "padding rows were answered");
        for (got, want) in answered.iter().zip(&expected) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5, "{got:?} != {want:?}");
            }
        }
        // One pass of 5 inputs (run at 8), counted as 5.
        assert_eq!(statistics.execution_count(), 1);
        assert_eq!(statistics.inference_count(), 5);
    }

    /// A worker with a long batch window, for the gather tests.
    fn waiting_worker(
        rx: crossbeam_channel::Receiver<Job<Classifier>>,
        stats: Arc<QueueStats>,
    ) -> Worker<Classifier> {
        Worker {
            batch_wait: Duration::from_secs(30),
            ..worker(rx, stats)
        }
    }

    #[test]
    fn window_does_not_wait_for_callers_another_thread_holds() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(QueueStats::default());
        // Five callers in flight: three in another thread's pass, this one, and one queued.
        stats.in_flight.store(5, Ordering::SeqCst);
        stats.held.store(3, Ordering::SeqCst);
        let (queued, _a) = job(1);
        stats.depth.store(1, Ordering::SeqCst);
        tx.send(queued).unwrap();
        let (first, _b) = job(1);
        stats.held.fetch_add(1, Ordering::SeqCst); // as `taken` would have counted it
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (batch, carry) = waiting_worker(rx, stats).gather(first, &AtomicUsize::new(0));
            done_tx.send((batch.len(), carry.is_none())).unwrap();
            drop(tx); // keep the channel open until gather returns
        });
        // With the 30 s window honoured this would time out: nobody else can join the batch.
        let (len, no_carry) = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("gather waited for callers held by another thread");
        assert_eq!((len, no_carry), (2, true));
    }

    #[test]
    fn window_waits_for_a_caller_nobody_holds_yet() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(QueueStats::default());
        // Two callers in flight: the first is taken, the second is still being enqueued.
        stats.in_flight.store(2, Ordering::SeqCst);
        stats.held.store(1, Ordering::SeqCst);
        stats.depth.store(1, Ordering::SeqCst);
        let (first, _a) = job(1);
        let (late, _b) = job(3);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send(late).unwrap();
            tx
        });
        let (batch, carry) = waiting_worker(rx, stats.clone()).gather(first, &AtomicUsize::new(0));
        drop(sender.join());
        assert!(carry.is_none());
        assert_eq!(
            batch.iter().map(|j| j.rows.len()).collect::<Vec<_>>(),
            [1, 3]
        );
        assert_eq!(stats.held.load(Ordering::SeqCst), 2);
    }
}
