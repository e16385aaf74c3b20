//! The model repository at run time: several versions of a model side by side, the version
//! policy and the default version, and Triton's repository API (index, load, unload) behind
//! admin keys: a load swaps versions in only once they are checked and warm, a load that fails
//! changes nothing, an unload drains, and loads run one at a time.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::*;
use serde_json::{Value, json};

const ADMIN: &str = "admin-key-0123456789";
const INFERENCE: &str = "inference-key-0123456789";
const MODEL: &str = "breast-cancer";

fn explicit(root: &Path, extra: &[&str]) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--weights",
        root.to_str().unwrap(),
        "--model-control-mode",
        "explicit",
        "--admin-api-key",
        ADMIN,
    ]
    .map(String::from)
    .to_vec();
    flags.extend(extra.iter().map(|s| s.to_string()));
    flags
}

async fn app(flags: &[String]) -> Router {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    ready_app(&flags).await.0
}

/// POST `uri` with `body`, as the admin (or with `key`).
async fn admin(app: &Router, uri: &str, body: Value) -> Reply {
    call(app, uri, body, Some(ADMIN)).await
}

async fn call(app: &Router, uri: &str, body: Value, key: Option<&str>) -> Reply {
    let mut req = Request::post(uri);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    send(app, req.body(Body::from(body.to_string())).unwrap()).await
}

fn load_uri(model: &str) -> String {
    format!("/v2/repository/models/{model}/load")
}

fn unload_uri(model: &str) -> String {
    format!("/v2/repository/models/{model}/unload")
}

fn config(policy: Value) -> Value {
    json!({"parameters": {"config": policy.to_string()}})
}

/// One of breast-cancer's held-out rows.
fn row() -> Vec<f64> {
    let examples: Value =
        serde_json::from_str(&read("weights/breast-cancer/examples.json")).unwrap();
    examples["inputs"]["features"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// The full version that answered one V2 inference at `uri`, or the error reply.
async fn answered_by(app: &Router, uri: &str) -> Result<String, Reply> {
    let body = json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32",
                                  "data": [row()]}]});
    let reply = post_json(app, uri, body.to_string()).await;
    if reply.status != 200 {
        return Err(reply);
    }
    let json = reply.json();
    assert_eq!(json["model_version"], "1", "{json}");
    Ok(json["parameters"]["model_version"]
        .as_str()
        .unwrap()
        .to_string())
}

async fn default_version(app: &Router) -> String {
    answered_by(app, "/v2/models/breast-cancer/infer")
        .await
        .unwrap_or_else(|r| panic!("{}: {}", r.status, r.text()))
}

fn index_of(reply: &Reply, model: &str) -> Vec<(String, String, String)> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == model)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("version"), s("state"), s("reason"))
        })
        .collect()
}

