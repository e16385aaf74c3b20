//! The container and CI definitions, checked by parsing them (never by grepping):
//! base-image pins agree everywhere, `docker buildx bake --print` resolves to the intended
//! targets, and the GitHub Actions workflow has the job graph and pins the release depends on.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::repo_path;
use serde_json::Value;

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `ARG NAME=default` lines before the first FROM.
fn global_args(dockerfile: &str) -> BTreeMap<String, String> {
    read(dockerfile)
        .lines()
        .take_while(|l| !l.trim_start().starts_with("FROM"))
        .filter_map(|l| l.trim().strip_prefix("ARG "))
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `variable "NAME" { default = "..." }` blocks of docker-bake.hcl.
fn bake_defaults() -> BTreeMap<String, String> {
    let hcl = read("docker-bake.hcl");
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in hcl.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("variable \"") {
            current = rest.split('"').next().map(str::to_string);
        } else if let (Some(name), Some(v)) = (&current, line.strip_prefix("default = ")) {
            out.insert(name.clone(), v.trim_matches('"').to_string());
            current = None;
        }
    }
    out
}

#[test]
fn base_image_pins_agree_everywhere() {
    let froms: BTreeMap<String, String> = read("docker/base-images.Dockerfile")
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .filter_map(|l| l.split_once(" AS "))
        .map(|(img, name)| (name.trim().to_string(), img.trim().to_string()))
        .collect();
    let bake = bake_defaults();
    let cpu = global_args("docker/Dockerfile");
    let gpu = global_args("docker/Dockerfile.gpu");
    for (stage, arg) in [
        ("builder", "BUILDER_IMAGE"),
        ("runtime", "RUNTIME_IMAGE"),
        ("gpu-runtime", "GPU_RUNTIME_IMAGE"),
    ] {
        let pin = &froms[stage];
        assert_eq!(
            bake.get(arg),
            Some(pin),
            "docker-bake.hcl {arg} differs from base-images.Dockerfile"
        );
        let dockerfile_default = if arg == "GPU_RUNTIME_IMAGE" {
            gpu.get(arg)
        } else {
            cpu.get(arg)
        };
        assert_eq!(
            dockerfile_default,
            Some(pin),
            "Dockerfile ARG {arg} differs from base-images.Dockerfile"
        );
    }
    assert_eq!(cpu.get("BUILDER_IMAGE"), gpu.get("BUILDER_IMAGE"));
    // The builder's Rust matches rust-toolchain.toml, so the image builds what CI tested.
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        froms["builder"].starts_with(&format!("rust:{channel}-")),
        "builder {} vs toolchain {channel}",
        froms["builder"]
    );
}

