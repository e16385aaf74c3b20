//! Every inference thread runs every batch size once before it takes work.
//!
//! A GPU backend keeps state per thread (burn's cubecl runtime gives each thread its own stream,
//! with its own memory pools), so one thread's pass at a size does not prepare another's; a probe
//! through the queue warms only the thread that takes it. Readiness waits for all of them (see
//! [`WarmUp::wait`]). The first seconds of traffic on an H100 still show a p99 tail with either
//! scheme (benches/README.md, "GPU"): its cause is open.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::job::InferenceError;
use super::pass::guarded_pass;
use super::runner::Runner;

/// How far the threads have got.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Threads that ran every size.
    done: usize,
    /// The slowest thread's time for each size, in the order of `sizes`.
    took: Vec<Duration>,
    /// Why a thread's warm-up failed, if one did.
    failed: Option<String>,
}

/// The sizes each thread runs, and what the threads report.
#[derive(Debug)]
pub(super) struct WarmUp {
    sizes: Vec<usize>,
    threads: usize,
    progress: watch::Sender<Progress>,
}

impl WarmUp {
    /// A warm-up of `sizes` (ascending) by each of the `threads` the queue starts with.
    pub(crate) fn new(sizes: Vec<usize>, threads: usize) -> Self {
        let took = vec![Duration::ZERO; sizes.len()];
        Self {
            sizes,
            threads,
            progress: watch::Sender::new(Progress {
                took,
                ..Progress::default()
            }),
        }
    }

    /// Run every size on the calling inference thread; a failure is reported, not raised, and
    /// the thread goes on to serve (its passes fail the same way, visibly, per request).
    pub(crate) fn run<R: Runner>(&self, runner: &R) {
        self.run_with(|size| probe(runner, size));
    }

    fn run_with(&self, pass: impl Fn(usize) -> Result<(), String>) {
        for (i, &size) in self.sizes.iter().enumerate() {
            let started = Instant::now();
            if let Err(reason) = pass(size) {
                self.progress.send_modify(|p| {
                    p.failed
                        .get_or_insert(format!("batch size {size}: {reason}"));
                });
                return;
            }
            let took = started.elapsed();
            self.progress
                .send_modify(|p| p.took[i] = p.took[i].max(took));
        }
        self.progress.send_modify(|p| p.done += 1);
    }

    /// Once every thread the queue started with has run every size: each size with the slowest
    /// thread's time for it, or why one failed.
    pub(crate) async fn wait(&self) -> Result<Vec<(usize, Duration)>, InferenceError> {
        let mut progress = self.progress.subscribe();
        let progress = progress
            .wait_for(|p| p.failed.is_some() || p.done >= self.threads)
            .await
            .map_err(|_| InferenceError::Stopped)?
            .clone();
        if let Some(reason) = progress.failed {
            return Err(InferenceError::Failed(format!("warm-up: {reason}")));
        }
        Ok(self.sizes.iter().copied().zip(progress.took).collect())
    }
}

/// One pass of `size` padding inputs, each answer checked to look like one.
fn probe<R: Runner>(runner: &R, size: usize) -> Result<(), String> {
    let rows = vec![runner.padding_row(); size];
    let answers = guarded_pass(runner, &rows)?;
    answers
        .iter()
        .find_map(|a| runner.implausible(a))
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use ember_model::{Classifier, DeviceChoice, device};

    fn classifier() -> Classifier {
        let dev = device::select(DeviceChoice::Cpu).unwrap().device;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weights");
        Classifier::load(&dir, &dev).unwrap().0
    }

    #[tokio::test]
    async fn ready_only_once_every_thread_ran_every_size() {
        let warm = Arc::new(WarmUp::new(vec![1, 4, 16], 2));
        let classifier = Arc::new(classifier());
        warm.run(&*classifier);
        let waiting = tokio::spawn({
            let warm = warm.clone();
            async move { warm.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "ready after one of two threads");
        let second = std::thread::spawn({
            let (warm, classifier) = (warm.clone(), classifier.clone());
            move || warm.run(&*classifier)
        });
        second.join().unwrap();
        let took = waiting.await.unwrap().unwrap();
        assert_eq!(
            took.iter().map(|(size, _)| *size).collect::<Vec<_>>(),
            [1, 4, 16]
        );
        assert!(took.iter().all(|(_, t)| !t.is_zero()));
    }

    #[tokio::test]
    async fn a_failed_size_ends_the_wait_with_its_reason() {
        let warm = WarmUp::new(vec![1, 4, 16], 2);
        warm.run_with(|size| match size {
            4 => Err("out of device memory".into()),
            _ => Ok(()),
        });
        // The other thread never reports: the failure alone ends the wait.
        let err = warm.wait().await.unwrap_err();
        assert_eq!(
            err,
            InferenceError::Failed("warm-up: batch size 4: out of device memory".into())
        );
        let none = WarmUp::new(vec![], 0);
        assert_eq!(none.wait().await, Ok(vec![]));
    }
}
