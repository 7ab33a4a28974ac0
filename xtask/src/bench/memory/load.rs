//! The loads behind the memory figures, as plain bytes on sockets: this
//! tool runs as a debug build, and the work measured must be the
//! service's, not an HTTP client's. Also the `hits` process, which the
//! stack does not start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use crate::stack::wait_ready;

/// Keep-alive connections driving steady load.
const CONCURRENCY: usize = 50;
/// Connections being opened at once during a burst.
const OPENING: usize = 500;

/// `n` connections to `addr`. With `head_bytes` 0, each has had its
/// `GET /` answered in full and sits idle in keep-alive; otherwise each has
/// sent `head_bytes` of a request head (1 KiB headers) and stopped there.
pub async fn open_connections(
    addr: SocketAddr,
    n: usize,
    head_bytes: usize,
) -> anyhow::Result<Vec<TcpStream>> {
    let unfinished: Arc<[u8]> = {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        let header = format!("X-Pad: {}\r\n", "a".repeat(1024 - 9));
        for _ in 0..head_bytes / 1024 {
            head.push_str(&header);
        }
        head.into_bytes().into()
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (gate, unfinished) = (gate.clone(), unfinished.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut stream = TcpStream::connect(addr).await?;
            if head_bytes == 0 {
                stream
                    .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .await?;
                read_response(&mut stream).await?;
            } else {
                stream.write_all(&unfinished).await?;
                // Long enough for the server to have read it all.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(stream)
        });
    }
    let mut open = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        open.push(joined??);
    }
    Ok(open)
}

/// Reads one HTTP/1.1 response (headers, then `Content-Length` bytes).
async fn read_response(stream: &mut TcpStream) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .context("no answer within 30 s")??;
        anyhow::ensure!(read > 0, "connection closed before the answer");
        buf.extend_from_slice(&chunk[..read]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    anyhow::ensure!(head.starts_with("http/1.1 200"), "answered {head:?}");
    // Our pages are sent whole, with their length; without one, the head
    // is as much as can be waited for.
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        let read = stream.read(&mut chunk).await?;
        anyhow::ensure!(read > 0, "connection closed mid-body");
        have += read;
    }
    Ok(())
}

/// `n` `GET /`s to the server at `url` over [`CONCURRENCY`] keep-alive
/// connections; every one must succeed. Plain bytes on a socket rather than
/// an HTTP client: this tool runs as a debug build, and the load must be
/// the service's work, not the client's.
pub async fn get_requests(url: &str, n: u64) -> anyhow::Result<()> {
    let addr = socket_addr(url)?;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let next = next.clone();
        tasks.spawn(async move {
            let mut stream = TcpStream::connect(addr).await?;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                stream
                    .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .await?;
                read_response(&mut stream).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

/// `n` connections to `addr`, [`OPENING`] at a time, each answered once
/// (`GET /`, `Connection: close`) and closed.
pub async fn answered_and_closed(addr: SocketAddr, n: usize) -> anyhow::Result<()> {
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let mut stream = TcpStream::connect(addr).await?;
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await?;
            read_response(&mut stream).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(())
}

/// A `hits` process on the stack's Redis.
pub struct Hits {
    child: Child,
    pub pid: u32,
    pub url: String,
}

impl Hits {
    pub async fn start(bin_dir: &Path, redis_url: &str, logs: &Path) -> anyhow::Result<Hits> {
        let (host, port) = redis_url
            .strip_prefix("redis://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|authority| authority.rsplit_once(':'))
            .with_context(|| format!("hits needs Redis on TCP, not {redis_url}"))?;
        let port_number = crate::stack::free_port_or_any(0)?;
        std::fs::create_dir_all(logs)?;
        let log = std::fs::File::create(logs.join("hits.log"))?;
        let child = Command::new(bin_dir.join("hits"))
            .env("REDIS_HOST", host)
            .env("REDIS_PORT", port)
            .env("BIND_PORT", port_number.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("ADMIN_PORT", "0")
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin_dir.join("hits").display()))?;
        let pid = child.id().context("hits exited at once")?;
        let url = format!("http://127.0.0.1:{port_number}/");
        wait_ready("hits", &format!("{url}readyz"), Duration::from_secs(60)).await?;
        Ok(Hits { child, pid, url })
    }

    pub async fn stop(mut self) {
        let _ = crate::stack::signal(self.pid, "TERM").await;
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The loopback address in an `http://127.0.0.1:PORT/` URL.
pub fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    url.strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .with_context(|| format!("not an http://address:port/ URL: {url}"))
}
