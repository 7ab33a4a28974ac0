//! `xtask abuse-memory`: what hostile clients can make the services hold,
//! measured on the native stack with release binaries. One function per
//! figure, each against a bound the services promise:
//!
//! - [`ping_flood`]: result's peak RSS while a client with a 4 KiB receive
//!   buffer floods 125-byte pings and never reads the pongs (reconnecting
//!   whenever result drops it). Bound: twice its idle RSS plus one live
//!   page's budget (its write buffer's maximum and the ~3.7 KiB a page
//!   costs).
//! - [`huge_entries`]: the worker's peak RSS while it takes entries of
//!   20 MiB off the queue. Bound: twice its idle RSS.
//! - [`junk_entries`]: `votes:dead` after 100,000 junk entries: its length
//!   (bound: `MAX_DEAD_LETTERS`), its memory in Redis, the largest letter
//!   (bound: 5 KiB) and the letters dropped.
//!
//! Peaks are the processes' high-water marks (`VmHWM`), reset before each
//! figure (`/proc/<pid>/clear_refs`), so each is the phase's own. Loads go
//! to 127.0.0.1 only and are bounded in count and time. Not part of `cargo
//! test`: it takes about a minute and wants release binaries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use contract::queue::QUEUE_KEY;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use worker::dead_letter::DeadLetter;
use worker::queue::DEAD_LETTER_KEY;

use crate::bench::procfs::proc_status_kib;
use crate::stack::{Logs, Stack, StackOptions};

/// What to measure.
#[derive(clap::Args, Debug)]
pub struct AbuseMemoryArgs {
    /// How long the ping flood lasts, in seconds.
    #[arg(long, default_value_t = 10)]
    flood_seconds: u64,
    /// Entries of `--huge-entry-mib` pushed for the worker.
    #[arg(long, default_value_t = 10)]
    huge_entries: usize,
    /// Size of each huge entry, in MiB.
    #[arg(long, default_value_t = 20)]
    huge_entry_mib: usize,
    /// Junk entries pushed for the dead-letter figure.
    #[arg(long, default_value_t = 100_000)]
    junk_entries: usize,
    /// Use this Redis instead of starting one.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Use this Postgres instead of starting one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Run the binaries in this directory instead of building release ones.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "target/abuse-memory.json")]
    out: PathBuf,
}

/// Time for a service to settle (and its allocator to purge) before its
/// idle RSS is read.
const SETTLE: Duration = Duration::from_secs(2);
/// How long any one phase may take to finish.
const DEADLINE: Duration = Duration::from_secs(120);
/// A flooding client's receive buffer, as in the report.
const FLOOD_RCVBUF: u32 = 4096;
/// What one live page costs result (docs/operations.md's figure, which
/// `cargo xtask bench` measures), in KiB.
const PAGE_KIB: f64 = 3.7;

