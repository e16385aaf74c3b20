//! The release scripts' failure paths (.ci/release), run against a stand-in `docker` and `cosign`
//! (tests/release/) whose registry fails on purpose: a tag that cannot be read is never
//! taken for a tag that does not exist, a rollback tries every tag, an interrupted release rolls
//! back, and a smoke test that found no platform fails. The happy path against a real registry
//! is the release replay in `.ci/run`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ScratchDir, repo_path};

const REPO: &str = "127.0.0.1:5000/acme/ember-serve";
const PLATFORMS: &str = "linux/amd64,linux/arm64";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// A registry the stand-in serves: files in a scratch directory.
struct Registry {
    dir: ScratchDir,
}

impl Registry {
    /// None (the test is skipped) where jq, which the scripts read manifests with, is missing.
    fn new(name: &str) -> Option<Self> {
        if Command::new("jq").arg("--version").output().is_err() {
            eprintln!("SKIPPED: jq is not installed (apt-get install jq)");
            return None;
        }
        let dir = ScratchDir::new(&format!("release-{name}"));
        std::fs::create_dir_all(dir.join("manifests")).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        for tool in ["docker", "cosign"] {
            std::os::unix::fs::symlink(
                repo_path(&format!("tests/release/{tool}")),
                dir.join("bin").join(tool),
            )
            .unwrap();
        }
        Some(Self { dir })
    }

    /// A manifest list of `platforms` (plus an attestation manifest, as BuildKit pushes).
    fn image(&self, list: &str, platforms: &[(&str, &str)]) {
        let mut manifests: Vec<_> = platforms
            .iter()
            .map(|(platform, digest)| {
                let (os, arch) = platform.split_once('/').unwrap();
                serde_json::json!({"digest": digest, "platform": {"os": os, "architecture": arch}})
            })
            .collect();
        manifests.push(serde_json::json!({
            "digest": digest('f'), "platform": {"os": "unknown", "architecture": "unknown"}
        }));
        self.manifest(
            list,
            serde_json::json!({"digest": list, "manifests": manifests}),
        );
    }

    fn manifest(&self, digest: &str, json: serde_json::Value) {
        std::fs::write(self.dir.join("manifests").join(digest), json.to_string()).unwrap();
    }

    /// The stand-in's tag table, as "REF DIGEST" lines.
    fn set_tags(&self, tags: &[(&str, &str)]) {
        let lines: String = tags.iter().map(|(t, d)| format!("{t} {d}\n")).collect();
        std::fs::write(self.dir.join("tags"), lines).unwrap();
    }

    fn tag(&self, tag: &str) -> Option<String> {
        let tags = std::fs::read_to_string(self.dir.join("tags")).unwrap_or_default();
        tags.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(t, _)| *t == tag)
            .map(|(_, d)| d.to_string())
    }

    fn fail(&self, file: &str, lines: &[&str]) {
        std::fs::write(self.dir.join(file), lines.join("\n") + "\n").unwrap();
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.join("calls")).unwrap_or_default()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn script(&self, name: &str, args: &[&str]) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg(repo_path(&format!(".ci/release/{name}")))
            .args(args)
            .env("PATH", path)
            .env("STUB_REGISTRY", &*self.dir)
            .env_remove("GITHUB_ACTIONS")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        self.script(name, args).output().unwrap()
    }

    /// The release of a two-platform candidate as `1.2.3` and `latest`, where `latest` points
    /// at an earlier release.
    fn released_before(name: &str) -> Option<(Self, Tags)> {
        let registry = Self::new(name)?;
        let tags = Tags {
            candidate: format!("{REPO}:sha-abc1234"),
            version: format!("{REPO}:1.2.3"),
            latest: format!("{REPO}:latest"),
            old: digest('a'),
            new: digest('b'),
        };
        registry.image(
            &tags.old,
            &[("linux/amd64", &digest('1')), ("linux/arm64", &digest('2'))],
        );
        registry.image(
            &tags.new,
            &[("linux/amd64", &digest('3')), ("linux/arm64", &digest('4'))],
        );
        registry.set_tags(&[(&tags.latest, &tags.old), (&tags.candidate, &tags.new)]);
        Some((registry, tags))
    }

    fn release(&self, tags: &Tags) -> Command {
        self.release_with(&[], &[&tags.candidate, &tags.version, &tags.latest])
    }

    /// release.sh with its state and report here, all platforms, `options`, then `refs`.
    fn release_with(&self, options: &[&str], refs: &[&str]) -> Command {
        let (state, report) = (self.path("state"), self.path("report.json"));
        let mut args = vec![
            "--state",
            state.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--platforms",
            PLATFORMS,
        ];
        args.extend(options);
        args.extend(refs);
        self.script("release.sh", &args)
    }
}

