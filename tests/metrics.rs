//! `/metrics` after real traffic: every family the runbook promises is there, and the text
//! passes `promtool check metrics` (Debian's `prometheus` package; `.ci/run` installs it).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

/// The tests of this binary share one process-wide recorder: the one that counts exactly runs
/// alone.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn metrics_are_complete_and_pass_promtool() {
    let _alone = EXCLUSIVE.lock().await;
    let (app, _) = ready_app(&[]).await;
    let row = vec![1.0; 64];
    assert_eq!(
        post_json(
            &app,
            "/v1/predict",
            json!({"inputs": [row.clone(), row]}).to_string()
        )
        .await
        .status,
        200
    );
    assert_eq!(post_json(&app, "/v1/predict", "{").await.status, 400);
    get(&app, "/health/ready").await;

    let reply = get(&app, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type().starts_with("text/plain"));
    let text = reply.text();
    for family in [
        "ember_http_requests_total",
        "ember_http_request_duration_seconds",
        "ember_http_requests_in_flight",
        "ember_inference_queue_depth",
        "ember_inference_queue_wait_seconds",
        "ember_inference_forward_duration_seconds",
        "ember_inference_batch_size",
        "ember_predictions_total",
        "ember_build_info",
        "ember_ready",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
    }
    assert!(
        text.contains(
            r#"ember_http_requests_total{route="/v1/predict",method="POST",status="200"}"#
        )
    );
    assert!(
        text.contains(
            r#"ember_http_requests_total{route="/v1/predict",method="POST",status="400"}"#
        )
    );
    assert!(text.contains(
        "ember_http_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"0.0001\"}"
    ));
    let backend = common::cpu_backend();
    assert!(text.contains(&format!(r#"backend="{backend}",device="cpu",arch=""#)));
    // Inference metrics say which model and version they are about.
    let manifest: serde_json::Value = serde_json::from_str(&read("weights/manifest.json")).unwrap();
    let model = format!("model={},version={}", manifest["name"], manifest["version"]);
    for family in [
        "ember_inference_forward_duration_seconds_count",
        "ember_inference_batch_size_count",
        "ember_inference_queue_wait_seconds_count",
    ] {
        assert!(
            text.contains(&format!("{family}{{{model}}} ")),
            "{family} without {model}"
        );
    }
    // Sampled from the process itself: it has some memory and some open files.
    let sample = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(sample("process_resident_memory_bytes") > 1e6);
    assert!(sample("process_open_fds") >= 3.0);
    assert!(text.contains("ember_ready 1"));

    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("SKIPPED promtool check: `promtool` not found (apt-get install prometheus)");
        return;
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

/// `ember_predictions_total{model="digits-cnn",version="<v>",label="<label>"}` in `/metrics`
/// (0 before the first).
async fn predictions(app: &axum::Router, label: &str) -> u64 {
    let text = get(app, "/metrics").await.text();
    let model: serde_json::Value = serde_json::from_str(&read("weights/manifest.json")).unwrap();
    let prefix = format!(
        "ember_predictions_total{{model={},version={},label=\"{label}\"}} ",
        model["name"], model["version"]
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn predictions_are_counted_on_both_apis() {
    let _alone = EXCLUSIVE.lock().await;
    let (app, _) = ready_app(&[]).await;
    let (row, class) = digits(1).remove(0);
    let label = class.to_string();
    let before = predictions(&app, &label).await;
    let v1 = json!({"inputs": [row.clone(), row.clone()]});
    assert_eq!(
        post_json(&app, "/v1/predict", v1.to_string()).await.status,
        200
    );
    let data = [row.clone(), row.clone(), row].concat();
    let v2 =
        json!({"inputs": [{"name": "input", "shape": [3, 64], "datatype": "FP32", "data": data}]});
    let reply = post_json(&app, "/v2/models/digits-cnn/infer", v2.to_string()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["outputs"][1]["data"],
        json!([class, class, class])
    );
    assert_eq!(predictions(&app, &label).await, before + 5);
}

/// Autoscaling reads `ember_inference_requests_in_flight` (deploy/autoscaling/): it counts the
/// inference requests waiting for an answer, and only those; not the scrape reading it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_requests_in_flight_are_counted_until_answered() {
    let (app, _) = paused_app(16, Some(std::time::Duration::from_millis(600)));
    let gauge = |text: &str| {
        text.lines()
            .find(|l| l.starts_with(r#"ember_inference_requests_in_flight{model="",version=""}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let row = vec![1.0; 64];
    let mut held = Vec::new();
    for _ in 0..3 {
        let (app, body) = (app.clone(), json!({"inputs": [row.clone()]}).to_string());
        held.push(tokio::spawn(async move {
            post_json(&app, "/v1/predict", body).await.status
        }));
    }
    let mut seen = None;
    for _ in 0..100 {
        seen = gauge(&get(&app, "/metrics").await.text());
        if seen == Some(3.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(seen, Some(3.0), "three requests held by a paused queue");
    for request in held {
        assert_eq!(request.await.unwrap(), 504);
    }
    assert_eq!(gauge(&get(&app, "/metrics").await.text()), Some(0.0));
}
