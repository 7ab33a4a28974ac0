//! `up --monitoring`: Debian's `prometheus` binary scraping the stack's
//! admin listeners, with the rules every Prometheus of the project loads
//! (`monitoring/rules/`).
//!
//! The configuration is written for this run (the admin ports are free
//! ports picked at start) into a scratch folder that also holds its data,
//! both removed when the stack stops. Every series gets the `service`
//! label the rules select on, as in compose and Kubernetes. Short scrape
//! and evaluation intervals (2 s) make a stalled worker show within
//! seconds. Prometheus listens on the stack's bind address.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

use super::{Service, Stack, StackOptions, forward_output, wait_ready};

/// How often Prometheus scrapes and evaluates the rules.
pub const INTERVAL: &str = "2s";

/// The configuration: one job per service, scraping `targets` (its admin
/// listener's `host:port`), loading the rule files in `rules_dir`.
pub fn config(targets: &[(&str, String)], rules_dir: &Path) -> String {
    let mut text = format!(
        "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
         rule_files:\n  - {}/*.yml\nscrape_configs:\n",
        rules_dir.display()
    );
    for (service, target) in targets {
        text.push_str(&format!(
            "  - job_name: {service}\n    static_configs:\n      - targets: [\"{target}\"]\n        \
             labels:\n          service: {service}\n"
        ));
    }
    text
}

/// `host:port` of a URL like `http://127.0.0.1:8081/`.
fn host_port(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url} is not an http URL"))?;
    Ok(rest.trim_end_matches('/').to_owned())
}

impl Stack {
    /// Starts Prometheus on `port` of the stack's bind address, scraping
    /// vote, result and worker; waits until it is ready. It stops first
    /// when the stack stops. Returns its URL.
    pub async fn add_prometheus(
        &mut self,
        options: &StackOptions,
        port: u16,
        rules_dir: &Path,
    ) -> anyhow::Result<String> {
        let targets = [
            ("vote", host_port(&self.vote_admin_url)?),
            ("result", host_port(&self.result_admin_url)?),
            ("worker", host_port(&self.worker_admin_url)?),
        ];
        let dir = tempfile::Builder::new()
            .prefix("xtask-prometheus")
            .tempdir()
            .context("a folder for Prometheus")?;
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config(&targets, rules_dir))
            .context("writing prometheus.yml")?;
        let listen = SocketAddr::new(options.bind_address()?, port);
        // As the services: its own process group, SIGTERM if xtask dies.
        let mut cmd = Command::new("setpriv");
        cmd.arg("--pdeathsig=TERM")
            .arg("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .context("starting prometheus (apt-get install prometheus)")?;
        forward_output("prom", &mut child, &options.logs).await?;
        self.services.push(Service {
            name: "prometheus",
            child,
        });
        self.prometheus_dir = Some(dir);
        let url = format!("http://{listen}/");
        wait_ready(
            "prometheus",
            &format!("{url}-/ready"),
            Duration::from_secs(30),
        )
        .await?;
        self.listening.push(("prometheus", url.clone()));
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_is_a_job_with_its_label() {
        let text = config(
            &[
                ("vote", "127.0.0.1:1".to_owned()),
                ("worker", "127.0.0.1:2".to_owned()),
            ],
            Path::new("/r"),
        );
        assert!(text.contains("rule_files:\n  - /r/*.yml\n"), "{text}");
        assert!(
            text.contains(
                "  - job_name: worker\n    static_configs:\n      - targets: [\"127.0.0.1:2\"]\n        labels:\n          service: worker\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn admin_urls_become_targets() {
        assert_eq!(
            host_port("http://127.0.0.1:8081/").ok().as_deref(),
            Some("127.0.0.1:8081")
        );
        assert!(host_port("https://x/").is_err());
    }
}
