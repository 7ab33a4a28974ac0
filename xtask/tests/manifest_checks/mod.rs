//! Reading the deployment manifests, and the checks `tests/manifests.rs`
//! runs on them: each check is a function from manifests to the problems
//! it finds ([`k8s`] for Kubernetes objects, [`compose`] for the compose
//! and Swarm files).
#![allow(dead_code)]

pub mod compose;
pub mod k8s;

use std::path::{Path, PathBuf};
use std::time::Duration;

use servicekit::http::ServeOptions;
use servicekit::settings::DEFAULT_SHUTDOWN_DELAY_SECONDS;
use yaml_rust2::{Yaml, YamlLoader};

/// One file's YAML documents.
pub struct Manifest {
    pub path: String,
    pub docs: Vec<Yaml>,
}

impl Manifest {
    pub fn parse(path: &str, text: &str) -> Manifest {
        let docs =
            YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
        Manifest {
            path: path.to_owned(),
            docs,
        }
    }

    /// The documents that are Kubernetes objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Yaml> + 'a {
        self.docs
            .iter()
            .filter(move |d| d["kind"].as_str() == Some(kind))
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository")
        .to_owned()
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn load(path: &str) -> Manifest {
    Manifest::parse(path, &read(path))
}

/// Every `k8s/*.yaml`, in name order (the kustomization, `k8s/Kustomization`, has no extension).
pub fn k8s_paths() -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir(repo().join("k8s"))
        .expect("k8s/ exists")
        .map(|e| e.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("k8s/{name}"))
        .collect();
    paths.sort();
    paths
}

pub fn k8s() -> Vec<Manifest> {
    k8s_paths().iter().map(|p| load(p)).collect()
}

pub fn list(value: &Yaml) -> &[Yaml] {
    value.as_vec().map_or(&[], Vec::as_slice)
}

/// A scalar as text, whether YAML typed it as a string or a number.
pub fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn name(object: &Yaml) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("?")
}

/// The pod template of a workload object, or the Pod itself.
pub fn pod_spec(object: &Yaml) -> Option<&Yaml> {
    let spec = match object["kind"].as_str()? {
        "Pod" => &object["spec"],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            &object["spec"]["template"]["spec"]
        }
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => return None,
    };
    (!spec.is_badvalue()).then_some(spec)
}

pub fn pod_labels(object: &Yaml) -> &Yaml {
    match object["kind"].as_str() {
        Some("Pod") => &object["metadata"]["labels"],
        _ => &object["spec"]["template"]["metadata"]["labels"],
    }
}

/// Whether every `key: value` of `selector` is among `labels`.
pub fn selects(selector: &Yaml, labels: &Yaml) -> bool {
    selector.as_hash().is_some_and(|wanted| {
        !wanted.is_empty()
            && wanted
                .iter()
                .all(|(k, v)| labels[k.as_str().unwrap_or("")] == *v)
    })
}

pub fn containers(spec: &Yaml) -> impl Iterator<Item = &Yaml> {
    list(&spec["initContainers"])
        .iter()
        .chain(list(&spec["containers"]))
}

/// The value of environment variable `name` in a k8s container's `env`.
pub fn k8s_env(container: &Yaml, name: &str) -> Option<String> {
    list(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| text(&e["value"]))
}

/// Bytes in a Kubernetes quantity (`384Mi`, `1Gi`, `512M`) or a Docker
/// size (`384M`, binary units).
pub fn quantity_bytes(quantity: &str, docker: bool) -> Option<u64> {
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: u64 = digits.parse().ok()?;
    let unit = &quantity[digits.len()..];
    let factor: u64 = match (unit, docker) {
        ("", _) => 1,
        ("Ki", false) | ("K" | "k" | "KB" | "kb" | "KiB", true) => 1 << 10,
        ("Mi", false) | ("M" | "m" | "MB" | "mb" | "MiB", true) => 1 << 20,
        ("Gi", false) | ("G" | "g" | "GB" | "gb" | "GiB", true) => 1 << 30,
        ("k", false) => 1_000,
        ("M", false) => 1_000_000,
        ("G", false) => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// Bytes in a Redis memory setting (`128mb` is 128·2^20, `128m` 128·10^6).
pub fn redis_bytes(setting: &str) -> Option<u64> {
    let lower = setting.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number: u64 = digits.parse().ok()?;
    let factor: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// A Docker duration (`30s`, `1m30s`, `500ms`).
pub fn docker_duration(value: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let one = match &rest[..unit_len] {
            "h" => Duration::from_secs(3600),
            "m" => Duration::from_secs(60),
            "s" => Duration::from_secs(1),
            "ms" => Duration::from_millis(1),
            _ => return None,
        };
        total += one * u32::try_from(number).ok()?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// The longest a web service takes to stop after its drain delay: open
/// connections get the drain timeout, and nothing outlives the request
/// timeout (result's live pages close when the drain begins).
pub fn worst_drain() -> Duration {
    let options = ServeOptions::default();
    options.drain_timeout + options.request_timeout
}

/// A drain delay as the service reads `SHUTDOWN_DELAY_SECONDS`: unset is
/// the default.
pub fn drain_delay(setting: Option<String>) -> Option<Duration> {
    match setting {
        None => Some(Duration::from_secs(DEFAULT_SHUTDOWN_DELAY_SECONDS)),
        Some(seconds) => seconds.parse().ok().map(Duration::from_secs),
    }
}

/// What is wrong with a Redis command line (`redis-server …` words), given
/// its container's memory limit in bytes.
pub fn redis_command_problems(words: &[String], limit: Option<u64>) -> Vec<String> {
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1))
    };
    let mut problems = Vec::new();
    match after("--maxmemory").map(|v| (v, redis_bytes(v))) {
        None => problems.push("runs without --maxmemory".to_owned()),
        Some((v, None)) => problems.push(format!("--maxmemory {v} is not a size")),
        Some((v, Some(bytes))) => match limit {
            None => problems.push("has no memory limit to size --maxmemory against".to_owned()),
            Some(limit) if bytes.saturating_mul(2) > limit => problems.push(format!(
                "--maxmemory {v} leaves less than half of its {limit}-byte limit to the AOF rewrite's fork"
            )),
            Some(_) => {}
        },
    }
    if after("--maxmemory-policy").map(String::as_str) != Some("noeviction") {
        problems.push("runs without --maxmemory-policy noeviction (queued ballots would be evicted, or none refused)".to_owned());
    }
    problems
}

pub fn words(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => list(value).iter().filter_map(text).collect(),
    }
}
