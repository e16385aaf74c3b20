//! Cumulative inference statistics in the shape of Triton's statistics extension: requests that
//! succeeded or failed, time spent queued, and what the forward passes cost, overall and by
//! batch size. perf_analyzer reads them to split latency into queue and compute time.
//!
//! The queue handle records per request and the inference threads per pass, with relaxed
//! atomic adds (no lock on the hot path); readers get a snapshot that may be a pass behind.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A count and a cumulative duration.
#[derive(Debug, Default)]
struct Timed {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Timed {
    fn add(&self, count: u64, ns: u64) {
        self.count.fetch_add(count, Relaxed);
        self.ns.fetch_add(ns, Relaxed);
    }

    fn snapshot(&self) -> TimedSnapshot {
        TimedSnapshot {
            count: self.count.load(Relaxed),
            ns: self.ns.load(Relaxed),
        }
    }
}

/// What one pass cost, split as Triton splits it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PassTimes {
    /// Gathering the batch's rows into one input.
    pub(crate) input: Duration,
    /// The forward pass itself (tensor upload, kernels, readback).
    pub(crate) infer: Duration,
    /// Turning probabilities into predictions and handing each caller its share.
    pub(crate) output: Duration,
}

#[derive(Debug, Default)]
struct PassCounters {
    input: Timed,
    infer: Timed,
    output: Timed,
}

impl PassCounters {
    fn add(&self, count: u64, times: &PassTimes) {
        self.input.add(count, nanos(times.input) * count);
        self.infer.add(count, nanos(times.infer) * count);
        self.output.add(count, nanos(times.output) * count);
    }
}

#[derive(Debug)]
pub struct InferenceStatistics {
    success: Timed,
    fail: Timed,
    queue: Timed,
    /// Per request: each request is charged its whole pass, as Triton does.
    compute: PassCounters,
    /// Per batch size (index = inputs in the pass): one count per pass.
    by_batch: Vec<PassCounters>,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
}

impl InferenceStatistics {
    /// Statistics for passes of 1..=`max_batch` inputs.
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            success: Timed::default(),
            fail: Timed::default(),
            queue: Timed::default(),
            compute: PassCounters::default(),
            by_batch: (0..=max_batch).map(|_| PassCounters::default()).collect(),
            inference_count: AtomicU64::new(0),
            execution_count: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
        }
    }

    /// A request left the queue for a pass after waiting `waited`.
    pub(crate) fn record_queued(&self, waited: Duration) {
        self.queue.add(1, nanos(waited));
    }

    /// A request was answered (`ok`) or failed, `took` after it was submitted.
    pub(crate) fn record_request(&self, ok: bool, took: Duration) {
        let timed = if ok { &self.success } else { &self.fail };
        timed.add(1, nanos(took));
    }

    /// A forward pass over `inputs` inputs from `requests` requests succeeded.
    pub(crate) fn record_pass(&self, requests: usize, inputs: usize, times: PassTimes) {
        self.compute.add(requests as u64, &times);
        if let Some(batch) = self.by_batch.get(inputs) {
            batch.add(1, &times);
        }
        self.inference_count.fetch_add(inputs as u64, Relaxed);
        self.execution_count.fetch_add(1, Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.fetch_max(now_ms, Relaxed);
    }

    /// Forward passes run so far.
    pub fn execution_count(&self) -> u64 {
        self.execution_count.load(Relaxed)
    }

    /// Inputs run so far (the sum of all batch sizes).
    pub fn inference_count(&self) -> u64 {
        self.inference_count.load(Relaxed)
    }

    pub fn snapshot(&self) -> StatisticsSnapshot {
        StatisticsSnapshot {
            last_inference_ms: self.last_inference_ms.load(Relaxed),
            inference_count: self.inference_count(),
            execution_count: self.execution_count(),
            success: self.success.snapshot(),
            fail: self.fail.snapshot(),
            queue: self.queue.snapshot(),
            compute_input: self.compute.input.snapshot(),
            compute_infer: self.compute.infer.snapshot(),
            compute_output: self.compute.output.snapshot(),
            batches: self
                .by_batch
                .iter()
                .enumerate()
                .filter_map(|(size, c)| {
                    let infer = c.infer.snapshot();
                    (infer.count > 0).then(|| BatchSnapshot {
                        batch_size: size,
                        compute_input: c.input.snapshot(),
                        compute_infer: infer,
                        compute_output: c.output.snapshot(),
                    })
                })
                .collect(),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimedSnapshot {
    pub count: u64,
    pub ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSnapshot {
    pub batch_size: usize,
    pub compute_input: TimedSnapshot,
    pub compute_infer: TimedSnapshot,
    pub compute_output: TimedSnapshot,
}

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsSnapshot {
    pub last_inference_ms: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub success: TimedSnapshot,
    pub fail: TimedSnapshot,
    pub queue: TimedSnapshot,
    pub compute_input: TimedSnapshot,
    pub compute_infer: TimedSnapshot,
    pub compute_output: TimedSnapshot,
    /// Only the batch sizes that ran, smallest first.
    pub batches: Vec<BatchSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn passes_charge_every_request_and_count_once_per_batch_size() {
        let stats = InferenceStatistics::new(8);
        let times = PassTimes {
            input: ms(1),
            infer: ms(4),
            output: ms(2),
        };
        stats.record_pass(3, 5, times); // three requests, five inputs
        stats.record_pass(1, 5, times);
        stats.record_pass(1, 1, times);
        stats.record_pass(1, 9, times); // beyond max_batch: counted, not bucketed
        let s = stats.snapshot();
        assert_eq!(s.execution_count, 4);
        assert_eq!(s.inference_count, 5 + 5 + 1 + 9);
        assert_eq!(
            s.compute_infer,
            TimedSnapshot {
                count: 6,
                ns: 6 * 4_000_000
            }
        );
        assert_eq!(s.compute_input.ns, 6 * 1_000_000);
        assert_eq!(s.compute_output.ns, 6 * 2_000_000);
        let sizes: Vec<_> = s
            .batches
            .iter()
            .map(|b| (b.batch_size, b.compute_infer.count))
            .collect();
        assert_eq!(sizes, [(1, 1), (5, 2)]);
        assert_eq!(s.batches[1].compute_infer.ns, 2 * 4_000_000);
        assert!(s.last_inference_ms > 0);
    }

    #[test]
    fn requests_split_into_success_and_fail() {
        let stats = InferenceStatistics::new(4);
        stats.record_queued(ms(3));
        stats.record_request(true, ms(10));
        stats.record_request(true, ms(20));
        stats.record_request(false, ms(5));
        let s = stats.snapshot();
        assert_eq!(
            s.success,
            TimedSnapshot {
                count: 2,
                ns: 30_000_000
            }
        );
        assert_eq!(
            s.fail,
            TimedSnapshot {
                count: 1,
                ns: 5_000_000
            }
        );
        assert_eq!(
            s.queue,
            TimedSnapshot {
                count: 1,
                ns: 3_000_000
            }
        );
        assert!(s.batches.is_empty());
        assert_eq!(s.last_inference_ms, 0, "no pass has run");
    }
}