struct Tags {
    candidate: String,
    version: String,
    latest: String,
    old: String,
    new: String,
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn report_outcome(path: &Path) -> String {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    report["outcome"].as_str().unwrap().to_string()
}

#[test]
fn a_tag_the_registry_will_not_read_stops_the_release_before_anything_moves() {
    for failure in ["503 Service Unavailable", "401 Unauthorized"] {
        let Some((registry, tags)) = Registry::released_before("unreadable") else {
            return;
        };
        registry.fail("fail-inspect", &[&format!("{} {failure}", tags.latest)]);
        let out = registry.release(&tags).output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{failure}: {err}");
        assert!(
            err.contains(&tags.latest) && err.contains("nothing was moved"),
            "{failure}: {err}"
        );
        assert!(
            !registry.calls().contains("imagetools create"),
            "{failure}: a tag moved: {}",
            registry.calls()
        );
        assert_eq!(registry.tag(&tags.latest), Some(tags.old.clone()));
        assert_eq!(registry.tag(&tags.version), None);
    }
}

#[test]
fn a_failed_post_deploy_check_restores_every_tag_and_a_new_one_is_recorded_as_none() {
    let Some((registry, tags)) = Registry::released_before("post-deploy") else {
        return;
    };
    // The stand-in daemon cannot pull: the post-deploy smoke test fails after the tags moved.
    let out = registry.release(&tags).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("post-deploy check"), "{err}");
    let state = std::fs::read_to_string(registry.path("state")).unwrap();
    assert!(
        state.contains(&format!("{} none\n", tags.version))
            && state.contains(&format!("{} {}\n", tags.latest, tags.old)),
        "{state}"
    );
    assert_eq!(registry.tag(&tags.latest), Some(tags.old.clone()), "{err}");
    // A tag that did not exist cannot be restored: it is named for a person to delete.
    assert!(
        err.contains(&format!("WARNING: {} did not exist", tags.version)),
        "{err}"
    );
    assert_eq!(report_outcome(&registry.path("report.json")), "rolled-back");
}

#[test]
fn rollback_tries_every_tag_and_reports_the_one_it_could_not_restore() {
    let Some((registry, tags)) = Registry::released_before("rollback") else {
        return;
    };
    let major = format!("{REPO}:1");
    registry.set_tags(&[
        (&tags.version, &tags.new),
        (&major, &tags.new),
        (&tags.latest, &tags.new),
    ]);
    let state = format!(
        "{} {}\n{major} {}\n{} {}\n",
        tags.version, tags.old, tags.old, tags.latest, tags.old
    );
    std::fs::write(registry.path("state"), state).unwrap();
    registry.fail("fail-create", &[&tags.version]);
    let out = registry.run("rollback.sh", &[registry.path("state").to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("NOT RESTORED {}", tags.version)),
        "{err}"
    );
    assert!(
        err.contains(&format!("not restored: {}", tags.version)),
        "{err}"
    );
    // The tags after the one that failed were still restored.
    assert_eq!(registry.tag(&major), Some(tags.old.clone()), "{err}");
    assert_eq!(registry.tag(&tags.latest), Some(tags.old.clone()), "{err}");
    assert_eq!(registry.tag(&tags.version), Some(tags.new.clone()));
}

