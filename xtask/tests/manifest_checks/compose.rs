//! Checks on the compose files and the Swarm stack.

use std::time::Duration;

use super::*;

/// Redis services of a compose or stack file without a bounded memory. A
/// Redis started by a script (docker-compose.ha.yml's nodes) is checked in
/// that script's text; Sentinels hold no data.
pub fn compose_redis_unbounded(file: &Manifest, swarm: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let services = file.docs[0]["services"]
        .as_hash()
        .cloned()
        .unwrap_or_default();
    for (service_name, service) in &services {
        let service_name = service_name.as_str().unwrap_or("?");
        if !service["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("redis:"))
        {
            continue;
        }
        let entrypoint = words(&service["entrypoint"]);
        if entrypoint.iter().any(|w| w.ends_with("sentinel.sh")) {
            continue;
        }
        if let Some(script) = entrypoint.iter().find(|w| w.ends_with(".sh")) {
            let script = read(script.trim_start_matches('/'));
            for needed in ["--maxmemory ", "--maxmemory-policy noeviction"] {
                if !script.contains(needed) {
                    problems.push(format!(
                        "{}: {service_name}: its script runs Redis without {needed}",
                        file.path
                    ));
                }
            }
            continue;
        }
        let limit = if swarm {
            service["deploy"]["resources"]["limits"]["memory"].as_str()
        } else {
            service["mem_limit"].as_str()
        }
        .and_then(|q| quantity_bytes(q, true));
        let command = words(&service["command"]);
        for p in redis_command_problems(&command, limit) {
            // Compose runs Redis without a memory limit by default; the
            // bound is maxmemory itself.
            if !swarm && p.contains("no memory limit") {
                continue;
            }
            problems.push(format!("{}: {service_name}: Redis {p}", file.path));
        }
    }
    problems
}

/// Web services (they publish a port) of a compose or stack file whose
/// stop grace period does not cover their drain delay and drain; in a
/// Swarm stack, also those without a drain delay (the routing mesh needs
/// it).
pub fn compose_drains_uncovered(file: &Manifest, swarm: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let services = file.docs[0]["services"]
        .as_hash()
        .cloned()
        .unwrap_or_default();
    for (service_name, service) in &services {
        let service_name = service_name.as_str().unwrap_or("?");
        let image = service["image"].as_str().unwrap_or("");
        let web = image.starts_with("voting-app/vote") || image.starts_with("voting-app/result");
        if !web {
            continue;
        }
        let delay = drain_delay(text(&service["environment"]["SHUTDOWN_DELAY_SECONDS"]));
        let Some(delay) = delay else {
            problems.push(format!(
                "{}: {service_name}: SHUTDOWN_DELAY_SECONDS is not a number",
                file.path
            ));
            continue;
        };
        if swarm && delay.is_zero() {
            problems.push(format!(
                "{}: {service_name} stops accepting at once on SIGTERM, before the routing mesh drops it",
                file.path
            ));
        }
        let grace = service["stop_grace_period"]
            .as_str()
            .map_or(Some(Duration::from_secs(10)), docker_duration);
        if grace.is_none_or(|g| g < delay + worst_drain()) {
            problems.push(format!(
                "{}: {service_name}: stop_grace_period {grace:?} does not cover the drain delay {delay:?} and the drain {:?}",
                file.path,
                worst_drain()
            ));
        }
    }
    problems
}
