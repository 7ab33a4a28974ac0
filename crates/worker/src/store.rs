//! The worker's side of Postgres: storing a batch of ballots.
//!
//! A batch is one `INSERT … ON CONFLICT DO UPDATE` over `UNNEST`ed arrays —
//! one statement, so one round trip and one implicit transaction however
//! many ballots it holds. The `WHERE` clause makes it idempotent and
//! ordered: a row is replaced only by a ballot with a higher `seq`, or when
//! either side has no `seq` (writers that send none are ordered by the
//! queue). `seq` is always written along with `vote`, even when the vote
//! is unchanged, or a later stale ballot could slip in under it.
//!
//! The tally table and the `votes_changed` notification are maintained by
//! the schema's triggers, not here.

use contract::{Ballot, SeqWindow};
use sqlx::PgPool;

/// The statement that stores a batch; public so that the drain bench's
/// floor runs exactly this.
pub const UPSERT: &str = "\
INSERT INTO votes (id, vote, seq)
SELECT * FROM UNNEST($1::varchar[], $2::varchar[], $3::bigint[])
ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote, seq = EXCLUDED.seq
WHERE votes.seq IS NULL OR EXCLUDED.seq IS NULL OR votes.seq < EXCLUDED.seq";

/// How often a batch is retried when Postgres aborts it for a deadlock or
/// a serialization failure (another writer in the way; trying again works).
const CONFLICT_RETRIES: u32 = 5;

/// Stores each voter's latest ballot. `rows` must hold at most one ballot
/// per voter, sorted by voter id (see [`crate::batch::Batch::latest`]).
/// Returns the number of rows inserted or changed.
pub async fn store_ballots(pool: &PgPool, rows: &[&Ballot]) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = rows.iter().map(|b| b.voter_id.as_str()).collect();
    let votes: Vec<&str> = rows.iter().map(|b| b.vote.as_str()).collect();
    let seqs: Vec<Option<i64>> = rows.iter().map(|b| b.seq).collect();
    let mut attempt = 0;
    loop {
        let stored = sqlx::query(UPSERT)
            .bind(&ids)
            .bind(&votes)
            .bind(&seqs)
            .execute(pool)
            .await;
        match stored {
            Ok(done) => return Ok(done.rows_affected()),
            Err(e) if attempt < CONFLICT_RETRIES && is_transient_conflict(&e) => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "batch conflicted with another writer; retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

/// The highest `seq` stored inside `window`, if any.
pub async fn highest_seq(pool: &PgPool, window: SeqWindow) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(seq) FROM votes WHERE seq BETWEEN $1 AND $2")
        .bind(SeqWindow::OLDEST)
        .bind(window.newest())
        .fetch_one(pool)
        .await
}

/// Clears the `seq` of rows stored with one outside `window` (by a worker
/// that did not check `seq`, before this one). Such a row outranks every
/// later ballot of its voter; without a `seq`, the voter's next ballot
/// replaces it, and ordering resumes from there. Returns how many rows.
pub async fn clear_seqs_outside(pool: &PgPool, window: SeqWindow) -> Result<u64, sqlx::Error> {
    let cleared = sqlx::query("UPDATE votes SET seq = NULL WHERE seq < $1 OR seq > $2")
        .bind(SeqWindow::OLDEST)
        .bind(window.newest())
        .execute(pool)
        .await?;
    Ok(cleared.rows_affected())
}

/// Deadlock detected (40P01) or serialization failure (40001).
fn is_transient_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40P01" | "40001")))
}