pub async fn run(args: AbuseMemoryArgs, bin_dir: &Path, root: &Path) -> anyhow::Result<()> {
    let options = StackOptions {
        bin_dir: bin_dir.to_path_buf(),
        vote_port: crate::stack::free_port_or_any(0)?,
        result_port: crate::stack::free_port_or_any(0)?,
        redis_url: args.redis_url.clone(),
        database_url: args.database_url.clone(),
        redis_port: 0,
        postgres_port: 0,
        logs: Logs::Files(root.join("target").join("xtask-abuse-memory")),
        log_level: "warn".into(),
        env: Vec::new(),
    };
    let stack = Stack::start(&options).await?;
    let measured = measure(&args, &stack).await;
    let problems = stack.stop().await;
    let figures = measured?;
    anyhow::ensure!(
        problems.is_empty(),
        "stack did not stop cleanly: {problems:?}"
    );
    let out = root.join(&args.out);
    std::fs::write(&out, serde_json::to_string_pretty(&figures)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("abuse-memory: figures written to {}", out.display());
    Ok(())
}

async fn measure(args: &AbuseMemoryArgs, stack: &Stack) -> anyhow::Result<Value> {
    let pid = |s: &'static str| stack.pid(s).with_context(|| format!("{s} is not running"));
    let redis = redis::Client::open(stack.redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    tokio::time::sleep(SETTLE).await;
    let flood = ping_flood(pid("result")?, &stack.result_url, args.flood_seconds).await?;
    let huge = huge_entries(pid("worker")?, &mut conn, args).await?;
    let junk = junk_entries(&mut conn, &stack.worker_admin_url, args.junk_entries).await?;
    Ok(json!({ "ping_flood": flood, "huge_entries": huge, "junk_entries": junk }))
}

/// Resets a process's high-water mark of resident memory to its current
/// RSS, so the next `VmHWM` is the peak of what follows.
fn reset_peak(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of process {pid}"))
}

fn rss(pid: u32, field: &str) -> anyhow::Result<u64> {
    proc_status_kib(pid, field).with_context(|| format!("no {field} for process {pid}"))
}

/// Result's peak RSS through `seconds` of pings from a client that never
/// reads, reconnecting whenever result drops it.
async fn ping_flood(pid: u32, result_url: &str, seconds: u64) -> anyhow::Result<Value> {
    let addr = url_addr(result_url)?;
    let idle = rss(pid, "VmRSS")?;
    reset_peak(pid)?;
    let chunk: Vec<u8> = (0..512).flat_map(|_| masked_ping()).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut sent, mut connections) = (0u64, 0u64);
    println!("abuse-memory: flooding result with pings for {seconds} s");
    while Instant::now() < deadline {
        let mut stream = flood_connection(addr).await?;
        connections += 1;
        // Until result drops this client or the flood's time is up; a
        // write that stops being taken waits here (result stopped reading).
        let _ = tokio::time::timeout_at(deadline, async {
            while stream.write_all(&chunk).await.is_ok() {
                sent += chunk.len() as u64;
            }
        })
        .await;
    }
    let peak = rss(pid, "VmHWM")?;
    let budget_kib = PAGE_KIB + result::live::MAX_WRITE_BUFFER as f64 / 1024.0;
    let bound = 2.0 * idle as f64 + budget_kib;
    println!(
        "abuse-memory: result: idle {idle} KiB, peak {peak} KiB during the flood \
         (bound {bound:.0} KiB); {sent} bytes of pings taken over {connections} connection(s)"
    );
    Ok(json!({
        "seconds": seconds,
        "idle_rss_kib": idle,
        "peak_rss_kib": peak,
        "bound_kib": bound,
        "within_bound": (peak as f64) <= bound,
        "ping_bytes_taken": sent,
        "connections": connections,
    }))
}

/// One masked client ping with a 125-byte payload.
fn masked_ping() -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x89, 0x80 | 125];
    frame.extend_from_slice(&mask);
    frame.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
    frame
}

/// A live-feed connection with a small receive buffer, past the handshake.
async fn flood_connection(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(FLOOD_RCVBUF)?;
    let mut stream = socket.connect(addr).await?;
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        anyhow::ensure!(
            stream.read(&mut byte).await? == 1,
            "result closed the handshake"
        );
        head.push(byte[0]);
    }
    anyhow::ensure!(
        head.starts_with(b"HTTP/1.1 101"),
        "result answered the handshake with {:?}",
        String::from_utf8_lossy(&head)
    );
    Ok(stream)
}

/// The worker's peak RSS while it takes `--huge-entries` entries of
/// `--huge-entry-mib` off the queue (each followed by a good ballot).
async fn huge_entries(
    pid: u32,
    conn: &mut redis::aio::MultiplexedConnection,
    args: &AbuseMemoryArgs,
) -> anyhow::Result<Value> {
    let idle = rss(pid, "VmRSS")?;
    reset_peak(pid)?;
    let before: u64 = redis::cmd("LLEN")
        .arg(DEAD_LETTER_KEY)
        .query_async(conn)
        .await?;
    let entry = vec![b'x'; args.huge_entry_mib << 20];
    println!(
        "abuse-memory: pushing {} entries of {} MiB for the worker",
        args.huge_entries, args.huge_entry_mib
    );
    for _ in 0..args.huge_entries {
        let _: () = redis::cmd("RPUSH")
            .arg(QUEUE_KEY)
            .arg(&entry)
            .query_async(conn)
            .await?;
    }
    drop(entry);
    let want = before + args.huge_entries as u64;
    wait_for_dead_letters(conn, want).await?;
    let peak = rss(pid, "VmHWM")?;
    println!(
        "abuse-memory: worker: idle {idle} KiB, peak {peak} KiB through the entries (bound {} KiB)",
        2 * idle
    );
    Ok(json!({
        "entries": args.huge_entries,
        "entry_mib": args.huge_entry_mib,
        "idle_rss_kib": idle,
        "peak_rss_kib": peak,
        "bound_kib": 2 * idle,
        "within_bound": peak <= 2 * idle,
    }))
}

