//! The monitoring configuration is checked by Prometheus's own tool.
//!
//! `monitoring/rules/` holds the recording and alerting rules that every
//! Prometheus of the project loads (compose, Kubernetes, `cargo xtask up
//! --monitoring`); `monitoring/tests/` their `promtool test rules` cases.
//! These tests run `promtool` from Debian's `prometheus` package (`.ci/run`
//! installs it) and fail with its output:
//!
//! - the rules parse and every case passes;
//! - a rule broken on purpose fails its case (so the cases can fail);
//! - every metric a rule reads is one a service declares (a misspelt
//!   name would make an alert that never fires);
//! - the compose scrape configuration is valid with the rules it loads;
//! - the Kubernetes ConfigMap carries the same rules, and its scrape
//!   configuration is valid too.
//!
//! Each `promtool` run takes well under a second; every one is bounded.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::repo;

use yaml_rust2::YamlLoader;

/// How long one `promtool` run may take.
const PROMTOOL_DEADLINE: Duration = Duration::from_secs(60);

/// The files of `monitoring/<dir>`, sorted.
fn files(dir: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(repo().join("monitoring").join(dir))
        .unwrap_or_else(|e| panic!("reading monitoring/{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "monitoring/{dir} holds no .yml file");
    found
}

/// What one `promtool` run said.
struct Run {
    ok: bool,
    output: String,
}

/// Runs `promtool <args>` in `dir`, killing it past the deadline.
fn promtool(dir: &Path, args: &[&str]) -> Run {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("running promtool: {e} (apt-get install prometheus gives it; .ci/run does)")
        });
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waiting for promtool").is_some() {
            break;
        }
        if started.elapsed() > PROMTOOL_DEADLINE {
            let _ = child.kill();
            panic!("promtool {args:?} ran over {PROMTOOL_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("promtool's output");
    Run {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn must_pass(dir: &Path, args: &[&str]) {
    let run = promtool(dir, args);
    assert!(run.ok, "promtool {args:?} failed:\n{}", run.output);
}

fn names(paths: &[PathBuf]) -> Vec<&str> {
    paths
        .iter()
        .map(|p| p.to_str().expect("a UTF-8 path"))
        .collect()
}

#[test]
fn the_rules_are_valid_and_pass_their_unit_tests() {
    let root = repo();
    let rules = files("rules");
    must_pass(&root, &[&["check", "rules"][..], &names(&rules)].concat());
    let tests = files("tests");
    must_pass(&root, &[&["test", "rules"][..], &names(&tests)].concat());
}

/// `monitoring/` copied into a scratch folder, with `edit` applied to
/// `rules/alerts.yml`; the cases read the copy (they name their rule files
/// relative to themselves).
fn broken_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let scratch = tempfile::tempdir().expect("a scratch folder");
    for dir in ["rules", "tests"] {
        std::fs::create_dir(scratch.path().join(dir)).expect("a scratch subfolder");
        for file in files(dir) {
            let text = std::fs::read_to_string(&file).expect("reading a monitoring file");
            let text = if file.ends_with("rules/alerts.yml") {
                let edited = edit(&text);
                assert_ne!(edited, text, "the edit changed nothing");
                edited
            } else {
                text
            };
            let name = file.file_name().expect("a file name");
            std::fs::write(scratch.path().join(dir).join(name), text).expect("writing a copy");
        }
    }
    scratch
}

#[test]
fn a_rule_broken_on_purpose_fails_its_unit_test() {
    // Each edit is a plausible mistake: a wrong operator, a threshold
    // nobody reaches, a selector that matches nothing.
    let mistakes: [(&str, &str, &str); 3] = [
        (
            "BallotBacklogNotStored",
            "unless on() (worker:ballots_stored:rate1m > 0)",
            "and on() (worker:ballots_stored:rate1m > 0)",
        ),
        (
            "BallotDeliverySlow",
            "worker:ballot_delivery_seconds:p99_5m > 10",
            "worker:ballot_delivery_seconds:p99_5m > 30",
        ),
        (
            "BallotsDeadLettered",
            r#"ballots_dead_lettered_total{service="worker"}"#,
            r#"ballots_dead_lettered_total{service="vote"}"#,
        ),
    ];
    for (alert, right, wrong) in mistakes {
        let scratch = broken_copy(|text| text.replace(right, wrong));
        let tests = files("tests")
            .iter()
            .map(|f| {
                let name = f.file_name().expect("a file name").to_string_lossy();
                format!("tests/{name}")
            })
            .collect::<Vec<_>>();
        let tests: Vec<&str> = tests.iter().map(String::as_str).collect();
        // The broken rule still parses: only its unit test can tell.
        must_pass(scratch.path(), &["check", "rules", "rules/alerts.yml"]);
        let run = promtool(scratch.path(), &[&["test", "rules"][..], &tests].concat());
        assert!(
            !run.ok,
            "promtool passed the cases with {alert} broken ({wrong}):\n{}",
            run.output
        );
        assert!(
            run.output.contains(&format!("alertname: {alert}")),
            "promtool failed, but not on {alert}:\n{}",
            run.output
        );
    }
}

/// Every metric the services and the kit declare, with the series a
/// histogram adds, and Prometheus's own `up`.
fn declared_series() -> Vec<String> {
    let declared = [
        vote::metrics::ALL,
        worker::metrics::ALL,
        result::metrics::ALL,
        &servicekit::metric::kit(),
    ]
    .concat();
    let mut names = vec!["up".to_owned()];
    for metric in declared {
        names.push(metric.name.to_owned());
        if metric.kind == servicekit::metric::Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.push(format!("{}{suffix}", metric.name));
            }
        }
    }
    names
}

