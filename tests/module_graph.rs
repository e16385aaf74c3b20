//! The library's modules depend on each other one way: no module reaches, directly or through
//! others, back into a module that depends on it. Checked from the source: every `crate::` and
//! `super::` path outside `#[cfg(test)]` code is resolved to the module file that defines the
//! item (following `pub use` re-exports), and the resulting graph must have no cycle, at the
//! level of files and of the crate's top-level modules.
//!
//! Between crates the compiler keeps the direction: ember-model (`model/`) cannot name this
//! crate, since it does not depend on it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module path (`model::classifier`, `crate` for lib.rs) → source, without its tests and comments.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            if path.is_dir() {
                if name != "bin" && name != "ui" {
                    walk(&path, &[prefix, &[name]].concat(), out);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || name == "main" {
                continue;
            }
            let module = match name.as_str() {
                "lib" => vec!["crate".to_string()],
                "mod" => prefix.to_vec(),
                _ => [prefix, &[name]].concat(),
            };
            let text = std::fs::read_to_string(&path).unwrap();
            // Comments (doc links included) are not dependencies.
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(module.join("::"), code);
        }
    }
    let mut out = BTreeMap::new();
    walk(&common::repo_path("src"), &[], &mut out);
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path the code names from `start`: `a::b::{c, d::e}` gives `a::b::c` and `a::b::d::e`.
fn expand(text: &str) -> Vec<String> {
    let mut head = String::new();
    for (i, c) in text.char_indices() {
        if is_ident(c) || c == ':' {
            head.push(c);
        } else if c == '{' && head.ends_with("::") {
            // The group runs to the matching brace.
            let mut depth = 1;
            let mut end = i + 1;
            for (j, d) in text[i + 1..].char_indices() {
                match d {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i + 1 + j;
                    break;
                }
            }
            let inner = &text[i + 1..end];
            let mut items = Vec::new();
            let (mut depth, mut start) = (0, 0);
            for (j, d) in inner.char_indices() {
                match d {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..j]);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            return items
                .into_iter()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .flat_map(|item| expand(item).into_iter().map(|p| format!("{head}{p}")))
                .collect();
        } else {
            break;
        }
    }
    vec![head.trim_end_matches(':').to_string()]
}

/// `pub use` re-exports of a module: item name → the path it comes from.
fn reexports(code: &str, module: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for stmt in code.split("pub use ").skip(1) {
        let stmt = stmt.split(';').next().unwrap();
        for path in expand(stmt) {
            let path = path.split(" as ").next().unwrap().to_string();
            let segments = absolute(module, &path, false);
            if let Some(last) = segments.last() {
                out.insert(last.clone(), segments);
            }
        }
    }
    out
}