/// The native arm64 post-deploy check runs after the promote job let go of its lock: its
/// rollback re-points only the tags still on its release, and leaves one a later release moved.
#[test]
fn a_rollback_after_the_lock_leaves_tags_a_later_release_moved() {
    let Some((registry, tags)) = Registry::released_before("only-from") else {
        return;
    };
    let major = format!("{REPO}:1");
    let later = digest('c');
    registry.image(&later, &[("linux/amd64", &digest('5'))]);
    registry.set_tags(&[
        (&tags.version, &tags.new),
        (&major, &later),
        (&tags.latest, &tags.new),
    ]);
    let state = format!(
        "{} none\n{major} {}\n{} {}\n",
        tags.version, tags.old, tags.latest, tags.old
    );
    std::fs::write(registry.path("state"), state).unwrap();
    let state = registry.path("state");
    let out = registry.run(
        "rollback.sh",
        &["--only-from", &tags.new, state.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(registry.tag(&tags.latest), Some(tags.old.clone()), "{err}");
    assert_eq!(registry.tag(&major), Some(later.clone()), "{err}");
    assert!(
        err.contains(&format!("LEFT {major}: it points at {later}")),
        "{err}"
    );
    // A tag new with this release is named for a person, as without --only-from.
    assert!(
        err.contains(&format!("WARNING: {} did not exist", tags.version)),
        "{err}"
    );

    // A tag the registry will not read is not taken for one that moved.
    registry.set_tags(&[(&tags.latest, &tags.new)]);
    registry.fail(
        "fail-inspect",
        &[&format!("{} 503 Service Unavailable", tags.latest)],
    );
    let out = registry.run(
        "rollback.sh",
        &["--only-from", &tags.new, state.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("NOT RESTORED {}", tags.latest)),
        "{err}"
    );
}

/// The post-deploy check runs on a subset of the released platforms, never on another one.
#[test]
fn a_post_deploy_platform_outside_the_release_is_refused_before_anything_moves() {
    let Some((registry, tags)) = Registry::released_before("check-platforms") else {
        return;
    };
    let out = registry
        .release_with(
            &["--check-platforms", "linux/s390x"],
            &[&tags.candidate, &tags.version],
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("linux/s390x is not one of"), "{err}");
    assert!(!registry.calls().contains("imagetools create"), "{err}");
}

#[test]
fn an_interrupted_release_rolls_its_tags_back() {
    let Some((registry, tags)) = Registry::released_before("interrupted") else {
        return;
    };
    std::fs::write(registry.path("slow-create"), "").unwrap();
    let release = registry
        .release(&tags)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the promotion has moved the tags and is still running (a cancelled run).
    let started = Instant::now();
    while !registry.path("created").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the promotion never started: {}",
            registry.calls()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(registry.tag(&tags.latest), Some(tags.new.clone()));
    let signal = Command::new("kill")
        .args(["-TERM", &release.id().to_string()])
        .status()
        .unwrap();
    assert!(signal.success());
    let out = release.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the release waited for its promotion to finish"
    );
    assert_eq!(registry.tag(&tags.latest), Some(tags.old.clone()), "{err}");
    assert_eq!(report_outcome(&registry.path("report.json")), "rolled-back");
}

#[test]
fn smoke_fails_when_it_finds_no_platform_to_test() {
    let Some(registry) = Registry::new("smoke") else {
        return;
    };
    let (single, attestations_only, refused) = (
        format!("{REPO}:single"),
        format!("{REPO}:attestations"),
        format!("{REPO}:refused"),
    );
    // One image, not a list.
    registry.manifest(
        &digest('c'),
        serde_json::json!({"digest": digest('c'), "config": {}}),
    );
    // A list with nothing but BuildKit's attestation manifest in it.
    registry.image(&digest('d'), &[]);
    registry.set_tags(&[(&single, &digest('c')), (&attestations_only, &digest('d'))]);
    registry.fail("fail-inspect", &[&format!("{refused} 401 Unauthorized")]);
    for (image, why) in [
        (&single, "not a manifest list"),
        (&attestations_only, "lists no platform images"),
        (&refused, "401 Unauthorized"),
    ] {
        let out = registry.run("smoke.sh", &[image]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{image}: {err}");
        assert!(!err.contains("smoke ok"), "{image}: {err}");
        assert!(err.contains(why), "{image}: expected '{why}': {err}");
    }
    assert!(!registry.calls().contains("pull"), "{}", registry.calls());
}

/// tags.sh's answer: the tags it would move (stdout lines), or its error.
fn tags_to_move(
    registry: &Registry,
    candidate: &str,
    version: &str,
    released: &str,
    tags: &[&str],
) -> Result<Vec<String>, String> {
    let mut args = vec![candidate, version];
    args.extend_from_slice(tags);
    let mut child = registry
        .script("tags.sh", &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), released.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect())
    } else {
        Err(stderr(&out))
    }
}