/// The names an expression reads that look like raw series: identifiers
/// outside quotes, label matchers and `by (...)`, without a `:` (recorded
/// series have one) and not a PromQL function or keyword.
fn series_read(expr: &str) -> Vec<String> {
    const PROMQL: &[&str] = &[
        "sum",
        "max",
        "rate",
        "increase",
        "histogram_quantile",
        "vector",
        "absent",
        "by",
        "on",
        "and",
        "or",
        "unless",
    ];
    let mut out = Vec::new();
    let mut word = String::new();
    let mut depth = 0; // inside `{...}` or `by (...)` there are labels only
    let mut in_quotes = false;
    let mut after_by = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_quotes {
            in_quotes = c != '"';
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let first = word.chars().next().unwrap_or('0');
            if depth == 0
                && !first.is_ascii_digit()
                && !word.contains(':')
                && !PROMQL.contains(&word.as_str())
            {
                out.push(word.clone());
            }
            after_by = word == "by" || word == "on";
            word.clear();
        }
        match c {
            '"' => in_quotes = true,
            '{' => depth += 1,
            '}' => depth -= 1,
            '(' if after_by => {
                depth += 1;
                after_by = false;
            }
            ')' if depth > 0 => depth -= 1,
            c if !c.is_whitespace() => after_by = false,
            _ => {}
        }
    }
    out
}

