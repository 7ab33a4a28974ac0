//! Reading the tally from Postgres, for the poller, the tests and the
//! benchmarks.
//!
//! The worker's migrations add a trigger-maintained `vote_tally` table
//! (see [`contract::table`]), so reading the tally costs the same at ten
//! votes or ten million. Readers that find no `vote_tally` (a database
//! written only by the original worker) fall back to counting `votes`;
//! readers that find no `votes` yet see an empty tally.
//!
//! Which of the three applies is found by asking the catalog
//! ([`TallyReader`]), not by trying the fast query and catching "relation
//! does not exist": on a database our worker never migrated, a poller doing
//! that sends a failing statement every second, and each lands in the
//! Postgres log as an ERROR with its STATEMENT.

use std::time::{Duration, Instant};

use contract::table::{FAST_TALLY_QUERY, TALLY_QUERY};
use contract::{Tally, Vote};
use sqlx::PgPool;

/// Which of our tables exist, by the same name lookup the queries use
/// (`search_path`); never fails for a missing table.
const SCHEMA_PROBE: &str =
    "SELECT to_regclass('vote_tally') IS NOT NULL, to_regclass('votes') IS NOT NULL";

/// Reads the tally the cheapest way the database allows: one look at the
/// catalog, then one query. For repeated reads, keep a [`TallyReader`].
pub async fn read_tally(pool: &PgPool) -> Result<Tally, sqlx::Error> {
    TallyReader::new(Duration::ZERO).read(pool).await
}

/// Where a database's tally comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TallySource {
    /// Our trigger-kept `vote_tally` ([`FAST_TALLY_QUERY`]).
    Kept,
    /// Only the original `votes` table, counted ([`TALLY_QUERY`]).
    Counted,
    /// No `votes` table yet: nobody has voted.
    NoTable,
}

impl TallySource {
    /// For logs: where the tally is read from.
    pub fn describe(self) -> &'static str {
        match self {
            TallySource::Kept => "vote_tally, kept by triggers",
            TallySource::Counted => "counting votes (no vote_tally: the worker never migrated)",
            TallySource::NoTable => "none yet (no votes table)",
        }
    }
}

/// Reads the tally again and again, remembering which query works.
///
/// The source is found with a catalog query that cannot fail for a missing
/// table, and looked for again:
/// - at every read while there is no `votes` table (one cheap catalog
///   query, so the original worker's first votes show at once);
/// - at the next read after [`TallyReader::changes_notified`] when the
///   source is not `vote_tally` (the first notification after our worker
///   migrates a database comes from its new triggers);
/// - when the remembered query finds its table gone;
/// - otherwise every `reprobe_after`.
#[derive(Debug)]
pub struct TallyReader {
    source: Option<TallySource>,
    probed_at: Option<Instant>,
    reprobe_after: Duration,
}

impl TallyReader {
    /// How long a source is trusted by default before it is looked for
    /// again.
    pub const REPROBE_AFTER: Duration = Duration::from_secs(60);

    pub fn new(reprobe_after: Duration) -> Self {
        TallyReader {
            source: None,
            probed_at: None,
            reprobe_after,
        }
    }

    /// The source the last read used, if any read has worked yet.
    pub fn source(&self) -> Option<TallySource> {
        self.source
    }

    /// Says a change notification arrived: unless the tally already comes
    /// from `vote_tally`, the next read looks at the catalog again.
    pub fn changes_notified(&mut self) {
        if self.source != Some(TallySource::Kept) {
            self.probed_at = None;
        }
    }

    /// Reads the tally from the remembered source, looking for the source
    /// again first when it is due.
    pub async fn read(&mut self, pool: &PgPool) -> Result<Tally, sqlx::Error> {
        let source = match (self.source, self.probed_at) {
            (Some(source), Some(at))
                if source != TallySource::NoTable && at.elapsed() < self.reprobe_after =>
            {
                source
            }
            _ => self.probe(pool).await?,
        };
        match read_from(pool, source).await {
            // The schema changed under us (a table dropped): look again.
            Err(e) if is_undefined_table(&e) => {
                let source = self.probe(pool).await?;
                read_from(pool, source).await
            }
            read => read,
        }
    }

    async fn probe(&mut self, pool: &PgPool) -> Result<TallySource, sqlx::Error> {
        let (kept, votes): (bool, bool) = sqlx::query_as(SCHEMA_PROBE).fetch_one(pool).await?;
        let source = match (kept, votes) {
            (true, _) => TallySource::Kept,
            (false, true) => TallySource::Counted,
            (false, false) => TallySource::NoTable,
        };
        self.source = Some(source);
        self.probed_at = Some(Instant::now());
        Ok(source)
    }
}

async fn read_from(pool: &PgPool, source: TallySource) -> Result<Tally, sqlx::Error> {
    match source {
        TallySource::Kept => tally_from(pool, FAST_TALLY_QUERY).await,
        TallySource::Counted => tally_from(pool, TALLY_QUERY).await,
        TallySource::NoTable => Ok(Tally::default()),
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
        // Rows of anything but the two options (another writer's) are not
        // the tally's.
        if let Ok(vote) = Vote::parse(&vote) {
            tally.set(vote, u64::try_from(count).unwrap_or(0));
        }
    }
    Ok(tally)
}

/// True when Postgres says a relation does not exist (SQLSTATE 42P01).
pub fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}
