//! The replicated stores, natively: a Redis primary with a replica and
//! three Sentinels, and two Postgres nodes under Patroni (synchronous mode,
//! one etcd) behind HAProxy — the test harness's topologies
//! ([`testkit::ha`]), all on 127.0.0.1 and free ports.
//!
//! `cargo xtask up --ha` runs the stack on them; `cargo xtask chaos --ha`
//! kills their primaries ([`Replicated`] is its [`Stores`]). The services
//! are configured as an operator would configure them:
//! `REDIS_SENTINELS`/`REDIS_SENTINEL_MASTER` instead of a Redis address,
//! `REDIS_MIN_REPLICAS_ACK=1` (the one replica confirms every ballot before
//! vote answers 200), and `DATABASE_URL` naming HAProxy's primary endpoint.
//!
//! One replica, not two: with `REDIS_MIN_REPLICAS_ACK` equal to the number
//! of replicas, whichever replica Sentinel promotes holds every
//! acknowledged ballot. (With two replicas and `WAIT 1`, Sentinel could
//! promote the one that had not confirmed the last ballots yet.) The price:
//! the new primary refuses writes (`min-replicas-to-write 1`) until the old
//! one has come back as its replica, so a failover's refusal window
//! includes that restart.

use std::time::Duration;

use anyhow::Context;
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};

use crate::chaos::Stores;

/// Longest a failover, or a killed node's return, may take before the run
/// gives up.
const WITHIN: Duration = Duration::from_secs(60);

/// The replicated Redis and Postgres. Dropping it stops every process.
pub struct Replicated {
    redis: RedisHa,
    postgres: PostgresHa,
    /// The Redis primary as last seen, for reading the queue.
    redis_primary: String,
}

impl Replicated {
    /// Starts both topologies (at the same time) and waits until each is
    /// healthy.
    pub async fn start() -> anyhow::Result<Replicated> {
        let (redis, postgres) = tokio::join!(
            RedisHa::start(RedisHaOptions {
                replicas: 1,
                ..RedisHaOptions::default()
            }),
            PostgresHa::start(PostgresHaOptions::default())
        );
        let redis = redis.context("starting Redis with Sentinel")?;
        let postgres = postgres.context("starting Postgres with Patroni, etcd and HAProxy")?;
        let redis_primary = redis.node_url(redis.primary_node().await?, 0);
        Ok(Replicated {
            redis,
            postgres,
            redis_primary,
        })
    }

    /// What the services need besides `REDIS_URL` and `DATABASE_URL`.
    pub fn service_env(&self) -> Vec<(String, String)> {
        vec![
            ("REDIS_SENTINELS".into(), self.redis.sentinels_env()),
            (
                "REDIS_SENTINEL_MASTER".into(),
                self.redis.master_name().into(),
            ),
            ("REDIS_MIN_REPLICAS_ACK".into(), "1".into()),
        ]
    }

    /// Where each process listens, for people.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "Redis Sentinels {} (master name {}), data nodes {}",
            self.redis.sentinels_env(),
            self.redis.master_name(),
            self.redis.urls().join(" ")
        )];
        lines.push(format!(
            "Postgres through HAProxy: {} (primary), {} (standby); etcd {}",
            self.postgres.url("postgres"),
            self.postgres.read_url("postgres"),
            self.postgres.etcd_endpoint()
        ));
        lines.push(format!(
            "Store logs under {} and {}",
            self.redis.dir().display(),
            self.postgres.dir().display()
        ));
        lines
    }
}

impl Stores for Replicated {
    /// The current primary (the services themselves ask the Sentinels;
    /// with them, only the URL's database number counts).
    fn redis_url(&self) -> String {
        self.redis_primary.clone()
    }

    fn database_url(&self) -> String {
        self.postgres.url("postgres")
    }

    fn service_env(&self) -> Vec<(String, String)> {
        Replicated::service_env(self)
    }

    fn watch_feed(&self) -> bool {
        true
    }

    fn durability(&self) -> String {
        "Redis primary + 1 replica + 3 Sentinels (down-after 1.5 s), AOF everysec, \
         vote waits for the replica (REDIS_MIN_REPLICAS_ACK=1, WAIT 500 ms), \
         min-replicas-to-write 1; Postgres: 2 Patroni nodes in synchronous mode \
         (ttl 3 s, loop_wait 1 s) behind HAProxy; a crash is a SIGKILL of the \
         current primary, which rejoins as a replica"
            .into()
    }

    async fn crash_redis(&mut self, downtime: Duration) -> anyhow::Result<()> {
        let old = self.redis.kill_primary().await?;
        let new = self
            .redis
            .wait_for_new_primary(old, WITHIN)
            .await
            .context("waiting for Sentinel to promote the replica")?;
        self.redis_primary = self.redis.node_url(new, 0);
        tokio::time::sleep(downtime).await;
        self.redis
            .restart_as_replica(old)
            .await
            .context("restarting the old Redis primary as a replica")
    }

    async fn crash_postgres(&mut self, downtime: Duration) -> anyhow::Result<()> {
        let old = self.postgres.kill_primary_node().await?;
        self.postgres
            .wait_for_failover(WITHIN)
            .await
            .context("waiting for Patroni to promote the standby")?;
        tokio::time::sleep(downtime).await;
        self.postgres
            .restart_node(old)
            .await
            .context("restarting the old Postgres primary as the standby")
    }
}
