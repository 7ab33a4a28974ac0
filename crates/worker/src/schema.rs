//! The schema the worker owns: it is the only writer of our tables, and
//! creates or upgrades them itself at start.
//!
//! The migrations are the SQL files in `crates/contract/migrations/` (the
//! contract the worker and the result service share), embedded in this
//! binary. Running them is safe from several workers at once (the migrator
//! holds an advisory lock) and on a database the original worker already
//! populated.
//!
//! Start-up waits while Postgres is not there to answer yet; the errors
//! that say so are told apart here ([`is_unavailable`]) from those no
//! amount of waiting cures.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The schema migrations, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("../contract/migrations");

/// Creates or upgrades the schema.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
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
pub fn migration_is_unavailable(e: &MigrateError) -> bool {
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => is_unavailable(e),
        _ => false,
    }
}
