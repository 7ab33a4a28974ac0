//! The documents agree with the code: README.md, docs/*.md and the hit
//! counter's README are read as a newcomer would read them, and every fact
//! a table, a command or a name states is compared with what the code says.
//!
//! - settings: every variable in a settings table (a table whose first
//!   column is `variable`) is a setting of each binary in its `used by`
//!   column, with the default the table states, and every setting of every
//!   binary is in some table — read from the binaries' own clap
//!   definitions, which are what `--help` prints;
//! - commands: every `cargo xtask …`, `seed …` and `<service> …` command in
//!   a code block or inline code parses;
//! - links: every relative link and image resolves, anchors included, and
//!   every file path named in backticks exists;
//! - metrics: the metrics the documents name are exactly those the services
//!   declare (`<service>::metrics::ALL`, `servicekit::metric::kit()`), with
//!   their help text, and a real `/metrics` answer carries that text;
//! - ports: admin ports named beside a service, host ports, container ports
//!   and NodePorts agree with the code's defaults and the deployment files
//!   (which `deployment.rs` ties to the same defaults).
//!
//! Each check is a function from documents to problems, so the tests at the
//! end plant an error in a line and see the check name it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::{read, repo};

use clap::CommandFactory;
use servicekit::launch::Service;
use servicekit::metric::Metric;

// ---------------------------------------------------------------------------
// The documents

/// One markdown file: its path from the repository's root and its text.
struct Doc {
    path: String,
    text: String,
}

impl Doc {
    fn new(path: &str, text: &str) -> Doc {
        Doc {
            path: path.to_owned(),
            text: text.to_owned(),
        }
    }

    /// Where `line` (from 1) is, for messages.
    fn at(&self, line: usize) -> String {
        format!("{}:{line}", self.path)
    }

    /// The folder links in this file are relative to.
    fn dir(&self) -> PathBuf {
        Path::new(&self.path)
            .parent()
            .unwrap_or(Path::new(""))
            .to_owned()
    }
}

/// README.md, every docs/*.md and hits/README.md (the hit counter's
/// settings table lives there).
fn documents() -> Vec<Doc> {
    let mut paths = vec!["README.md".to_owned(), "hits/README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths.iter().map(|p| Doc::new(p, &read(p))).collect()
}

/// A line outside code blocks, or a code block's line, with its number
/// and, in a code block, the block's language.
#[derive(Debug)]
struct Line<'a> {
    number: usize,
    text: &'a str,
    in_code: bool,
    language: &'a str,
}

fn lines(doc: &Doc) -> Vec<Line<'_>> {
    let mut in_code = false;
    let mut language = "";
    let mut out = Vec::new();
    for (i, text) in doc.text.lines().enumerate() {
        if let Some(info) = text.trim_start().strip_prefix("```") {
            in_code = !in_code;
            language = if in_code { info.trim() } else { "" };
            continue;
        }
        out.push(Line {
            number: i + 1,
            text,
            in_code,
            language,
        });
    }
    out
}

/// Pieces of text, each with the number of the line it starts on.
type Numbered = Vec<(usize, String)>;

/// The lines outside code blocks with inline code taken out, and the
/// inline code spans (which may run on over a line break), each with the
/// number of the line it starts on.
fn prose_and_code(doc: &Doc) -> (Numbered, Numbered) {
    let mut prose = Vec::new();
    let mut spans = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for line in lines(doc) {
        if line.in_code {
            open = None;
            continue;
        }
        if line.text.trim().is_empty() {
            open = None; // a span never crosses a paragraph
        }
        let mut plain = String::new();
        if let Some((_, span)) = &mut open {
            span.push(' ');
        }
        for c in line.text.chars() {
            match (&mut open, c) {
                (None, '`') => open = Some((line.number, String::new())),
                (Some(_), '`') => spans.push(open.take().unwrap()),
                (Some((_, span)), c) => span.push(c),
                (None, c) => plain.push(c),
            }
        }
        prose.push((line.number, plain));
    }
    (prose, spans)
}

/// The commands in code blocks: continuation lines joined, comments and
/// prompts dropped, each with its first line's number.
fn code_commands(doc: &Doc) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    let shell = |l: &Line| ["sh", "bash", "shell", "console"].contains(&l.language);
    for line in lines(doc).into_iter().filter(|l| l.in_code && shell(l)) {
        let text = line.text.trim();
        let (start, mut joined) = pending.take().unwrap_or((line.number, String::new()));
        joined.push_str(text);
        if let Some(rest) = joined.strip_suffix('\\') {
            pending = Some((start, format!("{rest} ")));
            continue;
        }
        out.push((start, joined));
    }
    out
}

/// The inline code spans outside code blocks.
fn inline_code(doc: &Doc) -> Vec<(usize, String)> {
    prose_and_code(doc).1
}

