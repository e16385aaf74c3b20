//! Traffic between the versions of a model: a canary's share of unversioned requests, a sticky
//! header that keeps a client on one version, and a shadow version whose answers are compared
//! (and counted) but never seen by a client.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::{Value, json};

const INFER: &str = "/v2/models/breast-cancer/infer";

/// The held-out rows of both versions' examples, and rows between pairs of them: near the
/// decision boundary, where two trainings of the same network disagree.
fn rows() -> Vec<Vec<f64>> {
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for file in [
        "weights/breast-cancer/examples.json",
        "tests/versions/breast-cancer/1.1.0/examples.json",
    ] {
        let examples: Value = serde_json::from_str(&read(file)).unwrap();
        for row in examples["inputs"]["features"].as_array().unwrap() {
            rows.push(
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
            );
        }
    }
    let held_out = rows.len();
    for i in 0..held_out - 1 {
        for step in 1..4 {
            let t = f64::from(step) / 4.0;
            let (a, b) = (&rows[i], &rows[i + 1]);
            rows.push(a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect());
        }
    }
    rows
}

/// Which version answered, and its label (the larger probability's index).
async fn infer(app: &Router, uri: &str, row: &[f64], key: Option<&str>) -> (String, usize, Value) {
    let body = json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32",
                                  "data": [row]}]});
    let mut req = Request::post(uri).header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("x-user-id", key);
    }
    let reply = send(app, req.body(Body::from(body.to_string())).unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json = reply.json();
    let data = json["outputs"][0]["data"].clone();
    let p: Vec<f64> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let label = usize::from(p[1] > p[0]);
    let version = json["parameters"]["model_version"]
        .as_str()
        .unwrap()
        .to_string();
    (version, label, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_gets_its_share_and_a_sticky_key_always_one_version() {
    let root = repository("canary", true);
    let (app, _) = ready_app(&[
        "--weights",
        root.to_str().unwrap(),
        "--version-policy",
        "breast-cancer=all",
        "--default-version",
        "breast-cancer=1.0.0",
        "--canary",
        "breast-cancer=1.1.0:10",
        "--sticky-header",
        "X-User-Id",
    ])
    .await;
    let row = rows()[0].clone();
    // 10,000 unkeyed requests from 16 clients.
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (app, row) = (app.clone(), row.clone());
        clients.spawn(async move {
            let mut versions = Vec::new();
            for _ in 0..625 {
                versions.push(infer(&app, INFER, &row, None).await.0);
            }
            versions
        });
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    while let Some(versions) = clients.join_next().await {
        for version in versions.unwrap() {
            *counts.entry(version).or_default() += 1;
        }
    }
    let row = &row;
    let canary = counts.get("1.1.0").copied().unwrap_or(0);
    assert_eq!(
        canary + counts.get("1.0.0").copied().unwrap_or(0),
        10_000,
        "{counts:?}"
    );
    assert!(
        (800..=1200).contains(&canary),
        "the canary took {canary} of 10,000"
    );

    // A key meets one version every time; over many keys both versions are met.
    let mut met = HashMap::new();
    for user in 0..200 {
        let key = format!("user-{user}");
        let (first, _, _) = infer(&app, INFER, row, Some(&key)).await;
        for _ in 0..5 {
            assert_eq!(infer(&app, INFER, row, Some(&key)).await.0, first, "{key}");
        }
        *met.entry(first).or_insert(0) += 1;
    }
    assert_eq!(met.len(), 2, "{met:?}");
    // Naming a version bypasses the split.
    let versioned = "/v2/models/breast-cancer/versions/1.1.0/infer";
    assert_eq!(infer(&app, versioned, row, Some("user-0")).await.0, "1.1.0");
}

fn shadow_counts(metrics: &str) -> HashMap<String, u64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("ember_shadow_comparisons_total{"))
        .filter(|l| {
            l.contains(r#"served_version="1.0.0""#) && l.contains(r#"shadow_version="1.1.0""#)
        })
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?.to_string();
            Some((outcome, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_changes_no_answer_and_counts_where_it_disagrees() {
    let root = repository("shadow", true);
    let weights = root.to_str().unwrap();
    let flags = [
        "--weights",
        weights,
        "--version-policy",
        "breast-cancer=all",
        "--default-version",
        "breast-cancer=1.0.0",
    ];
    let (plain, _) = ready_app(&flags).await;
    let mut shadowed_flags = flags.to_vec();
    shadowed_flags.extend(["--shadow", "breast-cancer=1.1.0:100"]);
    let (shadowed, _) = ready_app(&shadowed_flags).await;

    // What each version says on its own, asked by name.
    let rows = rows();
    let mut differ = 0;
    for row in &rows {
        let (_, old, _) = infer(
            &plain,
            "/v2/models/breast-cancer/versions/1.0.0/infer",
            row,
            None,
        )
        .await;
        let (_, new, _) = infer(
            &plain,
            "/v2/models/breast-cancer/versions/1.1.0/infer",
            row,
            None,
        )
        .await;
        differ += usize::from(old != new);
    }
    assert!(
        differ > 0,
        "1.0.0 and 1.1.0 agree on all {} rows: no test of disagreement",
        rows.len()
    );

    let before = shadow_counts(&get(&shadowed, "/metrics").await.text());
    for row in &rows {
        let (version, _, answer) = infer(&shadowed, INFER, row, None).await;
        let (_, _, alone) = infer(&plain, INFER, row, None).await;
        assert_eq!(
            (version.as_str(), &answer),
            ("1.0.0", &alone),
            "the shadow changed an answer"
        );
    }
    // The comparisons run after the answers: wait for all of them.
    let mut after = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        after = shadow_counts(&get(&shadowed, "/metrics").await.text());
        let done: u64 = ["agree", "disagree", "failed"]
            .iter()
            .map(|o| after.get(*o).unwrap_or(&0) - before.get(*o).unwrap_or(&0))
            .sum();
        if done >= rows.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delta = |o: &str| after.get(o).unwrap_or(&0) - before.get(o).unwrap_or(&0);
    assert_eq!(delta("disagree"), differ as u64, "{after:?}");
    assert_eq!(delta("agree"), (rows.len() - differ) as u64, "{after:?}");
    assert_eq!(delta("failed"), 0);
}

#[test]
fn traffic_that_does_not_fit_the_loaded_versions_stops_the_start() {
    let root = repository("bad-traffic", true);
    let refused = |extra: &[&str]| start_refused(&root, extra);
    // latest:1 loads 1.1.0 only: a canary or a shadow of 1.0.0 has nothing to run on.
    let e = refused(&["--canary", "breast-cancer=1.0.0:5"]);
    assert!(e.contains("canary version 1.0.0"), "{e}");
    let e = refused(&["--shadow", "breast-cancer=1.0.0:5"]);
    assert!(e.contains("shadow version 1.0.0"), "{e}");
    let e = refused(&[
        "--version-policy",
        "breast-cancer=all",
        "--canary",
        "breast-cancer=1.1.0:5",
    ]);
    assert!(e.contains("is the default version"), "{e}");
    for bad in [
        "breast-cancer=1.1.0",
        "breast-cancer=1.1.0:0",
        "breast-cancer=x:5",
        "1.1.0:5",
    ] {
        let argv = ["ember-serve", "--canary", bad];
        assert!(
            <ember_serve::config::Cli as clap::Parser>::try_parse_from(argv).is_err(),
            "{bad}"
        );
    }
}
