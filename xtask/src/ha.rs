//! The replicated stores, natively: a Redis primary with two replicas and
//! three Sentinels, and two Postgres nodes under Patroni (synchronous mode,
//! one etcd) behind HAProxy — the test harness's topologies
//! ([`testkit::ha`]), all on 127.0.0.1 and free ports.
//!
//! `cargo xtask up --ha` runs the stack on them; `cargo xtask chaos --ha`
//! kills their primaries ([`Replicated`] is its [`Stores`]). The services
//! are configured as an operator would configure them:
//! `REDIS_SENTINELS`/`REDIS_SENTINEL_MASTER` instead of a Redis address,
//! `REDIS_MIN_REPLICAS_ACK=1` (a replica confirms every ballot before vote
//! answers 200), and `DATABASE_URL` naming HAProxy's primary endpoint.
//!
//! Two replicas with one confirmation ([`RedisTopology::default`]), as in
//! `docker-compose.ha.yml`: Sentinel promotes the replica with the highest
//! replication offset, which holds every ballot a replica confirmed, so the
//! loss of any one node loses no acknowledged ballot; and the new primary
//! still has a replica, so votes are confirmed again as soon as it is
//! promoted, without waiting for the dead node to return. `docs/ha.md`
//! has the measured comparison with the other choices.

use std::time::Duration;

use anyhow::Context;
use testkit::{PostgresHa, PostgresHaOptions, RedisHa, RedisHaOptions};

use crate::chaos::Stores;

/// Longest a failover, or a killed node's return, may take before the run
/// gives up.
const WITHIN: Duration = Duration::from_secs(60);

/// How many Redis replicas run, and how many must confirm each ballot.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct RedisTopology {
    /// Redis replicas besides the primary.
    #[arg(long = "redis-replicas", default_value_t = 2,
          value_parser = clap::value_parser!(u8).range(1..=4))]
    pub replicas: u8,
    /// vote's REDIS_MIN_REPLICAS_ACK: replicas that must confirm a ballot
    /// before vote answers 200 (at most `--redis-replicas`).
    #[arg(long = "min-replicas-ack", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=4))]
    pub min_replicas_ack: u8,
}

impl Default for RedisTopology {
    fn default() -> Self {
        RedisTopology {
            replicas: 2,
            min_replicas_ack: 1,
        }
    }
}

/// The replicated Redis and Postgres. Dropping it stops every process.
pub struct Replicated {
    redis: RedisHa,
    postgres: PostgresHa,
    /// The Redis primary as last seen, for reading the queue.
    redis_primary: String,
    topology: RedisTopology,
}

impl Replicated {
    /// Starts both topologies (at the same time) and waits until each is
    /// healthy.
    pub async fn start(topology: RedisTopology) -> anyhow::Result<Replicated> {
        anyhow::ensure!(
            topology.min_replicas_ack <= topology.replicas,
            "--min-replicas-ack {} asks more replicas than the {} that run",
            topology.min_replicas_ack,
            topology.replicas
        );
        let (redis, postgres) = tokio::join!(
            RedisHa::start(RedisHaOptions {
                replicas: usize::from(topology.replicas),
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
            topology,
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
            (
                "REDIS_MIN_REPLICAS_ACK".into(),
                self.topology.min_replicas_ack.to_string(),
            ),
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
        format!(
            "Redis primary + {} replicas + 3 Sentinels (down-after 1.5 s), AOF everysec, \
             vote waits for {} replica(s) (REDIS_MIN_REPLICAS_ACK, WAIT up to 500 ms), \
             min-replicas-to-write 1; Postgres: 2 Patroni nodes in synchronous mode \
             (ttl 3 s, loop_wait 1 s) behind HAProxy; a crash is a SIGKILL of the \
             current primary, which rejoins as a replica",
            self.topology.replicas, self.topology.min_replicas_ack
        )
    }

    async fn crash_redis(&mut self, downtime: Duration) -> anyhow::Result<()> {
        let old = self.kill_redis_primary().await?;
        tokio::time::sleep(downtime).await;
        self.redis
            .restart_as_replica(old)
            .await
            .context("restarting the old Redis primary as a replica")
    }

    async fn crash_postgres(&mut self, downtime: Duration) -> anyhow::Result<()> {
        let old = self.kill_postgres_primary().await?;
        tokio::time::sleep(downtime).await;
        self.postgres
            .restart_node(old)
            .await
            .context("restarting the old Postgres primary as the standby")
    }
}

impl Replicated {
    /// SIGKILLs the Redis primary, as a machine's loss would, and waits
    /// until Sentinel has promoted a replica; the dead node stays dead.
    /// Returns which node it was.
    pub async fn kill_redis_primary(&mut self) -> anyhow::Result<usize> {
        let old = self.redis.kill_primary().await?;
        let new = self
            .redis
            .wait_for_new_primary(old, WITHIN)
            .await
            .context("waiting for Sentinel to promote a replica")?;
        self.redis_primary = self.redis.node_url(new, 0);
        Ok(old)
    }

    /// SIGKILLs the Postgres primary node (Patroni and its postmaster), and
    /// waits until Patroni has promoted the standby; the dead node stays
    /// dead. Returns which node it was.
    pub async fn kill_postgres_primary(&mut self) -> anyhow::Result<usize> {
        let old = self.postgres.kill_primary_node().await?;
        self.postgres
            .wait_for_failover(WITHIN)
            .await
            .context("waiting for Patroni to promote the standby")?;
        Ok(old)
    }
}
