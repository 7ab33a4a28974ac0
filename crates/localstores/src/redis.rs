//! A `redis-server` of our own, on a Unix socket in its own directory
//! (and a loopback TCP port when asked), ready when it logs so.

use std::path::PathBuf;
use std::process::Child;

use crate::process::{
    READY_TIMEOUT, find_binary, kill_child, launch, scratch_dir, server_command, stop_child,
};

/// Settings for [`RedisServer::start`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Also listen on `127.0.0.1:<port>`.
    pub tcp_port: Option<u16>,
    /// Keep an append-only file (fsync every write) so data survives a restart.
    pub appendonly: bool,
    /// With `appendonly`: fsync once a second instead, as the compose file
    /// runs Redis (a crash may lose the last second; a clean stop loses
    /// nothing).
    pub fsync_everysec: bool,
}

/// A `redis-server` of our own.
pub struct RedisServer {
    dir: tempfile::TempDir,
    options: RedisOptions,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(options: RedisOptions) -> anyhow::Result<Self> {
        let dir = scratch_dir("redis")?;
        let mut server = RedisServer {
            dir,
            options,
            child: None,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// The socket path; URLs are built from it.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// A URL for logical database `db` of this server.
    pub fn url(&self, db: u32) -> String {
        match self.options.tcp_port {
            Some(port) => format!("redis://127.0.0.1:{port}/{db}"),
            None => format!("redis+unix://{}?db={db}", self.socket().display()),
        }
    }

    /// Starts the server after [`stop`](Self::stop) or [`kill`](Self::kill),
    /// on the same socket and data directory.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let binary = find_binary("redis-server", "redis-server")?;
        let mut cmd = server_command(&binary);
        cmd.args(["--port", &self.options.tcp_port.unwrap_or(0).to_string()]);
        cmd.args(["--bind", "127.0.0.1"]);
        cmd.arg("--unixsocket").arg(self.socket());
        cmd.args(["--unixsocketperm", "700"]);
        cmd.arg("--dir").arg(self.dir.path());
        cmd.args(["--databases", "10000", "--save", ""]);
        if self.options.appendonly {
            let fsync = if self.options.fsync_everysec {
                "everysec"
            } else {
                "always"
            };
            cmd.args(["--appendonly", "yes", "--appendfsync", fsync]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(["--logfile", "", "--daemonize", "no", "--loglevel", "notice"]);
        let log = self.dir.path().join("redis.log");
        self.child =
            Some(launch(cmd, Some("ready to accept connections"), log, READY_TIMEOUT).await?);
        Ok(())
    }

    /// Shuts the server down gracefully (SIGTERM), as `docker stop` would.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, "TERM");
    }

    /// Kills the server outright (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
