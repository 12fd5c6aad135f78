-- How many records each code refused, per hour they were refused in (hours since the epoch):
-- what an operator watches on the console's overview. Added to by the adapters after each
-- batch they ingest.
CREATE TABLE rejection_counts (
    hour BIGINT NOT NULL,
    code TEXT COLLATE "C" NOT NULL,
    records BIGINT NOT NULL,
    PRIMARY KEY (hour, code)
);
