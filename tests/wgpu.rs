//! The wgpu backend (built with `--features wgpu`): on whatever adapter exists here (Mesa's
//! lavapipe in CI), the model gives the CPU's answers, and the server reports the device.
//! Skipped, saying so, only where no adapter exists at all.
#![cfg(feature = "wgpu")]

mod common;

use ember_model::{DeviceChoice, device};
use ember_train::dataset;

fn gpu() -> Option<device::SelectedDevice> {
    match device::select(DeviceChoice::Gpu) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED wgpu test: {e} (install mesa-vulkan-drivers for lavapipe)");
            None
        }
    }
}

/// The server's flags for `--device gpu` on the committed weights, plus `extra`.
fn gpu_server_args(extra: &[&str]) -> ember_serve::config::ServeArgs {
    let weights = common::repo_path("weights");
    let flags = [
        "ember-serve",
        "--device",
        "gpu",
        "--weights",
        weights.to_str().unwrap(),
    ];
    let cli: ember_serve::config::Cli =
        clap::Parser::try_parse_from(flags.iter().chain(extra)).unwrap();
    cli.serve
}

/// POST the first `n` digits to `/v1/predict`: `n` answers, each the CPU backend's.
async fn predicts_as_the_cpu(app: &axum::Router, n: usize) {
    let cpu = common::classifier(&device::select(DeviceChoice::Cpu).unwrap().device);
    let rows: Vec<_> = common::digits(n).into_iter().map(|(row, _)| row).collect();
    let reply = common::post_json(
        app,
        "/v1/predict",
        serde_json::json!({ "inputs": rows }).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let predictions = reply.json()["predictions"].as_array().unwrap().clone();
    assert_eq!(predictions.len(), n);
    let expected = cpu.probabilities(&common::pixels(n)).unwrap();
    for (got, want) in predictions.iter().zip(&expected) {
        for (g, w) in got["probabilities"].as_array().unwrap().iter().zip(want) {
            let g = g.as_f64().unwrap() as f32;
            assert!((g - w).abs() < 1e-4, "{n} inputs: {g} vs cpu {w}");
        }
    }
}

#[test]
fn wgpu_matches_the_cpu_backend() {
    let Some(gpu) = gpu() else { return };
    assert_eq!(gpu.backend, "wgpu");
    assert!(!gpu.name.is_empty());
    let cpu = device::select(DeviceChoice::Cpu).unwrap().device;
    let on_gpu = common::classifier(&gpu.device);
    let on_cpu = common::classifier(&cpu);

    let samples = dataset::load(&common::repo_path(dataset::DEFAULT_PATH)).unwrap();
    let (_, held_out) = dataset::split(samples, dataset::SPLIT_SEED);
    let rows: Vec<_> = held_out.iter().take(64).map(|s| s.pixels).collect();
    let a = on_gpu.probabilities(&rows).unwrap();
    let b = on_cpu.probabilities(&rows).unwrap();
    for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
        assert!((x - y).abs() < 1e-4, "wgpu {x} vs cpu {y}");
    }
    let accuracy = dataset::accuracy(&on_gpu, &held_out).unwrap();
    assert!(accuracy >= 0.97, "held-out accuracy on wgpu {accuracy}");
}