#[test]
fn latest_and_the_floating_tags_never_move_backwards() {
    let Some((registry, tags)) = Registry::released_before("floating") else {
        return;
    };
    let refs = |version: &str, suffix: &str| -> Vec<String> {
        [version, "1.2", "1", "latest", "staging"]
            .iter()
            .map(|t| format!("{REPO}:{t}{suffix}"))
            .collect()
    };
    let released = "v1.2.0\nv1.3.0\nv1.2.8\nnot-a-version\n";
    for suffix in ["", "-gpu"] {
        // 1.2.9 after 1.3.0: its own tag and 1.2 move; 1 and latest stay on 1.3.0.
        let all = refs("1.2.9", suffix);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let moving = tags_to_move(&registry, &tags.candidate, "v1.2.9", released, &all).unwrap();
        assert_eq!(moving, [all[0], all[1], all[4]], "{suffix}");
        // 1.3.1 is the highest release: everything moves.
        let all = refs("1.3.1", suffix);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let moving = tags_to_move(&registry, &tags.candidate, "v1.3.1", released, &all).unwrap();
        assert_eq!(moving, all, "{suffix}");
    }
    // 1.2.7, older than 1.2.8: only its own tag (and tags outside the semver family).
    let all = refs("1.2.7", "");
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let moving = tags_to_move(&registry, &tags.candidate, "1.2.7", released, &all).unwrap();
    assert_eq!(moving, [all[0], all[4]]);
}

#[test]
fn a_released_version_never_moves_to_another_digest() {
    let Some((registry, tags)) = Registry::released_before("immutable") else {
        return;
    };
    let released_tag = format!("{REPO}:1.2.3");
    let release_1_2_3 = || {
        tags_to_move(
            &registry,
            &tags.candidate,
            "v1.2.3",
            "v1.2.3\n",
            &[&released_tag],
        )
    };
    // 1.2.3 was released with the old digest: releasing the candidate as 1.2.3 is refused.
    registry.set_tags(&[(&tags.candidate, &tags.new), (&released_tag, &tags.old)]);
    let err = release_1_2_3().unwrap_err();
    assert!(
        err.contains("never moves") && err.contains(&tags.old),
        "{err}"
    );
    // A re-run of the same release (the tag already on the candidate) goes ahead.
    registry.set_tags(&[(&tags.candidate, &tags.new), (&released_tag, &tags.new)]);
    let moving = release_1_2_3().unwrap();
    assert_eq!(moving, [released_tag.as_str()]);
    // Whether it exists cannot be read: no answer, rather than a guess.
    registry.fail(
        "fail-inspect",
        &[&format!("{released_tag} 502 Bad Gateway")],
    );
    let err = release_1_2_3().unwrap_err();
    assert!(err.contains("502 Bad Gateway"), "{err}");
}

#[test]
fn a_release_tag_that_is_not_semver_is_refused() {
    let Some(registry) = Registry::new("semver") else {
        return;
    };
    for good in ["v1.2.3", "v0.1.0", "10.20.30"] {
        let out = registry.run("tags.sh", &["--check", good]);
        assert!(out.status.success(), "{good}: {}", stderr(&out));
    }
    for bad in ["v1.2", "v1.2.3-rc.1", "v1.2.x", "v01.2.3", "main", ""] {
        let out = registry.run("tags.sh", &["--check", bad]);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(stderr(&out).contains("vX.Y.Z"), "{bad}: {}", stderr(&out));
    }
}

#[test]
fn every_release_script_is_executable() {
    // The workflow and the replay run them as `.ci/release/<name>.sh`, not through bash.
    use std::os::unix::fs::PermissionsExt;
    let mut scripts = 0;
    for entry in std::fs::read_dir(repo_path(".ci/release")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{} is not executable", path.display());
            scripts += 1;
        }
    }
    assert!(scripts >= 10, "{scripts} scripts");
}

const MAIN: &str =
    "https://github.com/acme/ember-serve/.github/workflows/build.yml@refs/heads/main";

impl Registry {
    /// Main's run signed `digest` of the image (repo@digest, as cosign is asked).
    fn sign(&self, digest: &str, identity: &str) {
        let mut signed = std::fs::read_to_string(self.path("signed")).unwrap_or_default();
        signed.push_str(&format!("{REPO}@{digest} {identity}\n"));
        std::fs::write(self.path("signed"), signed).unwrap();
    }

    fn reuse(&self, wait_s: &str) -> Command {
        let (cpu, gpu) = (
            format!("{REPO}:sha-abc1234"),
            format!("{REPO}:sha-abc1234-gpu"),
        );
        let mut command = self.script("reuse.sh", &[MAIN, &cpu, &gpu]);
        command.env("REUSE_WAIT", wait_s).env("REUSE_POLL", "0.1");
        command
    }
}

