//! The documents stay true: every alert names a RUNBOOK.md section that exists, every log line
//! the runbook quotes is one the server writes, the runbook stays a runbook (tables and
//! procedures, not a lab notebook), every path ARCHITECTURE.md names exists, and README.md's
//! flag table lists every flag.

mod common;

use clap::CommandFactory;
use common::{read, repo_path};

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_links_to_a_runbook_section_that_exists() {
    let runbook = read("RUNBOOK.md");
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker/prometheus-rules.yml")).unwrap();
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            let link = rule["annotations"]["runbook"].as_str().unwrap();
            let section = link
                .strip_prefix("RUNBOOK.md#")
                .unwrap_or_else(|| panic!("{name}: runbook link {link} is not into RUNBOOK.md"));
            assert!(
                anchors.iter().any(|a| a == section),
                "{name} links to #{section}; RUNBOOK.md has {anchors:?}"
            );
            alerts += 1;
        }
    }
    assert!(alerts >= 5, "only {alerts} alerts");
}

/// Policy, for on-call: the runbook is read under pressure, so it stays short enough to scan,
/// and throughput figures (which go stale) live in benches/README.md, where they carry the
/// command and machine that produced them. The anchor checks keep `anchor` itself honest.
#[test]
fn the_runbook_stays_short_and_leaves_measurements_to_the_benchmarks() {
    let runbook = read("RUNBOOK.md");
    let lines = runbook.lines().count();
    assert!(lines < 300, "RUNBOOK.md has {lines} lines");
    assert!(
        !runbook.contains("req/s") && !runbook.contains("median"),
        "benchmark numbers belong in benches/README.md"
    );
    assert_eq!(
        anchor("503 overloaded or 504 timeout"),
        "503-overloaded-or-504-timeout"
    );
    assert_eq!(
        anchor("5xx: the forward pass failed"),
        "5xx-the-forward-pass-failed"
    );
}

/// Every `.rs` file under `dir`, read into one string.
fn sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Policy, for on-call: a log line the runbook tells them to grep for must be one the server can
/// print. Each line it quotes (the "lines to look for" list, and every "log `…`" in its tables)
/// must start with a message that is written in the source of the server, its inference layer or
/// the model; what
/// follows a `...` is the varying detail.
#[test]
fn every_log_line_the_runbook_quotes_is_in_the_source() {
    let runbook = read("RUNBOOK.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut code = String::new();
    for dir in ["src", "inference/src", "model/src"] {
        sources(&common::repo_path(dir), &mut code);
    }
    let spans = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let list_start = runbook
        .find("the lines to look for are")
        .expect("RUNBOOK.md lists the log lines to look for");
    let list_end = list_start + runbook[list_start..].find(". ").unwrap();
    let mut quoted = spans(&runbook[list_start..list_end]);
    for (i, _) in runbook.match_indices("log `") {
        quoted.extend(spans(&runbook[i + 4..]).into_iter().take(1));
    }
    assert!(quoted.len() >= 10, "found only {quoted:?}");
    let missing: Vec<&String> = quoted
        .iter()
        .filter(|line| {
            let message = line
                .split(['…'])
                .next()
                .unwrap()
                .split("...")
                .next()
                .unwrap();
            !code.contains(message.trim())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "RUNBOOK.md quotes log lines no source file writes: {missing:?}"
    );
}

/// Policy, for contributors: ARCHITECTURE.md sends them to files by name, so each file or folder
/// it names in backticks must exist (routes, flags and globs are not paths and are left out).
#[test]
fn every_path_architecture_names_exists() {
    let map = read("ARCHITECTURE.md");
    let paths: Vec<&str> = map
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| {
            !t.starts_with('/')
                && !t.starts_with('-')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
                && (t.contains('/')
                    || t.ends_with(".rs")
                    || t.ends_with(".md")
                    || t.ends_with(".toml"))
        })
        .collect();
    assert!(
        paths.len() >= 30,
        "only {} paths found: {paths:?}",
        paths.len()
    );
    let missing: Vec<&&str> = paths
        .iter()
        .filter(|p| !repo_path(p.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist: {missing:?}"
    );
}

/// Policy, for users: README.md's "Configure" table is where they look a flag up, so every
/// long flag of `ember-serve` (as clap builds them) has a row there.
#[test]
fn readme_lists_every_flag() {
    let readme = read("README.md");
    let configure = readme
        .split("\n## Configure")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has a Configure section");
    let command = ember_serve::config::Cli::command();
    let flags: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|long| !["help", "version"].contains(long))
        .map(|long| format!("`--{long}"))
        .collect();
    assert!(flags.len() >= 20, "only {} flags: {flags:?}", flags.len());
    let missing: Vec<&String> = flags
        .iter()
        .filter(|f| !configure.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "flags without a row in README.md's Configure table: {missing:?}"
    );
}
