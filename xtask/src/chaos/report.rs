//! What a chaos run measured, and how it reads: the figures a run returns
//! ([`Report`]) and the text `cargo xtask chaos` prints, including the
//! command that replays the run's plan.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::faults::{self, Fault, RedisFsync};
use super::oracle::Verdict;
use super::plan::Plan;

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    /// The seed used (the plan's, or the one drawn).
    pub seed: u64,
    /// The durability the run measured, in words.
    pub durability: String,
    pub ballots: Ballots,
    pub faults: Vec<faults::Record>,
    /// From the first ballot to the last voter done.
    pub posting: Duration,
    /// From the last voter done to an empty queue and processing lists.
    pub drain: Duration,
    /// The whole run, start-up and shutdown included.
    pub total: Duration,
    /// Entries in `votes:dead` (none of our ballots may land there).
    pub dead_letters: u64,
    /// `vote_tally` agrees with `SELECT vote, COUNT(id) … GROUP BY vote`.
    pub tally_consistent: bool,
    pub verdict: Verdict,
    /// Services that did not stop cleanly on SIGTERM at the end.
    pub stop_problems: Vec<String>,
    /// Where the services' logs are (kept after a failed run).
    pub logs: Option<PathBuf>,
}

/// What the voters did, in numbers.
#[derive(Debug, Clone, Default)]
pub struct Ballots {
    pub planned: u64,
    pub attempts: u64,
    pub acked: u64,
    /// Attempts of unknown outcome, by cause.
    pub unknown: BTreeMap<String, u64>,
    pub gave_up_voters: u64,
    pub abandoned: u64,
    /// For each Redis crash: how long after it ballots were acknowledged
    /// again (how long voting stood still; see
    /// [`resumed_after`](super::feed::resumed_after)).
    pub voting_resumed_after: Vec<Duration>,
    /// For each Postgres crash, when the run watched result's live feed:
    /// how long after it the feed showed a new tally (None: it never did).
    pub feed_stood_still: Vec<Option<Duration>>,
}

impl Report {
    /// 0 lost, 0 stale, 0 extra, nothing dead-lettered, the tally right.
    pub fn passed(&self) -> bool {
        self.verdict.passed() && self.dead_letters == 0 && self.tally_consistent
    }

    /// How many faults of `kind` were injected.
    pub fn count(&self, kind: Fault) -> usize {
        self.faults.iter().filter(|r| r.fault == kind).count()
    }

    /// Worker kills that left a batch in the victim's processing list.
    pub fn kills_mid_batch(&self) -> usize {
        self.faults
            .iter()
            .filter(|r| r.fault == Fault::KillWorker && r.mid_batch == Some(true))
            .count()
    }

    /// `cargo xtask chaos` flags that repeat this run's plan and seed.
    pub fn command(&self) -> String {
        let p = &self.plan;
        format!(
            "cargo xtask chaos --ballots {} --voters {} --workers {} --vote-replicas {} \
             --concurrency {} --worker-kills {} --vote-kills {} --redis-crashes {} \
             --postgres-crashes {} \
             --max-downtime-ms {} --fresh-id-share {} --redis-fsync {} --batch-size {} \
             --heartbeat-seconds {} --seed {}",
            p.ballots,
            p.voters,
            p.workers,
            p.vote_replicas,
            p.concurrency,
            p.worker_kills,
            p.vote_kills,
            p.redis_crashes,
            p.postgres_crashes,
            p.max_downtime_ms,
            p.fresh_id_share,
            match p.redis_fsync {
                RedisFsync::Always => "always",
                RedisFsync::Everysec => "everysec",
                RedisFsync::Off => "off",
            },
            p.batch_size,
            p.heartbeat_seconds,
            self.seed
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        let b = &self.ballots;
        writeln!(f, "chaos run: {}", self.command())?;
        writeln!(f, "  stores      {}", self.durability)?;
        writeln!(
            f,
            "  services    {} workers (BATCH_SIZE {}, HEARTBEAT_SECONDS {}), {} vote processes, \
             {} requests in flight",
            p.workers, p.batch_size, p.heartbeat_seconds, p.vote_replicas, p.concurrency
        )?;
        let unknown: Vec<String> = b.unknown.iter().map(|(c, n)| format!("{n} {c}")).collect();
        writeln!(
            f,
            "  ballots     {} planned from {} voters; {} POSTs: {} acknowledged, {} unknown outcome{}",
            b.planned,
            p.voters,
            b.attempts,
            b.acked,
            b.attempts - b.acked,
            if unknown.is_empty() {
                String::new()
            } else {
                format!(" ({})", unknown.join(", "))
            }
        )?;
        if b.gave_up_voters > 0 {
            writeln!(
                f,
                "              {} voters gave up, {} ballots never cast",
                b.gave_up_voters, b.abandoned
            )?;
        }
        let kills: Vec<&faults::Record> = self
            .faults
            .iter()
            .filter(|r| r.fault == Fault::KillWorker)
            .collect();
        let fresh = kills.iter().filter(|r| r.fresh_id).count();
        writeln!(
            f,
            "  faults      {} worker SIGKILLs ({} with a batch in flight, {} restarted under a new id), \
             {} vote SIGKILLs, {} Redis crash-restarts, {} Postgres crash-restarts",
            kills.len(),
            self.kills_mid_batch(),
            fresh,
            self.count(Fault::KillVote),
            self.count(Fault::CrashRedis),
            self.count(Fault::CrashPostgres)
        )?;
        for (kind, what) in [
            (Fault::CrashRedis, "Redis down and back"),
            (Fault::CrashPostgres, "Postgres down and back"),
        ] {
            let took: Vec<Duration> = self
                .faults
                .iter()
                .filter(|r| r.fault == kind)
                .map(|r| r.took)
                .collect();
            if !took.is_empty() {
                writeln!(f, "              {what}: {}", spread(&took))?;
            }
        }
        if !b.voting_resumed_after.is_empty() {
            writeln!(
                f,
                "              voting stood still after a Redis crash: {}",
                spread(&b.voting_resumed_after)
            )?;
        }
        if !b.feed_stood_still.is_empty() {
            let moved: Vec<Duration> = b.feed_stood_still.iter().flatten().copied().collect();
            let never = b.feed_stood_still.len() - moved.len();
            writeln!(
                f,
                "              result's feed stood still after a Postgres crash: {}{}",
                if moved.is_empty() {
                    "-".to_owned()
                } else {
                    spread(&moved)
                },
                if never > 0 {
                    format!(", never moved again {never} times")
                } else {
                    String::new()
                }
            )?;
        }
        writeln!(
            f,
            "  time        posting {}, drain {}, whole run {}",
            secs(self.posting),
            secs(self.drain),
            secs(self.total)
        )?;
        writeln!(
            f,
            "  checks      dead letters {}, tally table {}",
            self.dead_letters,
            if self.tally_consistent {
                "agrees with the rows"
            } else {
                "DISAGREES with the rows"
            }
        )?;
        for problem in &self.stop_problems {
            writeln!(f, "  stop        {problem}")?;
        }
        if let Some(logs) = &self.logs {
            writeln!(f, "  logs        {}", logs.display())?;
        }
        write!(
            f,
            "  verdict     {}: {}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.verdict
        )
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `p50 0.4 s, max 0.9 s` over `values`.
fn spread(values: &[Duration]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort();
    let p50 = sorted[(sorted.len() - 1) / 2];
    let max = sorted[sorted.len() - 1];
    format!("p50 {}, max {}", secs(p50), secs(max))
}
