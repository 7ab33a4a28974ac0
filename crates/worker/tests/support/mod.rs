//! Shared helpers for the worker's integration tests: a Redis database and
//! a Postgres database of the test's own, worker settings pointing at them,
//! ballots and workloads, and ways to run the worker (in this process or as
//! the real binary).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;

use contract::queue::QUEUE_KEY;
use servicekit::settings::{AdminArgs, DatabaseArgs, RedisArgs};
use sqlx::PgPool;
use worker::dead_letter::DeadLetter;
use worker::queue::{DEAD_LETTER_KEY, processing_key};

/// Long enough for anything these tests wait for on a loaded 2-core box.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Where a test's worker reads and writes.
pub struct Env {
    pub redis_url: String,
    pub db_url: String,
    pub pool: PgPool,
}

impl Env {
    /// A fresh Redis database and a fresh Postgres database (no schema).
    pub async fn new() -> Env {
        let redis = testkit::redis().await;
        let db = testkit::postgres().await;
        Env {
            redis_url: redis.url,
            db_url: db.url,
            pool: db.pool,
        }
    }

    /// An environment on servers the test runs itself. Connects lazily:
    /// the servers may be down.
    pub fn from_urls(redis_url: String, db_url: String) -> Env {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy(&db_url)
            .unwrap();
        Env {
            redis_url,
            db_url,
            pool,
        }
    }

    /// Settings for a worker with id `id` on this environment.
    pub fn settings(&self, id: &str) -> worker::Settings {
        worker::Settings {
            redis: RedisArgs::at(&self.redis_url).unwrap(),
            database: DatabaseArgs::at(&self.db_url).unwrap(),
            worker_id: Some(id.to_owned()),
            batch_size: 1000,
            block_seconds: 0.2,
            heartbeat_seconds: 10,
            summary_seconds: 30.0,
            max_dead_letters: worker::dead_letter::DEFAULT_KEPT,
            admin: AdminArgs::at((Ipv4Addr::LOCALHOST, 0).into()),
        }
    }

    pub async fn migrate(&self) {
        worker::schema::migrate(&self.pool).await.unwrap();
    }

    /// A connection whose replies may take up to [`DEADLINE`] (redis-rs
    /// gives up after 500 ms by default, which a 20 MiB push on a busy
    /// machine can take).
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(DEADLINE));
        redis::Client::open(self.redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .unwrap()
    }

    /// Appends payloads to the queue, as producers do.
    pub async fn push(&self, payloads: &[String]) {
        let mut conn = self.redis().await;
        for chunk in payloads.chunks(5000) {
            let _: () = redis::cmd("RPUSH")
                .arg(QUEUE_KEY)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    pub async fn list(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.redis().await)
            .await
            .unwrap()
    }

    pub async fn len(&self, key: &str) -> u64 {
        redis::cmd("LLEN")
            .arg(key)
            .query_async(&mut self.redis().await)
            .await
            .unwrap()
    }

    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.list(DEAD_LETTER_KEY)
            .await
            .iter()
            .map(|entry| serde_json::from_str(entry).unwrap())
            .collect()
    }

    /// Every row of `votes`: voter id → vote.
    pub async fn rows(&self) -> HashMap<String, String> {
        sqlx::query_as::<_, (String, String)>("SELECT id, vote FROM votes")
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    pub async fn row_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM votes")
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }

    /// Waits until the queue and `id`'s processing list are empty and the
    /// table holds `rows` rows.
    pub async fn wait_until_drained(&self, ids: &[&str], rows: usize) {
        testkit::eventually("the queue to drain into the table", DEADLINE, || async {
            let mut pending = self.len(QUEUE_KEY).await;
            for id in ids {
                pending += self.len(&processing_key(id)).await;
            }
            let stored = self.row_count().await;
            (pending == 0 && stored == rows as i64).then_some(())
        })
        .await;
    }

    /// Asserts the table holds exactly `expected`, and the trigger-kept
    /// tally agrees with counting the table.
    pub async fn assert_rows(&self, expected: &HashMap<String, String>) {
        let rows = self.rows().await;
        assert_eq!(rows.len(), expected.len(), "number of voters in the table");
        let wrong: Vec<_> = expected
            .iter()
            .filter(|(voter, vote)| rows.get(*voter) != Some(vote))
            .take(5)
            .collect();
        assert!(
            wrong.is_empty(),
            "voters whose row is not their last ballot (first 5 of them): {wrong:?}"
        );
        self.assert_tally_consistent().await;
    }

    pub async fn assert_tally_consistent(&self) {
        let counted = result::tally::count_votes(&self.pool).await.unwrap();
        let kept = result::tally::read_tally(&self.pool).await.unwrap();
        assert_eq!(kept, counted, "vote_tally disagrees with counting votes");
    }

    /// Runs the worker library in this process until the returned handle
    /// is stopped.
    pub async fn spawn(&self, settings: worker::Settings) -> Running {
        testkit::Served::start(|admin, shutdown| worker::serve(admin, settings, shutdown)).await
    }

    /// The real `worker` binary, configured for this environment.
    pub fn command(&self, id: &str, batch_size: u32) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REDIS_URL", &self.redis_url)
            .env("DATABASE_URL", &self.db_url)
            .env("WORKER_ID", id)
            .env("BATCH_SIZE", batch_size.to_string())
            .env("BLOCK_SECONDS", "0.2")
            .env("ADMIN_PORT", "0")
            .env("ADMIN_BIND_ADDRESS", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

/// A worker running in this process; `addr` is its admin listener.
pub type Running = testkit::Served<anyhow::Error>;

/// `GET path` on `addr`: the status code and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A ballot as our vote service queues it (`seq` set) or as the original
/// one does (no `seq`, Python spacing).
pub fn ballot(voter: &str, vote: &str, seq: Option<i64>) -> String {
    match seq {
        Some(seq) => format!(r#"{{"voter_id":"{voter}","vote":"{vote}","seq":{seq}}}"#),
        None => format!(r#"{{"voter_id": "{voter}", "vote": "{vote}"}}"#),
    }
}

/// `ballots` stamped ballots from `voters` voters who keep changing their
/// mind, in queue order, and each voter's last choice. Deterministic.
pub fn workload(
    voters: usize,
    ballots: usize,
    seed: u64,
) -> (Vec<String>, HashMap<String, String>) {
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64: plenty for shuffling test data.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut queue = Vec::with_capacity(ballots);
    let mut last = HashMap::with_capacity(voters);
    for i in 0..ballots {
        // Every voter votes at least once; the rest is random.
        let voter = if i < voters {
            i
        } else {
            (next() % voters as u64) as usize
        };
        let voter = format!("voter{voter:05}");
        let vote = if next() % 2 == 0 { "a" } else { "b" };
        queue.push(ballot(&voter, vote, Some(1_000 + i as i64)));
        last.insert(voter, vote.to_owned());
    }
    (queue, last)
}
