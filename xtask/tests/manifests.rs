//! The deployment manifests behave through outages, rollouts and drains:
//! every Kubernetes object file, the Swarm stack and the compose files are
//! read and checked for what a cluster would otherwise show only under
//! load (see docs/manifests.md):
//!
//! - no readiness probe asks a store (`/readyz`): a store outage must not
//!   take every replica out of its Service at once;
//! - a Deployment (or Swarm service) that serves traffic has a drain delay
//!   after SIGTERM, and a grace period that covers it plus the worst drain;
//! - every Pod meets the `restricted` Pod Security level;
//! - Redis runs with `maxmemory` (leaving half its memory limit to the AOF
//!   rewrite's fork) and `maxmemory-policy noeviction`;
//! - a Deployment with more than one replica has a PodDisruptionBudget;
//! - a store's Service is headless;
//! - `k8s/Kustomization` lists every object file and names the
//!   service images in one place.
//!
//! Each check is a function from manifests to problems; the tests at the
//! end feed each one a copy of a real manifest broken on purpose, so the
//! failing case stays in the suite. Reads files only; well under a second.

mod manifest_checks;

use std::time::Duration;

use manifest_checks::compose::*;
use manifest_checks::k8s::*;
use manifest_checks::{Manifest, docker_duration, k8s, load, quantity_bytes, read, redis_bytes};

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n"));
}

#[test]
fn no_readiness_probe_asks_the_stores() {
    assert_none("readiness probes", readiness_asking_stores(&k8s()));
}

#[test]
fn every_deployment_serving_traffic_drains_within_its_grace_period() {
    assert_none("drains", drains_uncovered(&k8s()));
    assert_none(
        "drains",
        compose_drains_uncovered(&load("docker-stack.yml"), true),
    );
    for compose in ["docker-compose.yml", "docker-compose.ha.yml"] {
        assert_none("drains", compose_drains_uncovered(&load(compose), false));
    }
}

#[test]
fn every_pod_meets_the_restricted_pod_security_level() {
    assert_none("pod security", pods_not_restricted(&k8s()));
}

#[test]
fn redis_runs_with_maxmemory_and_noeviction_everywhere() {
    assert_none("Redis memory", k8s_redis_unbounded(&k8s()));
    assert_none(
        "Redis memory",
        compose_redis_unbounded(&load("docker-stack.yml"), true),
    );
    for compose in ["docker-compose.yml", "docker-compose.ha.yml"] {
        assert_none(
            "Redis memory",
            compose_redis_unbounded(&load(compose), false),
        );
    }
}

#[test]
fn every_deployment_with_several_replicas_has_a_disruption_budget() {
    assert_none("disruption budgets", budgets_missing(&k8s()));
}

#[test]
fn the_stores_services_are_headless() {
    assert_none("store services", store_services_not_headless(&k8s()));
}

#[test]
fn the_kustomization_applies_every_object_file_and_names_the_images() {
    assert_none(
        "kustomization",
        kustomization_gaps(&load("k8s/Kustomization"), &k8s()),
    );
}

/// `path`'s text with `from` replaced by `to` (which must occur).
fn broken(path: &str, from: &str, to: &str) -> Manifest {
    let original = read(path);
    assert!(original.contains(from), "{path} no longer holds {from:?}");
    Manifest::parse(path, &original.replacen(from, to, 1))
}

fn assert_caught(problems: Vec<String>, expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "the broken manifest was not caught (wanted {expected:?}): {problems:?}"
    );
}

#[test]
fn a_readiness_probe_on_readyz_is_caught() {
    let vote = broken("k8s/vote.yaml", "path: /servingz", "path: /readyz");
    assert_caught(readiness_asking_stores(&[vote]), "asks the stores");
}

