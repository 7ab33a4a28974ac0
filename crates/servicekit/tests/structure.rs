//! servicekit's shape, read from its source: its modules import one
//! another in layers (no circle, so each can be read knowing only the ones
//! below it), and it is plumbing only — no type of its own names a ballot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of each top-level module (`src/x.rs` and `src/x/**`), by
/// name, without comments and unit tests.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::<String, String>::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let name = top.trim_end_matches(".rs").to_owned();
        if name == "lib" {
            continue;
        }
        // Code only: a doc comment may link anywhere, and a file's unit
        // tests (its last item, `mod tests`) may use any module.
        let code = std::fs::read_to_string(&file).unwrap();
        let module = modules.entry(name).or_default();
        for line in code
            .lines()
            .take_while(|l| !l.starts_with("mod tests"))
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            module.push_str(line);
            module.push('\n');
        }
    }
    modules
}

/// The other top-level modules `source` names as `crate::<module>`.
fn imports(source: &str, of: &str) -> BTreeSet<String> {
    source
        .match_indices("crate::")
        .filter_map(|(at, _)| {
            let name: String = source[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && name != of).then_some(name)
        })
        .collect()
}

/// A circle of imports in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_in_layers_with_no_circle() {
    let modules = modules();
    // `crate::x` where `x` is a module; macros (`$crate::main!`) and items
    // of lib.rs are not imports between modules.
    let graph: BTreeMap<_, _> = modules
        .iter()
        .map(|(name, source)| {
            let uses = imports(source, name)
                .into_iter()
                .filter(|used| modules.contains_key(used))
                .collect::<BTreeSet<_>>();
            (name.clone(), uses)
        })
        .collect();
    assert!(
        graph["connect"].contains("settings"),
        "the reading sees imports: {graph:#?}"
    );
    assert!(
        !graph["settings"].contains("connect"),
        "settings are plain parsed values; connecting is a layer above them"
    );
    assert_eq!(circle(&graph), None, "imports: {graph:#?}");
}

#[test]
fn the_circle_check_sees_a_circle() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(
        imports("use crate::connect::Redis; crate::x", "x"),
        BTreeSet::from(["connect".to_owned()])
    );
}

#[test]
fn no_type_of_the_kit_names_a_ballot() {
    let ballot_words = ["ballot", "vote", "choice", "tally", "option_a"];
    for (module, source) in modules() {
        for line in source.lines() {
            let line = line.trim_start();
            let declares = [
                "pub struct ",
                "pub enum ",
                "pub type ",
                "pub trait ",
                "struct ",
                "enum ",
            ]
            .iter()
            .find_map(|kw| line.strip_prefix(kw));
            let Some(rest) = declares else { continue };
            let name = rest
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap();
            let lower = name.to_lowercase();
            assert!(
                !ballot_words.iter().any(|w| lower.contains(w)),
                "servicekit::{module} declares {name}: ballots are the services' business"
            );
        }
    }
}
