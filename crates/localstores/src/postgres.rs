//! A Postgres cluster of our own: `initdb` in its own directory, the
//! server on a Unix socket there (and a loopback TCP port when asked),
//! superuser `postgres` with trust auth, ready when it logs so.

use std::path::Path;
use std::process::Child;

use anyhow::{Context, bail};

use crate::process::{
    READY_TIMEOUT, as_postgres_user, chown_to_postgres, find_postgres_binary, is_root, kill_child,
    launch, scratch_dir, stop_child,
};

/// Settings for [`PostgresServer::start`].
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// Also listen on `127.0.0.1:<port>`.
    pub tcp_port: Option<u16>,
    /// Flush to disk. Off for tests: faster, and a crash loses only
    /// throwaway data.
    pub fsync: bool,
}

/// A Postgres cluster of our own, superuser `postgres` with trust auth.
pub struct PostgresServer {
    dir: tempfile::TempDir,
    options: PostgresOptions,
    child: Option<Child>,
}

impl PostgresServer {
    pub async fn start(options: PostgresOptions) -> anyhow::Result<Self> {
        let dir = scratch_dir("postgres")?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        if is_root() {
            chown_to_postgres(dir.path())?;
            chown_to_postgres(&data)?;
        }
        let initdb = find_postgres_binary("initdb")?;
        let mut cmd = as_postgres_user(&initdb);
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .args(["--locale=C.UTF-8"]);
        let output = tokio::task::spawn_blocking(move || cmd.output())
            .await?
            .context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let mut server = PostgresServer {
            dir,
            options,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL for database `name` as superuser `postgres`.
    pub fn url(&self, name: &str) -> String {
        match self.options.tcp_port {
            Some(port) => format!("postgres://postgres@127.0.0.1:{port}/{name}"),
            None => format!(
                "postgres://postgres@localhost/{name}?host={}",
                self.socket_dir().display()
            ),
        }
    }

    /// Starts the server after [`stop`](Self::stop) or [`kill`](Self::kill),
    /// on the same data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let postgres = find_postgres_binary("postgres")?;
        let mut cmd = as_postgres_user(&postgres);
        cmd.arg("-D").arg(self.dir.path().join("data"));
        cmd.arg("-k").arg(self.dir.path());
        match self.options.tcp_port {
            Some(port) => cmd.args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"]),
            None => cmd.args(["-c", "listen_addresses="]),
        };
        if !self.options.fsync {
            cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            cmd.args(["-c", "full_page_writes=off"]);
        }
        cmd.args(["-c", "max_connections=300", "-c", "shared_buffers=128MB"]);
        let log = self.dir.path().join("postgres.log");
        self.child = Some(
            launch(
                cmd,
                Some("database system is ready to accept connections"),
                log,
                READY_TIMEOUT,
            )
            .await?,
        );
        Ok(())
    }

    /// Fast shutdown (SIGINT): rolls back open transactions, closes
    /// connections, exits — what `docker stop` does to Postgres.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, "INT");
    }

    /// Kills the postmaster outright (SIGKILL), like a crash. Its backends
    /// notice and exit; the next start runs crash recovery.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Fast shutdown, not SIGKILL: a killed postmaster leaves backends
        // behind for a moment, holding the socket directory we delete.
        self.stop();
    }
}
