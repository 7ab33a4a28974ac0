//! The CI-sized chaos run: 20,000 ballots over HTTP from 2,000 voters into
//! two vote processes, three workers SIGKILLed 20 times between them, the
//! vote processes 5 times, Redis (AOF, `appendfsync always`) and Postgres
//! (fsync on) each crashed with SIGKILL and restarted 3 times, all while
//! the ballots flow; then every
//! voter's row must be their last acknowledged ballot: 0 lost, 0 stale,
//! 0 extra (see `xtask::chaos::oracle` for the exact rule).
//!
//! It is the code `cargo xtask chaos` runs, with the debug binaries next to
//! this test's own build (the workspace's `target/debug`, which `cargo test
//! --workspace` builds). The seed is random unless `CHAOS_SEED` is set; a
//! failure prints the command that replays the same plan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use clap::Parser;
use xtask::chaos::{self, Fault};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    plan: chaos::Plan,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_ballot_survives_worker_kills_and_store_crashes() {
    let mut args = vec![
        "chaos",
        "--ballots",
        "20000",
        "--voters",
        "2000",
        "--workers",
        "3",
        "--worker-kills",
        "20",
        "--vote-kills",
        "5",
        "--redis-crashes",
        "3",
        "--postgres-crashes",
        "3",
        "--redis-fsync",
        "always",
        "--progress-every-s",
        "0",
    ];
    let seed = std::env::var("CHAOS_SEED").ok();
    if let Some(seed) = &seed {
        args.extend(["--seed", seed]);
    }
    let plan = Cli::parse_from(args).plan;

    let report = chaos::run_single_node(&plan, &support::debug_bin_dir())
        .await
        .expect("the chaos run could be carried out");
    println!("{report}");

    assert!(report.passed(), "{report}");
    assert_eq!(report.count(Fault::KillWorker), 20, "{report}");
    assert_eq!(report.count(Fault::KillVote), 5, "{report}");
    assert_eq!(report.count(Fault::CrashRedis), 3, "{report}");
    assert_eq!(report.count(Fault::CrashPostgres), 3, "{report}");
    // The kills met work in progress, or they proved little.
    assert!(report.kills_mid_batch() > 0, "{report}");
    // Every ballot was acknowledged in the end: the check covered them all.
    assert_eq!(report.ballots.acked, 20_000, "{report}");
    assert_eq!(report.verdict.rows, 2_000, "{report}");
}
