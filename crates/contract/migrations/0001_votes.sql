-- The table every version of the voting app shares: one row per voter,
-- holding that voter's latest choice. Same shape as the original worker
-- creates, so either side may have made it first.
CREATE TABLE IF NOT EXISTS votes (
    id   VARCHAR(255) NOT NULL UNIQUE,
    vote VARCHAR(255) NOT NULL
);
