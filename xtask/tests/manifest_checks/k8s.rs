//! Checks on the Kubernetes objects in k8s/.

use std::time::Duration;

use yaml_rust2::Yaml;

use super::*;

/// Readiness probes that ask a store: `/readyz`, or the `healthcheck`
/// subcommand without `--live` (which asks `/readyz`).
pub fn readiness_asking_stores(manifests: &[Manifest]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in manifests {
        for object in &m.docs {
            let Some(spec) = pod_spec(object) else {
                continue;
            };
            for c in containers(spec) {
                let probe = &c["readinessProbe"];
                let path = probe["httpGet"]["path"].as_str();
                let command: Vec<&str> = list(&probe["exec"]["command"])
                    .iter()
                    .filter_map(Yaml::as_str)
                    .collect();
                let asks_readyz = path.is_some_and(|p| p.starts_with("/readyz"))
                    || (command.contains(&"healthcheck") && !command.contains(&"--live"));
                if asks_readyz {
                    problems.push(format!(
                        "{}: {}'s readiness probe asks the stores (/readyz): a store outage takes every replica out of its Service",
                        m.path,
                        name(object)
                    ));
                }
            }
        }
    }
    problems
}

/// Deployments a Service sends traffic to whose pods stop at once on
/// SIGTERM, or whose grace period does not cover the delay and the drain.
pub fn drains_uncovered(manifests: &[Manifest]) -> Vec<String> {
    let services: Vec<&Yaml> = manifests
        .iter()
        .flat_map(|m| m.of_kind("Service"))
        .collect();
    let mut problems = Vec::new();
    for m in manifests {
        for object in m.of_kind("Deployment") {
            let labels = pod_labels(object);
            if !services
                .iter()
                .any(|s| selects(&s["spec"]["selector"], labels))
            {
                continue;
            }
            let spec = &object["spec"]["template"]["spec"];
            let grace = spec["terminationGracePeriodSeconds"]
                .as_i64()
                .map_or(Duration::from_secs(30), |s| {
                    Duration::from_secs(s.max(0).unsigned_abs())
                });
            for c in list(&spec["containers"]) {
                let Some(delay) = drain_delay(k8s_env(c, "SHUTDOWN_DELAY_SECONDS")) else {
                    problems.push(format!(
                        "{}: {}: SHUTDOWN_DELAY_SECONDS is not a number",
                        m.path,
                        name(object)
                    ));
                    continue;
                };
                if delay.is_zero() {
                    problems.push(format!(
                        "{}: {} serves traffic and stops accepting at once on SIGTERM (SHUTDOWN_DELAY_SECONDS 0)",
                        m.path,
                        name(object)
                    ));
                } else if grace < delay + worst_drain() {
                    problems.push(format!(
                        "{}: {}: terminationGracePeriodSeconds {grace:?} does not cover the drain delay {delay:?} and the drain {:?}",
                        m.path,
                        name(object),
                        worst_drain()
                    ));
                }
            }
        }
    }
    problems
}

/// What the `restricted` Pod Security level requires of a pod, missing.
pub fn pods_not_restricted(manifests: &[Manifest]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in manifests {
        for object in &m.docs {
            let Some(spec) = pod_spec(object) else {
                continue;
            };
            let pod = &spec["securityContext"];
            let what = format!("{}: {}", m.path, name(object));
            for c in containers(spec) {
                let own = &c["securityContext"];
                let container = format!("{what}, container {}", c["name"].as_str().unwrap_or("?"));
                let non_root = own["runAsNonRoot"]
                    .as_bool()
                    .or(pod["runAsNonRoot"].as_bool());
                if non_root != Some(true) {
                    problems.push(format!("{container}: runAsNonRoot is not true"));
                }
                let user = own["runAsUser"].as_i64().or(pod["runAsUser"].as_i64());
                if user == Some(0) {
                    problems.push(format!("{container}: runs as uid 0"));
                }
                let seccomp = own["seccompProfile"]["type"]
                    .as_str()
                    .or(pod["seccompProfile"]["type"].as_str());
                if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
                    problems.push(format!("{container}: no seccompProfile RuntimeDefault"));
                }
                if own["allowPrivilegeEscalation"].as_bool() != Some(false) {
                    problems.push(format!(
                        "{container}: allowPrivilegeEscalation is not false"
                    ));
                }
                let dropped: Vec<&str> = list(&own["capabilities"]["drop"])
                    .iter()
                    .filter_map(Yaml::as_str)
                    .collect();
                if !dropped.contains(&"ALL") {
                    problems.push(format!("{container}: capabilities do not drop ALL"));
                }
                for added in list(&own["capabilities"]["add"]) {
                    if added.as_str() != Some("NET_BIND_SERVICE") {
                        problems.push(format!("{container}: adds capability {added:?}"));
                    }
                }
                if own["privileged"].as_bool() == Some(true) {
                    problems.push(format!("{container}: privileged"));
                }
            }
            if spec["hostNetwork"].as_bool() == Some(true)
                || spec["hostPID"].as_bool() == Some(true)
            {
                problems.push(format!("{what}: shares the host's namespaces"));
            }
        }
    }
    problems
}

