//! The Postgres side of the pipeline: the `votes` table, the tally queries
//! and the channel that announces changes, as SQL text.
//!
//! The `votes` table is the source of truth, shared with the original app.
//! Our migrations — SQL files in `crates/contract/migrations/`, which the
//! worker embeds and runs at start (it is the schema's only writer) — add
//! a `seq` column for ordering and a trigger-maintained `vote_tally` table,
//! so reading the tally costs the same at ten votes or ten million; the
//! triggers also notify [`CHANGES_CHANNEL`]. The result service reads with
//! [`FAST_TALLY_QUERY`] where `vote_tally` exists and falls back to
//! [`TALLY_QUERY`] on a database only the original worker wrote.
//!
//! Running SQL is each service's own business: this crate holds the text.

/// What the result shows, by definition (contract with the original app).
pub const TALLY_QUERY: &str = "SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote";

/// The constant-time read of the same numbers, from the trigger-kept
/// `vote_tally` of our migrations.
pub const FAST_TALLY_QUERY: &str = "SELECT vote, count FROM vote_tally WHERE vote IN ('a', 'b')";

/// The channel the tally triggers notify after every change (at commit).
pub const CHANGES_CHANNEL: &str = "votes_changed";

#[cfg(test)]
mod tests {
    use super::*;

    /// The migrations notify the channel the readers listen on, and create
    /// the table the fast query reads.
    #[test]
    fn the_migrations_speak_of_the_same_names() {
        let migrations = [
            include_str!("../migrations/0001_votes.sql"),
            include_str!("../migrations/0002_seq_and_tally.sql"),
        ]
        .concat();
        assert!(migrations.contains(&format!("pg_notify('{CHANGES_CHANNEL}'")));
        assert!(migrations.contains("CREATE TABLE IF NOT EXISTS vote_tally"));
        assert!(migrations.contains("CREATE TABLE IF NOT EXISTS votes ("));
    }
}
