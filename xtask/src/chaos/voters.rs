//! The voters: each casts their ballots over HTTP to the vote service, in
//! order, each one acknowledged before the next — and writes down what
//! became of every attempt, for the [oracle](super::oracle).
//!
//! A voter's plan alternates (`a, b, a, …`), so every ballot after the
//! first is a change of mind and a voter's last ballot differs from the one
//! before it: were the last one lost, the row would show the one before,
//! and the check would see it.
//!
//! A POST answered `200` is **acknowledged**. Anything else — another
//! status, a timeout, a refused or broken connection — has an **unknown
//! outcome**: the ballot may or may not have been queued. The voter then
//! does what a person told "voting again is harmless" does: sends the same
//! choice again (after 25 ms, doubling up to 1 s) until it is acknowledged,
//! or gives up after `give_up_after` and casts nothing more.
//!
//! `concurrency` lanes post at once. Each lane owns a share of the voters
//! and, for every request, picks one of them with ballots left at random,
//! so a voter's ballots are spread over the whole run and meet the faults
//! at every stage.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use contract::Vote;
use fastrand::Rng;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use tokio::sync::watch;

/// First pause before sending an unacknowledged ballot again.
const FIRST_RETRY: Duration = Duration::from_millis(25);
/// Longest pause between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(1);

/// One voter's plan: who, and the choices to cast, in order.
#[derive(Debug, Clone)]
pub struct Voter {
    /// The `voter_id` cookie the voter sends (16 lowercase hex characters,
    /// like the ids vote hands out).
    pub id: String,
    pub choices: Vec<Vote>,
}

/// What became of one POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub vote: Vote,
    /// Answered 200. False: unknown outcome.
    pub acked: bool,
}

/// Every attempt of one voter, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterLog {
    pub id: String,
    pub attempts: Vec<Attempt>,
}

/// Why an attempt's outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// Answered with a status other than 200.
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection,
    /// Anything else the HTTP client reports.
    Other,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Status(code) => write!(f, "HTTP {code}"),
            Cause::Timeout => f.write_str("timeout"),
            Cause::Connection => f.write_str("connection failed"),
            Cause::Other => f.write_str("other error"),
        }
    }
}

/// Where the voters post: one vote process.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://127.0.0.1:<port>/`
    pub url: String,
    /// `http://127.0.0.1:<port>`, sent as `Origin` as a browser would.
    pub origin: String,
}

impl Endpoint {
    pub fn on_port(port: u16) -> Self {
        let origin = format!("http://127.0.0.1:{port}");
        Endpoint {
            url: format!("{origin}/"),
            origin,
        }
    }
}

/// Live counts, read by the progress line and the fault driver.
#[derive(Debug, Default)]
pub struct Counters {
    /// Attempts answered 200.
    pub acked: AtomicU64,
    /// Attempts of unknown outcome.
    pub unknown: AtomicU64,
    /// Faults injected so far.
    pub faults: AtomicU64,
}

/// How the voters behave.
#[derive(Debug, Clone)]
pub struct Manner {
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub give_up_after: Duration,
}

/// Everything the voters did.
#[derive(Debug, Default)]
pub struct Posting {
    /// One entry per voter, in plan order.
    pub ledger: Vec<VoterLog>,
    /// For each acknowledged attempt: when it was sent and when the 200
    /// came, since the run started.
    pub acks: Vec<(Duration, Duration)>,
    /// Attempts of unknown outcome, by cause.
    pub unknown: BTreeMap<Cause, u64>,
    /// Voters who gave up on a ballot, and the ballots they never cast.
    pub gave_up_voters: u64,
    pub abandoned_ballots: u64,
}

impl Posting {
    pub fn attempts(&self) -> u64 {
        self.ledger.iter().map(|v| v.attempts.len() as u64).sum()
    }

    pub fn acked(&self) -> u64 {
        self.acks.len() as u64
    }

    pub fn unknown_total(&self) -> u64 {
        self.unknown.values().sum()
    }

    fn absorb(&mut self, lane: Posting) {
        self.ledger.extend(lane.ledger);
        self.acks.extend(lane.acks);
        for (cause, n) in lane.unknown {
            *self.unknown.entry(cause).or_default() += n;
        }
        self.gave_up_voters += lane.gave_up_voters;
        self.abandoned_ballots += lane.abandoned_ballots;
    }
}

