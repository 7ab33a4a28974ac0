//! The deployment files agree with the services about the admin port.
//!
//! Each service serves `/healthz`, `/readyz` and `/metrics` on its admin
//! listener, whose default port is a constant of its crate
//! (`DEFAULT_ADMIN_PORT`: worker 8080, vote 8081, result 8082, hits 8083).
//! Nothing but this test ties the files that name those ports to them: the
//! k8s probes and Prometheus annotations, the scrape configs, the compose
//! and Swarm healthchecks, the Dockerfiles and the offline container proof.
//! A port changed in one place and not the others fails here, in
//! `cargo test`, rather than as a pod that never turns ready.
//!
//! Reads files only; takes well under a second.

mod support;

use support::{read, repo};

use yaml_rust2::{Yaml, YamlLoader};

/// A service, the binary that runs it and its admin port.
struct Service {
    name: &'static str,
    admin_port: u16,
}

const VOTE: Service = Service {
    name: "vote",
    admin_port: vote::DEFAULT_ADMIN_PORT,
};
const RESULT: Service = Service {
    name: "result",
    admin_port: result::DEFAULT_ADMIN_PORT,
};
const WORKER: Service = Service {
    name: "worker",
    admin_port: worker::DEFAULT_ADMIN_PORT,
};
const HITS: Service = Service {
    name: "hits",
    admin_port: hits::DEFAULT_ADMIN_PORT,
};

fn yaml(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
}

/// A scalar as text, whether YAML typed it as a string or a number.
fn text(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

fn list(value: &Yaml) -> &[Yaml] {
    value.as_vec().map_or(&[], Vec::as_slice)
}

/// The value of environment variable `name` in a k8s container's `env`.
fn k8s_env(container: &Yaml, name: &str) -> Option<String> {
    list(&container["env"])
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| text(&e["value"]))
}

#[test]
fn the_services_have_distinct_admin_ports() {
    let mut ports = [VOTE, RESULT, WORKER, HITS].map(|s| s.admin_port);
    ports.sort_unstable();
    let before = ports.len();
    let mut distinct = ports.to_vec();
    distinct.dedup();
    assert_eq!(distinct.len(), before, "admin ports clash: {ports:?}");
}

#[test]
fn k8s_probes_and_scrape_annotations_use_each_services_admin_port() {
    for service in [VOTE, RESULT, WORKER] {
        let path = format!("k8s/{}.yaml", service.name);
        let docs = yaml(&path);
        let port = service.admin_port.to_string();
        let deployment = docs
            .iter()
            .find(|d| d["kind"].as_str() == Some("Deployment"))
            .unwrap_or_else(|| panic!("{path} has no Deployment"));
        let template = &deployment["spec"]["template"];

        let annotations = &template["metadata"]["annotations"];
        assert_eq!(
            text(&annotations["prometheus.io/scrape"]).as_deref(),
            Some("true"),
            "{path}: pods not annotated for scraping"
        );
        assert_eq!(
            text(&annotations["prometheus.io/port"]).as_deref(),
            Some(port.as_str()),
            "{path}: prometheus.io/port is not {}'s admin port",
            service.name
        );
        assert_eq!(
            text(&annotations["prometheus.io/path"]).as_deref(),
            Some("/metrics"),
            "{path}: prometheus.io/path"
        );

        let container = list(&template["spec"]["containers"])
            .iter()
            .find(|c| c["name"].as_str() == Some(service.name))
            .unwrap_or_else(|| panic!("{path} has no container {}", service.name));
        let admin = list(&container["ports"])
            .iter()
            .find(|p| p["name"].as_str() == Some("admin"))
            .unwrap_or_else(|| panic!("{path}: no container port named admin"));
        assert_eq!(
            text(&admin["containerPort"]).as_deref(),
            Some(port.as_str()),
            "{path}: the admin container port"
        );
        if let Some(set) = k8s_env(container, "ADMIN_PORT") {
            assert_eq!(set, port, "{path}: ADMIN_PORT");
        }
        for (probe, endpoint) in [
            ("readinessProbe", "/servingz"),
            ("livenessProbe", "/healthz"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(endpoint), "{path}: {probe} path");
            let target = text(&get["port"]);
            assert!(
                target.as_deref() == Some("admin") || target.as_deref() == Some(port.as_str()),
                "{path}: {probe} asks port {target:?}, not the admin port {port}"
            );
        }

        // The admin listener is for the kubelet and Prometheus, not visitors.
        for svc in docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some("Service"))
        {
            for p in list(&svc["spec"]["ports"]) {
                let target = text(&p["targetPort"]);
                assert!(
                    target.as_deref() != Some("admin") && target.as_deref() != Some(port.as_str()),
                    "{path}: a Service exposes the admin port"
                );
            }
        }
    }
}