#[test]
fn a_version_tag_releases_the_digests_main_built_and_signed_waiting_for_them() {
    let Some((registry, tags)) = Registry::released_before("reuse") else {
        return;
    };
    let gpu = digest('e');
    registry.image(&gpu, &[("linux/amd64", &digest('5'))]);
    registry.set_tags(&[]);
    // The tag arrives while main's run is still building: reuse.sh waits for it.
    let reuse = registry
        .reuse("30")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two looks logged: the first has answered (not pushed yet) before the image appears.
    let looks = || {
        registry
            .calls()
            .matches("inspect 127.0.0.1:5000/acme/ember-serve:sha-abc1234 ")
            .count()
    };
    let started = Instant::now();
    while looks() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "reuse.sh never looked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    registry.set_tags(&[
        (&format!("{REPO}:sha-abc1234"), &tags.new),
        (&format!("{REPO}:sha-abc1234-gpu"), &gpu),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    registry.sign(&tags.new, MAIN);
    registry.sign(&gpu, MAIN);
    let out = reuse.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("cpu={}\ngpu={gpu}\n", tags.new),
        "{err}"
    );
    assert!(err.contains("not pushed yet"), "it waited: {err}");
    // Nothing was built or pushed: only reads.
    assert!(!registry.calls().contains("imagetools create"));
}

#[test]
fn a_candidate_main_did_not_sign_is_never_released_by_a_tag() {
    let Some((registry, tags)) = Registry::released_before("reuse-unsigned") else {
        return;
    };
    let gpu = digest('e');
    registry.image(&gpu, &[("linux/amd64", &digest('5'))]);
    registry.set_tags(&[
        (&format!("{REPO}:sha-abc1234"), &tags.new),
        (&format!("{REPO}:sha-abc1234-gpu"), &gpu),
    ]);
    // Signed, but by another workflow ref (a branch's run), and the gpu image not at all.
    registry.sign(&tags.new, &MAIN.replace("heads/main", "heads/feature"));
    let out = registry.reuse("1").output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("no image signed by") && err.contains("has no signature by"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no digest was handed on");
}

#[test]
fn the_webhook_message_is_slack_mrkdwn_and_the_summary_stays_markdown() {
    let Some(registry) = Registry::new("notify") else {
        return;
    };
    let report = serde_json::json!({
        "outcome": "rolled-back",
        "candidate": format!("{REPO}@{}", digest('b')),
        "platforms": ["linux/amd64", "linux/arm64"],
        "images": {"linux/amd64": digest('3'), "linux/arm64": digest('4')},
        "tags": [
            {"tag": format!("{REPO}:1.2.3"), "previous": "none"},
            {"tag": format!("{REPO}:latest"), "previous": digest('a')}
        ]
    });
    std::fs::write(registry.path("cpu.json"), report.to_string()).unwrap();
    std::fs::create_dir_all(registry.path("scans")).unwrap();
    let trivy = serde_json::json!({
        "ArtifactName": format!("{REPO}@{}", digest('3')),
        "Metadata": {"ImageConfig": {"os": "linux", "architecture": "amd64"}},
        "Results": [{"Vulnerabilities": [{}, {}]}, {"Secrets": null}]
    });
    std::fs::write(
        registry.path("scans/trivy-cpu-linux-amd64.json"),
        trivy.to_string(),
    )
    .unwrap();

    // A one-request webhook that keeps the body.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hook.local_addr().unwrap());
    let receiver = std::thread::spawn(move || {
        use std::io::{BufRead, Read, Write};
        let (stream, _) = hook.accept().unwrap();
        let mut reader = std::io::BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        body
    });
    let summary = registry.path("summary.md");
    let scans = registry.path("scans");
    let out = registry
        .script(
            "notify.sh",
            &[
                "--title",
                "v1.2.3 to production",
                "--scans",
                scans.to_str().unwrap(),
                registry.path("cpu.json").to_str().unwrap(),
            ],
        )
        .env("NOTIFY_WEBHOOK_URL", &url)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&receiver.join().unwrap()).unwrap();
    let text = body["text"].as_str().unwrap();
    // Slack renders neither tables, headings nor <br>.
    assert!(
        !text.contains("| ") && !text.contains("##") && !text.contains("<br>"),
        "{text}"
    );
    assert!(
        text.starts_with("*ember-serve v1.2.3 to production: rolled-back*\n"),
        "{text}"
    );
    assert!(
        text.contains("`1.2.3` (was none), `latest` (was sha256:aaaaaaaaaaaa)"),
        "{text}"
    );
    assert!(text.contains("linux/arm64 `sha256:444444444444`"), "{text}");
    assert!(text.contains("cpu-linux-amd64 2"), "{text}");
    // The job summary is still GitHub Markdown, with its tables.
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(
        summary.starts_with("## ember-serve v1.2.3 to production: rolled-back")
            && summary.contains("| --- |"),
        "{summary}"
    );
}