/// `path` as seen from `module`, as segments from the crate root.
fn absolute(module: &str, path: &str, is_mod_rs: bool) -> Vec<String> {
    let _ = is_mod_rs;
    let mut base: Vec<String> = if module == "crate" {
        vec![]
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    match segments.first() {
        Some(&"crate") => {
            base.clear();
            segments.remove(0);
        }
        Some(&"super") => {
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
        }
        Some(&"self") => {
            segments.remove(0);
        }
        // A relative path names a child module (e.g. `use self::codec` written `codec::`).
        _ => {}
    }
    base.extend(segments.into_iter().map(String::from));
    base
}

/// The module file that defines what `segments` name, following re-exports.
fn resolve(
    segments: &[String],
    mods: &BTreeMap<String, String>,
    exports: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    depth: usize,
) -> Option<String> {
    let name = |n: usize| {
        if n == 0 {
            "crate".to_string()
        } else {
            segments[..n].join("::")
        }
    };
    let n = (0..=segments.len())
        .rev()
        .find(|&n| mods.contains_key(&name(n)))?;
    let module = name(n);
    if depth < 8
        && let Some(item) = segments.get(n)
        && let Some(from) = exports.get(&module).and_then(|e| e.get(item))
        && from.as_slice() != &segments[..=n]
    {
        return resolve(from, mods, exports, depth + 1).or(Some(module));
    }
    Some(module)
}

fn graph() -> Graph {
    let mods = modules();
    let exports: BTreeMap<_, _> = mods
        .iter()
        .map(|(m, code)| (m.clone(), reexports(code, m)))
        .collect();
    let mut graph = Graph::new();
    for (module, code) in &mods {
        let deps = graph.entry(module.clone()).or_default();
        let mut paths = Vec::new();
        // `use` declarations, relative ones (`use codec::X`, `pub use error::ApiError`) included.
        for (at, _) in code.match_indices("use ") {
            if code[..at].ends_with(is_ident) {
                continue;
            }
            let stmt = code[at + 4..].split(';').next().unwrap();
            paths.extend(expand(stmt.trim()));
        }
        // Paths written out in the code.
        for prefix in ["crate::", "super::", "self::"] {
            for (at, _) in code.match_indices(prefix) {
                // Inside an identifier or a longer path: not where a path starts.
                if code[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                    continue;
                }
                paths.extend(expand(&code[at..]));
            }
        }
        for path in paths {
            let path = path.split(" as ").next().unwrap();
            let segments = absolute(module, path, false);
            if let Some(target) = resolve(&segments, &mods, &exports, 0)
                && &target != module
            {
                deps.insert(target);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut found = stack[from..].to_vec();
                    found.push(next.clone());
                    return Some(found);
                }
                Some(_) => {}
                None => {
                    if let Some(found) = visit(next, graph, state, stack) {
                        return Some(found);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(found) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

fn top_level(graph: &Graph) -> Graph {
    let top = |m: &str| m.split("::").next().unwrap().to_string();
    let mut out = Graph::new();
    for (from, deps) in graph {
        let entry = out.entry(top(from)).or_default();
        for to in deps {
            if top(to) != top(from) && to != "crate" {
                entry.insert(top(to));
            }
        }
    }
    out
}

#[test]
fn the_module_graph_has_no_cycles() {
    let graph = graph();
    // The checker sees the dependencies that matter (so an empty graph cannot pass).
    for (from, to) in [
        ("inference::batcher", "inference::pass"),
        ("inference::warmup", "inference::pass"),
        ("inference::queue", "inference::batcher"),
        ("inference::batcher", "inference::job"),
        ("service", "inference::queue"),
        ("http::routes", "service"),
        ("http::v2::codec", "protocol::tensors"),
        ("grpc::convert", "protocol::tensors"),
    ] {
        assert!(
            graph.get(from).is_some_and(|d| d.contains(to)),
            "{from} → {to} not found; {from} depends on {:?}",
            graph.get(from)
        );
    }
    if let Some(found) = cycle(&graph) {
        panic!("module cycle: {}", found.join(" → "));
    }
    let layers = top_level(&graph);
    if let Some(found) = cycle(&layers) {
        panic!("top-level module cycle: {}", found.join(" → "));
    }
    // The layers, top to bottom: nothing below reaches up (a transport such as `http` sits on
    // the protocol, which sits on the service).
    let order = [
        "app",
        "grpc",
        "http",
        "connections",
        "auth",
        "protocol",
        "service",
        "inference",
        "model",
    ];
    for (i, upper) in order.iter().enumerate() {
        for lower in &order[i + 1..] {
            assert!(
                !layers.get(*lower).is_some_and(|d| d.contains(*upper)),
                "{lower} depends on {upper}"
            );
        }
    }
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    assert_eq!(cycle(&graph).map(|c| c.len()), Some(4));
    graph.get_mut("c").unwrap().clear();
    assert_eq!(cycle(&graph), None);
    assert_eq!(
        expand("crate::model::{Classifier, cnn::{a, b}};"),
        [
            "crate::model::Classifier",
            "crate::model::cnn::a",
            "crate::model::cnn::b"
        ]
    );
}