/// `docker buildx bake --print` output, or None (with a message) where buildx is unavailable.
fn bake_print(extra_files: &[&std::path::Path]) -> Option<Value> {
    let buildx = Command::new("docker").args(["buildx", "version"]).output();
    if !buildx.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED bake --print: `docker buildx` is not available here \
             (.ci/run gets it from ../shared/tools/offline-docker)"
        );
        return None;
    }
    let mut cmd = Command::new("docker");
    cmd.current_dir(repo_path("."))
        .args(["buildx", "bake", "--print", "-f", "docker-bake.hcl"]);
    for f in extra_files {
        cmd.arg("-f").arg(f);
    }
    // Start from the bake file's own defaults, whatever the caller's environment says.
    for var in ["BUILDER_IMAGE", "RUNTIME_IMAGE", "GPU_RUNTIME_IMAGE"] {
        cmd.env_remove(var);
    }
    let out = cmd
        .env("VERSION", "1.2.3")
        .env("REGISTRY", "ghcr.io/acme")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bake --print failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn bake_resolves_the_cpu_and_gpu_images() {
    let Some(plan) = bake_print(&[]) else { return };
    assert_eq!(
        plan["group"]["default"]["targets"],
        serde_json::json!(["cpu", "gpu"])
    );
    let cpu = &plan["target"]["cpu"];
    let gpu = &plan["target"]["gpu"];
    assert_eq!(
        cpu["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(gpu["platforms"], serde_json::json!(["linux/amd64"]));
    assert_eq!(
        cpu["tags"],
        serde_json::json!(["ghcr.io/acme/ember-serve:1.2.3"])
    );
    assert_eq!(
        gpu["tags"],
        serde_json::json!(["ghcr.io/acme/ember-serve:1.2.3-gpu"])
    );
    assert_eq!(cpu["dockerfile"], "docker/Dockerfile");
    assert_eq!(gpu["dockerfile"], "docker/Dockerfile.gpu");
    let defaults = bake_defaults();
    assert_eq!(
        cpu["args"]["BUILDER_IMAGE"].as_str(),
        defaults.get("BUILDER_IMAGE").map(String::as_str)
    );
    assert_eq!(
        cpu["args"]["RUNTIME_IMAGE"].as_str(),
        defaults.get("RUNTIME_IMAGE").map(String::as_str)
    );
    assert_eq!(
        gpu["args"]["GPU_RUNTIME_IMAGE"].as_str(),
        defaults.get("GPU_RUNTIME_IMAGE").map(String::as_str)
    );
    assert_eq!(cpu["args"]["VERSION"], "1.2.3");
}

#[test]
fn metadata_action_targets_are_inherited() {
    // What docker/metadata-action writes in CI: the two empty targets, redefined with tags.
    let file = std::env::temp_dir().join(format!("ember-meta-{}.json", std::process::id()));
    let meta = serde_json::json!({"target": {
        "docker-metadata-action": {"tags": ["ghcr.io/acme/ember-serve:9.9.9", "ghcr.io/acme/ember-serve:9.9"]},
        "docker-metadata-action-gpu": {"tags": ["ghcr.io/acme/ember-serve:9.9.9-gpu"]}
    }});
    std::fs::write(&file, meta.to_string()).unwrap();
    let Some(plan) = bake_print(&[&file]) else {
        return;
    };
    assert_eq!(
        plan["target"]["cpu"]["tags"],
        meta["target"]["docker-metadata-action"]["tags"]
    );
    assert_eq!(
        plan["target"]["gpu"]["tags"],
        meta["target"]["docker-metadata-action-gpu"]["tags"]
    );
    // The rest of each target is untouched by the injected tags.
    assert_eq!(
        plan["target"]["cpu"]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
}

fn workflow() -> serde_json::Value {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read(".github/workflows/build.yml")).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().unwrap()
}

#[test]
fn workflow_job_graph_and_release_gate() {
    let wf = workflow();
    let on = &wf["on"];
    assert!(on["pull_request"].is_null() || on["pull_request"].is_object());
    assert!(on.as_object().unwrap().contains_key("pull_request"));
    assert!(on.as_object().unwrap().contains_key("workflow_dispatch"));
    assert_eq!(on["push"]["branches"], serde_json::json!(["main"]));
    assert_eq!(on["push"]["tags"], serde_json::json!(["v*.*.*"]));
    assert_eq!(
        wf["permissions"],
        serde_json::json!({}),
        "top-level permissions must be empty"
    );
    assert!(wf["concurrency"]["group"].is_string());

    let jobs = wf["jobs"].as_object().unwrap();
    assert_eq!(jobs["build-scan"]["needs"], "test");
    assert_eq!(jobs["publish"]["needs"], "build-scan");
    assert!(jobs["test"]["needs"].is_null());
    let gate = jobs["publish"]["if"].as_str().unwrap();
    assert!(
        gate.contains("startsWith(github.ref, 'refs/tags/v')")
            && gate.contains("github.event_name == 'push'"),
        "{gate}"
    );
    for (name, job) in jobs {
        let perms = job["permissions"]
            .as_object()
            .unwrap_or_else(|| panic!("job {name} has no permissions"));
        let writes: Vec<_> = perms
            .iter()
            .filter(|(_, v)| *v == "write")
            .map(|(k, _)| k.as_str())
            .collect();
        match name.as_str() {
            "test" => assert!(writes.is_empty()),
            "build-scan" => assert_eq!(writes, ["security-events"]),
            "publish" => assert_eq!(writes, ["packages"]),
            other => panic!("unexpected job {other}"),
        }
    }
}

#[test]
fn every_action_is_pinned_by_sha() {
    let wf = workflow();
    for (name, job) in wf["jobs"].as_object().unwrap() {
        for step in steps(job) {
            let Some(uses) = step["uses"].as_str() else {
                continue;
            };
            let (_, reference) = uses
                .split_once('@')
                .unwrap_or_else(|| panic!("{name}: {uses} has no ref"));
            assert!(
                reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()),
                "{name}: {uses} is not pinned by a full commit SHA"
            );
        }
    }
    // The version comment beside each pin is what dependabot and reviewers read.
    for line in read(".github/workflows/build.yml")
        .lines()
        .filter(|l| l.contains("uses:"))
    {
        assert!(
            line.contains(" # v") || line.contains(" # 1."),
            "pin without a version comment: {line}"
        );
    }
}

#[test]
fn images_are_scanned_before_anything_is_pushed() {
    let wf = workflow();
    let jobs = &wf["jobs"];
    let uses = |job: &str| -> Vec<String> {
        steps(&jobs[job])
            .iter()
            .filter_map(|s| s["uses"].as_str())
            .map(|u| u.split('@').next().unwrap().to_string())
            .collect()
    };
    // build-scan: the bake loads (never pushes), then Trivy gates with exit code 1.
    let scan_steps = steps(&jobs["build-scan"]);
    let bake_at = scan_steps
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/bake-action@"))
        })
        .unwrap();
    let trivy: Vec<_> = scan_steps
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aquasecurity/trivy-action@"))
        })
        .collect();
    assert_eq!(trivy.len(), 2, "both images are scanned");
    for (i, step) in &trivy {
        assert!(*i > bake_at);
        assert_eq!(step["with"]["exit-code"], "1");
        assert_eq!(step["with"]["severity"], "CRITICAL,HIGH");
        assert_eq!(step["with"]["ignore-unfixed"], true);
    }
    assert_eq!(scan_steps[bake_at]["with"]["load"], true);
    assert!(scan_steps[bake_at]["with"]["push"].is_null());
    assert!(
        !uses("build-scan")
            .iter()
            .any(|u| u == "docker/login-action"),
        "build-scan must not log in"
    );
    // Only publish pushes, and it runs only after build-scan (checked above).
    let publish = steps(&jobs["publish"]);
    let push = publish
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/bake-action@"))
        })
        .unwrap();
    assert_eq!(push["with"]["push"], true);
    assert!(
        push["with"]["set"]
            .as_str()
            .is_none_or(|s| !s.contains("platform")),
        "publish must build every platform of each target"
    );
    assert!(uses("test").iter().all(|u| u != "docker/bake-action"));
}

