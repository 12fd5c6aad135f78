-- Which records came after their month was finalized, and which records each ingestion
-- committed. Rowids of usage_records grow with every commit (rows are never deleted), so
-- "accepted by T" is "rowid <= the last rowid committed by T", with no per-record index.

-- One row per ingestion transaction that accepted records.
CREATE TABLE usage_batches (
    accepted_at INTEGER PRIMARY KEY,
    last_rowid INTEGER NOT NULL
) STRICT;

-- Records accepted for a month that was already final (for anyone) when they arrived: the
-- candidates for adjustments, found without scanning the month.
CREATE TABLE usage_late (
    month_hour INTEGER NOT NULL,
    record_rowid INTEGER NOT NULL,
    PRIMARY KEY (month_hour, record_rowid)
) STRICT, WITHOUT ROWID;
