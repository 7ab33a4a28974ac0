//! The Postgres side of the pipeline: schema, the tally queries and the
//! change notifications, in one place for the worker, the result service
//! and the tests.
//!
//! The `votes` table is the source of truth. Migrations (embedded from
//! `crates/common/migrations`) add a `seq` column for ordering and a
//! trigger-maintained `vote_tally` table, so reading the tally costs the
//! same at ten votes or ten million. Readers that find no `vote_tally` (a
//! database written only by the original worker) fall back to counting
//! `votes`; readers that find no `votes` yet see an empty tally.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::tally::Tally;

/// The original table, verbatim (contract with the original app).
pub const VOTES_DDL: &str = "CREATE TABLE IF NOT EXISTS votes (id VARCHAR(255) NOT NULL UNIQUE, vote VARCHAR(255) NOT NULL)";

/// What the result shows, by definition (contract with the original app).
pub const TALLY_QUERY: &str = "SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote";

/// The constant-time read of the same numbers.
pub const FAST_TALLY_QUERY: &str = "SELECT vote, count FROM vote_tally WHERE vote IN ('a', 'b')";

/// The channel the tally triggers notify after every change.
pub const CHANGES_CHANNEL: &str = "votes_changed";

/// The schema migrations, embedded in every binary that links this crate.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Creates or upgrades the schema. Safe to run from several processes at
/// once (the migrator holds an advisory lock) and on a database the original
/// worker already populated.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Reads the tally the cheapest way the database allows.
pub async fn read_tally(pool: &PgPool) -> Result<Tally, sqlx::Error> {
    match tally_from(pool, FAST_TALLY_QUERY).await {
        Err(e) if is_undefined_table(&e) => match tally_from(pool, TALLY_QUERY).await {
            Err(e) if is_undefined_table(&e) => Ok(Tally::default()),
            other => other,
        },
        other => other,
    }
}

/// Counts `votes` directly with the contract query. Slow on big tables; the
/// yardstick that [`read_tally`] must always agree with.
pub async fn count_votes(pool: &PgPool) -> Result<Tally, sqlx::Error> {
    tally_from(pool, TALLY_QUERY).await
}

async fn tally_from(pool: &PgPool, query: &'static str) -> Result<Tally, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(query).fetch_all(pool).await?;
    let mut tally = Tally::default();
    for (vote, count) in rows {
        let count = u64::try_from(count).unwrap_or(0);
        match vote.as_str() {
            "a" => tally.a = count,
            "b" => tally.b = count,
            _ => {}
        }
    }
    Ok(tally)
}

/// True when `e` says Postgres is not there to answer yet — down, starting,
/// restarting, refusing connections or logins — so waiting may cure it.
/// False when Postgres answered and refused the work itself.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (08), invalid authorization (28), no such
        // database yet (3D000), out of resources (53), shutting down or
        // starting up (57P01–57P03).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || code.starts_with("28")
                || code.starts_with("53")
                || matches!(code.as_ref(), "3D000" | "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// [`is_unavailable`] for a migration run: only its database errors can be
/// waited out; a changed, missing or failing migration cannot.
pub fn migration_is_unavailable(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => is_unavailable(e),
        _ => false,
    }
}

/// True when Postgres says a relation does not exist (SQLSTATE 42P01).
pub fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}