#[test]
fn a_missing_drain_delay_or_a_short_grace_period_is_caught() {
    let no_delay = broken(
        "k8s/vote.yaml",
        "name: SHUTDOWN_DELAY_SECONDS\n              value: \"5\"",
        "name: SHUTDOWN_DELAY_SECONDS\n              value: \"0\"",
    );
    assert_caught(drains_uncovered(&[no_delay]), "stops accepting at once");
    let short = broken(
        "k8s/result.yaml",
        "terminationGracePeriodSeconds: 30",
        "terminationGracePeriodSeconds: 10",
    );
    assert_caught(drains_uncovered(&[short]), "does not cover");
    let swarm = broken(
        "docker-stack.yml",
        "      SHUTDOWN_DELAY_SECONDS: \"5\"\n    stop_grace_period: 30s",
        "      SHUTDOWN_DELAY_SECONDS: \"5\"\n    stop_grace_period: 10s",
    );
    assert_caught(compose_drains_uncovered(&swarm, true), "does not cover");
    let compose = broken(
        "docker-compose.yml",
        "stop_grace_period: 20s",
        "stop_grace_period: 5s",
    );
    assert_caught(compose_drains_uncovered(&compose, false), "does not cover");
}

#[test]
fn a_pod_short_of_the_restricted_level_is_caught() {
    let escalating = broken(
        "k8s/redis.yaml",
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    assert_caught(
        pods_not_restricted(&[escalating]),
        "allowPrivilegeEscalation",
    );
    let root = broken("k8s/db.yaml", "runAsNonRoot: true", "runAsNonRoot: false");
    assert_caught(pods_not_restricted(&[root]), "runAsNonRoot");
    let no_seccomp = broken(
        "k8s/worker.yaml",
        "type: RuntimeDefault",
        "type: Unconfined",
    );
    assert_caught(pods_not_restricted(&[no_seccomp]), "seccompProfile");
    let capable = broken("k8s/vote.yaml", "drop: [\"ALL\"]", "drop: [\"NET_RAW\"]");
    assert_caught(pods_not_restricted(&[capable]), "drop ALL");
}

#[test]
fn redis_without_maxmemory_or_noeviction_is_caught() {
    let k8s_unbounded = broken("k8s/redis.yaml", "- --maxmemory\n            - 128mb\n", "");
    assert_caught(k8s_redis_unbounded(&[k8s_unbounded]), "without --maxmemory");
    let k8s_evicting = broken("k8s/redis.yaml", "- noeviction", "- allkeys-lru");
    assert_caught(k8s_redis_unbounded(&[k8s_evicting]), "noeviction");
    let k8s_too_big = broken("k8s/redis.yaml", "memory: 384Mi", "memory: 200Mi");
    assert_caught(k8s_redis_unbounded(&[k8s_too_big]), "less than half");
    let stack = broken(
        "docker-stack.yml",
        "      - --maxmemory-policy\n      - noeviction\n",
        "",
    );
    assert_caught(compose_redis_unbounded(&stack, true), "noeviction");
    let compose = broken(
        "docker-compose.yml",
        "      - --maxmemory\n      - 128mb\n",
        "",
    );
    assert_caught(
        compose_redis_unbounded(&compose, false),
        "without --maxmemory",
    );
}

#[test]
fn a_deployment_with_replicas_and_no_budget_is_caught() {
    let worker = broken(
        "k8s/worker.yaml",
        "kind: PodDisruptionBudget",
        "kind: NotABudget",
    );
    assert_caught(budgets_missing(&[worker]), "no PodDisruptionBudget");
}

#[test]
fn a_store_service_with_a_virtual_ip_is_caught() {
    let db = broken("k8s/db.yaml", "clusterIP: None", "type: ClusterIP");
    assert_caught(store_services_not_headless(&[db]), "not headless");
}

#[test]
fn an_object_file_missing_from_the_kustomization_is_caught() {
    let kustomization = broken("k8s/Kustomization", "  - redis.yaml\n", "");
    assert_caught(
        kustomization_gaps(&kustomization, &k8s()),
        "k8s/redis.yaml: not listed",
    );
    let unnamed = broken(
        "k8s/Kustomization",
        "- name: voting-app/vote",
        "- name: someone/vote",
    );
    assert_caught(kustomization_gaps(&unnamed, &k8s()), "is not named");
}

#[test]
fn sizes_and_durations_read_as_the_tools_read_them() {
    assert_eq!(quantity_bytes("384Mi", false), Some(384 << 20));
    assert_eq!(quantity_bytes("512M", false), Some(512_000_000));
    assert_eq!(quantity_bytes("384M", true), Some(384 << 20));
    assert_eq!(redis_bytes("128mb"), Some(128 << 20));
    assert_eq!(redis_bytes("128m"), Some(128_000_000));
    assert_eq!(docker_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(docker_duration("30x"), None);
}