/// Deployments with more than one replica that no PodDisruptionBudget
/// covers: a node drain could evict every replica at once.
pub fn budgets_missing(manifests: &[Manifest]) -> Vec<String> {
    let budgets: Vec<&Yaml> = manifests
        .iter()
        .flat_map(|m| m.of_kind("PodDisruptionBudget"))
        .collect();
    let mut problems = Vec::new();
    for m in manifests {
        for object in m.of_kind("Deployment") {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            let labels = pod_labels(object);
            let covered = budgets
                .iter()
                .any(|b| selects(&b["spec"]["selector"]["matchLabels"], labels));
            if replicas > 1 && !covered {
                problems.push(format!(
                    "{}: {} has {replicas} replicas and no PodDisruptionBudget",
                    m.path,
                    name(object)
                ));
            }
        }
    }
    problems
}

/// Whether a pod runs one of the stores.
pub fn runs_a_store(object: &Yaml) -> bool {
    pod_spec(object).is_some_and(|spec| {
        containers(spec).any(|c| {
            c["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("redis:") || i.starts_with("postgres:"))
        })
    })
}

/// Services in front of a store that have a virtual IP: kube-proxy's IPVS
/// mode drops connections idle for 15 minutes.
pub fn store_services_not_headless(manifests: &[Manifest]) -> Vec<String> {
    let stores: Vec<&Yaml> = manifests
        .iter()
        .flat_map(|m| m.docs.iter())
        .filter(|o| runs_a_store(o))
        .collect();
    let mut problems = Vec::new();
    for m in manifests {
        for service in m.of_kind("Service") {
            let fronts_a_store = stores
                .iter()
                .any(|s| selects(&service["spec"]["selector"], pod_labels(s)));
            if fronts_a_store && service["spec"]["clusterIP"].as_str() != Some("None") {
                problems.push(format!(
                    "{}: Service {} fronts a store and is not headless (clusterIP: None)",
                    m.path,
                    name(service)
                ));
            }
        }
    }
    problems
}

/// Redis containers in Kubernetes objects without a bounded memory.
pub fn k8s_redis_unbounded(manifests: &[Manifest]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in manifests {
        for object in &m.docs {
            let Some(spec) = pod_spec(object) else {
                continue;
            };
            for c in containers(spec) {
                if !c["image"].as_str().is_some_and(|i| i.starts_with("redis:")) {
                    continue;
                }
                let mut command = words(&c["command"]);
                command.extend(words(&c["args"]));
                let limit = c["resources"]["limits"]["memory"]
                    .as_str()
                    .and_then(|q| quantity_bytes(q, false));
                for p in redis_command_problems(&command, limit) {
                    problems.push(format!("{}: {}: Redis {p}", m.path, name(object)));
                }
            }
        }
    }
    problems
}

/// Object files `kubectl apply -k k8s/` would not apply, and service
/// images the kustomization does not name.
pub fn kustomization_gaps(kustomization: &Manifest, objects: &[Manifest]) -> Vec<String> {
    let doc = &kustomization.docs[0];
    let resources: Vec<&str> = list(&doc["resources"])
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    let images: Vec<&str> = list(&doc["images"])
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    let mut problems = Vec::new();
    for m in objects {
        let file = m.path.trim_start_matches("k8s/");
        if m.docs.iter().any(|d| d["kind"].as_str().is_some()) && !resources.contains(&file) {
            problems.push(format!("{}: not listed in {}", m.path, kustomization.path));
        }
        for object in &m.docs {
            let Some(spec) = pod_spec(object) else {
                continue;
            };
            for c in containers(spec) {
                let image = c["image"].as_str().unwrap_or("");
                let repository = image.split(':').next().unwrap_or("");
                if repository.starts_with("voting-app/") && !images.contains(&repository) {
                    problems.push(format!(
                        "{}: image {image} is not named in {}",
                        m.path, kustomization.path
                    ));
                }
            }
        }
    }
    problems
}