/// `voters` voters casting `ballots` ballots in all: one each, the rest
/// handed to voters at random (so some change their mind many times, some
/// never). Each voter starts with a random choice and alternates.
pub fn plan(voters: u64, ballots: u64, rng: &mut Rng) -> Vec<Voter> {
    let voters = usize::try_from(voters).unwrap_or(usize::MAX);
    let mut counts = vec![1_usize; voters];
    for _ in (voters as u64)..ballots {
        counts[rng.usize(..voters)] += 1;
    }
    let mut ids = HashSet::with_capacity(voters);
    counts
        .into_iter()
        .map(|n| {
            let id = loop {
                let id = format!("{:016x}", rng.u64(..));
                if ids.insert(id.clone()) {
                    break id;
                }
            };
            let first = if rng.bool() { Vote::A } else { Vote::B };
            let choices = (0..n)
                .map(|i| if i % 2 == 0 { first } else { other(first) })
                .collect();
            Voter { id, choices }
        })
        .collect()
}

fn other(vote: Vote) -> Vote {
    match vote {
        Vote::A => Vote::B,
        Vote::B => Vote::A,
    }
}

/// Everything a lane needs, shared by all lanes.
struct Shared {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    manner: Manner,
    started: Instant,
    settled: watch::Sender<u64>,
    counters: Arc<Counters>,
}

/// How far the voters may go: the ballots settled so far, and the count at
/// which they must wait for the fault driver (see [`super::faults::drive`]).
pub struct Pace {
    pub settled: watch::Sender<u64>,
    pub limit: watch::Receiver<u64>,
}

/// Casts every voter's ballots and returns the ledger. `pace.settled`
/// counts ballots acknowledged or abandoned; no ballot starts while it has
/// reached `pace.limit`. Times in the result are measured from `started`.
pub async fn post_all(
    voters: Vec<Voter>,
    endpoints: Vec<Endpoint>,
    manner: Manner,
    started: Instant,
    pace: Pace,
    counters: Arc<Counters>,
    rng: &mut Rng,
) -> anyhow::Result<Posting> {
    anyhow::ensure!(!endpoints.is_empty(), "no vote service to post to");
    let lanes = manner.concurrency.max(1);
    let client = reqwest::Client::builder()
        .timeout(manner.request_timeout)
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(lanes)
        .build()
        .context("building the HTTP client")?;
    let shared = Arc::new(Shared {
        client,
        endpoints,
        manner,
        started,
        settled: pace.settled,
        counters,
    });
    // Voter i goes to lane i % lanes; the ledger is put back in plan order.
    let count = voters.len();
    let mut shares: Vec<Vec<(usize, Voter)>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, voter) in voters.into_iter().enumerate() {
        shares[i % lanes].push((i, voter));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        tasks.spawn(run_lane(
            share,
            shared.clone(),
            pace.limit.clone(),
            rng.fork(),
        ));
    }
    let mut posting = Posting::default();
    let mut order = Vec::with_capacity(count);
    while let Some(lane) = tasks.join_next().await {
        let (indices, lane) = lane.context("a voters' lane panicked")?;
        order.extend(indices);
        posting.absorb(lane);
    }
    let mut ledger: Vec<(usize, VoterLog)> = order.into_iter().zip(posting.ledger).collect();
    ledger.sort_by_key(|(i, _)| *i);
    posting.ledger = ledger.into_iter().map(|(_, log)| log).collect();
    Ok(posting)
}

