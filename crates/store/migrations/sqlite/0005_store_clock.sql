-- The instant of the last write transaction. Each write takes a later one, even when the wall
-- clock stands still or goes back, so "accepted by T" and "recorded by T" order every change
-- exactly (a record committed after a finalization is always later than it).
CREATE TABLE store_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_micros INTEGER NOT NULL
) STRICT;

INSERT INTO store_clock (id, last_micros) VALUES (1, 0);
