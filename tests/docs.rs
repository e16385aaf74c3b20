//! The operations documents stay usable: every alert names a RUNBOOK.md section that exists, and
//! the runbook stays a runbook (tables and procedures, not a lab notebook).

mod common;

use common::read;

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

#[test]
fn the_runbook_stays_short_and_leaves_measurements_to_the_benchmarks() {
    let runbook = read("RUNBOOK.md");
    let lines = runbook.lines().count();
    assert!(lines < 250, "RUNBOOK.md has {lines} lines");
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