#[test]
fn every_series_a_rule_reads_is_declared_by_a_service() {
    let declared = declared_series();
    let mut checked = 0;
    for file in files("rules") {
        let text = std::fs::read_to_string(&file).expect("reading a rules file");
        let docs = YamlLoader::load_from_str(&text).expect("rules are YAML");
        for group in docs[0]["groups"].as_vec().expect("groups") {
            for rule in group["rules"].as_vec().expect("rules") {
                let expr = rule["expr"].as_str().expect("every rule has an expr");
                for name in series_read(expr) {
                    assert!(
                        declared.contains(&name),
                        "{}: `{expr}` reads {name}, which no service declares",
                        file.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} series names found in the rules"
    );
}

#[test]
fn the_series_reader_sees_metrics_and_skips_labels() {
    assert_eq!(
        series_read(r#"sum by (vote) (rate(ballots_queued_total{service="vote"}[1m])) > 0"#),
        ["ballots_queued_total"]
    );
    assert_eq!(
        series_read("(a:b:c > 0) unless on() (up_down == 0)"),
        ["up_down"]
    );
}

#[test]
fn the_compose_scrape_configuration_is_valid_with_its_rules() {
    // Compose mounts monitoring/rules at /etc/prometheus/rules: check a copy
    // that reads them where they are, so their loading is checked too.
    let root = repo();
    let config = std::fs::read_to_string(root.join("monitoring/prometheus.yml"))
        .expect("reading monitoring/prometheus.yml");
    let rules = root.join("monitoring/rules");
    let here = config.replace(
        "/etc/prometheus/rules/",
        &format!("{}/", rules.to_str().expect("a UTF-8 path")),
    );
    assert_ne!(here, config, "monitoring/prometheus.yml loads no rules");
    let scratch = tempfile::tempdir().expect("a scratch folder");
    std::fs::write(scratch.path().join("prometheus.yml"), here).expect("writing a copy");
    let run = promtool(scratch.path(), &["check", "config", "prometheus.yml"]);
    assert!(run.ok, "promtool check config failed:\n{}", run.output);
    for rules_file in files("rules") {
        let name = rules_file
            .file_name()
            .expect("a file name")
            .to_string_lossy();
        assert!(
            run.output.contains(name.as_ref()),
            "the configuration did not load {name}:\n{}",
            run.output
        );
    }
}

/// The files the Kubernetes ConfigMap carries: name and text.
fn config_map_files() -> Vec<(String, String)> {
    let path = repo().join("k8s/prometheus-config.yaml");
    let text = std::fs::read_to_string(&path).expect("reading k8s/prometheus-config.yaml");
    let docs = YamlLoader::load_from_str(&text).expect("the ConfigMap is YAML");
    docs[0]["data"]
        .as_hash()
        .expect("the ConfigMap has data")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("a file name").to_owned(),
                v.as_str().expect("a file's text").to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_kubernetes_config_map_carries_the_tested_rules() {
    let carried = config_map_files();
    for rules in files("rules") {
        let name = rules.file_name().expect("a file name").to_string_lossy();
        let tested = std::fs::read_to_string(&rules).expect("reading a rules file");
        let copy = carried
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("k8s/prometheus-config.yaml does not carry {name}"));
        assert!(
            copy.1 == tested,
            "k8s/prometheus-config.yaml carries another {name} than monitoring/rules/{name}: \
             copy the file into the ConfigMap (indented under data.{name})"
        );
    }
}

#[test]
fn the_kubernetes_scrape_configuration_is_valid_with_its_rules() {
    // Debian's promtool has no Kubernetes discovery: the pod discovery is
    // swapped for a static target, the rest is checked as written.
    let scratch = tempfile::tempdir().expect("a scratch folder");
    let dir = format!("{}/", scratch.path().to_str().expect("a UTF-8 path"));
    for (name, text) in config_map_files() {
        let mut text = text.replace("/etc/prometheus/", &dir);
        if name == "prometheus.yml" {
            let swapped = text
                .replace("kubernetes_sd_configs:", "static_configs:")
                .replace("- role: pod", "- targets: [\"vote:8081\"]")
                .replace("namespaces:", "labels:")
                .replace("own_namespace: true", "own_namespace: \"true\"");
            assert_ne!(swapped, text, "no pod discovery to swap");
            text = swapped;
        }
        std::fs::write(scratch.path().join(&name), text).expect("writing a copy");
    }
    let run = promtool(scratch.path(), &["check", "config", "prometheus.yml"]);
    assert!(run.ok, "promtool check config failed:\n{}", run.output);
    assert!(
        run.output.contains("2 rule files found"),
        "the configuration did not load both rule files:\n{}",
        run.output
    );
}
