//! HAProxy in front of the Patroni nodes: one TCP endpoint that always
//! reaches the primary, one for the standbys.
//!
//! HAProxy asks each node's Patroni REST API (`/primary`, `/replica`)
//! rather than Postgres, because only Patroni knows who holds the leader
//! lock. The check uses `OPTIONS`, not `GET`: HAProxy drops the connection
//! once it has read the status line, and Patroni logs a traceback for
//! every `GET` whose body it could not finish writing (twice a second per
//! node), but answers `OPTIONS` with the status line alone.
//! `on-marked-down shutdown-sessions` cuts the connections to a node that
//! stops being the primary, so no client keeps talking to a demoted or
//! isolated node.
//!
//! The stats socket (a Unix socket in the topology's directory, nothing on
//! the network) tells the harness which servers HAProxy considers up.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One Patroni node as HAProxy sees it.
pub(crate) struct Backend<'a> {
    pub name: &'a str,
    pub pg_port: u16,
    pub rest_port: u16,
}

/// The configuration file's text.
pub(crate) fn config(
    stats_socket: &Path,
    primary_port: u16,
    replica_port: u16,
    check_interval: Duration,
    backends: &[Backend<'_>],
) -> String {
    let servers = backends
        .iter()
        .map(|b| {
            format!(
                "  server {} 127.0.0.1:{} check port {}\n",
                b.name, b.pg_port, b.rest_port
            )
        })
        .collect::<String>();
    let inter = check_interval.as_millis();
    let section = |name: &str, port: u16, check: &str| {
        format!(
            "listen {name}\n  bind 127.0.0.1:{port}\n  option httpchk OPTIONS {check}\n  \
             http-check expect status 200\n  \
             default-server inter {inter}ms fall 2 rise 1 on-marked-down shutdown-sessions\n\
             {servers}"
        )
    };
    format!(
        "global\n  maxconn 1000\n  stats socket {socket} mode 600 level admin\n\n\
         defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  \
         timeout server 1h\n  timeout check 2s\n\n{primary}\n{replicas}",
        socket = stats_socket.display(),
        primary = section("primary", primary_port, "/primary"),
        replicas = section("replicas", replica_port, "/replica"),
    )
}

/// The servers of `proxy` (`primary` or `replicas`) that HAProxy
/// currently sends connections to.
pub(crate) async fn up_servers(stats_socket: &Path, proxy: &str) -> anyhow::Result<Vec<String>> {
    let ask = async {
        let mut socket = tokio::net::UnixStream::connect(stats_socket).await?;
        socket.write_all(b"show stat\n").await?;
        let mut csv = String::new();
        socket.read_to_string(&mut csv).await?;
        anyhow::Ok(csv)
    };
    let csv = tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .context("HAProxy's stats socket did not answer")?
        .with_context(|| format!("asking HAProxy at {}", stats_socket.display()))?;
    Ok(parse_up_servers(&csv, proxy))
}

/// From `show stat` CSV (`# pxname,svname,…,status,…`): the servers of
/// `proxy` whose status is `UP` (also `UP 1/2`, going down but still used).
fn parse_up_servers(csv: &str, proxy: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let Some(status) = header
        .trim_start_matches("# ")
        .split(',')
        .position(|c| c == "status")
    else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let (px, sv) = (*fields.first()?, *fields.get(1)?);
            let up = fields.get(status)?.starts_with("UP");
            (px == proxy && sv != "FRONTEND" && sv != "BACKEND" && up).then(|| sv.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_servers_are_read_from_show_stat() {
        let csv = "# pxname,svname,qcur,status,weight\n\
                   primary,FRONTEND,,OPEN,\n\
                   primary,node0,0,UP,1\n\
                   primary,node1,0,DOWN,1\n\
                   primary,BACKEND,0,UP,1\n\
                   replicas,node0,0,DOWN,1\n\
                   replicas,node1,0,UP 1/2,1\n";
        assert_eq!(parse_up_servers(csv, "primary"), ["node0"]);
        assert_eq!(parse_up_servers(csv, "replicas"), ["node1"]);
        assert!(parse_up_servers("", "primary").is_empty());
    }

    #[test]
    fn every_server_is_checked_through_its_rest_port() {
        let text = config(
            Path::new("/d/haproxy.sock"),
            1000,
            1001,
            Duration::from_millis(500),
            &[
                Backend {
                    name: "node0",
                    pg_port: 2000,
                    rest_port: 3000,
                },
                Backend {
                    name: "node1",
                    pg_port: 2001,
                    rest_port: 3001,
                },
            ],
        );
        assert!(text.contains("bind 127.0.0.1:1000\n  option httpchk OPTIONS /primary"));
        assert!(text.contains("bind 127.0.0.1:1001\n  option httpchk OPTIONS /replica"));
        assert_eq!(
            text.matches("server node1 127.0.0.1:2001 check port 3001")
                .count(),
            2
        );
        assert!(text.contains("inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions"));
        assert!(!text.contains("0.0.0.0"));
    }
}
