//! The catalogue in `docs/abuse.md`: every service's cases as a table,
//! checked against the code.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{Entry, Layer};

/// The documentation file that holds every service's table.
pub fn catalogue_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/abuse.md"))
}

/// The Markdown table of `entries`, in the order given, after a line
/// counting them per layer.
pub fn render_table(entries: &[Entry]) -> String {
    let layers: Vec<String> = per_layer(entries)
        .into_iter()
        .map(|(layer, n)| format!("{} {n}", layer.title()))
        .collect();
    let mut out = format!(
        "{} cases: {}.\n\n| layer | case | sent | expected |\n| --- | --- | --- | --- |\n",
        entries.len(),
        layers.join(", ")
    );
    for e in entries {
        let waits = e
            .waits_for
            .map(|change| format!(" *(waits for {change})*"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | `{}`{waits} | {} | {} |",
            e.layer.title(),
            e.name,
            cell(&e.sends),
            cell(&e.expect)
        );
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Checks the catalogue of `service`: names unique and `snake_case`, and
/// the table between `<!-- cases: service -->` and
/// `<!-- end cases: service -->` in `docs/abuse.md` equal to the rendered
/// entries. With `ABUSE_DOC=write` in the environment, rewrites that
/// section instead.
pub fn check_catalogue(service: &str, entries: &[Entry]) {
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        assert!(
            seen.insert(e.name),
            "{service}: case name {:?} twice",
            e.name
        );
        assert!(
            !e.name.is_empty()
                && e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{service}: case name {:?} is not snake_case",
            e.name
        );
    }
    let path = catalogue_path();
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let begin = format!("<!-- cases: {service} -->\n");
    let end = format!("<!-- end cases: {service} -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("{} has no line {begin:?}", path.display()))
        + begin.len();
    let stop = start
        + doc[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("{} has no line {end:?}", path.display()));
    let table = render_table(entries);
    if std::env::var("ABUSE_DOC").is_ok_and(|v| v == "write") {
        let updated = format!("{}{table}{}", &doc[..start], &doc[stop..]);
        std::fs::write(&path, updated)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    assert!(
        doc[start..stop] == table,
        "the {service} table in docs/abuse.md disagrees with the cases in the code; \
         `ABUSE_DOC=write cargo test -p <crate> --test abuse catalogue` rewrites it \
         (hits: `--test api abuse::catalogue`).\n\
         In the file:\n{}\nFrom the code:\n{table}",
        &doc[start..stop]
    );
}

/// Counts of `entries` per layer, in the order of [`Layer`].
pub fn per_layer(entries: &[Entry]) -> Vec<(Layer, usize)> {
    let mut counts: std::collections::BTreeMap<Layer, usize> = Default::default();
    for e in entries {
        *counts.entry(e.layer).or_default() += 1;
    }
    counts.into_iter().collect()
}
