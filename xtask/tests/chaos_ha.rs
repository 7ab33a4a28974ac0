//! The CI-sized failover chaos run (`cargo xtask chaos --ha`, smaller):
//! ballots over HTTP from 300 voters into two vote processes configured
//! through Sentinel (`REDIS_MIN_REPLICAS_ACK=1`), two workers reaching
//! Postgres through HAProxy, while the Redis primary and the Postgres
//! primary are each SIGKILLed twice (Sentinel and Patroni fail over, the
//! old primary rejoins as a replica) and workers and a vote process are
//! killed too; then every voter's row must be their last acknowledged
//! ballot: 0 lost, 0 stale, 0 extra. The report also says how long voting
//! and result's live feed stood still after each failover.
//!
//! Debug binaries next to this test's build, as in `tests/chaos.rs`. The
//! seed is random unless `CHAOS_SEED` is set.
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
async fn every_acknowledged_ballot_survives_redis_and_postgres_failovers() {
    let mut args = vec![
        "chaos",
        "--ballots",
        "3000",
        "--voters",
        "300",
        "--workers",
        "2",
        "--worker-kills",
        "3",
        "--vote-kills",
        "1",
        "--redis-crashes",
        "2",
        "--postgres-crashes",
        "2",
        "--max-downtime-ms",
        "300",
        "--progress-every-s",
        "0",
    ];
    let seed = std::env::var("CHAOS_SEED").ok();
    if let Some(seed) = &seed {
        args.extend(["--seed", seed]);
    }
    let plan = Cli::parse_from(args).plan;

    let stores = xtask::ha::Replicated::start(xtask::ha::RedisTopology::default())
        .await
        .expect("the replicated stores started");
    let report = chaos::run(&plan, &support::debug_bin_dir(), stores)
        .await
        .expect("the chaos run could be carried out");
    println!("{report}");

    assert!(report.passed(), "{report}");
    assert_eq!(report.count(Fault::CrashRedis), 2, "{report}");
    assert_eq!(report.count(Fault::CrashPostgres), 2, "{report}");
    assert_eq!(report.count(Fault::KillWorker), 3, "{report}");
    assert_eq!(report.count(Fault::KillVote), 1, "{report}");
    // Voting came back after every Redis failover, the feed after every
    // Postgres failover.
    assert_eq!(report.ballots.voting_resumed_after.len(), 2, "{report}");
    assert_eq!(report.ballots.feed_stood_still.len(), 2, "{report}");
    assert!(
        report.ballots.feed_stood_still.iter().all(Option::is_some),
        "{report}"
    );
    assert_eq!(report.ballots.acked, 3_000, "{report}");
    assert_eq!(report.verdict.rows, 300, "{report}");
}
