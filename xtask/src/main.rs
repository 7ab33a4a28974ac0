//! Developer commands for the voting app, run as `cargo xtask <command>`:
//!
//! - `up` — the whole system natively, no Docker: throwaway `redis-server`
//!   and `postgres` (unless `REDIS_URL` / `DATABASE_URL` are set), then the
//!   worker, vote on :5000 and result on :5001, all on 127.0.0.1 (unless
//!   `--bind-address` says otherwise), logs streamed with a prefix. Ctrl-C
//!   stops everything in dependency order and removes the throwaway data.
//!   With `--ha`, replicated stores instead (see [`xtask::ha`]); with
//!   `--monitoring`, Prometheus too, with the rules of `monitoring/rules/`.
//! - `bench` — starts the same stack, measures it, and writes
//!   `docs/benchmarks.md` and `docs/benchmarks.json`.
//! - `chaos` — posts ballots over HTTP from many voters while it SIGKILLs
//!   workers and crash-restarts Redis and Postgres, then checks every
//!   voter's row against their last acknowledged ballot (see
//!   [`xtask::chaos`]); with `--ha`, kills the primaries of replicated
//!   stores instead.
//! - `fuzz` — runs every fuzz target in `fuzz/` for a set time (see
//!   [`fuzz`]).
//! - `abuse-memory` — what hostile clients can make the services hold: a
//!   ping flood on result, huge queue entries for the worker, junk for the
//!   dead letters (see [`abuse_memory`]).
//! - `screenshots` — pictures of the vote and result pages at a desktop
//!   and a phone size, into `docs/screenshots/` (see
//!   [`xtask::screenshots`]).
//!
//! The engines live in the library (`src/lib.rs`) so tests run the same code.

mod abuse_memory;
mod bench;
mod fuzz;

use xtask::chaos::Stores;
use xtask::{chaos, ha, screenshots, stack};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use stack::{Logs, Stack, StackOptions};

#[derive(Parser, Debug)]
#[command(name = "xtask", about = "Run and measure the voting app natively")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the whole stack on this machine until Ctrl-C.
    Up(UpArgs),
    /// Measure the stack; write docs/benchmarks.md and docs/benchmarks.json.
    Bench(bench::BenchArgs),
    /// The fan-out floor's broadcaster, as a process of its own (run by
    /// `bench`): prints its address, then broadcasts a tally for each
    /// number read from stdin and answers `sent`.
    #[command(hide = true)]
    BenchBroadcaster,
    /// Ballots over HTTP while workers are killed and Redis and Postgres
    /// crash; then check that every voter's row is their last acknowledged
    /// ballot. Exits non-zero on any lost, stale or extra row.
    Chaos(ChaosArgs),
    /// Run every fuzz target for a set time; fail on any crash.
    Fuzz(fuzz::FuzzArgs),
    /// Measure what hostile clients can make the services hold: result's
    /// peak RSS through a ping flood, the worker's through 20 MiB queue
    /// entries, votes:dead after 100,000 junk entries. Release binaries
    /// unless --bin-dir; throwaway stores unless REDIS_URL / DATABASE_URL.
    AbuseMemory(abuse_memory::AbuseMemoryArgs),
    /// Photograph the pages for the README into docs/screenshots/.
    ///
    /// The vote page before and after a vote, and the result page with
    /// seeded votes, each at a desktop and a phone size, in headless
    /// Chromium against the native stack (release binaries unless
    /// --bin-dir); then Prometheus's graph of votes per second during a
    /// seed run (for docs/monitoring.md). Needs `apt-get install
    /// redis-server postgresql chromium chromium-driver prometheus`.
    Screenshots(ScreenshotsArgs),
}

