//! The inference queue: batching really happens, every caller gets its own results in order,
//! and batches never exceed the configured size.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ember_model::{Classifier, DeviceChoice, device};
use ember_serve::inference::{CpuLane, InferenceError, InferenceQueue, Prediction, QueueConfig};

fn classifier() -> Arc<Classifier> {
    let dev = device::select(DeviceChoice::Cpu).unwrap().device;
    Arc::new(common::classifier(&dev))
}

/// A queue of `threads` inference threads (0: paused), no padding, unlabelled metrics.
fn config(max_batch: usize, batch_wait: Duration, max_queue: usize, threads: usize) -> QueueConfig {
    QueueConfig {
        labels: Default::default(),
        max_batch,
        batch_wait,
        max_queue,
        threads,
        buckets: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_forward_passes_and_get_their_own_answers() {
    let model = classifier();
    let images = common::pixels(48);
    let expected = model.probabilities(&images).unwrap();
    let (queue, _threads) =
        InferenceQueue::start(model, config(64, Duration::from_millis(200), 64, 1)).unwrap();

    // 16 requests of 3 images each, all in flight together.
    let tasks: Vec<_> = images
        .chunks(3)
        .map(|chunk| {
            let q = queue.clone();
            let chunk = chunk.to_vec();
            tokio::spawn(async move { q.predict(chunk).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let preds = task.await.unwrap().unwrap();
        assert_eq!(preds.len(), 3);
        for (j, p) in preds.iter().enumerate() {
            let want = &expected[i * 3 + j];
            for (a, b) in p.probabilities.iter().zip(want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "request {i} input {j} got another input's answer"
                );
            }
        }
    }
    let passes = queue.statistics().execution_count();
    assert!(
        passes < 16,
        "16 concurrent requests took {passes} forward passes: no batching"
    );
    assert_eq!(queue.statistics().inference_count(), 48);
    assert_eq!(queue.stats().depth.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_exceed_max_batch() {
    let (queue, _threads) =
        InferenceQueue::start(classifier(), config(4, Duration::from_millis(100), 64, 1)).unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let q = queue.clone();
            tokio::spawn(async move { q.predict(common::pixels(1)).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().len(), 1);
    }
    let passes = queue.statistics().execution_count();
    assert!(
        passes >= 3,
        "10 inputs with max_batch 4 need at least 3 passes, took {passes}"
    );
    // Every pass, by its size: none larger than max_batch, and all ten inputs ran.
    let batches = queue.statistics().snapshot().batches;
    let largest = batches.iter().map(|b| b.batch_size).max();
    assert!(largest.is_some_and(|n| n <= 4), "largest pass: {largest:?}");
    let inputs: u64 = batches
        .iter()
        .map(|b| b.batch_size as u64 * b.compute_infer.count)
        .sum();
    assert_eq!(inputs, 10);
}

#[tokio::test]
async fn a_lone_request_does_not_wait_for_the_batch_window() {
    let (queue, _threads) =
        InferenceQueue::start(classifier(), config(64, Duration::from_secs(5), 8, 1)).unwrap();
    // With nobody else in flight, a 5 s window would only delay it.
    let answer =
        tokio::time::timeout(Duration::from_secs(2), queue.predict(common::pixels(1))).await;
    assert_eq!(
        answer
            .expect("a lone request waited for the window")
            .unwrap()
            .len(),
        1
    );
    assert_eq!(queue.stats().in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn threads_stop_when_the_last_handle_is_dropped() {
    let (queue, threads) =
        InferenceQueue::start(classifier(), config(8, Duration::ZERO, 8, 2)).unwrap();
    assert_eq!(queue.predict(common::pixels(2)).await.unwrap().len(), 2);
    drop(queue);
    for t in threads {
        t.join().unwrap();
    }
}

#[tokio::test]
async fn statistics_count_failures_and_callers_that_gave_up() {
    // No inference thread: the one queue slot fills and stays full.
    let (queue, _threads) =
        InferenceQueue::start(classifier(), config(4, Duration::ZERO, 1, 0)).unwrap();
    let gave_up =
        tokio::time::timeout(Duration::from_millis(50), queue.predict(common::pixels(1))).await;
    assert!(gave_up.is_err(), "nobody could have answered");
    let refused = queue.predict(common::pixels(1)).await;
    assert!(refused.is_err(), "the queue is full");
    let s = queue.statistics().snapshot();
    assert_eq!((s.fail.count, s.success.count), (2, 0));
    assert!(
        s.fail.ns >= 50_000_000,
        "the caller that gave up waited 50 ms"
    );
    assert_eq!((s.execution_count, s.queue.count), (0, 0));
}

fn cpu_lane(below: usize, threads: usize) -> Option<CpuLane> {
    Some(CpuLane {
        runner: classifier(),
        below,
        threads,
        max_batch: 64,
    })
}

/// `queue.predict` of `inputs` digits, left running in the background.
fn predicting(
    queue: &InferenceQueue,
    inputs: usize,
) -> tokio::task::JoinHandle<Result<Vec<Prediction>, InferenceError>> {
    let queue = queue.clone();
    tokio::spawn(async move { queue.predict(common::pixels(inputs)).await })
}

#[tokio::test]
async fn small_requests_take_the_cpu_lane_and_the_rest_the_device() {
    // The device's lane has no thread yet: only the CPU lane can answer.
    let (queue, _threads) = InferenceQueue::start_with_cpu_lane(
        vec![classifier()],
        config(16, Duration::ZERO, 8, 0),
        cpu_lane(4, 1),
    )
    .unwrap();
    assert_eq!(queue.cpu_lane_below(), Some(4));
    let small = tokio::time::timeout(Duration::from_secs(5), queue.predict(common::pixels(3)))
        .await
        .expect("three inputs are fewer than four: the CPU lane answers");
    assert_eq!(small.unwrap().len(), 3);

    let large = predicting(&queue, 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !large.is_finished(),
        "four inputs belong to the device's lane, which has no thread"
    );
    let _more = queue.add_threads(1).unwrap();
    let large = tokio::time::timeout(Duration::from_secs(5), large)
        .await
        .expect("the device's new thread answers");
    assert_eq!(large.unwrap().unwrap().len(), 4);
}

#[tokio::test]
async fn a_full_cpu_lane_hands_small_requests_to_the_device() {
    // The CPU lane has no thread and room for one request; the device's lane has a thread.
    let (queue, _threads) = InferenceQueue::start_with_cpu_lane(
        vec![classifier()],
        config(16, Duration::ZERO, 1, 1),
        cpu_lane(64, 0),
    )
    .unwrap();
    let stuck = predicting(&queue, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stuck.is_finished(), "the CPU lane has no thread");
    let answer = tokio::time::timeout(Duration::from_secs(5), queue.predict(common::pixels(2)))
        .await
        .expect("the device's lane answers once the CPU lane is full");
    assert_eq!(answer.unwrap().len(), 2);
    assert_eq!(
        queue.stats().depth.load(Ordering::SeqCst),
        1,
        "one still queued"
    );
}

#[test]
fn a_queue_without_a_model_does_not_start() {
    let started = InferenceQueue::start_with_cpu_lane(
        Vec::<Arc<ember_model::Classifier>>::new(),
        config(4, Duration::ZERO, 4, 1),
        None,
    );
    let error = started.err().expect("a queue with no model started");
    assert!(error.to_string().contains("needs a model"), "{error}");
}
