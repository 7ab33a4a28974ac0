//! Replicated ballots, confirmed in groups (`REDIS_MIN_REPLICAS_ACK`).
//!
//! `WAIT n t` holds the connection it arrives on until `n` replicas have
//! acknowledged every write made on that connection before it (or `t`
//! passes), and Redis runs nothing else from that connection meanwhile.
//! One `WAIT` per vote on one shared connection would therefore queue every
//! vote behind the `WAIT`s sent before it, and one slow acknowledgement
//! would hold them all.
//!
//! So ballots are confirmed in groups, the way databases group commits:
//!
//! - a vote hands its ballot to the [`Confirmer`] and awaits the answer;
//! - [`LANES`] lanes, each with a connection of its own to the primary,
//!   take whatever ballots are waiting (up to [`MAX_GROUP`]), queue them
//!   with one call of the enqueue script, then send one `WAIT` on the same
//!   connection, which covers every ballot of the group;
//! - while one lane waits for its `WAIT`, the others take the next ballots,
//!   so a vote waits behind another's `WAIT` only when every lane is
//!   waiting — when the replicas are not confirming at all.
//!
//! Every ballot has a deadline: the confirmation timeout after it arrived.
//! A group's `WAIT` lasts at most until the earliest deadline in it, and a
//! ballot still waiting for a lane at its deadline is answered at once,
//! unsent. So while replicas are missing every vote gets its 503 within the
//! timeout (plus a round trip), and the answers stay truthful: "could not
//! confirm" for a ballot that is queued but unconfirmed, "not recorded"
//! for one never sent or refused by the primary (whose own
//! `min-replicas-to-write` refuses writes once its replicas lag: the
//! second line). The `WAIT` is sent only after the push succeeded, so a
//! refused push is answered at once, not after a `WAIT` for older writes.
//!
//! A lane's connection is dropped after any error that says the primary
//! may have moved or the connection may have a reply pending (see
//! [`servicekit::connect::suspicion`]); the next group makes a new one,
//! asking the Sentinels where the primary is, at most once per
//! [`LOOKUP_GAP`] while that fails. Pushes and their `WAIT` always go out
//! on the same connection object, so a `WAIT` never confirms writes made
//! on another connection.

use std::sync::Arc;
use std::time::Duration;

use contract::Ballot;
use redis::aio::MultiplexedConnection;
use servicekit::connect::{LOOKUP_GAP, REDIS_TIMEOUT, Redis, Suspicion, never_sent, suspicion};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics;
use crate::push::{self, PushFailure};

/// Groups confirmed at once: one connection each. Four kept a replicated
/// vote at the speed of an unreplicated one on the bench (a healthy
/// replica answers a `WAIT` within a fraction of a millisecond, so lanes
/// are rarely all busy); more would only add connections.
pub const LANES: usize = 4;
/// Most ballots pushed and confirmed together.
pub const MAX_GROUP: usize = 512;
/// How long past a group's deadline its answer may come: Redis's own
/// timing of a `WAIT`, and a round trip.
const DEADLINE_GRACE: Duration = Duration::from_millis(50);
/// Ballots waiting for a lane, at most; a vote beyond it is refused at once
/// (unsent). Far above what `MAX_CONNECTIONS` requests can hand in.
const BACKLOG: usize = 65_536;

/// What a replicated vote needs: how many replicas must confirm, and how
/// long a ballot may take.
#[derive(Debug, Clone, Copy)]
pub struct Replication {
    /// `REDIS_MIN_REPLICAS_ACK`: replicas that must hold a ballot before
    /// its vote is answered 200.
    pub replicas: u32,
    /// How long after it arrives a ballot is answered at the latest.
    pub timeout: Duration,
}

/// The vote service's side of group confirmation: hands ballots to the
/// lanes. Cheap to clone; the lanes stop once every clone is gone.
#[derive(Clone)]
pub struct Confirmer {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
}

