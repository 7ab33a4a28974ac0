//! The hermetic test harness: real Redis and real Postgres for every test,
//! with nothing to set up by hand. Test code, and tooling: no service
//! depends on it; `xtask` borrows its browser (screenshots), its replicated
//! stores (`up --ha`, `chaos --ha`) and its `/metrics` reader
//! (`abuse-memory`).
//!
//! - [`redis`] gives a test its own, empty Redis logical database.
//! - [`postgres`] (the `postgres` feature) gives a test its own, empty
//!   Postgres database.
//!
//! Both come from servers started once per test process (the throwaway
//! processes of the `localstores` crate, re-exported here), unless
//! `REDIS_URL` / `DATABASE_URL` point at servers you run yourself.
//! With an external Redis, tests use its logical databases 1 and up and
//! **flush each one they take**; with an external Postgres, they create
//! databases named `vt_<pid>_<n>`.
//!
//! Tests that stop or crash a store (fault tests) start a dedicated
//! [`RedisServer`] or [`PostgresServer`] instead, which they own.
//!
//! Failover tests start a replicated store: [`RedisHa`] (replicas and
//! Sentinel) or, with the `postgres` feature, `PostgresHa` (Patroni, etcd
//! and HAProxy); see [`ha`].
//!
//! A missing `redis-server`, Postgres, Patroni, etcd or HAProxy install
//! fails the test with the `apt-get install` line that fixes it; nothing
//! is skipped.
//!
//! [`Served`] ([`served`]) runs a service's `serve` in the test process on a free
//! loopback port and stops it cleanly. [`raw`] speaks HTTP/1.1 by hand to
//! it (hostile requests), [`metrics`] reads its `/metrics` page or records
//! a test's own metrics, [`logs`] catches what it logs, and [`layers`]
//! checks that the standard layers wrap its router.
//! [`abuse`] runs catalogues of hostile cases against a service and keeps
//! their table in `docs/abuse.md` honest; [`poison`] is the one list of
//! hostile queue entries. [`refused`] starts a service
//! binary with a bad setting and expects it to refuse to start.
//!
//! With the `browser` feature, [`browser::Browser`] drives a headless
//! Chromium for tests of what a page does in a real browser.
//!
//! Must not depend on: a service's crate (the services' tests depend on
//! the harness, never the reverse), and nothing but tests and `xtask` may
//! depend on it.

pub mod abuse;
#[cfg(feature = "browser")]
pub mod browser;
pub mod ha;
pub mod layers;
pub mod logs;
pub mod metrics;
pub mod poison;
pub mod raw;
pub mod refused;
pub mod served;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;

#[cfg(feature = "postgres")]
pub use ha::{PostgresHa, PostgresHaOptions};
pub use ha::{RedisHa, RedisHaOptions};
pub use localstores::{PostgresOptions, PostgresServer, RedisOptions, RedisServer};
pub use served::Served;

/// A test's own Redis logical database.
#[derive(Debug, Clone)]
pub struct TestRedis {
    /// URL selecting this test's database.
    pub url: String,
}

impl TestRedis {
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).expect("testkit produced an invalid Redis URL")
    }

    /// A plain multiplexed connection for assertions and setup.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to the test Redis")
    }

    /// Every item of the list `key`, head first (e.g. the ballots queued).
    pub async fn list(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn().await)
            .await
            .expect("LRANGE on the test Redis")
    }
}

/// A test's own Postgres database.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct TestDb {
    pub url: String,
    pub pool: sqlx::PgPool,
}

enum SharedRedis {
    Local(RedisServer),
    External { url: String, databases: u32 },
}

#[cfg(feature = "postgres")]
enum SharedPostgres {
    Local(PostgresServer),
    External(String),
}

static REDIS: OnceCell<SharedRedis> = OnceCell::const_new();
#[cfg(feature = "postgres")]
static POSTGRES: OnceCell<SharedPostgres> = OnceCell::const_new();
static NEXT_REDIS_DB: AtomicU32 = AtomicU32::new(1);
#[cfg(feature = "postgres")]
static NEXT_PG_DB: AtomicU32 = AtomicU32::new(1);

/// A fresh, empty Redis database for this test.
pub async fn redis() -> TestRedis {
    let shared = REDIS
        .get_or_init(|| async {
            match std::env::var("REDIS_URL") {
                Ok(url) if !url.is_empty() => {
                    let databases = external_redis_databases(&url).await;
                    SharedRedis::External { url, databases }
                }
                _ => SharedRedis::Local(
                    RedisServer::start(RedisOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("starting the test Redis: {e:#}")),
                ),
            }
        })
        .await;
    let db = NEXT_REDIS_DB.fetch_add(1, Ordering::Relaxed);
    match shared {
        SharedRedis::Local(server) => TestRedis {
            url: server.url(db),
        },
        SharedRedis::External { url, databases } => {
            assert!(
                db < *databases,
                "the external Redis at REDIS_URL has {databases} databases; the tests need \
                 more (start it with --databases 10000, or unset REDIS_URL)"
            );
            let url = with_redis_db(url, db);
            let test = TestRedis { url };
            let mut conn = test.conn().await;
            let _: () = redis::cmd("FLUSHDB")
                .query_async(&mut conn)
                .await
                .expect("FLUSHDB on the external test Redis");
            test
        }
    }
}