#[tokio::test]
async fn versions_serve_side_by_side_and_the_default_answers_unversioned_requests() {
    let root = repository("side-by-side", true);
    let weights = root.to_str().unwrap();
    let (app, _) = ready_app(&[
        "--weights",
        weights,
        "--version-policy",
        "breast-cancer=all",
    ])
    .await;
    assert_eq!(default_version(&app).await, "1.1.0");
    for (uri, version) in [
        ("/v2/models/breast-cancer/versions/1.0.0/infer", "1.0.0"),
        ("/v2/models/breast-cancer/versions/1.1.0/infer", "1.1.0"),
        // A major means that major's newest.
        ("/v2/models/breast-cancer/versions/1/infer", "1.1.0"),
    ] {
        assert_eq!(answered_by(&app, uri).await.unwrap(), version, "{uri}");
    }
    let missing = answered_by(&app, "/v2/models/breast-cancer/versions/1.2.0/infer")
        .await
        .unwrap_err();
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("1.1.0, 1.0.0"),
        "{}",
        missing.text()
    );
    for v in ["1.0.0", "1.1.0"] {
        let ready = get(
            &app,
            &format!("/v2/models/breast-cancer/versions/{v}/ready"),
        )
        .await;
        assert_eq!(ready.status, 200, "{v}");
    }
    let listed: Vec<(String, bool)> = get(&app, "/v1/models").await.json()["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["name"] == MODEL)
        .map(|m| {
            (
                m["version"].as_str().unwrap().into(),
                m["default"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("1.1.0".into(), true), ("1.0.0".into(), false)]);
    // Each version's weights bytes are listed: the committed file's size.
    let size = std::fs::metadata(root.join("breast-cancer/1.1.0/model.bpk"))
        .unwrap()
        .len();
    let entry = get(&app, "/v1/models/breast-cancer").await.json();
    assert_eq!(entry["weights_bytes"], size);
    // Diabetes keeps its one (bundled) version under the default policy, latest:1.
    assert_eq!(
        get(&app, "/v2/models/diabetes").await.json()["versions"],
        json!(["1"])
    );

    // --default-version sends unversioned requests to the older one.
    let (app, _) = ready_app(&[
        "--weights",
        weights,
        "--version-policy",
        "breast-cancer=all",
        "--default-version",
        "breast-cancer=1.0.0",
    ])
    .await;
    assert_eq!(default_version(&app).await, "1.0.0");
    let reply = post_json(
        &app,
        "/v1/models/breast-cancer:predict",
        json!({"instances": [row()]}).to_string(),
    )
    .await;
    assert_eq!(reply.json()["model_version"], "1.0.0", "{}", reply.text());
}

#[test]
fn a_policy_or_default_that_cannot_be_met_stops_the_start() {
    let root = repository("bad-policy", false);
    let refused = |extra: &[&str]| start_refused(&root, extra);
    let e = refused(&["--version-policy", "breast-cancer=specific:1.1.0"]);
    assert!(
        e.contains("no version 1.1.0") && e.contains("there: 1.0.0"),
        "{e}"
    );
    let e = refused(&["--default-version", "breast-cancer=2.0.0"]);
    assert!(e.contains("default version 2.0.0"), "{e}");
    let e = refused(&["--version-policy", "no-such-model=all"]);
    assert!(e.contains("unknown model 'no-such-model'"), "{e}");
    let e = refused(&["--model-control-mode", "explicit"]);
    assert!(e.contains("--admin-api-key"), "{e}");
    let e = refused(&[
        "--model-control-mode",
        "explicit",
        "--admin-api-key",
        ADMIN,
        "--api-key",
        ADMIN,
    ]);
    assert!(e.contains("also an inference key"), "{e}");
    // The digits model's 24 KiB alone is over a 1 KB budget.
    let e = refused(&["--memory-budget", "1KB"]);
    assert!(e.contains("--memory-budget"), "{e}");
}

#[tokio::test]
async fn the_repository_api_is_off_unless_enabled_and_needs_an_admin_key() {
    let (off, _) = ready_app(&[]).await;
    let reply = call(&off, "/v2/repository/index", json!({}), None).await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.text().contains("--model-control-mode explicit"),
        "{}",
        reply.text()
    );
    let docs = get(&off, "/api-docs/openapi.json").await.json();
    assert!(docs["paths"].get("/v2/repository/index").is_none());
    let listed = |meta: Value| {
        meta["extensions"]
            .as_array()
            .unwrap()
            .contains(&json!("model_repository"))
    };
    assert!(!listed(get(&off, "/v2").await.json()));

    let root = repository("keys", false);
    let app = app(&explicit(&root, &["--api-key", INFERENCE])).await;
    for key in [None, Some(INFERENCE), Some("not-a-key-0123456789")] {
        for uri in [
            "/v2/repository/index".to_string(),
            load_uri(MODEL),
            unload_uri(MODEL),
        ] {
            let reply = call(&app, &uri, json!({}), key).await;
            assert_eq!(reply.status, 401, "{uri} with {key:?}");
            assert!(reply.json()["error"].is_string(), "{}", reply.text());
        }
    }
    // An admin key is not an inference key either.
    let reply = call(
        &app,
        "/v2/models/breast-cancer/infer",
        json!({}),
        Some(ADMIN),
    )
    .await;
    assert_eq!(reply.status, 401);
    // Still serving 1.0.0 after all that.
    let reply = admin(&app, "/v2/repository/index", json!({})).await;
    assert_eq!(
        index_of(&reply, MODEL),
        [("1.0.0".into(), "READY".into(), String::new())]
    );
    let docs = get(&app, "/api-docs/openapi.json").await.json();
    let load = &docs["paths"]["/v2/repository/models/{name}/load"]["post"];
    assert_eq!(load["security"], json!([{"admin_bearer": []}]), "{load}");
    let req = Request::get("/v2").header("authorization", format!("Bearer {INFERENCE}"));
    let meta = send(&app, req.body(Body::empty()).unwrap()).await.json();
    assert!(listed(meta.clone()), "{meta}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_swaps_in_a_new_version_and_an_unload_drains_the_model() {
    let root = repository("swap", false);
    let app = app(&explicit(&root, &[])).await;
    assert_eq!(default_version(&app).await, "1.0.0");

    // A new version directory appears (as a volume update would put it): the index lists it,
    // unloaded; a load swaps it in and drains 1.0.0 (latest:1).
    add_version(&root, "1.1.0");
    let index = index_of(&admin(&app, "/v2/repository/index", json!({})).await, MODEL);
    assert_eq!(index[1].0, "1.1.0");
    assert_eq!(index[1].1, "UNAVAILABLE");
    assert!(index[1].2.contains("version policy latest:1"), "{index:?}");
    let reply = admin(&app, &load_uri(MODEL), json!({})).await;
    assert_eq!(
        reply.json(),
        json!({"model": MODEL, "loaded": ["1.1.0"], "unloaded": ["1.0.0"], "default_version": "1.1.0"})
    );
    assert_eq!(default_version(&app).await, "1.1.0");
    let gone = answered_by(&app, "/v2/models/breast-cancer/versions/1.0.0/infer").await;
    assert_eq!(gone.unwrap_err().status, 404);
    // (ember_model_version_loaded is checked in tests/shutdown.rs, in a process of its own: the
    // recorder is global, and other tests here load these versions at the same time.)

    // A config override: both versions, the older one the default.
    let policy = json!({"version_policy": {"all": {}}, "default_version": "1.0.0"});
    let reply = admin(&app, &load_uri(MODEL), config(policy)).await;
    assert_eq!(reply.json()["loaded"], json!(["1.0.0"]), "{}", reply.text());
    assert_eq!(default_version(&app).await, "1.0.0");
    let ready = admin(&app, "/v2/repository/index", json!({"ready": true})).await;
    assert_eq!(index_of(&ready, MODEL).len(), 2);

    // Unload: nothing of the model answers, its readiness says so, the server stays ready
    // (an unloaded model is not one the policy asks for).
    let reply = admin(
        &app,
        &unload_uri(MODEL),
        json!({"parameters": {"unload_dependents": false}}),
    )
    .await;
    assert_eq!(
        reply.json()["unloaded"],
        json!(["1.1.0", "1.0.0"]),
        "{}",
        reply.text()
    );
    let refused = answered_by(&app, "/v2/models/breast-cancer/infer")
        .await
        .unwrap_err();
    assert_eq!(refused.status, 404);
    assert!(
        refused.text().contains("no version loaded"),
        "{}",
        refused.text()
    );
    let ready = get(&app, "/v2/models/breast-cancer/ready").await;
    assert_eq!(
        (ready.status.as_u16(), &ready.json()["ready"]),
        (400, &json!(false))
    );
    assert_eq!(get(&app, "/v2/health/ready").await.status, 200);
    let index = index_of(&admin(&app, "/v2/repository/index", json!({})).await, MODEL);
    assert!(
        index
            .iter()
            .all(|(_, state, reason)| state == "UNAVAILABLE" && reason == "unloaded"),
        "{index:?}"
    );
    assert!(get(&app, "/v1/models").await.text().contains("diabetes"));

    // And back, with the policy it had.
    let reply = admin(&app, &load_uri(MODEL), json!({})).await;
    assert_eq!(
        reply.json()["loaded"],
        json!(["1.1.0", "1.0.0"]),
        "{}",
        reply.text()
    );
    assert_eq!(default_version(&app).await, "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_that_fails_says_why_and_changes_nothing() {
    let root = repository("refused", false);
    // Room for what serves at start and one more version of breast-cancer, not two.
    let (sizing, _) = ready_app(&["--weights", root.to_str().unwrap()]).await;
    let models = get(&sizing, "/v1/models").await.json();
    let loaded: u64 = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["weights_bytes"].as_u64())
        .sum();
    let digits = std::fs::metadata(root.join("digits-cnn.safetensors"))
        .unwrap()
        .len();
    let version = std::fs::metadata(repo_path("tests/versions/breast-cancer/1.1.0/model.bpk"))
        .unwrap()
        .len();
    let budget = (digits + loaded + version + version / 2).to_string();
    let app = app(&explicit(&root, &["--memory-budget", &budget])).await;
    let refused = async |uri: &str, body: Value, status: u16, says: &[&str]| {
        let reply = admin(&app, uri, body).await;
        assert_eq!(reply.status, status, "{uri}: {}", reply.text());
        let error = reply.json()["error"].as_str().unwrap().to_string();
        for s in says {
            assert!(error.contains(s), "{uri}: {error} lacks {s:?}");
        }
        // The serving version still answers, and is still the only one.
        assert_eq!(default_version(&app).await, "1.0.0");
    };

    // A version whose sha256 is not its manifest's.
    let dir = add_version(&root, "1.1.0");
    let weights = dir.join("model.bpk");
    let good = std::fs::read(&weights).unwrap();
    let mut bad = good.clone();
    bad[good.len() - 1] ^= 1;
    std::fs::write(&weights, &bad).unwrap();
    refused(
        &load_uri(MODEL),
        json!({}),
        400,
        &["sha256", "1.1.0/model.bpk"],
    )
    .await;
    let index = index_of(&admin(&app, "/v2/repository/index", json!({})).await, MODEL);
    assert!(index[1].2.starts_with("the last load failed"), "{index:?}");
    let metrics = get(&app, "/metrics").await.text();
    assert!(metrics.contains(r#"ember_model_loads_total{model="breast-cancer",outcome="failed"}"#));

    // Bytes that are not this graph's tensors (the sha256 made to match them).
    let cut = &good[..good.len() / 2];
    std::fs::write(&weights, cut).unwrap();
    let manifest = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["sha256"] = json!(ember_model::versions::sha256_hex(cut));
    std::fs::write(&manifest, m.to_string()).unwrap();
    refused(&load_uri(MODEL), json!({}), 400, &["do not fit the graph"]).await;
    std::fs::remove_dir_all(&dir).unwrap();

    // A version directory that is a link to outside the repository.
    let outside = ScratchDir::new("repository-outside");
    for file in ["manifest.json", "model.bpk"] {
        let from = repo_path("tests/versions/breast-cancer/1.1.0").join(file);
        std::fs::copy(from, outside.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&*outside, root.join("breast-cancer/1.2.0")).unwrap();
    refused(
        &load_uri(MODEL),
        json!({}),
        400,
        &["outside the model repository"],
    )
    .await;
    std::fs::remove_file(root.join("breast-cancer/1.2.0")).unwrap();

    // What the policy asks for is not there; the config changes what cannot change.
    let specific = config(json!({"version_policy": {"specific": {"versions": ["1.3.0"]}}}));
    refused(&load_uri(MODEL), specific, 400, &["no version 1.3.0"]).await;
    let batch = config(json!({"max_batch_size": 8}));
    refused(
        &load_uri(MODEL),
        batch,
        400,
        &["max_batch_size", "cannot be changed"],
    )
    .await;
    refused(
        &load_uri(MODEL),
        json!({"parameters": {"config": 7}}),
        400,
        &["JSON string"],
    )
    .await;
    let upload = json!({"parameters": {"file:1/model.onnx": "AAAA"}});
    refused(&load_uri(MODEL), upload, 400, &["not uploaded"]).await;
    refused(
        &load_uri(MODEL),
        json!("not an object"),
        400,
        &["request body"],
    )
    .await;

    // Unknown models, a path out of the repository, the built-in model.
    refused(
        &load_uri("no-such-model"),
        json!({}),
        404,
        &["no model named 'no-such-model'"],
    )
    .await;
    refused(
        &load_uri("..%2F..%2Fetc"),
        json!({}),
        404,
        &["no model named"],
    )
    .await;
    refused(
        &unload_uri("..%2Fweights"),
        json!({}),
        404,
        &["no model named"],
    )
    .await;
    refused(&load_uri("digits-cnn"), json!({}), 400, &["built-in model"]).await;

    // Over --memory-budget: room for one more version, not the two more that `all` asks for.
    add_version(&root, "1.1.0");
    add_version(&root, "1.2.0");
    // What is swapped out counts until it is drained: the old and new versions are both in
    // memory during a swap.
    let two = config(json!({"version_policy": {"latest": {"num_versions": 2}}}));
    refused(
        &load_uri(MODEL),
        two,
        400,
        &["--memory-budget", "1.2.0, 1.1.0"],
    )
    .await;
    let reply = admin(&app, &load_uri(MODEL), json!({})).await;
    assert_eq!(reply.json()["loaded"], json!(["1.2.0"]), "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_of_one_model_run_one_at_a_time() {
    let root = repository("serialised", true);
    let app = app(&explicit(&root, &[])).await;
    // Both ask to add 1.0.0 beside 1.1.0: run together unserialised, both would start it.
    let two = config(json!({"version_policy": {"latest": {"num_versions": 2}}}));
    let (load, unload) = (load_uri(MODEL), unload_uri(MODEL));
    let (a, b) = tokio::join!(admin(&app, &load, two.clone()), admin(&app, &load, two));
    let mut loaded = vec![a.json()["loaded"].clone(), b.json()["loaded"].clone()];
    loaded.sort_by_key(|l| l.as_array().map(Vec::len));
    assert_eq!(loaded, [json!([]), json!(["1.0.0"])]);
    // A load and an unload together end in one of the two orders, never between.
    let (load, unload) = tokio::join!(
        admin(&app, &load, json!({})),
        admin(&app, &unload, json!({}))
    );
    assert_eq!((load.status.as_u16(), unload.status.as_u16()), (200, 200));
    let serving = answered_by(&app, "/v2/models/breast-cancer/infer").await;
    match serving {
        Ok(v) => assert_eq!(v, "1.1.0"),
        Err(r) => assert!(r.text().contains("no version loaded"), "{}", r.text()),
    }
}

/// A re-scan (SIGHUP) that meets an unload through the API does not bring the model back: the
/// unload wins in either order. Here breast-cancer's new version keeps the re-scan busy while
/// the unload of diabetes (later in the re-scan's order) waits its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_does_not_undo_an_unload_made_while_it_runs() {
    let root = repository("rescan-unload", false);
    let flags = explicit(&root, &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (app, service) = ready_app(&flags).await;
    add_version(&root, "1.1.0");
    let diabetes = unload_uri("diabetes");
    let (failed, unload) = tokio::join!(
        service.repository.rescan(),
        admin(&app, &diabetes, json!({}))
    );
    assert_eq!(
        (failed, unload.status.as_u16()),
        (0, 200),
        "{}",
        unload.text()
    );
    let index = admin(&app, "/v2/repository/index", json!({})).await;
    assert_eq!(
        index_of(&index, "diabetes"),
        [("1.0.0".into(), "UNAVAILABLE".into(), "unloaded".into())]
    );
    assert_eq!(default_version(&app).await, "1.1.0");
}

/// 64 clients send unversioned requests without pause while versions are swapped ten times
/// (each swap loads one version and drains the other): none fails, each answer comes from a
/// version that was serving at some moment while it ran, and no request that started after a
/// swap returned meets the version it took out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn swapping_versions_under_load_drops_no_request() {
    let root = repository("under-load", true);
    let app = app(&explicit(&root, &[])).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..64 {
        let (app, stop) = (app.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let sent = start.elapsed();
                let version = answered_by(&app, "/v2/models/breast-cancer/infer")
                    .await
                    .unwrap_or_else(|r| {
                        panic!("a request failed during a swap: {} {}", r.status, r.text())
                    });
                seen.push((sent, start.elapsed(), version));
            }
            seen
        }));
    }
    // (when the load began, the version it took out, when it returned)
    let mut swaps = Vec::new();
    for round in 0..10 {
        let (to, from) = if round % 2 == 0 {
            ("1.0.0", "1.1.0")
        } else {
            ("1.1.0", "1.0.0")
        };
        let policy = config(json!({"version_policy": {"specific": {"versions": [to]}}}));
        let began = start.elapsed();
        let reply = admin(&app, &load_uri(MODEL), policy).await;
        assert_eq!(reply.json()["unloaded"], json!([from]), "{}", reply.text());
        swaps.push((began, from, start.elapsed()));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    assert!(answers.len() > 100, "only {} requests ran", answers.len());
    // When each version may have served: from the moment the load bringing it in began (1.1.0:
    // from the start) to the moment the load taking it out returned.
    let mut served: Vec<(&str, std::time::Duration, std::time::Duration)> = Vec::new();
    let mut open = vec![("1.1.0", std::time::Duration::ZERO)];
    for (began, gone, returned) in &swaps {
        let came = if *gone == "1.1.0" { "1.0.0" } else { "1.1.0" };
        if let Some(i) = open.iter().position(|(v, _)| v == gone) {
            let (v, from) = open.remove(i);
            served.push((v, from, *returned));
        }
        open.push((came, *began));
    }
    served.extend(
        open.into_iter()
            .map(|(v, from)| (v, from, std::time::Duration::MAX)),
    );
    for (sent, done, version) in &answers {
        assert!(
            served
                .iter()
                .any(|(v, from, to)| v == version && from <= done && sent <= to),
            "{version} answered a request in flight {sent:?}..{done:?}, when it was not serving: {served:?}"
        );
    }
    // A request sent after a swap returned and answered before the next load began (which
    // brings the version back) must not meet the version the swap took out.
    for (i, (_, gone, returned)) in swaps.iter().enumerate() {
        let next = swaps
            .get(i + 1)
            .map_or(std::time::Duration::MAX, |(began, _, _)| *began);
        let stale: Vec<_> = answers
            .iter()
            .filter(|(sent, done, version)| sent > returned && *done < next && version == gone)
            .collect();
        assert!(
            stale.is_empty(),
            "swap {i}: {} answers from {gone} after it was unloaded: {stale:?} swaps {swaps:?}",
            stale.len()
        );
    }
    for version in ["1.0.0", "1.1.0"] {
        assert!(
            answers.iter().any(|(_, _, v)| v == version),
            "{version} never answered"
        );
    }
}

mod grpc {
    use super::*;
    use ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
    use ember_serve::grpc::pb::model_repository_parameter::ParameterChoice;
    use ember_serve::grpc::pb::*;
    use tonic::Code;
    use tonic::transport::Channel;

    async fn client(
        flags: &[String],
    ) -> (
        GrpcInferenceServiceClient<Channel>,
        tokio::task::JoinHandle<()>,
    ) {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let started = ember_serve::app::start(&args(&flags)).unwrap();
        started.service.warm_up().await.unwrap();
        let (service, limit, keys) = (
            started.service.clone(),
            started.body_limit,
            started.grpc_keys(),
        );
        let router =
            move |draining| ember_serve::grpc::router(service, limit, keys, draining).unwrap();
        let (channel, _, server) = serve_grpc(router, std::future::pending()).await;
        (GrpcInferenceServiceClient::new(channel), server)
    }

    fn with_key<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(key) = key {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        request
    }

    fn load(model: &str, config: Option<Value>) -> RepositoryModelLoadRequest {
        let parameters = config
            .map(|c| {
                let value = ModelRepositoryParameter {
                    parameter_choice: Some(ParameterChoice::StringParam(c.to_string())),
                };
                [("config".to_string(), value)].into()
            })
            .unwrap_or_default();
        RepositoryModelLoadRequest {
            model_name: model.into(),
            parameters,
            ..Default::default()
        }
    }

    async fn index(client: &mut GrpcInferenceServiceClient<Channel>) -> Vec<(String, String)> {
        let request = with_key(RepositoryIndexRequest::default(), Some(ADMIN));
        client
            .repository_index(request)
            .await
            .unwrap()
            .into_inner()
            .models
            .into_iter()
            .filter(|m| m.name == MODEL)
            .map(|m| (m.version, m.state))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_repository_calls_work_over_grpc_with_an_admin_key_only() {
        let (mut off, _server) = client(&[]).await;
        let e = off
            .repository_index(with_key(RepositoryIndexRequest::default(), Some(ADMIN)))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
        let extensions =
            |meta: tonic::Response<ServerMetadataResponse>| meta.into_inner().extensions;
        let meta = off
            .server_metadata(ServerMetadataRequest::default())
            .await
            .unwrap();
        assert!(!extensions(meta).contains(&"model_repository".to_string()));

        let root = repository("grpc", true);
        let (mut client, _server) = client(&explicit(&root, &["--api-key", INFERENCE])).await;
        let meta = client
            .server_metadata(with_key(ServerMetadataRequest::default(), Some(INFERENCE)))
            .await
            .unwrap();
        assert!(extensions(meta).contains(&"model_repository".to_string()));
        for key in [None, Some(INFERENCE)] {
            let e = client
                .repository_model_load(with_key(load(MODEL, None), key))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated, "{key:?}");
        }
        assert_eq!(
            index(&mut client).await,
            [
                ("1.0.0".into(), "UNAVAILABLE".into()),
                ("1.1.0".into(), "READY".into())
            ]
        );

        let both = json!({"version_policy": {"all": {}}});
        client
            .repository_model_load(with_key(load(MODEL, Some(both)), Some(ADMIN)))
            .await
            .unwrap();
        assert_eq!(
            index(&mut client).await,
            [
                ("1.0.0".into(), "READY".into()),
                ("1.1.0".into(), "READY".into())
            ]
        );

        let unknown = client
            .repository_model_load(with_key(load("no-such-model", None), Some(ADMIN)))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound);
        let bad = json!({"instance_group": []});
        let bad = client
            .repository_model_load(with_key(load(MODEL, Some(bad)), Some(ADMIN)))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(
            bad.message().contains("instance_group"),
            "{}",
            bad.message()
        );

        let unload = RepositoryModelUnloadRequest {
            model_name: MODEL.into(),
            ..Default::default()
        };
        client
            .repository_model_unload(with_key(unload, Some(ADMIN)))
            .await
            .unwrap();
        let ready = ModelReadyRequest {
            name: MODEL.into(),
            version: String::new(),
        };
        let ready = client
            .model_ready(with_key(ready, Some(INFERENCE)))
            .await
            .unwrap();
        assert!(!ready.into_inner().ready);
        assert!(
            index(&mut client)
                .await
                .iter()
                .all(|(_, state)| state == "UNAVAILABLE")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traffic_split_and_shadow_change_through_the_api() {
    let root = repository("traffic-api", true);
    let app = app(&explicit(&root, &[])).await;
    let all = json!({"version_policy": {"all": {}}, "default_version": "1.0.0",
                     "traffic": {"1.1.0": 100}});
    let reply = admin(&app, &load_uri(MODEL), config(all)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for _ in 0..20 {
        assert_eq!(default_version(&app).await, "1.1.0");
    }
    // A config replaces the last one: without `traffic`, the default takes everything again.
    let all = json!({"version_policy": {"all": {}}, "default_version": "1.0.0"});
    admin(&app, &load_uri(MODEL), config(all)).await;
    for _ in 0..20 {
        assert_eq!(default_version(&app).await, "1.0.0");
    }
    // A split naming a version the policy does not load changes nothing.
    let bad = json!({"traffic": {"1.1.0": 10}, "version_policy": {"latest": {"num_versions": 1}}});
    let reply = admin(&app, &load_uri(MODEL), config(bad)).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("is the default version"),
        "{}",
        reply.text()
    );
    let shadow = json!({"version_policy": {"all": {}}, "default_version": "1.0.0",
                        "shadow": {"version": "1.2.0", "percent": 5}});
    let reply = admin(&app, &load_uri(MODEL), config(shadow)).await;
    assert!(
        reply.text().contains("shadow version 1.2.0"),
        "{}",
        reply.text()
    );
    assert_eq!(default_version(&app).await, "1.0.0");
}
