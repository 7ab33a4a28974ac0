//! Reading the replicated Postgres's state: which node is the primary,
//! when a write goes through HAProxy again after a failover, and whether
//! the standby is synchronous in Postgres's, Patroni's and HAProxy's eyes.
//! Each probe opens a fresh connection with a deadline, so a dead node is
//! an answer, not a hang.

use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::{Connection, PgConnection};

use super::{PostgresHa, haproxy, pg_url};
use crate::ha::{loopback, wait_for};

/// How long [`PostgresHa::start`] and [`PostgresHa::restart_node`] wait
/// for the standby to become synchronous and HAProxy to route to both.
pub(super) const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one connection attempt or one probe query may take.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl PostgresHa {
    /// The node whose Postgres is a primary (not in recovery).
    pub async fn primary_node(&self) -> anyhow::Result<usize> {
        let mut primaries = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.patroni.is_none() {
                continue;
            }
            let url = pg_url(node.pg_port, "postgres");
            if let Ok((false,)) = probe::<(bool,)>(&url, "SELECT pg_is_in_recovery()").await {
                primaries.push(i);
            }
        }
        match primaries[..] {
            [one] => Ok(one),
            [] => bail!("no node is a primary"),
            _ => bail!("nodes {primaries:?} all claim to be primary"),
        }
    }

    /// Waits until a write through the primary endpoint succeeds (after a
    /// kill: until the standby has taken the lock, been promoted, and
    /// HAProxy routes to it); returns the node that took the write.
    pub async fn wait_for_failover(&self, deadline: Duration) -> anyhow::Result<usize> {
        let url = self.url("postgres");
        wait_for("a writable primary behind HAProxy", deadline, || async {
            // `txid_current()` takes a transaction id, so it fails on a
            // standby and its commit waits for the synchronous standby.
            let (_, port) =
                probe::<(i64, i32)>(&url, "SELECT txid_current(), inet_server_port()").await?;
            let node = self
                .nodes
                .iter()
                .position(|n| i32::from(n.pg_port) == port)
                .with_context(|| format!("HAProxy reached port {port}, none of our nodes"))?;
            Ok(Some(node))
        })
        .await
    }

    /// Waits until every node runs, one is the primary with the others as
    /// synchronous streaming standbys, and HAProxy's primary endpoint
    /// routes to the primary alone and its standby endpoint to the rest.
    pub async fn wait_healthy(&self, deadline: Duration) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.nodes.iter().all(|n| n.patroni.is_some()),
            "a node is stopped; restart it first"
        );
        let socket = self.stats_socket();
        wait_for("a synchronous standby behind HAProxy", deadline, || async {
            let primary = self.primary_node().await?;
            let mut conn = connect(&self.node_url(primary, "postgres")).await?;
            let sync: Vec<String> = sqlx::query_scalar(
                "SELECT application_name FROM pg_stat_replication \
                 WHERE state = 'streaming' AND sync_state = 'sync' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await?;
            let _ = conn.close().await;
            let mut standbys: Vec<String> = (0..self.nodes.len())
                .filter(|&i| i != primary)
                .map(|i| self.nodes[i].name.clone())
                .collect();
            standbys.sort();
            let mut readers = haproxy::up_servers(&socket, "replicas").await?;
            readers.sort();
            let writers = haproxy::up_servers(&socket, "primary").await?;
            // Postgres reports the standby synchronous a moment before
            // Patroni records it in etcd (2 s later in Patroni 3.0); only
            // then would Patroni promote it if the primary died.
            for (i, node) in self.nodes.iter().enumerate() {
                if i != primary && patroni_status(node.rest_port, "/sync").await? != 200 {
                    return Ok(None);
                }
            }
            Ok((sync == standbys
                && readers == standbys
                && writers == [self.nodes[primary].name.clone()])
            .then_some(()))
        })
        .await
    }
}

/// A fresh connection to `url`, within [`PROBE_TIMEOUT`].
async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect(url))
        .await
        .context("connecting timed out")?
        .context("connecting")
}

/// Runs `sql` (one row) on a fresh connection to `url`.
async fn probe<T>(url: &str, sql: &'static str) -> anyhow::Result<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut conn = connect(url).await?;
    let row = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_as::<_, T>(sql).fetch_one(&mut conn),
    )
    .await
    .context("query timed out")??;
    let _ = conn.close().await;
    Ok(row)
}

/// The HTTP status Patroni's REST API answers for `path` (e.g. `/sync`:
/// 200 only on the standby etcd names synchronous), asked the way HAProxy
/// asks: `OPTIONS`, to which Patroni sends the status line alone.
async fn patroni_status(rest_port: u16, path: &str) -> anyhow::Result<u16> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(loopback(rest_port)).await?;
        stream
            .write_all(format!("OPTIONS {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await?;
        let mut status_line = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut status_line)
            .await?;
        anyhow::Ok(status_line)
    };
    let status_line = tokio::time::timeout(PROBE_TIMEOUT, ask)
        .await
        .context("Patroni's REST API did not answer")??;
    // "HTTP/1.0 200 OK"
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("Patroni answered {status_line:?}"))
}