/// One ballot waiting for its group.
struct Job {
    ballot: Ballot,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), PushFailure>>,
}

impl Confirmer {
    /// Starts the lanes (on the current Tokio runtime); they connect on
    /// first use.
    pub fn start(redis: &Redis, replication: Replication) -> Self {
        let (jobs, waiting) = mpsc::channel(BACKLOG);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..LANES {
            let lane = Lane {
                redis: redis.clone(),
                replication,
                conn: None,
                unreachable: None,
            };
            tokio::spawn(lane.run(waiting.clone()));
        }
        Confirmer {
            jobs,
            timeout: replication.timeout,
        }
    }

    /// How long after its arrival a ballot is answered at the latest (give
    /// or take a round trip).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Queues `ballot` and waits until replicas confirm it, or its deadline
    /// says they did not in time.
    pub async fn confirm(&self, ballot: Ballot) -> Result<(), PushFailure> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            ballot,
            deadline: Instant::now() + self.timeout,
            reply,
        };
        if self.jobs.try_send(job).is_err() {
            return Err(PushFailure::not_sent(format!(
                "{BACKLOG} ballots already wait for replicas to confirm"
            )));
        }
        answer.await.unwrap_or_else(|_| {
            // A lane ends only when the service does; its job went with it.
            Err(PushFailure::unconfirmed(
                "the service stopped before replicas confirmed the ballot".into(),
            ))
        })
    }
}

/// One connection's worth of group confirmation.
struct Lane {
    redis: Redis,
    replication: Replication,
    conn: Option<MultiplexedConnection>,
    /// When connecting last failed, and why: groups within [`LOOKUP_GAP`]
    /// of it are answered with that error without asking again.
    unreachable: Option<(Instant, String)>,
}

impl Lane {
    async fn run(mut self, waiting: Arc<Mutex<mpsc::Receiver<Job>>>) {
        loop {
            let group = {
                let mut waiting = waiting.lock().await;
                let Some(first) = waiting.recv().await else {
                    return;
                };
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match waiting.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                group
            };
            self.confirm(group).await;
        }
    }

    /// Pushes one group and waits for its confirmation; answers every job.
    async fn confirm(&mut self, group: Vec<Job>) {
        let now = Instant::now();
        let (group, late): (Vec<Job>, Vec<Job>) =
            group.into_iter().partition(|job| job.deadline > now);
        answer(
            late,
            &Err(PushFailure::not_sent(format!(
                "no connection was free within {:?}: replicas are slow to confirm",
                self.replication.timeout
            ))),
        );
        let Some(deadline) = group.iter().map(|job| job.deadline).min() else {
            return;
        };
        metrics::confirm_group(group.len());
        let ballots: Vec<Ballot> = group.iter().map(|job| job.ballot.clone()).collect();
        // Redis times a `WAIT` out on its own clock, which may tick only
        // every 100 ms on an idle server; the deadline is kept here.
        let mut tried = false;
        let outcome = tokio::time::timeout_at(
            deadline + DEADLINE_GRACE,
            self.push_and_wait(&ballots, deadline, &mut tried),
        )
        .await;
        let outcome = outcome.unwrap_or_else(|_| {
            // A reply is still pending on the connection: start afresh.
            self.conn = None;
            let cause = format!(
                "no confirmation from Redis within {:?}",
                self.replication.timeout
            );
            Err(if tried {
                PushFailure::unconfirmed(cause)
            } else {
                PushFailure::not_sent(cause)
            })
        });
        answer(group, &outcome);
    }

    /// Pushes `ballots` (once more if the first try is worth retrying: see
    /// [`push::first_try`]) and waits for their confirmation until
    /// `deadline`. `tried` turns true once a push may have reached Redis.
    async fn push_and_wait(
        &mut self,
        ballots: &[Ballot],
        deadline: Instant,
        tried: &mut bool,
    ) -> Result<(), PushFailure> {
        match push::first_try(self.push(ballots, tried).await) {
            Ok(pushed) => pushed?,
            Err(first) => push::second_try(self.push(ballots, tried).await, &first)?,
        }
        self.wait(deadline, ballots.len()).await
    }

