//! The module graph's rules (ARCHITECTURE.md), read from the source: no file imports, directly
//! or through others, a file that imports it back (unit tests included); nothing below the
//! faces imports from `faces`; and past the gRPC face only `sources/push.rs` reads a
//! `ReportMetricsRequest` (the CLI, a client, builds one).
//!
//! A file's imports are its `use` trees (from `crate`, `super`, `self` or a child module) and
//! the `crate::` / `super::` paths written inline. A module written inline (`mod x { .. }`) is
//! read as its file, so its `super` reaches one level too high: that can only add an edge, and
//! so fail the test, never hide a circle.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// A module's path in the crate (`["core", "scoring", "model"]`); the crate root is empty.
type Module = Vec<String>;

/// Each module's file name and text.
type Files = BTreeMap<Module, (String, String)>;

/// Which modules each module imports.
type Graph = BTreeMap<Module, BTreeSet<Module>>;

/// Every file under `src/`, by the module it holds, with its text.
fn files() -> Files {
    fn walk(dir: &Path, found: &mut Files) {
        for entry in fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let file = path
                    .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .expect("under the crate")
                    .to_string_lossy()
                    .into_owned();
                let mut module: Module = file
                    .trim_start_matches("src/")
                    .trim_end_matches(".rs")
                    .split('/')
                    .map(str::to_owned)
                    .collect();
                // main.rs is the binary's crate, not a module of this one.
                if file == "src/main.rs" {
                    continue;
                }
                if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                    module.pop();
                }
                let text = fs::read_to_string(&path).expect("a readable source file");
                found.insert(module, (file, text));
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

/// The text without `//` comments, so that a path in a doc comment is not an import.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a `use` tree names: `a::{b, c::{d as e}}` is `a::b` and `a::c::d`.
fn expand(prefix: &[String], tree: &str, paths: &mut Vec<Vec<String>>) {
    let (mut depth, mut start) = (0, 0);
    let mut parts = Vec::new();
    for (at, ch) in tree.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let part = part.split(" as ").next().unwrap_or(part);
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            expand(prefix, inner, paths);
        } else if let Some((head, inner)) = part.split_once("::{") {
            let mut longer = prefix.to_vec();
            longer.extend(head.split("::").map(|s| s.trim().to_owned()));
            expand(&longer, inner.strip_suffix('}').unwrap_or(inner), paths);
        } else {
            let mut path = prefix.to_vec();
            path.extend(part.split("::").map(|s| s.trim().to_owned()));
            paths.push(path);
        }
    }
}

/// The crate paths `code` refers to: its `use` trees from `crate`, `super`, `self` or a child
/// module, and the paths written inline, made absolute from `module`.
fn references(module: &Module, code: &str, files: &Files) -> Vec<Module> {
    let child = |name: &str| {
        let mut path = module.clone();
        path.push(name.to_owned());
        files.contains_key(&path)
    };
    let mut relative = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let statement = &rest[at + 4..];
        let end = statement.find(';').unwrap_or(statement.len());
        let tree: String = statement[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let first = tree.split("::").next().unwrap_or_default().trim();
        if boundary && (["crate", "super", "self"].contains(&first) || child(first)) {
            // A child module is named from this one: `use journal::Journal` is `self::journal`.
            let from = if child(first) {
                vec!["self".to_owned()]
            } else {
                Vec::new()
            };
            expand(
                &from,
                &tree.replace(":: ", "::").replace(" ::", "::"),
                &mut relative,
            );
        }
        rest = &statement[end..];
    }
    for root in ["crate::", "super::"] {
        for (at, _) in code.match_indices(root) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let written = code[at..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default();
            // `crate::a::{..}` opens a use tree, read above: `a` itself is not imported.
            if code[at + written.len()..].starts_with('{') {
                continue;
            }
            let path: Vec<String> = written
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            relative.push(path);
        }
    }
    relative
        .into_iter()
        .filter_map(|path| {
            let mut base = module.clone();
            let mut segments = path.into_iter().peekable();
            match segments.peek().map(String::as_str) {
                Some("crate") => base.clear(),
                Some("super" | "self") => {}
                _ => return None,
            }
            for segment in segments {
                match segment.as_str() {
                    "crate" | "self" => {}
                    "super" => {
                        base.pop();
                    }
                    _ => base.push(segment),
                }
            }
            Some(base)
        })
        .collect()
}

/// Which file imports which: each path goes to the file of its longest module prefix.
fn imports() -> (Graph, Files) {
    let files = files();
    let mut graph = BTreeMap::new();
    for (module, (_, text)) in &files {
        let text = code(text);
        // A unit test module sits in its file: there, `super` is the file's own module.
        let (main, tests) = text.split_at(text.find("#[cfg(test)]").unwrap_or(text.len()));
        let mut tests_module = module.clone();
        tests_module.push("tests".into());
        let targets: BTreeSet<Module> = references(module, main, &files)
            .into_iter()
            .chain(references(&tests_module, tests, &files))
            .filter_map(|path| {
                (1..=path.len())
                    .rev()
                    .map(|len| path[..len].to_vec())
                    .find(|prefix| files.contains_key(prefix))
            })
            .filter(|target| target != module)
            .collect();
        graph.insert(module.clone(), targets);
    }
    (graph, files)
}

fn name(module: &Module, files: &Files) -> String {
    files[module].0.clone()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let (graph, files) = imports();
    // Depth-first, keeping the path: meeting a file already on it closes a circle.
    fn visit(
        module: &Module,
        graph: &Graph,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            return Some(path[at..].iter().chain([module]).cloned().collect());
        }
        if !done.insert(module.clone()) {
            return None;
        }
        path.push(module.clone());
        for next in &graph[module] {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(circle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            let circle: Vec<String> = circle.iter().map(|m| name(m, &files)).collect();
            panic!("an import circle: {}", circle.join(" -> "));
        }
    }
    // The reader works: the faces import the core, the app imports nearly everything.
    let app = vec!["app".to_owned()];
    assert!(graph[&app].len() > 10, "{:?}", graph[&app]);
}

#[test]
fn nothing_below_the_faces_imports_them() {
    let (graph, files) = imports();
    let below = ["core", "sources", "engine", "store", "history"];
    for (module, targets) in &graph {
        if !module.first().is_some_and(|m| below.contains(&m.as_str())) {
            continue;
        }
        if let Some(target) = targets
            .iter()
            .find(|t| t.first().is_some_and(|m| m == "faces"))
        {
            panic!("{} imports {}", name(module, &files), name(target, &files));
        }
    }
}

#[test]
fn only_the_push_input_reads_report_metrics_requests() {
    let (_, files) = imports();
    let readers: BTreeSet<&str> = files
        .values()
        .filter(|(_, text)| code(text).contains("ReportMetricsRequest"))
        .map(|(file, _)| file.as_str())
        .collect();
    let expected = BTreeSet::from([
        "src/faces/grpc/reports.rs", // the handler, which hands it to sources/push.rs
        "src/sources/push.rs",
        "src/cli/push.rs", // a client: it builds the request it sends
    ]);
    assert_eq!(readers, expected);
}