/// The Prometheus configuration the Kubernetes ConfigMap carries.
fn k8s_prometheus_config() -> Vec<Yaml> {
    let path = "k8s/prometheus-config.yaml";
    let docs = yaml(path);
    let text = docs[0]["data"]["prometheus.yml"]
        .as_str()
        .unwrap_or_else(|| panic!("{path} carries no prometheus.yml"));
    YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{path}: prometheus.yml: {e}"))
}

#[test]
fn the_prometheus_scrape_config_follows_the_pod_annotations() {
    let docs = k8s_prometheus_config();
    let jobs = list(&docs[0]["scrape_configs"]);
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("voting-app"))
        .expect("k8s/prometheus-config.yaml has the voting-app job");
    let rules = list(&job["relabel_configs"]);
    let sources = |rule: &Yaml| -> Vec<String> {
        list(&rule["source_labels"])
            .iter()
            .filter_map(text)
            .collect()
    };
    let with_source = |label: &str| {
        rules
            .iter()
            .find(|r| sources(r).iter().any(|s| s == label))
            .unwrap_or_else(|| panic!("no relabelling reads {label}"))
    };
    let keep = with_source("__meta_kubernetes_pod_annotation_prometheus_io_scrape");
    assert_eq!(keep["action"].as_str(), Some("keep"));
    assert_eq!(text(&keep["regex"]).as_deref(), Some("true"));
    let path = with_source("__meta_kubernetes_pod_annotation_prometheus_io_path");
    assert_eq!(path["target_label"].as_str(), Some("__metrics_path__"));
    let port = with_source("__meta_kubernetes_pod_annotation_prometheus_io_port");
    assert_eq!(port["target_label"].as_str(), Some("__address__"));
    // The rules select on `service`: it must come from the app's name.
    let service = with_source("__meta_kubernetes_pod_label_app_kubernetes_io_name");
    assert_eq!(service["target_label"].as_str(), Some("service"));
}

/// `(file, compose service, service)`: where each service's container is
/// described for Docker.
const COMPOSED: [(&str, &str, Service); 7] = [
    ("docker-compose.yml", "vote", VOTE),
    ("docker-compose.yml", "result", RESULT),
    ("docker-compose.yml", "worker", WORKER),
    ("docker-stack.yml", "vote", VOTE),
    ("docker-stack.yml", "result", RESULT),
    ("docker-stack.yml", "worker", WORKER),
    ("hits/docker-compose.yml", "app", HITS),
];

#[test]
fn compose_and_swarm_keep_the_admin_port_and_check_health_through_it() {
    for (path, name, service) in COMPOSED {
        let docs = yaml(path);
        let entry = &docs[0]["services"][name];
        assert!(!entry.is_badvalue(), "{path} has no service {name}");
        let port = service.admin_port.to_string();
        // Whatever sets ADMIN_PORT (nothing, so the image's default holds)
        // sets the service's own.
        let env = &entry["environment"];
        let set = match env {
            Yaml::Hash(_) => text(&env["ADMIN_PORT"]),
            Yaml::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str()?.strip_prefix("ADMIN_PORT=").map(str::to_owned))
                .next(),
            _ => None,
        };
        if let Some(set) = set {
            assert_eq!(set, port, "{path}: {name} sets ADMIN_PORT");
        }
        // The admin port is never published.
        for published in list(&entry["ports"]).iter().filter_map(text) {
            let inside = published.rsplit(':').next().unwrap_or_default();
            assert_ne!(inside, port, "{path}: {name} publishes its admin port");
        }
        // The healthcheck, where the file sets one, is the binary's own
        // subcommand (which asks the admin port); hits's is its image's.
        let test = list(&entry["healthcheck"]["test"]);
        if !test.is_empty() {
            let words: Vec<String> = test.iter().filter_map(text).collect();
            assert_eq!(
                words.get(1..3),
                Some(
                    &[
                        format!("/usr/local/bin/{}", service.name),
                        "healthcheck".to_owned()
                    ][..]
                ),
                "{path}: {name}'s healthcheck is {words:?}"
            );
        }
    }
}

#[test]
fn the_images_default_to_the_admin_port_and_check_health_through_it() {
    for (path, service) in [
        ("Dockerfile.vote", VOTE),
        ("Dockerfile.result", RESULT),
        ("Dockerfile.worker", WORKER),
        ("hits/Dockerfile", HITS),
    ] {
        let dockerfile = read(path);
        let port = service.admin_port.to_string();
        let env = dockerfile
            .lines()
            .find_map(|l| l.trim().strip_prefix("ENV ADMIN_PORT="))
            .unwrap_or_else(|| panic!("{path} sets no ADMIN_PORT"));
        assert_eq!(env, port, "{path}: ENV ADMIN_PORT");
        let exposed = dockerfile
            .lines()
            .find_map(|l| l.trim().strip_prefix("EXPOSE "))
            .unwrap_or_else(|| panic!("{path} exposes nothing"));
        assert!(
            exposed.split_whitespace().any(|p| p == port),
            "{path}: EXPOSE {exposed} lacks the admin port {port}"
        );
        let healthcheck = dockerfile
            .split("HEALTHCHECK")
            .nth(1)
            .unwrap_or_else(|| panic!("{path} has no HEALTHCHECK"));
        assert!(
            healthcheck.contains(&format!("{}\", \"healthcheck\"", service.name)),
            "{path}: the HEALTHCHECK does not run `{} healthcheck`",
            service.name
        );
    }
}