#[test]
fn run_scripts_never_interpolate_event_text() {
    for line in read(".github/workflows/build.yml").lines() {
        if line.contains("${{") && line.contains("github.event.") {
            // Allowed only in `if:` conditions, never where a shell would see it.
            assert!(
                line.trim_start().starts_with("if:"),
                "event text outside an if: {line}"
            );
        }
    }
    let wf = workflow();
    for job in wf["jobs"].as_object().unwrap().values() {
        for step in steps(job) {
            if let Some(run) = step["run"].as_str() {
                assert!(
                    !run.contains("${{"),
                    "expression interpolated into a run script: {run}"
                );
            }
        }
    }
}

#[test]
fn compose_runs_the_server_and_a_prometheus_that_scrapes_it() {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker/compose.yaml")).unwrap();
    let compose = serde_json::to_value(compose).unwrap();
    let server = &compose["services"]["ember-serve"];
    assert_eq!(server["build"]["dockerfile"], "docker/Dockerfile");
    assert_eq!(server["read_only"], true);
    let prom = &compose["services"]["prometheus"];
    let mounts = prom["volumes"].as_array().unwrap();
    assert!(mounts.iter().any(|m| {
        m.as_str()
            .is_some_and(|m| m.starts_with("./prometheus.yml:"))
    }));

    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker/prometheus.yml")).unwrap();
    let config = serde_json::to_value(config).unwrap();
    let job = &config["scrape_configs"][0];
    assert_eq!(job["scrape_interval"], "5s");
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(
        job["static_configs"][0]["targets"],
        serde_json::json!(["ember-serve:8080"])
    );
}
