//! The container definitions, checked by parsing them (never by grepping): base-image pins
//! agree everywhere, `docker buildx bake --print` resolves to the intended targets, and compose
//! runs the server beside a Prometheus that scrapes it. The workflows: `tests/workflows.rs`.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{read, repo_path};
use serde_json::Value;

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
    // The base-image comparison's runtimes (docker/Dockerfile's debian-slim, ubuntu and alpine
    // stages) are pinned in the same three places.
    for (stage, arg) in [
        ("gpu-runtime", "GPU_RUNTIME_IMAGE"),
        ("ubuntu", "UBUNTU_IMAGE"),
        ("alpine", "ALPINE_IMAGE"),
    ] {
        assert_eq!(bake.get(arg), Some(&froms[stage]), "docker-bake.hcl {arg}");
        assert_eq!(
            cpu.get(arg),
            Some(&froms[stage]),
            "docker/Dockerfile ARG {arg}"
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
fn bake_print(extra_files: &[&std::path::Path], targets: &[&str]) -> Option<Value> {
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
    for var in [
        "BUILDER_IMAGE",
        "RUNTIME_IMAGE",
        "GPU_RUNTIME_IMAGE",
        "UBUNTU_IMAGE",
        "ALPINE_IMAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(targets);
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
    let Some(plan) = bake_print(&[], &[]) else {
        return;
    };
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

/// The base-image comparison: four runtimes for the same sources, both architectures, in a
/// group of its own; the release's default group and the candidate build never name them, and
/// the Dockerfile's last stage (what `cpu` builds) stays the distroless release image.
#[test]
fn the_compare_group_builds_four_runtimes_that_no_release_uses() {
    let dockerfile = read("docker/Dockerfile");
    let last_from = dockerfile
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap();
    assert_eq!(last_from, "FROM ${RUNTIME_IMAGE}");
    let workflow = read(".github/workflows/build.yml");
    assert!(workflow.contains("targets: cpu,gpu"));
    let Some(plan) = bake_print(&[], &["compare"]) else {
        return;
    };
    let targets = serde_json::json!([
        "compare-distroless",
        "compare-debian-slim",
        "compare-ubuntu",
        "compare-alpine"
    ]);
    assert_eq!(plan["group"]["compare"]["targets"], targets);
    let defaults = bake_defaults();
    for (name, stage, base_arg) in [
        ("compare-distroless", None, "RUNTIME_IMAGE"),
        (
            "compare-debian-slim",
            Some("debian-slim"),
            "GPU_RUNTIME_IMAGE",
        ),
        ("compare-ubuntu", Some("ubuntu"), "UBUNTU_IMAGE"),
        ("compare-alpine", Some("alpine"), "ALPINE_IMAGE"),
    ] {
        let t = &plan["target"][name];
        assert_eq!(t["dockerfile"], "docker/Dockerfile", "{name}");
        assert_eq!(t["target"].as_str(), stage, "{name}");
        assert_eq!(
            t["platforms"],
            serde_json::json!(["linux/amd64", "linux/arm64"]),
            "{name}"
        );
        assert_eq!(
            t["args"][base_arg].as_str(),
            defaults.get(base_arg).map(String::as_str),
            "{name}"
        );
        assert_eq!(
            t["tags"],
            serde_json::json!([format!("ghcr.io/acme/ember-serve:{name}")])
        );
        if let Some(stage) = stage {
            assert!(
                dockerfile.contains(&format!(" AS {stage}\n")),
                "no stage {stage}"
            );
        }
    }
    // Alpine gets the static musl binary (flex only: mimalloc is C built for glibc).
    assert_eq!(plan["target"]["compare-alpine"]["args"]["LIBC"], "musl");
    assert_eq!(plan["target"]["compare-alpine"]["args"]["FEATURES"], "flex");
    assert!(plan["target"]["compare-ubuntu"]["args"]["LIBC"].is_null());
    let default = bake_print(&[], &[]).unwrap();
    assert_eq!(
        default["group"]["default"]["targets"],
        serde_json::json!(["cpu", "gpu"])
    );
}

#[test]
fn metadata_action_targets_are_inherited() {
    // What docker/metadata-action writes in CI: the two empty targets, redefined with tags.
    let dir = common::ScratchDir::new("meta");
    let file = dir.join("meta.json");
    let meta = serde_json::json!({"target": {
        "docker-metadata-action": {"tags": ["ghcr.io/acme/ember-serve:9.9.9", "ghcr.io/acme/ember-serve:9.9"]},
        "docker-metadata-action-gpu": {"tags": ["ghcr.io/acme/ember-serve:9.9.9-gpu"]}
    }});
    std::fs::write(&file, meta.to_string()).unwrap();
    let Some(plan) = bake_print(&[&file], &[]) else {
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

/// The GPU image installs what the NVIDIA Vulkan ICD loads besides the driver's own files (the
/// Vulkan loader, libglvnd's dispatch library, EGL): without libglvnd the ICD fails to load
/// silently and `--device auto` serves on the CPU. `.ci/images.sh` checks the built image has
/// them. Mesa's GL stack (libgl1, libglx0 and their drivers) stays out: it doubled the image.
#[test]
fn the_gpu_image_carries_what_the_nvidia_icd_needs() {
    let dockerfile = read("docker/Dockerfile.gpu");
    let runtime = dockerfile
        .split("FROM ${GPU_RUNTIME_IMAGE}")
        .nth(1)
        .expect("no runtime stage");
    let installed: Vec<&str> = runtime
        .split("apt-get install")
        .nth(1)
        .expect("the runtime stage installs nothing")
        .split("&&")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|w| !w.starts_with('-') && *w != "\\")
        .collect();
    for package in ["libvulkan1", "libglvnd0", "libegl1"] {
        assert!(
            installed.contains(&package),
            "{package} not in {installed:?}"
        );
    }
    for heavy in [
        "libgl1",
        "libglx0",
        "libgl1-mesa-dri",
        "mesa-vulkan-drivers",
    ] {
        assert!(
            !installed.contains(&heavy),
            "{heavy} pulls in Mesa's drivers"
        );
    }
    let checked = read(".ci/images.sh");
    assert!(checked.contains("dpkg-query") && checked.contains("libglvnd0"));
}

/// The images' dependency layer builds against stub sources: cargo refuses a workspace whose
/// declared targets are missing, so each library, binary, benchmark and build script of every
/// workspace member (as `cargo metadata` reads them) needs its stub in both Dockerfiles, or the
/// image build fails at that layer (and a build script's build dependencies are left out of it).
#[test]
fn the_dependency_layer_stubs_every_declared_target() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(repo_path("."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = format!("{}/", env!("CARGO_MANIFEST_DIR"));
    let mut declared: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|package| package["targets"].as_array().unwrap())
        .filter(|t| {
            let kinds = t["kind"].as_array().unwrap();
            kinds
                .iter()
                .any(|k| ["lib", "bin", "bench", "custom-build"].contains(&k.as_str().unwrap()))
        })
        .map(|t| t["src_path"].as_str().unwrap().replace(&root, ""))
        // The stub loop copies src/main.rs, which also stands in for the root build.rs.
        .filter(|path| path != "src/main.rs" && path != "build.rs")
        .collect();
    declared.sort();
    for expected in [
        "benches/forward.rs",
        "model/build.rs",
        "model/src/lib.rs",
        "train/src/main.rs",
    ] {
        assert!(
            declared.contains(&expected.to_string()),
            "{expected} not in {declared:?}"
        );
    }
    for dockerfile in ["docker/Dockerfile", "docker/Dockerfile.gpu"] {
        let text = read(dockerfile);
        let mut stubs: Vec<String> = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("for f in "))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        stubs.sort();
        assert_eq!(stubs, declared, "{dockerfile}'s stub sources");
    }
}

/// Each image builds its dependency layer and its binary with the same profile, features and
/// target (else the second build silently recompiles every dependency), copies the binary from
/// that profile's directory, and the profile is Cargo.toml's: for the CPU image the one whose fat
/// LTO and single codegen unit keep it under its size target, for the GPU image one of its own.
#[test]
fn each_image_builds_with_its_own_cargo_profile() {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let profiles = manifest["profile"].as_table().unwrap();
    let setting = |profile: &str, key: &str| -> Option<toml::Value> {
        let mut name = profile.to_string();
        // Follow `inherits` as cargo does, ending at a built-in profile.
        loop {
            let table = profiles.get(&name)?.as_table()?;
            if let Some(v) = table.get(key) {
                return Some(v.clone());
            }
            name = table.get("inherits")?.as_str()?.to_string();
        }
    };
    for (dockerfile, profile) in [
        ("docker/Dockerfile", "dist"),
        ("docker/Dockerfile.gpu", "dist-gpu"),
    ] {
        let text = read(dockerfile).replace("\\\n", " ");
        let builds: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("cargo build") || l.contains("cargo auditable build"))
            .collect();
        assert_eq!(builds.len(), 2, "{dockerfile}: {builds:?}");
        for build in &builds {
            let args: Vec<&str> = build.split_whitespace().collect();
            let after = |flag: &str| {
                args.iter()
                    .position(|a| *a == flag)
                    .and_then(|i| args.get(i + 1).copied())
            };
            assert_eq!(after("--profile"), Some(profile), "{dockerfile}: {build}");
            assert_eq!(after("--features"), Some("\"$FEATURES\""), "{build}");
            assert_eq!(after("--target"), Some("\"$TRIPLE\""), "{build}");
            assert!(args.contains(&"--no-default-features"), "{build}");
            assert!(args.contains(&"--locked"), "{build}");
        }
        let copied = format!("target/$TRIPLE/{profile}/ember-serve");
        assert!(
            builds[1].contains(&copied),
            "{dockerfile} copies another profile's binary: {}",
            builds[1]
        );
        assert!(profiles.contains_key(profile), "no [profile.{profile}]");
        assert_eq!(setting(profile, "strip"), Some(toml::Value::Boolean(true)));
    }
    assert_eq!(setting("dist", "lto"), Some(toml::Value::from("fat")));
    assert_eq!(setting("dist", "codegen-units"), Some(toml::Value::from(1)));
    assert_eq!(
        setting("dist", "incremental"),
        Some(toml::Value::Boolean(false))
    );
    // `cargo bench` builds as the CPU image does; cargo allows no `inherits` on bench, so
    // [profile.bench] restates dist's settings and must not drift from them.
    for key in ["lto", "codegen-units", "incremental"] {
        assert_eq!(
            setting("bench", key),
            setting("dist", key),
            "[profile.bench] {key}"
        );
    }
    // `cargo run --release` stays quick: incremental, and neither of the slow settings.
    assert_eq!(setting("release", "lto"), None);
    assert_eq!(setting("release", "codegen-units"), None);
    assert_eq!(
        setting("release", "incremental"),
        Some(toml::Value::Boolean(true))
    );
}

/// Bake builds the images' targets and platforms at once; a cache mount shared with
/// `sharing=locked` made each build wait for the other's whole dependency layer, so the cargo
/// registry cache is private to each concurrent build (cargo's own lock file lives outside the
/// mount, so `shared` would let two builds unpack one crate at once).
#[test]
fn concurrent_image_builds_never_wait_on_one_cache() {
    for dockerfile in ["docker/Dockerfile", "docker/Dockerfile.gpu"] {
        let text = read(dockerfile);
        let mounts: Vec<&str> = text
            .split("--mount=")
            .skip(1)
            .filter_map(|m| m.split_whitespace().next())
            .filter(|m| m.starts_with("type=cache"))
            .collect();
        assert!(mounts.len() >= 3, "{dockerfile}: {mounts:?}");
        for mount in mounts {
            assert!(
                mount.split(',').any(|o| o == "sharing=private"),
                "{dockerfile}: {mount} can make a concurrent build wait"
            );
        }
    }
}