#[derive(clap::Args, Debug)]
struct ScreenshotsArgs {
    /// Write the PNGs here.
    #[arg(long, default_value = "docs/screenshots")]
    out_dir: PathBuf,
    /// Run the binaries in this directory instead of building release ones.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct ChaosArgs {
    #[command(flatten)]
    plan: chaos::Plan,
    /// Against replicated stores (as `up --ha`): a Redis crash SIGKILLs the
    /// current Redis primary and a Postgres crash the current Postgres
    /// primary; Sentinel and Patroni fail over, and the old primary rejoins
    /// as a replica before the next fault. Also runs result and reports how
    /// long its live feed stood still after each Postgres failover.
    #[arg(long)]
    ha: bool,
    /// With --ha: the Redis replicas and the confirmations vote asks for.
    #[command(flatten)]
    redis_topology: ha::RedisTopology,
    /// Run the binaries in this directory instead of building release ones.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    /// Port for the vote page.
    #[arg(long, default_value_t = 5000)]
    vote_port: u16,
    /// Port for the result page.
    #[arg(long, default_value_t = 5001)]
    result_port: u16,
    /// Port for the throwaway Redis (another free port if taken).
    #[arg(long, default_value_t = 6379)]
    redis_port: u16,
    /// Port for the throwaway Postgres (another free port if taken).
    #[arg(long, default_value_t = 5432)]
    postgres_port: u16,
    /// Use this Redis instead of starting one.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Use this Postgres instead of starting one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Run the binaries in this directory instead of building release ones.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// `RUST_LOG` for the services.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// Replicated stores instead of one Redis and one Postgres: a Redis
    /// primary with two replicas and three Sentinels, two Postgres nodes
    /// under Patroni (synchronous mode, etcd) behind HAProxy, all on
    /// 127.0.0.1 and free ports. vote and the worker find Redis through the
    /// Sentinels, vote confirms each ballot on a replica
    /// (REDIS_MIN_REPLICAS_ACK=1), and DATABASE_URL is HAProxy's primary
    /// endpoint. Needs `apt-get install redis-server postgresql patroni
    /// etcd-server haproxy`.
    #[arg(long, conflicts_with_all = ["redis_url", "database_url"])]
    ha: bool,
    /// Address vote, result and every admin listener bind (e.g.
    /// 0.0.0.0 to be reachable from other machines). The throwaway Redis
    /// and Postgres, which have no password, stay on 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: std::net::IpAddr,
    /// Also run Prometheus (Debian's `prometheus` binary: `apt-get install
    /// prometheus`) scraping vote, result and worker with the rules of
    /// monitoring/rules/, scrape and evaluation every 2 s.
    #[arg(long)]
    monitoring: bool,
    /// With --monitoring: Prometheus's port (another free port if taken).
    #[arg(long, default_value_t = 9090)]
    prometheus_port: u16,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Cmd::Up(args) => up(args).await,
        Cmd::Bench(args) => bench::bench(args, &workspace_root())
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::BenchBroadcaster => bench::broadcaster::serve_stdio().map(|()| ExitCode::SUCCESS),
        Cmd::Chaos(args) => chaos_run(args).await,
        Cmd::Fuzz(args) => fuzz::fuzz(args, &workspace_root())
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Screenshots(args) => screenshots_run(args).await,
        Cmd::AbuseMemory(args) => abuse_memory_run(args).await,
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds release binaries of `packages`; returns their directory.
async fn build_release(packages: &[&str]) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let mut args = vec!["build", "--release"];
    for p in packages {
        args.extend(["-p", p]);
    }
    let status = tokio::process::Command::new(env!("CARGO"))
        .args(args)
        .current_dir(&root)
        .status()
        .await
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "cargo build failed");
    Ok(stack::release_dir(&root))
}

async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => build_release(&["vote", "worker", "result"]).await?,
    };
    let mut options = StackOptions {
        bin_dir,
        vote_port: args.vote_port,
        result_port: args.result_port,
        redis_url: args.redis_url,
        database_url: args.database_url,
        redis_port: args.redis_port,
        postgres_port: args.postgres_port,
        logs: Logs::Prefixed,
        log_level: args.log_level,
        env: vec![("BIND_ADDRESS".to_owned(), args.bind_address.to_string())],
    };
    // Kept until the stack has stopped: dropping them stops the stores.
    let _replicated = if args.ha {
        let stores = ha::Replicated::start(ha::RedisTopology::default()).await?;
        options.redis_url = Some(stores.redis_url());
        options.database_url = Some(stores.database_url());
        options.env.extend(stores.service_env());
        for line in stores.describe() {
            println!("{line}");
        }
        Some(stores)
    } else {
        None
    };
    // Ctrl-C during start-up stops it too.
    let shutdown = servicekit::shutdown::on_signals();
    let mut stack = tokio::select! {
        stack = Stack::start(&options) => stack?,
        _ = shutdown.cancelled() => {
            println!("xtask: interrupted during start-up");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.monitoring {
        let port = stack::free_port_or_any(args.prometheus_port)?;
        let rules = workspace_root().join("monitoring").join("rules");
        if let Err(e) = stack.add_prometheus(&options, port, &rules).await {
            stack.stop().await;
            return Err(e);
        }
    }
    println!();
    println!("The voting app is up:");
    for (name, address) in &stack.listening {
        println!("  {name:<13} {address}");
    }
    println!("Press Ctrl-C to stop.");
    println!();

    let unexpected = tokio::select! {
        _ = shutdown.cancelled() => None,
        (name, status) = stack.any_exited() => Some(format!("{name} exited unexpectedly: {status:?}")),
    };
    println!("xtask: stopping vote and result, then the worker, then Redis and Postgres");
    let mut problems = stack.stop().await;
    problems.extend(unexpected);
    if problems.is_empty() {
        println!("xtask: stopped cleanly; throwaway data removed");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("xtask: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

async fn chaos_run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None if args.ha => build_release(&["vote", "worker", "result"]).await?,
        None => build_release(&["vote", "worker"]).await?,
    };
    let report = if args.ha {
        let stores = ha::Replicated::start(args.redis_topology).await?;
        chaos::run(&args.plan, &bin_dir, stores).await?
    } else {
        chaos::run_single_node(&args.plan, &bin_dir).await?
    };
    println!("{report}");
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn abuse_memory_run(args: abuse_memory::AbuseMemoryArgs) -> anyhow::Result<ExitCode> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => build_release(&["vote", "worker", "result"]).await?,
    };
    abuse_memory::run(args, &bin_dir, &workspace_root()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn screenshots_run(args: ScreenshotsArgs) -> anyhow::Result<ExitCode> {
    // Say what is missing before a release build, not after it.
    testkit::browser::check_installed()?;
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => build_release(&["vote", "worker", "result"]).await?,
    };
    // Relative to the workspace, wherever cargo was run from.
    let root = workspace_root();
    let out_dir = root.join(&args.out_dir);
    for shot in screenshots::run(&bin_dir, &out_dir).await? {
        println!(
            "{}  {}×{}  {} KB",
            shot.path
                .strip_prefix(&root)
                .unwrap_or(&shot.path)
                .display(),
            shot.width,
            shot.height,
            shot.bytes.div_ceil(1000)
        );
    }
    Ok(ExitCode::SUCCESS)
}