#[test]
fn the_container_proof_scrapes_each_admin_port() {
    // Step 5 of scripts/docker-proof.sh scrapes the voting app's services
    // from back-tier, step 6 the hit counter from its project's network.
    let compose = "scripts/proof/5-compose.sh";
    let hits = "scripts/proof/6-hits.sh";
    let scrapes = [
        (VOTE, compose, format!("vote:{}:", VOTE.admin_port)),
        (RESULT, compose, format!("result:{}:", RESULT.admin_port)),
        (WORKER, compose, format!("worker:{}:", WORKER.admin_port)),
        (
            HITS,
            hits,
            format!("\"$hits_app\" {} /metrics", HITS.admin_port),
        ),
    ];
    for (service, step, scrape) in scrapes {
        assert!(
            read(step).contains(&scrape),
            "{step} does not scrape {}'s admin port ({scrape})",
            service.name
        );
    }
}

#[test]
fn the_compose_prometheus_scrapes_each_services_admin_port() {
    let path = "monitoring/prometheus.yml";
    let docs = yaml(path);
    for service in [VOTE, RESULT, WORKER] {
        let job = list(&docs[0]["scrape_configs"])
            .iter()
            .find(|j| j["job_name"].as_str() == Some(service.name))
            .unwrap_or_else(|| panic!("{path} has no job {}", service.name));
        let sd = &list(&job["dns_sd_configs"])[0];
        assert_eq!(
            list(&sd["names"])
                .iter()
                .filter_map(text)
                .collect::<Vec<_>>(),
            [service.name],
            "{path}: job {} discovers another service",
            service.name
        );
        assert_eq!(
            text(&sd["port"]),
            Some(service.admin_port.to_string()),
            "{path}: job {} scrapes another port than the admin port",
            service.name
        );
        let labels = list(&job["relabel_configs"]);
        assert!(
            labels
                .iter()
                .any(|r| r["target_label"].as_str() == Some("service")
                    && text(&r["replacement"]).as_deref() == Some(service.name)),
            "{path}: job {} does not label its series service={}",
            service.name,
            service.name
        );
    }
}

/// The files `kubectl apply -f k8s/` reads: `.yaml`, `.yml` and `.json`.
fn kubectl_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("k8s"))
        .expect("k8s/ exists")
        .map(|entry| entry.expect("k8s/ is readable").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .filter(|name| {
            [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
        .map(|name| format!("k8s/{name}"))
        .collect();
    files.sort();
    files
}

/// Why `doc` is not a Kubernetes object, if it is not.
fn not_an_object(doc: &Yaml) -> Option<String> {
    if doc.as_hash().is_none() {
        return Some("not a mapping".into());
    }
    ["apiVersion", "kind"]
        .iter()
        .find(|key| doc[**key].as_str().is_none_or(str::is_empty))
        .map(|key| format!("no `{key}`"))
        .or_else(|| {
            doc["metadata"]["name"]
                .as_str()
                .is_none()
                .then(|| "no `metadata.name`".into())
        })
}

#[test]
fn every_file_kubectl_reads_in_k8s_is_a_kubernetes_object() {
    let files = kubectl_files();
    assert!(files.iter().any(|f| f == "k8s/vote.yaml"), "{files:?}");
    let mut problems = Vec::new();
    for file in &files {
        for (i, doc) in yaml(file).iter().enumerate() {
            if let Some(why) = not_an_object(doc) {
                problems.push(format!(
                    "{file}, document {}: {why} (`kubectl apply -f k8s/` reads every .yaml, \
                     .yml and .json file there)",
                    i + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_file_that_is_not_an_object_is_named() {
    let scrape = YamlLoader::load_from_str("- job_name: voting-app\n").unwrap();
    assert_eq!(not_an_object(&scrape[0]).as_deref(), Some("not a mapping"));
    let config = YamlLoader::load_from_str("global: {}\nscrape_configs: []\n").unwrap();
    assert_eq!(
        not_an_object(&config[0]).as_deref(),
        Some("no `apiVersion`")
    );
    let object =
        YamlLoader::load_from_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
            .unwrap();
    assert_eq!(not_an_object(&object[0]), None);
}