/// Waits until `votes:dead` holds `want` letters (or its cap) and the queue
/// is empty.
async fn wait_for_dead_letters(
    conn: &mut redis::aio::MultiplexedConnection,
    want: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let (queued, dead): (u64, u64) = redis::pipe()
            .cmd("LLEN")
            .arg(QUEUE_KEY)
            .cmd("LLEN")
            .arg(DEAD_LETTER_KEY)
            .query_async(conn)
            .await?;
        let full = dead >= want.min(worker::dead_letter::DEFAULT_KEPT as u64);
        if queued == 0 && full {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < DEADLINE,
            "the worker left {queued} entries queued and {dead} dead letters"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `votes:dead` after `count` junk entries: length, memory in Redis, the
/// largest letter, and the letters the worker dropped.
async fn junk_entries(
    conn: &mut redis::aio::MultiplexedConnection,
    worker_admin_url: &str,
    count: usize,
) -> anyhow::Result<Value> {
    let _: () = redis::cmd("DEL")
        .arg(DEAD_LETTER_KEY)
        .query_async(conn)
        .await?;
    let dropped_before = dropped(worker_admin_url).await?;
    println!("abuse-memory: pushing {count} junk entries");
    let junk: Vec<String> = (0..count).map(|i| format!("junk {i}")).collect();
    for chunk in junk.chunks(10_000) {
        let _: () = redis::cmd("RPUSH")
            .arg(QUEUE_KEY)
            .arg(chunk)
            .query_async(conn)
            .await?;
    }
    wait_for_dead_letters(conn, count as u64).await?;
    let length: u64 = redis::cmd("LLEN")
        .arg(DEAD_LETTER_KEY)
        .query_async(conn)
        .await?;
    let memory: u64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(DEAD_LETTER_KEY)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await?;
    let letters: Vec<Vec<u8>> = redis::cmd("LRANGE")
        .arg(DEAD_LETTER_KEY)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let largest = letters.iter().map(Vec::len).max().unwrap_or(0);
    // The counter is published when the batch that dropped them is done.
    let started = Instant::now();
    let expected = count as u64 - length;
    let dropped = loop {
        let now = dropped(worker_admin_url).await? - dropped_before;
        if now >= expected || started.elapsed() > DEADLINE {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "abuse-memory: votes:dead after {count} junk entries: {length} letters, {memory} bytes \
         in Redis ({} per letter), largest letter {largest} bytes (bound {}), {dropped} dropped",
        memory / length.max(1),
        DeadLetter::MAX_BYTES
    );
    Ok(json!({
        "entries": count,
        "letters": length,
        "memory_usage_bytes": memory,
        "bytes_per_letter": memory / length.max(1),
        "largest_letter_bytes": largest,
        "letter_bound_bytes": DeadLetter::MAX_BYTES,
        "dropped": dropped,
    }))
}

/// `dead_letters_dropped_total` on the worker's `/metrics`.
async fn dropped(worker_admin_url: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{worker_admin_url}metrics"))
        .await?
        .text()
        .await?;
    Ok(
        testkit::metrics::series(&text, worker::metrics::DEAD_LETTERS_DROPPED.name)
            .first()
            .map_or(0, |s| s.value as u64),
    )
}

/// `host:port` of an `http://host:port/` URL.
fn url_addr(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("{url} is not http://<ip>:<port>/"))
}
