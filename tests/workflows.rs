//! The GitHub Actions workflows, checked by parsing their YAML: the release path only moves a
//! release tag after every platform of the candidate was scanned and smoke-tested, promotes by
//! digest, rolls back (by itself and by hand), signs digests, and keeps every job's permissions
//! to what it needs. The scripts the jobs call are exercised for real by `.ci/release/replay.sh`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{read, repo_path};
use serde_json::{Value, json};

fn workflow(name: &str) -> Value {
    let path = format!(".github/workflows/{name}");
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(&path)).unwrap();
    serde_json::to_value(yaml).unwrap()
}

fn build() -> Value {
    workflow("build.yml")
}

fn rollback() -> Value {
    workflow("rollback.yml")
}

/// Every workflow file: the checks that hold for all of them iterate over this list, and
/// `every_workflow_is_checked` keeps it equal to .github/workflows/.
const WORKFLOWS: [&str; 3] = ["build.yml", "rollback.yml", "base-images.yml"];

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().unwrap()
}

fn uses(step: &Value, action: &str) -> bool {
    step["uses"]
        .as_str()
        .is_some_and(|u| u.split('@').next() == Some(action))
}

/// The steps of `job` whose `run` script calls `script`.
fn runs<'a>(job: &'a Value, script: &str) -> Vec<&'a Value> {
    steps(job)
        .iter()
        .filter(|s| s["run"].as_str().is_some_and(|r| r.contains(script)))
        .collect()
}

/// Where in `steps` the first step whose `run` script contains `text` stands.
fn position_running(steps: &[Value], text: &str) -> Option<usize> {
    steps
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains(text)))
}

