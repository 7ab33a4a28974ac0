-- Ordering and a constant-time tally. Nothing here is required of other
-- writers: a plain `INSERT INTO votes (id, vote)` still works and still
-- counts, because the tally is kept by triggers.

-- Quiet the "does not exist, skipping" notices of the IF EXISTS clauses
-- below on a fresh database (this migration runs in one transaction).
SET LOCAL client_min_messages = warning;

-- The ballot sequence number that stored this row (NULL for writers that
-- do not send one). The worker only replaces a row with a higher seq.
ALTER TABLE votes ADD COLUMN IF NOT EXISTS seq BIGINT;

-- Running counts per vote value. Always equal to
-- `SELECT vote, COUNT(id) FROM votes GROUP BY vote` (rows with count 0 may
-- linger), so the result service reads two rows instead of scanning votes.
CREATE TABLE IF NOT EXISTS vote_tally (
    vote  VARCHAR(255) PRIMARY KEY,
    count BIGINT NOT NULL
);

-- Adds per-vote deltas to the tally in a fixed order (by vote), so two
-- concurrent writers lock tally rows in the same order and cannot
-- deadlock; then wakes listeners. NOTIFY is delivered at commit and
-- repeated notifications in one transaction collapse into one.
CREATE OR REPLACE FUNCTION vote_tally_apply(deltas JSONB) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d RECORD;
    changed BOOLEAN := false;
BEGIN
    FOR d IN
        SELECT key AS vote, value::BIGINT AS delta
        FROM jsonb_each_text(deltas)
        WHERE value::BIGINT <> 0
        ORDER BY key
    LOOP
        INSERT INTO vote_tally (vote, count) VALUES (d.vote, d.delta)
        ON CONFLICT (vote) DO UPDATE SET count = vote_tally.count + EXCLUDED.count;
        changed := true;
    END LOOP;
    IF changed THEN
        PERFORM pg_notify('votes_changed', '');
    END IF;
END;
$$;

-- Statement-level triggers with transition tables: one tally update per
-- statement, however many rows it touched.
CREATE OR REPLACE FUNCTION vote_tally_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tally_apply(
        (SELECT COALESCE(jsonb_object_agg(vote, n), '{}') FROM
            (SELECT vote, COUNT(*) AS n FROM new_rows GROUP BY vote) s));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION vote_tally_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tally_apply(
        (SELECT COALESCE(jsonb_object_agg(vote, n), '{}') FROM
            (SELECT vote, SUM(delta) AS n FROM (
                SELECT vote, 1 AS delta FROM new_rows
                UNION ALL
                SELECT vote, -1 AS delta FROM old_rows) c
             GROUP BY vote) s));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION vote_tally_on_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM vote_tally_apply(
        (SELECT COALESCE(jsonb_object_agg(vote, -n), '{}') FROM
            (SELECT vote, COUNT(*) AS n FROM old_rows GROUP BY vote) s));
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION vote_tally_on_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vote_tally;
    PERFORM pg_notify('votes_changed', '');
    RETURN NULL;
END;
$$;

-- Hold off other writers while the tally is seeded from existing rows, so
-- no row is counted twice or missed.
LOCK TABLE votes IN SHARE ROW EXCLUSIVE MODE;

DROP TRIGGER IF EXISTS vote_tally_insert ON votes;
DROP TRIGGER IF EXISTS vote_tally_update ON votes;
DROP TRIGGER IF EXISTS vote_tally_delete ON votes;
DROP TRIGGER IF EXISTS vote_tally_truncate ON votes;

CREATE TRIGGER vote_tally_insert AFTER INSERT ON votes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vote_tally_on_insert();
CREATE TRIGGER vote_tally_update AFTER UPDATE ON votes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vote_tally_on_update();
CREATE TRIGGER vote_tally_delete AFTER DELETE ON votes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vote_tally_on_delete();
CREATE TRIGGER vote_tally_truncate AFTER TRUNCATE ON votes
    FOR EACH STATEMENT EXECUTE FUNCTION vote_tally_on_truncate();

DELETE FROM vote_tally;
INSERT INTO vote_tally (vote, count)
    SELECT vote, COUNT(id) FROM votes GROUP BY vote;