#[tokio::test]
async fn the_server_runs_and_reports_the_gpu_device() {
    let Some(gpu) = gpu() else { return };
    // The GPU default is 4096 (13 warm-up sizes); 16 keeps lavapipe's warm-up short.
    let args = gpu_server_args(&["--max-batch", "16"]);
    let started = ember_serve::app::start(&args).unwrap();
    // On a GPU every pass is padded to a power of two, and each of them runs before readiness.
    let took = started.service.warm_up().await.unwrap();
    let sizes: Vec<usize> = took.iter().map(|(size, _)| *size).collect();
    assert_eq!(sizes, [1, 2, 4, 8, 16]);
    let options = started.router_options(&args);
    let app = ember_serve::http::router(started.service.clone(), started.metrics, &options);
    let models = common::get(&app, "/v1/models").await.json();
    assert_eq!(models["models"][0]["backend"], "wgpu");
    assert_eq!(models["models"][0]["device"], gpu.name.as_str());
    let row = common::digits(1)[0].0.clone();
    let reply = common::post_json(
        &app,
        "/v1/predict",
        serde_json::json!({"inputs": [row]}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["predictions"][0]["label"], "0");
    // Five inputs run padded to eight: five answers, each the CPU's.
    predicts_as_the_cpu(&app, 5).await;
    let metrics = common::get(&app, "/metrics").await.text();
    assert!(metrics.contains(r#"backend="wgpu""#), "{metrics}");
}

#[tokio::test]
async fn a_cpu_lane_beside_the_gpu_takes_the_small_requests() {
    let Some(_) = gpu() else { return };
    let args = gpu_server_args(&["--max-batch", "8", "--cpu-lane-below", "4"]);
    let started = ember_serve::app::start(&args).unwrap();
    started.service.warm_up().await.unwrap();
    let options = started.router_options(&args);
    let app = ember_serve::http::router(started.service.clone(), started.metrics, &options);
    let models = common::get(&app, "/v1/models").await.json();
    assert_eq!(models["models"][0]["backend"], "wgpu");
    assert_eq!(models["models"][0]["cpu_lane_below"], 4);
    // Triton's model configuration lists both groups of threads.
    let config = common::get(&app, "/v2/models/digits-cnn/config")
        .await
        .json();
    let groups = config["instance_group"].as_array().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(groups.len(), 2, "{config}");
    assert_eq!(
        (groups[0]["kind"].as_str(), groups[0]["count"].as_u64()),
        (Some("KIND_GPU"), Some(4))
    );
    assert_eq!(
        (groups[1]["kind"].as_str(), groups[1]["count"].as_u64()),
        (Some("KIND_CPU"), Some(cores as u64))
    );

    let passes = |metrics: &str, lane: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("ember_inference_batch_size_count{") && l.contains(lane))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = common::get(&app, "/metrics").await.text();
    let stats = started.service.queue.statistics();
    let executed = stats.execution_count();
    // 3 inputs take the CPU lane, 6 the GPU's; both give the CPU backend's answers.
    for n in [3, 6] {
        predicts_as_the_cpu(&app, n).await;
    }
    // This test's lane is the only one labelled: its metrics count its passes alone. Both
    // lanes' passes count in the queue's statistics.
    let after = common::get(&app, "/metrics").await.text();
    let on_cpu = r#"lane="cpu""#;
    assert_eq!(
        passes(&after, on_cpu) - passes(&before, on_cpu),
        1,
        "{after}"
    );
    assert_eq!(
        stats.execution_count() - executed,
        2,
        "one pass on each lane"
    );
}

#[test]
fn more_queues_are_devices_of_their_own_on_the_same_adapter() {
    let Some(gpu) = gpu() else { return };
    let more = device::more_queues(&gpu, 2).unwrap();
    assert_eq!(more.len(), 2);
    let ids: Vec<String> = std::iter::once(&gpu.device)
        .chain(&more)
        .map(|d| format!("{d:?}"))
        .collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    let cpu = common::classifier(&device::select(DeviceChoice::Cpu).unwrap().device);
    let rows = common::pixels(3);
    let want = cpu.probabilities(&rows).unwrap();
    for device in &more {
        assert_eq!(device.identity().unwrap().name, gpu.name);
        let got = common::classifier(device).probabilities(&rows).unwrap();
        for (x, y) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((x - y).abs() < 1e-4, "{ids:?}: {x} vs cpu {y}");
        }
    }
    assert!(device::more_queues(&gpu, 0).unwrap().is_empty());
}

#[tokio::test]
async fn a_server_spreads_its_threads_over_gpu_queues() {
    let Some(_) = gpu() else { return };
    let args = gpu_server_args(&["--max-batch", "8", "--workers", "3", "--gpu-queues", "2"]);
    let started = ember_serve::app::start(&args).unwrap();
    // Every thread warms every size on its own queue's device before readiness.
    let took = started.service.warm_up().await.unwrap();
    assert_eq!(took.len(), 4, "{took:?}");
    let options = started.router_options(&args);
    let app = ember_serve::http::router(started.service.clone(), started.metrics, &options);
    let models = common::get(&app, "/v1/models").await.json();
    assert_eq!(models["models"][0]["gpu_queues"], 2);
    // Requests at once, so passes land on threads of both queues: all get the CPU's answers.
    let replies = predict_concurrently(&app, [1, 3, 5, 8, 2, 7]).await;
    assert_eq!(replies, 6);
}

/// Post `counts` digits concurrently; each request's answers must be the CPU's.
async fn predict_concurrently<const N: usize>(app: &axum::Router, counts: [usize; N]) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for n in counts {
        let app = app.clone();
        tasks.spawn(async move { predicts_as_the_cpu(&app, n).await });
    }
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
        done += 1;
    }
    done
}

#[test]
fn auto_prefers_hardware_and_falls_back_to_cpu() {
    let Some(gpu) = gpu() else { return };
    let auto = device::select(DeviceChoice::Auto).unwrap();
    if gpu.software {
        // A software adapter (lavapipe) is slower than the CPU backend: auto must not pick it.
        assert_eq!(auto.backend, common::cpu_backend());
    } else {
        assert_eq!(auto.backend, "wgpu");
    }
}