/// A table's cells split on `|` outside inline code.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut in_code = false;
    for c in row.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.last_mut().unwrap().push(c);
            }
            '|' if !in_code => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// A markdown table: its header cells and its rows with their numbers.
struct Table {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

fn tables(doc: &Doc) -> Vec<Table> {
    let mut out = Vec::new();
    let mut current: Option<Table> = None;
    for line in lines(doc) {
        let is_row = !line.in_code && line.text.trim_start().starts_with('|');
        match (&mut current, is_row) {
            (None, true) => {
                current = Some(Table {
                    header: cells(line.text),
                    rows: Vec::new(),
                })
            }
            (Some(table), true) => {
                if !line.text.contains("---") || !table.rows.is_empty() {
                    table.rows.push((line.number, cells(line.text)));
                }
            }
            (Some(_), false) => out.push(current.take().unwrap()),
            (None, false) => {}
        }
    }
    out.extend(current);
    out
}

/// The inline code spans of a cell.
fn code_in(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

fn is_env_name(s: &str) -> bool {
    s.len() > 1
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

// ---------------------------------------------------------------------------
// The code: binaries, their settings and metrics

/// Every binary a document may name: the services through the scaffold's
/// own command line, the seed (and `seed watch`) through its.
fn binaries() -> BTreeMap<&'static str, clap::Command> {
    let seed = seed::cli::Cli::command();
    let watch = seed
        .find_subcommand("watch")
        .expect("seed has a watch subcommand")
        .clone();
    BTreeMap::from([
        ("vote", servicekit::launch::command::<vote::AppState>()),
        ("worker", servicekit::launch::command::<worker::Worker>()),
        ("result", servicekit::launch::command::<result::AppState>()),
        ("hits", servicekit::launch::command::<hits::AppState>()),
        ("seed", seed),
        ("seed watch", watch),
    ])
}

/// Variables read outside clap, by the logging every binary sets up
/// (`servicekit::telemetry`).
const NOT_CLAP: &[&str] = &["RUST_LOG", "RUST_LOG_FORMAT"];

/// The settings of `command` that have an environment variable, with
/// their defaults (joined with `,`).
fn settings(command: &clap::Command) -> BTreeMap<String, Option<String>> {
    command
        .get_arguments()
        .filter_map(|arg| {
            let env = arg.get_env()?.to_string_lossy().into_owned();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            // An empty default (`ALLOWED_ORIGINS`) is what a table calls none.
            let joined = defaults.join(",");
            Some((env, (!joined.is_empty()).then_some(joined)))
        })
        .collect()
}

fn declared_metrics() -> Vec<(&'static str, Metric)> {
    let mut all: Vec<(&'static str, Metric)> = servicekit::metric::kit()
        .into_iter()
        .map(|m| ("kit", m))
        .collect();
    for (service, metrics) in [
        ("vote", vote::metrics::ALL),
        ("worker", worker::metrics::ALL),
        ("result", result::metrics::ALL),
        ("hits", hits::metrics::ALL),
    ] {
        all.extend(metrics.iter().map(|m| (service, *m)));
    }
    all
}

// ---------------------------------------------------------------------------
// Check: settings tables

/// The binaries a `used by` cell names (`all`: every service; `seed
/// watch`: the seed's watch subcommand).
fn used_by(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|s| s.trim().trim_matches('`').to_owned())
        .flat_map(|s| {
            if s == "all" {
                ["vote", "worker", "result", "hits", "seed"]
                    .map(String::from)
                    .to_vec()
            } else {
                vec![s]
            }
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// What a default cell says, item by item: `Some(value)` for a value in
/// backticks, `None` for `none`; `<…>` values (computed at start) are
/// skipped as `Some("<…>")`.
fn defaults_in(cell: &str) -> Vec<Option<String>> {
    cell.split(", ")
        .map(str::trim)
        .map(|item| code_in(item).first().map(|v| (*v).to_owned()))
        .collect()
}

/// The variables `docker-compose.yml` reads (`${NAME:-default}`), with
/// their defaults.
fn compose_variables() -> BTreeMap<String, String> {
    read("docker-compose.yml")
        .split("${")
        .skip(1)
        .filter_map(|rest| {
            let (name, default) = rest.split_once('}')?.0.split_once(":-")?;
            Some((name.to_owned(), default.to_owned()))
        })
        .collect()
}

/// Tables of `compose variable`s: each is one `docker-compose.yml` reads,
/// with the default it gives, and every one it reads is in such a table.
fn check_compose_variables(docs: &[Doc]) -> Vec<String> {
    let compose = compose_variables();
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for doc in docs {
        for table in tables(doc) {
            if table.header.first().map(String::as_str) != Some("compose variable") {
                continue;
            }
            for (number, row) in &table.rows {
                let names: Vec<&str> = code_in(&row[0])
                    .into_iter()
                    .filter(|n| is_env_name(n))
                    .collect();
                let stated = defaults_in(row.get(1).map_or("", String::as_str));
                for (i, name) in names.iter().enumerate() {
                    documented.insert((*name).to_owned());
                    let Some(actual) = compose.get(*name) else {
                        problems.push(format!(
                            "{}: docker-compose.yml reads no `{name}`",
                            doc.at(*number)
                        ));
                        continue;
                    };
                    let item = stated
                        .get(if stated.len() == 1 { 0 } else { i })
                        .cloned()
                        .flatten();
                    if item.as_deref() != Some(actual.as_str()) {
                        problems.push(format!(
                            "{}: `{name}`: the table says {item:?}, docker-compose.yml says `{actual}`",
                            doc.at(*number)
                        ));
                    }
                }
            }
        }
    }
    for name in compose.keys().filter(|n| !documented.contains(*n)) {
        problems.push(format!(
            "`{name}` (docker-compose.yml) is in no compose variable table"
        ));
    }
    problems
}

fn check_settings(docs: &[Doc]) -> Vec<String> {
    let binaries = binaries();
    let mut problems = check_compose_variables(docs);
    let mut documented: BTreeSet<(String, String)> = BTreeSet::new();
    for doc in docs {
        for table in tables(doc) {
            if table.header.first().map(String::as_str) != Some("variable") {
                continue;
            }
            let by = table.column("used by");
            let default = table.column("default");
            if by.is_none() && doc.path != "hits/README.md" {
                problems.push(format!(
                    "{}: a settings table without a `used by` column",
                    doc.at(table.rows.first().map_or(0, |r| r.0 - 2))
                ));
                continue;
            }
            for (number, row) in &table.rows {
                let at = doc.at(*number);
                let names: Vec<&str> = code_in(&row[0])
                    .into_iter()
                    .filter(|n| is_env_name(n))
                    .collect();
                if names.is_empty() {
                    problems.push(format!("{at}: no variable in `{}`", row[0]));
                    continue;
                }
                let users = match by {
                    Some(col) => used_by(row.get(col).map_or("", String::as_str)),
                    None => vec!["hits".to_owned()],
                };
                let stated = default.and_then(|col| row.get(col)).map(|c| defaults_in(c));
                for (i, name) in names.iter().enumerate() {
                    if NOT_CLAP.contains(name) {
                        let telemetry = read("crates/servicekit/src/telemetry.rs");
                        if !telemetry.contains(name) {
                            problems
                                .push(format!("{at}: `{name}` is not read by the logging setup"));
                        }
                        continue;
                    }
                    for (j, user) in users.iter().enumerate() {
                        let Some(command) = binaries.get(user.as_str()) else {
                            problems
                                .push(format!("{at}: `{user}` is no binary of this repository"));
                            continue;
                        };
                        let settings = settings(command);
                        let Some(actual) = settings.get(*name) else {
                            problems.push(format!(
                                "{at}: `{name}` is not a setting of {user} (`{user} --help` has no such variable)"
                            ));
                            continue;
                        };
                        documented.insert((user.clone(), (*name).to_owned()));
                        let Some(stated) = &stated else { continue };
                        // One for all, one per variable, or one per binary.
                        let item = if stated.len() == 1 {
                            stated.first()
                        } else if names.len() > 1 && stated.len() == names.len() {
                            stated.get(i)
                        } else if stated.len() == users.len() {
                            stated.get(j)
                        } else {
                            problems.push(format!(
                                "{at}: {} defaults for {} variables and {} binaries",
                                stated.len(),
                                names.len(),
                                users.len()
                            ));
                            continue;
                        };
                        let Some(item) = item else {
                            problems.push(format!("{at}: no default stated for `{name}`"));
                            continue;
                        };
                        if item.as_deref().is_some_and(|v| v.starts_with('<')) {
                            continue; // computed at start, e.g. `<hostname>-<pid>`
                        }
                        if item != actual {
                            problems.push(format!(
                                "{at}: `{name}` of {user}: the table says {}, `{user} --help` says {}",
                                item.as_deref().map_or("none".into(), |v| format!("`{v}`")),
                                actual.as_deref().map_or("none".into(), |v| format!("`{v}`")),
                            ));
                        }
                    }
                }
            }
        }
    }
    for (binary, command) in &binaries {
        for name in settings(command).keys() {
            if !documented.contains(&((*binary).to_owned(), name.clone())) {
                problems.push(format!(
                    "`{name}` ({binary}) is in no settings table (docs/operations.md#settings)"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Check: commands

/// Splits a shell line into words: quotes kept together, `$(…)` left as
/// is; stops at a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '#') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    out.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(word);
    }
    out
}

/// The commands of ours in one shell line: (binary, arguments).
fn our_commands(line: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for part in line
        .split("&&")
        .flat_map(|p| p.split(';'))
        .flat_map(|p| p.split(" | "))
    {
        let mut words = words(part.trim().trim_start_matches("$ "));
        // Leading assignments: `VAR=value cmd …`.
        while words
            .first()
            .is_some_and(|w| w.split_once('=').is_some_and(|(k, _)| is_env_name(k)))
        {
            words.remove(0);
        }
        if words.iter().any(|w| w.contains('<') || w.contains('…')) {
            continue; // a placeholder, not a command to run
        }
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        // `docker run … voting-app/seed <args>`: the image's entrypoint is seed.
        let image_seed = words.iter().position(|w| *w == "voting-app/seed");
        let found = match words.as_slice() {
            _ if image_seed.is_some() => {
                Some(("seed", words[image_seed.unwrap_or_default() + 1..].to_vec()))
            }
            ["cargo", "xtask", rest @ ..] => Some(("xtask", rest.to_vec())),
            ["docker", "compose", "run", "--rm", "seed", rest @ ..] => {
                Some(("seed", rest.to_vec()))
            }
            [
                bin @ ("seed" | "vote" | "worker" | "result" | "hits"),
                rest @ ..,
            ] => Some((*bin, rest.to_vec())),
            _ => None,
        };
        if let Some((bin, rest)) = found {
            out.push((
                bin.to_owned(),
                rest.iter().map(|s| (*s).to_owned()).collect(),
            ));
        }
    }
    out
}

/// Why `args` do not parse for `bin`, if they do not.
fn does_not_parse(bin: &str, args: &[String]) -> Option<String> {
    if bin == "xtask" {
        // xtask's command line is its binary's: ask it, with --help so
        // nothing runs.
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .arg("--help")
            .output()
            .expect("running xtask");
        return (!output.status.success())
            .then(|| String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    let command = binaries().remove(bin)?;
    let argv = std::iter::once(bin.to_owned()).chain(args.iter().cloned());
    match command.try_get_matches_from(argv) {
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            None
        }
        Err(e) => Some(e.to_string().lines().next().unwrap_or_default().to_owned()),
    }
}

fn check_commands(docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for doc in docs {
        let shown = code_commands(doc).into_iter().chain(inline_code(doc));
        for (number, line) in shown {
            for (bin, args) in our_commands(&line) {
                if let Some(why) = does_not_parse(&bin, &args) {
                    problems.push(format!(
                        "{}: `{bin} {}` does not parse: {why}",
                        doc.at(number),
                        args.join(" ")
                    ));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Check: links, images and paths

/// GitHub's anchor for a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let doc = Doc::new("", text);
    lines(&doc)
        .into_iter()
        .filter(|l| !l.in_code && l.text.starts_with('#'))
        .map(|l| slug(l.text.trim_start_matches('#')))
        .collect()
}

/// The targets of `[text](target)` links and `src="…"` images.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in line.split("](").skip(1) {
        if let Some(end) = part.find(')') {
            out.push(part[..end].to_owned());
        }
    }
    for part in line.split("src=\"").skip(1) {
        if let Some(end) = part.find('"') {
            out.push(part[..end].to_owned());
        }
    }
    out
}

/// Where `target` (relative to `doc`) is missing, if it is.
fn broken(doc: &Doc, target: &str, known: &BTreeMap<String, String>) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let file = if path.is_empty() {
        PathBuf::from(&doc.path)
    } else {
        normalise(&doc.dir().join(path))
    };
    let key = file.to_string_lossy().into_owned();
    let text = match known.get(&key) {
        Some(text) => Some(text.clone()),
        None if repo().join(&file).exists() => std::fs::read_to_string(repo().join(&file)).ok(),
        None => return Some(format!("{key} does not exist")),
    };
    let anchor = anchor?;
    let text = text.filter(|_| key.ends_with(".md"))?;
    (!anchors(&text).contains(anchor)).then(|| format!("{key} has no heading #{anchor}"))
}

/// `a/b/../c` → `a/c`.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A file path named in backticks that should exist: one under a folder
/// at the repository's top (`crates/vote/src/lib.rs`, `k8s/`), or a
/// top-level deployment file (`Dockerfile.vote`, `docker-compose.yml`).
fn named_path(code: &str) -> Option<&str> {
    let code = code.trim_end_matches(['.', ',']);
    if code.is_empty()
        || code.contains(|c: char| c.is_whitespace() || "*{}<>|…$=:,()'\"".contains(c))
        || code.starts_with(['-', '/'])
    {
        return None;
    }
    let top = code.split('/').next()?;
    let top_dirs = [
        "crates",
        "docs",
        "xtask",
        "scripts",
        "k8s",
        "ha",
        "healthchecks",
        "seed",
        "hits",
        "fuzz",
        ".ci",
        ".cargo",
    ];
    let top_files = code.contains('.')
        && (code.starts_with("Dockerfile.")
            || code.starts_with("docker-compose")
            || code.starts_with("docker-stack"));
    ((code.contains('/') && top_dirs.contains(&top)) || (top_files && !code.contains('/')))
        .then_some(code)
}

fn check_links(docs: &[Doc]) -> Vec<String> {
    let known: BTreeMap<String, String> = docs
        .iter()
        .map(|d| (d.path.clone(), d.text.clone()))
        .collect();
    let mut problems = Vec::new();
    for doc in docs {
        for (number, plain) in prose_and_code(doc).0 {
            for target in link_targets(&plain) {
                if let Some(why) = broken(doc, &target, &known) {
                    problems.push(format!("{}: link {target}: {why}", doc.at(number)));
                }
            }
        }
        for (number, code) in inline_code(doc) {
            if let Some(path) = named_path(&code)
                && !repo().join(path).exists()
            {
                problems.push(format!("{}: `{path}` does not exist", doc.at(number)));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Check: metrics

/// A name in inline code that looks like a metric of ours.
fn looks_like_metric(code: &str, declared: &BTreeSet<&str>) -> Option<String> {
    let name = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| code.strip_suffix(s).filter(|n| declared.contains(n)))
        .unwrap_or(code);
    let shaped = name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        && name.contains('_')
        && (name.ends_with("_total") || name.ends_with("_seconds"));
    (shaped || declared.contains(name)).then(|| name.to_owned())
}

fn check_metrics(docs: &[Doc]) -> Vec<String> {
    let declared = declared_metrics();
    let names: BTreeSet<&str> = declared.iter().map(|(_, m)| m.name).collect();
    let mut problems = Vec::new();
    let mut listed: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for doc in docs {
        for (number, code) in inline_code(doc) {
            if let Some(name) = looks_like_metric(&code, &names)
                && !names.contains(name.as_str())
            {
                problems.push(format!(
                    "{}: `{name}` is no metric the services declare",
                    doc.at(number)
                ));
            }
        }
        for table in tables(doc) {
            if table.header.first().map(String::as_str) != Some("metric")
                || table.column("what it counts").is_none()
            {
                continue;
            }
            let services = table.column("services");
            let help = table.column("what it counts");
            for (number, row) in &table.rows {
                for name in code_in(&row[0]) {
                    if !names.contains(name) {
                        problems.push(format!(
                            "{}: `{name}` is no metric the services declare",
                            doc.at(*number)
                        ));
                    }
                    listed.insert(
                        name.to_owned(),
                        (
                            doc.at(*number),
                            vec![
                                services
                                    .and_then(|c| row.get(c))
                                    .cloned()
                                    .unwrap_or_default(),
                                help.and_then(|c| row.get(c)).cloned().unwrap_or_default(),
                            ],
                        ),
                    );
                }
            }
        }
    }
    for (service, metric) in &declared {
        let Some((at, row)) = listed.get(metric.name) else {
            problems.push(format!(
                "`{}` ({service}) is in no metrics table (docs/operations.md#metrics)",
                metric.name
            ));
            continue;
        };
        if *service != "kit" && !row[0].contains(service) {
            problems.push(format!(
                "{at}: `{}` is not said to come from {service}",
                metric.name
            ));
        }
        if !row[1].contains(metric.help) {
            problems.push(format!(
                "{at}: `{}`'s help text is not the code's: {:?}",
                metric.name, metric.help
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Check: ports

struct Ports {
    /// The admin listener's default port per service.
    admin: BTreeMap<&'static str, u16>,
    /// `PORT`'s default (the container port of vote and result).
    page: u16,
    /// Host ports docker-compose.yml publishes by default, per service.
    published: BTreeMap<String, Vec<(u16, u16)>>,
    /// NodePorts in k8s/.
    node_ports: BTreeSet<u16>,
}

fn ports() -> Ports {
    let binaries = binaries();
    let default = |bin: &str, env: &str| -> u16 {
        settings(&binaries[bin])[env]
            .as_deref()
            .unwrap_or_else(|| panic!("{bin} has no default {env}"))
            .parse()
            .unwrap()
    };
    let admin = ["vote", "worker", "result", "hits"]
        .into_iter()
        .map(|b| (b, default(b, "ADMIN_PORT")))
        .collect();
    let page = default("vote", "PORT");
    assert_eq!(page, default("result", "PORT"));
    // `- "${VOTE_PORT:-5000}:80"` or `- "127.0.0.1:${DB_PORT:-5432}:5432"`
    // under `services: <name>: ports:`.
    let mut published: BTreeMap<String, Vec<(u16, u16)>> = BTreeMap::new();
    let mut service = String::new();
    for line in read("docker-compose.yml").lines() {
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            service = name.to_owned();
        }
        if let Some((_, rest)) = line.split_once(":-")
            && let Some((host, container)) = rest.split_once("}:")
        {
            let container = container.trim_end_matches(['"', '\'']);
            if let (Ok(h), Ok(c)) = (host.parse(), container.parse()) {
                published.entry(service.clone()).or_default().push((h, c));
            }
        }
    }
    let mut node_ports = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("k8s")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(port) = line.trim().strip_prefix("nodePort:") {
                node_ports.insert(port.trim().parse().unwrap());
            }
        }
    }
    Ports {
        admin,
        page,
        published,
        node_ports,
    }
}

/// The numbers right after `word` (and a `:` or a space) in `text`, where
/// `word` is a name of its own (not the end of `crates/vote`, `pre-vote`).
fn numbers_after<'a>(text: &'a str, word: &'a str) -> impl Iterator<Item = u16> + 'a {
    text.match_indices(word).filter_map(move |(i, _)| {
        let before = text[..i].chars().next_back();
        let path_ok = word == "localhost";
        if before
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || (c == '/' && !path_ok))
        {
            return None;
        }
        let rest = text[i + word.len()..].strip_prefix([':', ' '])?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if rest[digits.len()..].starts_with(char::is_alphanumeric) {
            return None;
        }
        digits.parse().ok()
    })
}

fn check_ports(docs: &[Doc]) -> Vec<String> {
    let ports = ports();
    let host_ports: BTreeSet<u16> = ports.published.values().flatten().map(|p| p.0).collect();
    let mut problems = Vec::new();
    for doc in docs {
        let admin_table = tables(doc);
        for line in lines(doc) {
            let at = doc.at(line.number);
            // An admin port named beside its service: `vote:8081`,
            // `tasks.vote:8081`, "vote 8081".
            for (service, admin) in &ports.admin {
                for n in numbers_after(line.text, service) {
                    if (8000..8100).contains(&n) && n != *admin && n != 8080 {
                        problems.push(format!("{at}: {service}'s admin port is {admin}, not {n}"));
                    }
                    if n == 8080 && *admin != 8080 && line.text.contains(&format!("{service}:8080"))
                    {
                        problems.push(format!("{at}: {service}'s admin port is {admin}, not 8080"));
                    }
                }
            }
            // A page on the host: localhost:<port> is a port compose
            // publishes (unless the paragraph moves it: `VOTE_PORT=5050`).
            for n in numbers_after(line.text, "localhost") {
                let moved = doc.text.contains(&format!("_PORT={n}"));
                if !host_ports.contains(&n) && !moved {
                    problems.push(format!(
                        "{at}: localhost:{n} is no port docker-compose.yml publishes ({host_ports:?})"
                    ));
                }
            }
            // NodePorts.
            for word in line.text.split(|c: char| !c.is_ascii_digit()) {
                if let Ok(n) = word.parse::<u16>()
                    && (30000..=32767).contains(&n)
                    && word.len() == 5
                    && doc.text.contains("NodePort")
                    && !ports.node_ports.contains(&n)
                {
                    problems.push(format!("{at}: NodePort {n} is in no k8s/ Service"));
                }
            }
        }
        // Tables with `host port` / `admin port` columns, one service a row.
        for table in admin_table {
            let host = table.header.iter().position(|h| h.starts_with("host port"));
            let admin = table
                .header
                .iter()
                .position(|h| h.starts_with("admin port"));
            if table.header.first().map(String::as_str) != Some("service") {
                continue;
            }
            for (number, row) in &table.rows {
                let at = doc.at(*number);
                let service = row[0].as_str();
                if let Some(col) = admin
                    && let Ok(n) = row[col].parse::<u16>()
                    && ports.admin.get(service) != Some(&n)
                {
                    problems.push(format!("{at}: {service}'s admin port is not {n}"));
                }
                if let Some(col) = host {
                    let cell = row[col].replace("127.0.0.1:", "");
                    let mapping: Vec<u16> = cell
                        .split(['→', ' '])
                        .filter_map(|w| w.trim().parse().ok())
                        .collect();
                    let published = ports.published.get(service).cloned().unwrap_or_default();
                    match mapping.as_slice() {
                        [h, c] if !published.contains(&(*h, *c)) => problems.push(format!(
                            "{at}: docker-compose.yml does not publish {service}'s {c} on {h} ({published:?})"
                        )),
                        [_, c] if ["vote", "result"].contains(&service) && *c != ports.page => {
                            problems.push(format!("{at}: {service} listens on {}, not {c}", ports.page))
                        }
                        [h] if !published.iter().any(|p| p.0 == *h) => problems.push(format!(
                            "{at}: docker-compose.yml does not publish {service} on {h} ({published:?})"
                        )),
                        _ => {}
                    }
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// The checks, on the real documents

fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn settings_tables_match_the_binaries() {
    assert_none(check_settings(&documents()));
}

#[test]
fn commands_in_the_documents_parse() {
    assert_none(check_commands(&documents()));
}

#[test]
fn links_images_and_paths_resolve() {
    assert_none(check_links(&documents()));
}

#[test]
fn the_documented_metrics_are_the_declared_ones() {
    assert_none(check_metrics(&documents()));
}

#[test]
fn ports_in_the_documents_match_the_code_and_the_deployment_files() {
    assert_none(check_ports(&documents()));
}

#[test]
fn every_document_opens_with_a_heading_and_a_paragraph() {
    for doc in documents().iter().filter(|d| d.path.starts_with("docs/")) {
        let mut paragraphs = doc.text.split("\n\n");
        let heading = paragraphs.next().unwrap_or_default();
        let first = paragraphs.next().unwrap_or_default();
        assert!(heading.starts_with("# "), "{} has no title", doc.path);
        assert!(
            first.split_whitespace().count() >= 8 && !first.starts_with(['#', '|', '`', '-']),
            "{} does not open with a paragraph saying its job: {first:?}",
            doc.path
        );
    }
}

#[test]
fn the_readme_stays_short_and_links_every_document() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; the limit is 300"
    );
    for doc in documents().iter().filter(|d| d.path.starts_with("docs/")) {
        assert!(
            readme.contains(&format!("]({})", doc.path)),
            "the README's table does not link {}",
            doc.path
        );
    }
}

/// `/metrics` explains itself: a real service, started by the scaffold's
/// `serve`, answers a visit (Redis unreachable: a 503 and a Redis error)
/// and then `/metrics`, where every series carries its declared `# HELP`.
#[tokio::test]
async fn a_real_metrics_answer_carries_the_declared_help_texts() {
    use clap::FromArgMatches;
    let nobody = localstores::free_port().unwrap().to_string();
    let command = servicekit::launch::command::<hits::AppState>();
    let matches = command
        .try_get_matches_from([
            "hits",
            "--redis-host",
            "127.0.0.1",
            "--redis-port",
            &nobody,
            "--bind-address",
            "127.0.0.1",
        ])
        .unwrap();
    let settings = hits::Settings::from_arg_matches(&matches).unwrap();
    let service = hits::AppState::build(settings).unwrap();
    let public = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public_addr = public.local_addr().unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(servicekit::launch::serve(
        service,
        Some(public),
        admin,
        shutdown.clone(),
    ));
    let visit = reqwest::get(format!("http://{public_addr}/"))
        .await
        .unwrap();
    assert_eq!(visit.status(), 503);
    let body = reqwest::get(format!("http://{admin_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    shutdown.cancel();
    serving.await.unwrap().unwrap();
    let declared: Vec<Metric> = servicekit::metric::kit()
        .into_iter()
        .chain(hits::metrics::ALL.iter().copied())
        .collect();
    let typed: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in ["http_requests_total", "redis_errors_total"] {
        assert!(
            typed.contains(&name),
            "no {name} series after a visit:\n{body}"
        );
    }
    for name in typed {
        let metric = declared
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} on /metrics is declared nowhere"));
        let help = format!("# HELP {} {}", metric.name, metric.help);
        assert!(body.contains(&help), "no `{help}` on /metrics:\n{body}");
    }
}

// ---------------------------------------------------------------------------
// Each check fails on a planted error

fn planted(path: &str, text: &str) -> Vec<Doc> {
    vec![Doc::new(path, text)]
}

#[test]
fn a_setting_that_does_not_exist_or_has_another_default_is_named() {
    let doc = planted(
        "docs/operations.md",
        "| variable | used by | default | meaning |\n\
         | --- | --- | --- | --- |\n\
         | `REDIS_URLS` | vote | `redis://redis:6379` | typo |\n\
         | `BATCH_SIZE` | worker | `500` | wrong default |\n\
         | `MAX_CLIENTS` | vote | `10000` | not vote's |\n",
    );
    let problems = check_settings(&doc).join("\n");
    assert!(
        problems.contains("docs/operations.md:3: `REDIS_URLS` is not a setting of vote"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/operations.md:4: `BATCH_SIZE` of worker: the table says `500`, `worker --help` says `1000`"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/operations.md:5: `MAX_CLIENTS` is not a setting of vote"),
        "{problems}"
    );
    // And every setting missing from this one table is named.
    assert!(
        problems.contains("`DATABASE_URL` (worker) is in no settings table"),
        "{problems}"
    );
}

#[test]
fn a_command_that_does_not_parse_is_named() {
    let doc = planted(
        "docs/development.md",
        "```sh\ncargo xtask fuzz --secs 60\nseed --votes-c 5\n```\n\
         Run `vote healthcheck --alive` or `seed watch --url http://x/ --expect 2000,1000`.\n",
    );
    let problems = check_commands(&doc).join("\n");
    assert!(
        problems.contains("docs/development.md:2: `xtask fuzz --secs 60` does not parse"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/development.md:3: `seed --votes-c 5` does not parse"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/development.md:5: `vote healthcheck --alive` does not parse"),
        "{problems}"
    );
    assert!(!problems.contains("seed watch"), "{problems}");
}

#[test]
fn a_broken_link_image_anchor_or_path_is_named() {
    let doc = planted(
        "docs/example.md",
        "# Example\n\nSee [ops](operation.md), [metrics](operations.md#metrix),\n\
         <img src=\"screenshots/vote.png\"> and `crates/vote/src/main.rs`, `crates/vote/src/mian.rs`.\n",
    );
    let problems = check_links(&doc).join("\n");
    assert!(
        problems.contains("docs/example.md:3: link operation.md: docs/operation.md does not exist"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/example.md:3: link operations.md#metrix: docs/operations.md has no heading #metrix"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "docs/example.md:4: link screenshots/vote.png: docs/screenshots/vote.png does not exist"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("docs/example.md:4: `crates/vote/src/mian.rs` does not exist"),
        "{problems}"
    );
    assert!(!problems.contains("main.rs`"), "{problems}");
}

#[test]
fn a_metric_the_code_does_not_declare_or_a_declared_one_left_out_is_named() {
    let doc = planted(
        "docs/operations.md",
        "Watch `ballots_lost_total`.\n\n\
         | metric | services | kind | what it counts |\n| --- | --- | --- | --- |\n\
         | `queue_depth` | vote | gauge | Ballots waiting. |\n\
         | `queue_depth_now` | worker | gauge | Ballots waiting. |\n",
    );
    let problems = check_metrics(&doc).join("\n");
    assert!(
        problems.contains(
            "docs/operations.md:1: `ballots_lost_total` is no metric the services declare"
        ),
        "{problems}"
    );
    assert!(
        problems.contains("docs/operations.md:5: `queue_depth` is not said to come from worker"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/operations.md:5: `queue_depth`'s help text is not the code's"),
        "{problems}"
    );
    assert!(
        problems
            .contains("docs/operations.md:6: `queue_depth_now` is no metric the services declare"),
        "{problems}"
    );
    assert!(
        problems.contains("`result_query_errors_total` (result) is in no metrics table"),
        "{problems}"
    );
}

#[test]
fn a_port_that_disagrees_with_the_code_or_the_files_is_named() {
    let doc = planted(
        "docs/docker.md",
        "Prometheus scrapes `vote:8082` and `tasks.worker:8081`.\n\
         Browse <http://localhost:5002>; NodePort 31002.\n\n\
         | service | image | host port | admin port (inside, not published) |\n| --- | --- | --- | --- |\n\
         | vote | x | 5000 → 8080 | 8081 |\n\
         | result | x | 5011 → 80 | 8083 |\n",
    );
    let problems = check_ports(&doc).join("\n");
    assert!(
        problems.contains("docs/docker.md:1: vote's admin port is 8081, not 8082"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/docker.md:1: worker's admin port is 8080, not 8081"),
        "{problems}"
    );
    assert!(
        problems
            .contains("docs/docker.md:2: localhost:5002 is no port docker-compose.yml publishes"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/docker.md:2: NodePort 31002 is in no k8s/ Service"),
        "{problems}"
    );
    assert!(
        problems
            .contains("docs/docker.md:6: docker-compose.yml does not publish vote's 8080 on 5000"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/docker.md:7: result's admin port is not 8083"),
        "{problems}"
    );
    assert!(
        problems
            .contains("docs/docker.md:7: docker-compose.yml does not publish result's 80 on 5011"),
        "{problems}"
    );
}

#[test]
fn a_compose_variable_that_is_not_read_or_has_another_default_is_named() {
    let doc = planted(
        "docs/docker.md",
        "| compose variable | default | meaning |\n| --- | --- | --- |\n\
         | `VOTE_PORT`, `RESULT_PORT` | `5000`, `5011` | host ports |\n\
         | `WEB_PORT` | `80` | no such |\n",
    );
    let problems = check_compose_variables(&doc).join("\n");
    assert!(
        problems.contains("docs/docker.md:3: `RESULT_PORT`: the table says Some(\"5011\"), docker-compose.yml says `5001`"),
        "{problems}"
    );
    assert!(
        problems.contains("docs/docker.md:4: docker-compose.yml reads no `WEB_PORT`"),
        "{problems}"
    );
    assert!(
        problems.contains("`DB_PORT` (docker-compose.yml) is in no compose variable table"),
        "{problems}"
    );
}