    /// Queues `ballots` on this lane's connection.
    async fn push(&mut self, ballots: &[Ballot], tried: &mut bool) -> redis::RedisResult<()> {
        let conn = self.connection().await?;
        *tried = true;
        let pushed =
            tokio::time::timeout(REDIS_TIMEOUT, contract::queue::enqueue_group(conn, ballots))
                .await
                .unwrap_or_else(|_| Err(timed_out("the push")));
        if let Err(e) = &pushed {
            self.forget_connection_after(e);
        }
        pushed.map(drop)
    }

    /// Waits until the replicas confirm what this lane pushed, until
    /// `deadline` at most.
    async fn wait(&mut self, deadline: Instant, ballots: usize) -> Result<(), PushFailure> {
        let wanted = self.replication.replicas;
        // `WAIT n 0` would block for good.
        let within = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let Some(conn) = self.conn.as_mut() else {
            return Err(PushFailure::unconfirmed(
                "the connection was lost after the push".into(),
            ));
        };
        let confirmed: redis::RedisResult<u64> = redis::cmd("WAIT")
            .arg(wanted)
            .arg(u64::try_from(within.as_millis()).unwrap_or(u64::MAX).max(1))
            .query_async(conn)
            .await;
        match confirmed {
            Ok(confirmed) if confirmed >= u64::from(wanted) => Ok(()),
            Ok(confirmed) => {
                metrics::replica_acks_missing(ballots);
                Err(PushFailure::unconfirmed(format!(
                    "the ballot is queued on the Redis primary, but only {confirmed} replica(s) \
                     confirmed it within {:?}",
                    self.replication.timeout
                )))
            }
            Err(e) => {
                self.forget_connection_after(&e);
                Err(PushFailure::unconfirmed(format!(
                    "the ballot is queued on the Redis primary, but its replicas' confirmation \
                     was lost: {e}"
                )))
            }
        }
    }

    /// This lane's connection to the primary, made if there is none.
    async fn connection(&mut self) -> redis::RedisResult<&mut MultiplexedConnection> {
        if self.conn.is_none() {
            if let Some((at, why)) = &self.unreachable
                && at.elapsed() < LOOKUP_GAP
            {
                return Err(never_sent(why.clone()));
            }
            // Replies to a `WAIT` take up to the confirmation timeout.
            match self
                .redis
                .dedicated(REDIS_TIMEOUT + self.replication.timeout)
                .await
            {
                Ok(conn) => {
                    self.unreachable = None;
                    self.conn = Some(conn);
                }
                Err(e) => {
                    let why = format!("no connection to the Redis primary: {e}");
                    self.unreachable = Some((Instant::now(), why.clone()));
                    return Err(never_sent(why));
                }
            }
        }
        self.conn
            .as_mut()
            .ok_or_else(|| never_sent("no connection to the Redis primary".into()))
    }

    /// Drops the connection after an error that says the primary may have
    /// moved, or that leaves a reply pending on it (a timeout).
    fn forget_connection_after(&mut self, e: &redis::RedisError) {
        if suspicion(e) != Suspicion::None {
            self.conn = None;
        }
    }
}

/// Gives every job of a group the same answer.
fn answer(jobs: Vec<Job>, outcome: &Result<(), PushFailure>) {
    for job in jobs {
        // A vote whose visitor left no longer listens; nothing to do.
        let _ = job.reply.send(outcome.clone());
    }
}

/// An error for a command given up on: its reply may still come, so the
/// connection is dropped.
fn timed_out(what: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} got no answer from Redis within {REDIS_TIMEOUT:?}"),
    ))
}