/// The jobs of a workflow whose steps run `script`.
fn jobs_running(wf: &Value, script: &str) -> BTreeSet<String> {
    wf["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, job)| !runs(job, script).is_empty())
        .map(|(name, _)| name.clone())
        .collect()
}

fn needs(job: &Value) -> BTreeSet<String> {
    match &job["needs"] {
        Value::String(s) => [s.clone()].into(),
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        _ => BTreeSet::new(),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Each job's permissions that are `write`.
fn writes(wf: &Value) -> BTreeMap<String, BTreeSet<String>> {
    wf["jobs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, job)| {
            let perms = job["permissions"]
                .as_object()
                .unwrap_or_else(|| panic!("job {name} declares no permissions"));
            let w = perms
                .iter()
                .filter(|(_, v)| *v == "write")
                .map(|(k, _)| k.clone())
                .collect();
            (name.clone(), w)
        })
        .collect()
}

#[test]
fn job_graph_triggers_and_least_privilege() {
    let wf = build();
    let on = wf["on"].as_object().unwrap();
    assert!(on.contains_key("pull_request") && on.contains_key("workflow_dispatch"));
    assert_eq!(on["push"]["branches"], json!(["main"]));
    assert_eq!(on["push"]["tags"], json!(["v*.*.*"]));
    assert_eq!(wf["permissions"], json!({}), "top-level permissions empty");

    let jobs = &wf["jobs"];
    assert!(needs(&jobs["test"]).is_empty());
    assert!(needs(&jobs["test-arm64"]).is_empty());
    // The candidate is built only once the suite passed on both architectures.
    assert_eq!(needs(&jobs["candidate"]), set(&["test", "test-arm64"]));
    assert_eq!(needs(&jobs["scan"]), set(&["candidate"]));
    assert_eq!(needs(&jobs["smoke"]), set(&["candidate"]));
    // Signed once scanned and smoke-tested; approved once signed; promoted only once approved.
    assert_eq!(needs(&jobs["sign"]), set(&["candidate", "scan", "smoke"]));
    assert_eq!(
        needs(&jobs["approve"]),
        set(&["candidate", "scan", "smoke", "sign"])
    );
    assert_eq!(
        needs(&jobs["promote"]),
        set(&["candidate", "scan", "smoke", "sign", "approve"])
    );
    assert_eq!(
        needs(&jobs["post-deploy-arm64"]),
        set(&["candidate", "promote"])
    );
    assert_eq!(jobs["approve"]["permissions"], json!({}));

    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("test", set(&[])),
        ("test-arm64", set(&[])),
        ("post-deploy-arm64", set(&["packages"])),
        ("approve", set(&[])),
        ("candidate", set(&["packages"])),
        ("scan", set(&["security-events"])),
        ("smoke", set(&[])),
        ("promote", set(&["packages"])),
        ("sign", set(&["attestations", "id-token", "packages"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(writes(&wf), expected);

    let rb = rollback();
    assert_eq!(rb["permissions"], json!({}));
    let rb_writes = writes(&rb);
    assert_eq!(rb_writes.len(), 1);
    assert_eq!(rb_writes["rollback"], set(&["packages"]));
}

#[test]
fn no_release_tag_moves_before_every_platform_was_scanned_and_smoke_tested() {
    let wf = build();
    let jobs = &wf["jobs"];

    // The candidate job pushes only the candidate's sha tags; the release tags it computes
    // contribute labels to the build, never tags.
    let candidate = &jobs["candidate"];
    let bake: Vec<_> = steps(candidate)
        .iter()
        .filter(|s| uses(s, "docker/bake-action"))
        .collect();
    assert_eq!(bake.len(), 1);
    let files = bake[0]["with"]["files"].as_str().unwrap();
    let tag_files: Vec<_> = files
        .lines()
        .filter(|l| l.contains("bake-file-tags"))
        .map(str::trim)
        .collect();
    assert_eq!(
        tag_files,
        [
            "${{ steps.candidate.outputs.bake-file-tags }}",
            "${{ steps.candidate-gpu.outputs.bake-file-tags }}"
        ]
    );
    for id in ["candidate", "candidate-gpu"] {
        let meta = steps(candidate)
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}"));
        assert!(uses(meta, "docker/metadata-action"));
        assert_eq!(meta["with"]["tags"], "type=sha", "{id} tags");
        assert!(
            meta["with"]["flavor"]
                .as_str()
                .is_some_and(|f| f.contains("latest=false")),
            "{id} must not add latest"
        );
    }
    assert!(
        bake[0]["with"]["set"]
            .as_str()
            .is_none_or(|s| !s.contains("platform")),
        "the candidate builds every platform of each target"
    );

    // Nothing else builds, and nothing pushes outside the release scripts.
    for (name, job) in jobs.as_object().unwrap() {
        let bakes = steps(job).iter().any(|s| uses(s, "docker/bake-action"));
        assert_eq!(bakes, name == "candidate", "{name} builds images");
        for step in steps(job) {
            let run = step["run"].as_str().unwrap_or("");
            assert!(
                !run.contains("imagetools create") && !run.contains("docker push"),
                "{name} pushes outside the release scripts: {run}"
            );
        }
    }
    assert_eq!(
        jobs_running(&wf, ".ci/release/release.sh"),
        set(&["promote"])
    );
    // rollback.sh in promote: the cpu tags, when the gpu release after them failed.
    let rollbacks = runs(&jobs["promote"], ".ci/release/rollback.sh");
    assert_eq!(
        jobs_running(&wf, ".ci/release/rollback.sh"),
        set(&["promote", "post-deploy-arm64"])
    );
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(
        rollbacks[0]["if"],
        "${{ failure() && steps.cpu.outcome == 'success' }}"
    );
    let run = rollbacks[0]["run"].as_str().unwrap();
    assert!(
        run.starts_with(".ci/release/rollback.sh release/cpu.state\n"),
        "{run}"
    );
    // ... and the summary then says so for the cpu image too.
    assert!(
        run.contains(r#"jq '.outcome = "rolled-back"' release/cpu.json"#),
        "{run}"
    );

    // Scan and smoke cover exactly the platforms the candidate holds, by the candidate's digest.
    let platforms = set(&["cpu linux/amd64", "cpu linux/arm64", "gpu linux/amd64"]);
    for (job_name, script) in [
        ("scan", ".ci/release/scan.sh"),
        ("smoke", ".ci/release/smoke.sh"),
    ] {
        let job = &jobs[job_name];
        let matrix: BTreeSet<String> = job["strategy"]["matrix"]["include"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let platform = m["platform"].as_str().unwrap();
                assert_eq!(m["arch"], platform.rsplit('/').next().unwrap());
                format!("{} {platform}", m["image"].as_str().unwrap())
            })
            .collect();
        assert_eq!(matrix, platforms, "{job_name} matrix");
        assert_eq!(job["strategy"]["fail-fast"], false);
        let step = runs(job, script);
        assert_eq!(step.len(), 1, "{job_name} runs {script} once");
        assert_eq!(
            step[0]["env"]["REF"],
            "${{ needs.candidate.outputs.repo }}@${{ needs.candidate.outputs[matrix.image] }}",
            "{job_name} works on the candidate's digest"
        );
        assert_eq!(step[0]["env"]["PLATFORM"], "${{ matrix.platform }}");
        assert_eq!(
            job["if"], "${{ needs.candidate.outputs.pushed == 'true' }}",
            "{job_name} runs whenever a candidate was pushed"
        );
    }
    // Every platform is smoke-tested natively, on a runner of its own architecture: no QEMU in
    // the workflow (it stays for the local replay).
    assert_eq!(jobs["smoke"]["runs-on"], "${{ matrix.runner }}");
    for m in jobs["smoke"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
    {
        let want = if m["arch"] == "arm64" {
            "ubuntu-24.04-arm"
        } else {
            "ubuntu-24.04"
        };
        assert_eq!(m["runner"], want, "{m}");
    }
    for (name, job) in jobs.as_object().unwrap() {
        assert!(
            !steps(job)
                .iter()
                .any(|s| uses(s, "docker/setup-qemu-action")),
            "{name} emulates arm64"
        );
    }

    // Promote runs only when all of those passed: no always()/failure() escape hatch.
    let gate = jobs["promote"]["if"].as_str().unwrap();
    for escape in ["always()", "failure()", "cancelled()"] {
        assert!(!gate.contains(escape), "{gate}");
    }
    assert!(gate.contains("github.event_name == 'push'"));
    assert!(gate.contains("github.ref == 'refs/heads/main'"));
    assert!(gate.contains("startsWith(github.ref, 'refs/tags/v')"));
}

#[test]
fn promotion_is_by_digest_with_a_post_deploy_check_and_automatic_rollback() {
    let wf = build();
    let jobs = &wf["jobs"];
    let promote = &jobs["promote"];
    assert_eq!(
        jobs["approve"]["environment"],
        "${{ startsWith(github.ref, 'refs/tags/v') && 'production' || 'staging' }}",
        "production tags pass the production environment's reviewers"
    );
    let releases = runs(promote, ".ci/release/release.sh");
    assert_eq!(releases.len(), 2, "cpu and gpu");
    for (step, image, platforms) in [
        (releases[0], "cpu", "linux/amd64,linux/arm64"),
        (releases[1], "gpu", "linux/amd64"),
    ] {
        assert_eq!(
            step["env"]["CANDIDATE"],
            format!(
                "${{{{ needs.candidate.outputs.repo }}}}@${{{{ needs.candidate.outputs.{image} }}}}"
            ),
        );
        assert_eq!(
            step["env"]["TAGS"],
            format!("${{{{ needs.candidate.outputs.{image}-tags }}}}")
        );
        let run = step["run"].as_str().unwrap();
        assert!(run.contains(&format!("--platforms {platforms} ")), "{run}");
        // promote runs on amd64: it checks amd64 after moving tags; arm64 is checked natively
        // by post-deploy-arm64.
        assert!(
            run.contains("--check-platforms linux/amd64 ") || !platforms.contains("arm64"),
            "{run}"
        );
        assert!(
            run.contains("--state ") && run.contains("--report "),
            "{run}"
        );
    }

    // The candidate's digests come from what the bake pushed, or on a version tag from the
    // candidates main signed for the commit (reuse.sh): never from an unchecked tag lookup.
    let candidate = &jobs["candidate"];
    for image in ["cpu", "gpu"] {
        assert_eq!(
            candidate["outputs"][image],
            format!("${{{{ steps.digests.outputs.{image} || steps.reuse.outputs.{image} }}}}")
        );
    }
    let digests = steps(candidate)
        .iter()
        .find(|s| s["id"] == "digests")
        .unwrap();
    assert_eq!(
        digests["env"]["BAKE_METADATA"],
        "${{ steps.bake.outputs.metadata }}"
    );
    assert!(
        digests["run"]
            .as_str()
            .unwrap()
            .contains("containerimage.digest")
    );
    let verify = runs(candidate, ".ci/release/verify.sh");
    assert_eq!(verify.len(), 1);
    let run = verify[0]["run"].as_str().unwrap();
    assert!(
        run.contains("\"$CPU\" linux/amd64,linux/arm64") && run.contains("\"$GPU\" linux/amd64")
    );

    // The post-deploy check and the rollback live in release.sh: previous digests recorded,
    // then the promotion, then the check; the rollback restores what was recorded.
    let script = read(".ci/release/release.sh");
    let at = |needle: &str| {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("release.sh has no {needle}"))
    };
    let record = at(">>\"$state\"");
    let create = at("docker buildx imagetools create");
    let smoke = at("\"$RELEASE_DIR/smoke.sh\"");
    at("\"$RELEASE_DIR/rollback.sh\" \"$state\"");
    assert!(
        record < create && create < smoke,
        "record, promote, then check"
    );

    // The native arm64 check of the released cpu tag: on arm64's runner, after promote, from
    // the state promote recorded; on failure it rolls both images back, touching only tags
    // still on this release's digests, and says so.
    let arm = &jobs["post-deploy-arm64"];
    assert_eq!(arm["runs-on"], "ubuntu-24.04-arm");
    assert_eq!(arm["if"], promote["if"]);
    assert!(
        arm.get("concurrency").is_none(),
        "a queued job cancels the next release waiting in its group"
    );
    let download = steps(arm)
        .iter()
        .find(|s| uses(s, "actions/download-artifact"))
        .expect("post-deploy-arm64 reads promote's state");
    assert_eq!(
        download["with"]["name"],
        "release-state-${{ github.run_attempt }}"
    );
    let check = runs(arm, ".ci/release/smoke.sh");
    assert_eq!(check.len(), 1);
    assert!(
        check[0]["run"]
            .as_str()
            .unwrap()
            .contains("\"$tag\" linux/arm64")
    );
    let back = runs(arm, ".ci/release/rollback.sh");
    assert_eq!(back.len(), 1);
    assert_eq!(
        back[0]["if"],
        "${{ failure() && steps.check.outcome == 'failure' }}"
    );
    let run = back[0]["run"].as_str().unwrap();
    for image in ["cpu", "gpu"] {
        assert_eq!(
            back[0]["env"][image.to_uppercase()],
            format!("${{{{ needs.candidate.outputs.{image} }}}}")
        );
        let upper = image.to_uppercase();
        assert!(
            run.contains(&format!(
                "rollback.sh --only-from \"${upper}\" release/{image}.state"
            )),
            "{run}"
        );
    }
    assert_eq!(
        runs(arm, ".ci/release/notify.sh")[0]["if"],
        "${{ failure() }}"
    );

    // The summary is written whatever happened; the webhook is a secret, never a literal.
    let notify = runs(promote, ".ci/release/notify.sh");
    assert_eq!(notify.len(), 1);
    assert_eq!(notify[0]["if"], "${{ always() }}");
    assert_eq!(
        notify[0]["env"]["NOTIFY_WEBHOOK_URL"],
        "${{ secrets.NOTIFY_WEBHOOK_URL }}"
    );
}

#[test]
fn manual_rollback_repoints_one_tag_by_digest_and_checks_it() {
    let wf = rollback();
    let inputs = &wf["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(inputs["tag"]["required"], true);
    assert_eq!(inputs["digest"]["required"], true);
    let job = &wf["jobs"]["rollback"];
    assert_eq!(job["environment"], "production");
    let step = runs(job, ".ci/release/rollback.sh");
    assert_eq!(step.len(), 1);
    assert_eq!(step[0]["env"]["TAG"], "${{ inputs.tag }}");
    assert_eq!(step[0]["env"]["DIGEST"], "${{ inputs.digest }}");
    let run = step[0]["run"].as_str().unwrap();
    let repoint = run.find(".ci/release/rollback.sh").unwrap();
    let check = run
        .find(".ci/release/smoke.sh")
        .expect("the restored tag is checked");
    assert!(repoint < check);
    assert!(
        steps(job)
            .iter()
            .any(|s| uses(s, "docker/setup-qemu-action"))
    );
    // A rollback has its own lock: it never queues behind a release (see the locks test).
    assert_eq!(
        wf["concurrency"]["group"],
        "rollback-${{ github.repository }}"
    );
}

#[test]
fn no_approval_wait_holds_a_lock_and_each_environment_has_its_own() {
    // GitHub keeps one running and one pending job per concurrency group, and a newly queued
    // one cancels the pending one: a job waiting for reviewers inside a lock would block (or be
    // cancelled by) every later release, and a rollback behind it would wait for a person.
    let wf = build();
    let jobs = &wf["jobs"];
    let approve = &jobs["approve"];
    assert!(approve["environment"].is_string());
    assert!(
        approve["concurrency"].is_null(),
        "the approval holds no lock"
    );
    assert_eq!(approve["if"], jobs["promote"]["if"]);
    let promote = &jobs["promote"];
    assert!(
        promote["environment"].is_null(),
        "a second environment reference would ask the reviewers again, inside the lock"
    );
    let group = promote["concurrency"]["group"].as_str().unwrap();
    assert!(
        group.contains("'production'") && group.contains("'staging'"),
        "staging and production get separate locks: {group}"
    );
    assert_eq!(promote["concurrency"]["cancel-in-progress"], false);
    assert_ne!(
        rollback()["concurrency"]["group"].as_str().unwrap(),
        group,
        "a rollback does not queue behind a release"
    );
    // Only the jobs that move tags hold locks.
    for (name, job) in jobs.as_object().unwrap() {
        assert_eq!(job["concurrency"].is_null(), name != "promote", "{name}");
    }
}

#[test]
fn signing_is_keyless_and_signs_digests_not_tags() {
    let wf = build();
    let sign = &wf["jobs"]["sign"];
    assert!(
        steps(sign)
            .iter()
            .any(|s| uses(s, "sigstore/cosign-installer"))
    );
    let signing: Vec<_> = steps(sign)
        .iter()
        .filter(|s| s["run"].as_str().is_some_and(|r| r.contains("cosign sign")))
        .collect();
    assert_eq!(signing.len(), 1);
    let env = signing[0]["env"].as_object().unwrap();
    let mut signed = BTreeSet::new();
    for line in signing[0]["run"].as_str().unwrap().lines().map(str::trim) {
        let Some(arg) = line.strip_prefix("cosign sign --yes ") else {
            assert!(!line.contains("cosign sign"), "unexpected form: {line}");
            continue;
        };
        let var = arg.trim_matches('"').trim_start_matches('$');
        let value = env[var].as_str().unwrap();
        let digest = format!(
            "${{{{ needs.candidate.outputs.repo }}}}@${{{{ needs.candidate.outputs.{} }}}}",
            var.to_lowercase()
        );
        assert_eq!(value, digest, "{var} is not the promoted digest");
        signed.insert(var.to_string());
    }
    assert_eq!(signed, set(&["CPU", "GPU"]), "both images are signed");
    // ... and attested, by the same digests.
    let attested: BTreeSet<String> = steps(sign)
        .iter()
        .filter(|s| uses(s, "actions/attest-build-provenance"))
        .map(|s| {
            assert_eq!(
                s["with"]["subject-name"],
                "${{ needs.candidate.outputs.repo }}"
            );
            assert_eq!(s["with"]["push-to-registry"], true);
            s["with"]["subject-digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        attested,
        set(&[
            "${{ needs.candidate.outputs.cpu }}",
            "${{ needs.candidate.outputs.gpu }}"
        ])
    );
    // Promote verifies this run's signature on both digests before any tag moves.
    let promote = steps(&wf["jobs"]["promote"]);
    let verify =
        position_running(promote, "cosign verify").expect("promote verifies the signatures");
    let first_release = position_running(promote, "release.sh").unwrap();
    assert!(verify < first_release);
    let env = &promote[verify]["env"];
    assert_eq!(
        env["IDENTITY"],
        "https://github.com/${{ github.workflow_ref }}"
    );
    let run = promote[verify]["run"].as_str().unwrap();
    assert!(
        run.contains("\"$CPU\" \"$GPU\"") && run.contains("--certificate-identity \"$IDENTITY\"")
    );
    // Only the signing job can mint an OIDC token.
    for (name, w) in writes(&wf) {
        assert_eq!(w.contains("id-token"), name == "sign", "{name}");
    }
}

#[test]
fn every_action_is_pinned_by_sha_with_its_version() {
    for name in WORKFLOWS {
        let wf = workflow(name);
        for (job_name, job) in wf["jobs"].as_object().unwrap() {
            for step in steps(job) {
                let Some(uses) = step["uses"].as_str() else {
                    continue;
                };
                let (_, reference) = uses
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{name} {job_name}: {uses} has no ref"));
                assert!(
                    reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{name} {job_name}: {uses} is not pinned by a full commit SHA"
                );
            }
        }
        // The version comment beside each pin is what dependabot and reviewers read.
        for line in read(&format!(".github/workflows/{name}"))
            .lines()
            .filter(|l| l.contains("uses:"))
        {
            assert!(
                line.contains(" # v") || line.contains(" # 1."),
                "{name}: pin without a version comment: {line}"
            );
        }
    }
}

#[test]
fn run_scripts_never_interpolate_expressions() {
    for name in WORKFLOWS {
        for line in read(&format!(".github/workflows/{name}")).lines() {
            if line.contains("${{") && line.contains("github.event.") {
                // Event text only in `if:` conditions, never where a shell would see it.
                assert!(
                    line.trim_start().starts_with("if:"),
                    "{name}: event text outside an if: {line}"
                );
            }
        }
        let wf = workflow(name);
        for job in wf["jobs"].as_object().unwrap().values() {
            for step in steps(job) {
                if let Some(run) = step["run"].as_str() {
                    assert!(
                        !run.contains("${{"),
                        "{name}: expression interpolated into a run script: {run}"
                    );
                }
            }
        }
    }
}

/// The checks live in the repository's scripts, and both CI definitions run the same ones: the
/// workflow's test job and `.ci/run` call `.ci/tools.sh`, `.ci/lint.sh` and `.ci/test.sh`, and
/// neither defines a check of its own that the other lacks.
#[test]
fn both_ci_definitions_run_the_same_scripts() {
    let wf = build();
    let local = read(".ci/run");
    for script in [".ci/tools.sh", ".ci/lint.sh", ".ci/test.sh"] {
        let jobs = if script == ".ci/lint.sh" {
            set(&["test"])
        } else {
            set(&["test", "test-arm64"])
        };
        assert_eq!(jobs_running(&wf, script), jobs, "{script} in the workflow");
        assert!(
            local.contains(&format!("bash {script}")),
            ".ci/run does not run {script}"
        );
    }
    // The test jobs run nothing but those scripts (checkout and toolchain set-up aside).
    for job in ["test", "test-arm64"] {
        for step in steps(&wf["jobs"][job])
            .iter()
            .filter(|s| s["run"].is_string())
        {
            let run = step["run"].as_str().unwrap().trim();
            assert!(
                run.starts_with("bash .ci/") && !run.contains('\n'),
                "{job} defines a check of its own: {run}"
            );
        }
    }
    // The arm64 job runs the suite, README.md's command, on arm64's own runner.
    let arm = &wf["jobs"]["test-arm64"];
    assert_eq!(arm["runs-on"], "ubuntu-24.04-arm");
    assert_eq!(runs(arm, ".ci/test.sh")[0]["run"], "bash .ci/test.sh suite");
    assert_eq!(
        runs(arm, ".ci/tools.sh")[0]["run"],
        "bash .ci/tools.sh tests"
    );
    // README.md's test command is what .ci/test.sh runs.
    let readme = read("README.md");
    let command = readme
        .lines()
        .find_map(|l| {
            l.strip_prefix("cargo test")
                .map(|rest| rest.split('#').next().unwrap())
        })
        .map(|rest| format!("cargo test{}", rest.trim_end()))
        .expect("README.md gives a test command");
    assert!(
        read(".ci/test.sh")
            .lines()
            .any(|l| l.trim() == "bash .ci/readme.sh test"),
        ".ci/test.sh does not run README.md's test command through .ci/readme.sh"
    );
    assert_eq!(readme_sh(&["test", "--print"]), command);
    // And .ci/run runs its server command, `cargo run --release` as README.md gives it.
    assert!(local.contains("bash .ci/readme.sh serve"));
    let serve = readme_sh(&["serve", "--print"]);
    assert!(
        readme.lines().any(|l| l.starts_with(&format!("{serve} "))),
        "{serve}"
    );
    assert_eq!(serve, "cargo run --release");
    // The image scan runs in both: the workflow's scan job and the local replay call scan.sh.
    assert!(read(".ci/release/replay.sh").contains("scan.sh"));
}

/// What `.ci/readme.sh ARGS` prints.
fn readme_sh(args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(repo_path(".ci/readme.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Every Debian package a CI script installs is one `.ci/bare.sh` hides (`ci_apt_packages` in
/// `.ci/lib.sh`): otherwise README's commands would be proven on a machine that has it.
#[test]
fn the_bare_run_hides_every_package_ci_installs() {
    let lib = read(".ci/lib.sh");
    let list = lib
        .split("ci_apt_packages=(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect(".ci/lib.sh defines ci_apt_packages");
    let hidden: BTreeSet<&str> = list.split_whitespace().collect();
    let mut installed = BTreeSet::new();
    for entry in std::fs::read_dir(repo_path(".ci")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for added in text.split("pkgs+=(").skip(1) {
            let pkg = added.split(')').next().unwrap().to_string();
            installed.insert(pkg);
        }
    }
    assert!(installed.len() >= 10, "{installed:?}");
    let missing: Vec<_> = installed
        .iter()
        .filter(|p| !hidden.contains(p.as_str()))
        .collect();
    assert!(missing.is_empty(), "not hidden by .ci/bare.sh: {missing:?}");
}

/// A clone on GitHub has only the repository: the workflows name nothing outside it, and every
/// repository script they run exists.
#[test]
fn workflows_reference_nothing_outside_the_repository() {
    for name in WORKFLOWS {
        let text = read(&format!(".github/workflows/{name}"));
        assert!(
            !text.contains("../"),
            "{name} reaches outside the repository"
        );
        assert!(
            !text.contains("shared/"),
            "{name} names the local shared folder"
        );
        for word in text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            if let Some(path) = word.strip_prefix("./").or(Some(word)).filter(|w| {
                w.starts_with(".ci/")
                    && !w.contains('*')
                    && (w.ends_with(".sh") || w.ends_with("/run"))
            }) {
                assert!(
                    common::repo_path(path).is_file(),
                    "{name} runs {path}, which is not in the repository"
                );
            }
        }
    }
}

#[test]
fn only_pull_request_runs_are_cancelled_and_every_job_has_a_time_limit() {
    // A run on main or a tag promotes and signs: cancelling it halfway would leave tags moved
    // with no post-deploy check, rollback or signature.
    let wf = build();
    assert_eq!(
        wf["concurrency"]["cancel-in-progress"],
        json!("${{ github.event_name == 'pull_request' }}")
    );
    for (name, wf) in WORKFLOWS.map(|name| (name, workflow(name))) {
        for (job, body) in wf["jobs"].as_object().unwrap() {
            let minutes = body["timeout-minutes"].as_u64();
            assert!(
                minutes.is_some_and(|m| (1..=120).contains(&m)),
                "{name}: job {job} has no timeout-minutes (GitHub's default is 6 hours): {minutes:?}"
            );
        }
    }
}

#[test]
fn artifacts_survive_a_re_run() {
    // upload-artifact v4+ refuses a name the run already has (409): a re-run of a job that
    // uploaded would fail after its real work succeeded.
    let mut uploads = 0;
    for job in build()["jobs"].as_object().unwrap().values() {
        for step in steps(job)
            .iter()
            .filter(|s| uses(s, "actions/upload-artifact"))
        {
            uploads += 1;
            let with = &step["with"];
            let name = with["name"].as_str().unwrap_or_default();
            assert!(
                with["overwrite"] == json!(true) || name.contains("${{ github.run_attempt }}"),
                "upload {name} would collide on a re-run: {with}"
            );
        }
    }
    assert!(uploads >= 2, "the scans and the release state are uploaded");
}

#[test]
fn release_tags_are_semver_checked_before_the_build_and_never_move_backwards() {
    let wf = build();
    let candidate = steps(&wf["jobs"]["candidate"]);
    let check = position_running(candidate, "tags.sh --check")
        .expect("the candidate job checks the tag is vX.Y.Z");
    let bake = candidate
        .iter()
        .position(|s| uses(s, "docker/bake-action"))
        .unwrap();
    assert!(
        check < bake,
        "the semver check runs before the build (and the approval)"
    );

    let promote = &wf["jobs"]["promote"];
    let checkout = steps(promote)
        .iter()
        .find(|s| uses(s, "actions/checkout"))
        .unwrap();
    assert_eq!(
        checkout["with"]["fetch-depth"],
        json!(0),
        "tags.sh needs every tag"
    );
    let releases = runs(promote, "release.sh");
    assert_eq!(releases.len(), 2, "cpu and gpu");
    for step in releases {
        let run = step["run"].as_str().unwrap();
        let filter = run
            .find(".ci/release/tags.sh")
            .expect("tags.sh filters the tags");
        assert!(filter < run.find("release.sh --state").unwrap(), "{run}");
        assert!(run.contains("git tag --list 'v*'"), "{run}");
    }
}

#[test]
fn a_version_tag_never_rebuilds_and_releases_what_main_signed() {
    let wf = build();
    let candidate = steps(&wf["jobs"]["candidate"]);
    let step = |id: &str| {
        candidate
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("no step {id}"))
    };
    // On a tag nothing is built ...
    assert_eq!(step("bake")["if"], "${{ github.ref_type != 'tag' }}");
    assert!(
        step("digests")["if"]
            .as_str()
            .unwrap()
            .contains("github.ref_type != 'tag'")
    );
    // ... the commit's candidates are taken once main's workflow signed them ...
    let reuse = step("reuse");
    assert_eq!(reuse["if"], "${{ github.ref_type == 'tag' }}");
    assert_eq!(
        reuse["env"]["IDENTITY"],
        "https://github.com/${{ github.repository }}/.github/workflows/build.yml@refs/heads/main"
    );
    assert_eq!(reuse["env"]["CPU"], "${{ steps.candidate.outputs.tags }}");
    assert_eq!(
        reuse["env"]["GPU"],
        "${{ steps.candidate-gpu.outputs.tags }}"
    );
    assert!(
        reuse["run"]
            .as_str()
            .unwrap()
            .starts_with(".ci/release/reuse.sh \"$IDENTITY\" \"$CPU\" \"$GPU\"")
    );
    let installer = candidate
        .iter()
        .position(|s| uses(s, "sigstore/cosign-installer"))
        .expect("cosign for reuse.sh");
    let at = candidate.iter().position(|s| s["id"] == "reuse").unwrap();
    assert!(installer < at);
    // ... and still checked for exactly their platforms.
    let verify = runs(&wf["jobs"]["candidate"], ".ci/release/verify.sh");
    assert_eq!(verify.len(), 1);
    assert!(
        verify[0]["env"]["CPU"]
            .as_str()
            .unwrap()
            .contains("steps.reuse.outputs.cpu")
    );
}

#[test]
fn every_workflow_is_checked() {
    let mut found: Vec<String> = std::fs::read_dir(repo_path(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut listed = WORKFLOWS.map(String::from).to_vec();
    listed.sort();
    assert_eq!(found, listed);
}

/// The base-image comparison runs only when asked for, builds each architecture natively from
/// the real bases with the same script that measured benches/README.md's table, and can write
/// nothing.
#[test]
fn the_base_image_comparison_is_manual_native_and_read_only() {
    let wf = workflow("base-images.yml");
    assert_eq!(
        wf["on"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["workflow_dispatch"]
    );
    assert_eq!(wf["permissions"], json!({}));
    let job = &wf["jobs"]["compare"];
    assert_eq!(job["permissions"], json!({"contents": "read"}));
    assert_eq!(job["runs-on"], "${{ matrix.runner }}");
    let legs: Vec<(String, String)> = job["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"].as_str().unwrap().into(),
                m["runner"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            ("linux/amd64".to_string(), "ubuntu-24.04".to_string()),
            ("linux/arm64".to_string(), "ubuntu-24.04-arm".to_string())
        ]
    );
    let run = runs(job, "benches/base-images.sh");
    assert_eq!(run.len(), 1);
    assert_eq!(run[0]["run"], "benches/base-images.sh \"$PLATFORM\"");
    assert!(!read("benches/base-images.sh").contains("--push"));
}