/// One lane: its voters' ballots, one request at a time. Returns the plan
/// indices of its voters and what they did, in the same order.
async fn run_lane(
    share: Vec<(usize, Voter)>,
    shared: Arc<Shared>,
    mut limit: watch::Receiver<u64>,
    mut rng: Rng,
) -> (Vec<usize>, Posting) {
    let indices: Vec<usize> = share.iter().map(|(i, _)| *i).collect();
    let voters: Vec<Voter> = share.into_iter().map(|(_, v)| v).collect();
    let mut posting = Posting {
        ledger: voters
            .iter()
            .map(|v| VoterLog {
                id: v.id.clone(),
                attempts: Vec::new(),
            })
            .collect(),
        ..Posting::default()
    };
    let mut next = vec![0_usize; voters.len()];
    let mut open: Vec<usize> = (0..voters.len())
        .filter(|&v| !voters[v].choices.is_empty())
        .collect();
    while !open.is_empty() {
        // Wait while the fault driver is behind. If it is gone (it failed
        // and the run is ending), there is nothing to wait for.
        let _ = limit
            .wait_for(|&limit| *shared.settled.borrow() < limit)
            .await;
        let k = rng.usize(..open.len());
        let v = open[k];
        let voter = &voters[v];
        let choice = voter.choices[next[v]];
        if cast(&shared, &mut rng, voter, choice, v, &mut posting).await {
            next[v] += 1;
            shared.settled.send_modify(|n| *n += 1);
            if next[v] == voter.choices.len() {
                open.swap_remove(k);
            }
        } else {
            let left = (voter.choices.len() - next[v]) as u64;
            posting.gave_up_voters += 1;
            posting.abandoned_ballots += left;
            shared.settled.send_modify(|n| *n += left);
            open.swap_remove(k);
        }
    }
    (indices, posting)
}

/// Sends `choice` for `voter` until it is acknowledged (true) or the voter
/// gives up (false), writing every attempt into `posting`.
async fn cast(
    shared: &Shared,
    rng: &mut Rng,
    voter: &Voter,
    choice: Vote,
    slot: usize,
    posting: &mut Posting,
) -> bool {
    let first_try = Instant::now();
    let mut pause = FIRST_RETRY;
    loop {
        let endpoint = &shared.endpoints[rng.usize(..shared.endpoints.len())];
        let sent = shared.started.elapsed();
        let outcome = post(&shared.client, endpoint, &voter.id, choice).await;
        posting.ledger[slot].attempts.push(Attempt {
            vote: choice,
            acked: outcome.is_ok(),
        });
        match outcome {
            Ok(()) => {
                shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                posting.acks.push((sent, shared.started.elapsed()));
                return true;
            }
            Err(cause) => {
                shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                *posting.unknown.entry(cause).or_default() += 1;
                if first_try.elapsed() >= shared.manner.give_up_after {
                    return false;
                }
                // Jitter keeps the lanes from retrying in lockstep.
                let jitter = Duration::from_millis(rng.u64(..=pause.as_millis() as u64 / 2));
                tokio::time::sleep(pause + jitter).await;
                pause = (pause * 2).min(LONGEST_RETRY);
            }
        }
    }
}

/// One vote, as the page's form posts it: the voter's cookie, the form
/// body, and the headers a browser sends for a same-origin form.
async fn post(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    voter: &str,
    vote: Vote,
) -> Result<(), Cause> {
    let response = client
        .post(&endpoint.url)
        .header(COOKIE, format!("voter_id={voter}"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ORIGIN, &endpoint.origin)
        .header("sec-fetch-site", "same-origin")
        .body(format!("vote={}", vote.as_str()))
        .send()
        .await
        .map_err(|e| cause_of(&e))?;
    let status = response.status();
    // Read the page so the connection can carry the next request; the
    // status alone decides.
    let _ = response.bytes().await;
    if status == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(Cause::Status(status.as_u16()))
    }
}

fn cause_of(e: &reqwest::Error) -> Cause {
    if e.is_timeout() {
        Cause::Timeout
    } else if e.is_connect() || e.is_request() {
        Cause::Connection
    } else {
        Cause::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_casts_every_ballot_and_every_voter_alternates() {
        let mut rng = Rng::with_seed(7);
        let voters = plan(100, 1_000, &mut rng);
        assert_eq!(voters.len(), 100);
        assert_eq!(voters.iter().map(|v| v.choices.len()).sum::<usize>(), 1_000);
        assert!(voters.iter().all(|v| !v.choices.is_empty()));
        assert!(
            voters
                .iter()
                .all(|v| v.choices.windows(2).all(|w| w[0] != w[1]))
        );
        let ids: HashSet<_> = voters.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids.len(), 100);
        assert!(
            voters
                .iter()
                .all(|v| contract::VoterId::parse(&v.id).is_ok())
        );
    }

    #[test]
    fn the_same_seed_plans_the_same_voters() {
        let one = plan(10, 50, &mut Rng::with_seed(3));
        let two = plan(10, 50, &mut Rng::with_seed(3));
        let ids = |v: &[Voter]| v.iter().map(|v| v.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&one), ids(&two));
    }
}