/// A fresh, empty Postgres database for this test (no schema).
#[cfg(feature = "postgres")]
pub async fn postgres() -> TestDb {
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{Connection, PgConnection};

    let shared = POSTGRES
        .get_or_init(|| async {
            match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => SharedPostgres::External(url),
                _ => SharedPostgres::Local(
                    PostgresServer::start(PostgresOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("starting the test Postgres: {e:#}")),
                ),
            }
        })
        .await;
    let admin_url = match shared {
        SharedPostgres::Local(server) => server.url("postgres"),
        SharedPostgres::External(url) => url.clone(),
    };
    let name = format!(
        "vt_{}_{}",
        std::process::id(),
        NEXT_PG_DB.fetch_add(1, Ordering::Relaxed)
    );
    // A connection of this call's own: every #[tokio::test] has its own
    // runtime, and a pool kept across tests would die with the first one.
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test Postgres: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = admin.close().await;
    let url = match shared {
        SharedPostgres::Local(server) => server.url(&name),
        SharedPostgres::External(url) => with_path(url, &name),
    };
    let pool = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {name}: {e}"));
    TestDb { url, pool }
}

async fn external_redis_databases(url: &str) -> u32 {
    let client = redis::Client::open(url).expect("REDIS_URL is not a valid Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to REDIS_URL: {e}"));
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("databases")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    reply.get(1).and_then(|n| n.parse().ok()).unwrap_or(16)
}

/// Selects database `db` in a Redis URL: the path of `redis://host:port/N`,
/// the `db` parameter of `redis+unix:///path.sock?db=N`.
fn with_redis_db(url: &str, db: u32) -> String {
    if url.starts_with("redis+unix:") || url.starts_with("unix:") {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("db="))
            .collect();
        let db = format!("db={db}");
        params.push(&db);
        return format!("{base}?{}", params.join("&"));
    }
    with_path(url, &db.to_string())
}

/// Replaces the path of `scheme://authority/path?query` with `/segment`
/// (e.g. the database name of a Postgres URL).
fn with_path(url: &str, segment: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{segment}?{q}"),
        None => format!("{base}/{segment}"),
    }
}

/// Polls `check` every 10 ms until it returns `Some`, for at most
/// `deadline`; panics with `what` if it never does. For conditions that
/// have no event to await (a row appearing in a table another process
/// writes, a list draining).
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_get_the_database_number() {
        assert_eq!(with_redis_db("redis://h:1", 3), "redis://h:1/3");
        assert_eq!(
            with_redis_db("redis+unix:///run/r.sock", 3),
            "redis+unix:///run/r.sock?db=3"
        );
        assert_eq!(
            with_redis_db("redis+unix:///run/r.sock?db=0&pass=x", 3),
            "redis+unix:///run/r.sock?pass=x&db=3"
        );
        assert_eq!(with_redis_db("redis://h:1/0", 3), "redis://h:1/3");
        assert_eq!(
            with_redis_db("redis://h:1/0?protocol=resp3", 3),
            "redis://h:1/3?protocol=resp3"
        );
    }

    #[test]
    fn postgres_urls_get_the_database_name() {
        assert_eq!(
            with_path("postgres://u:p@h/postgres", "x"),
            "postgres://u:p@h/x"
        );
        assert_eq!(
            with_path("postgres://u@h/postgres?host=/tmp", "x"),
            "postgres://u@h/x?host=/tmp"
        );
    }

    #[tokio::test]
    async fn each_test_gets_its_own_redis_database() {
        let one = redis().await;
        let two = redis().await;
        let mut c1 = one.conn().await;
        let mut c2 = two.conn().await;
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("1")
            .query_async(&mut c1)
            .await
            .unwrap();
        let v: Option<String> = redis::cmd("GET")
            .arg("k")
            .query_async(&mut c2)
            .await
            .unwrap();
        assert_eq!(v, None);
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn each_test_gets_its_own_postgres_database() {
        let one = postgres().await;
        let two = postgres().await;
        sqlx::query("CREATE TABLE t (x int)")
            .execute(&one.pool)
            .await
            .unwrap();
        let err = sqlx::query("SELECT * FROM t").execute(&two.pool).await;
        assert!(err.is_err());
    }

    /// Each #[tokio::test] has its own runtime; the harness must outlive the
    /// runtime of the test that started it.
    #[cfg(feature = "postgres")]
    #[test]
    fn databases_can_be_made_after_the_first_tests_runtime_is_gone() {
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let db = postgres().await;
                sqlx::query("SELECT 1").execute(&db.pool).await.unwrap();
            });
        }
    }

    #[tokio::test]
    async fn a_dedicated_redis_restarts_on_the_same_address() {
        let mut server = RedisServer::start(RedisOptions {
            appendonly: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let url = server.url(0);
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("kept")
            .query_async(&mut conn)
            .await
            .unwrap();
        server.stop();
        assert!(client.get_multiplexed_async_connection().await.is_err());
        server.start_again().await.unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let v: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, "kept");
    }
}
