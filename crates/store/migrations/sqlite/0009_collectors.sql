-- The collector (SPEC §10): one per registration (by its lower-cased name), how to reach
-- the stack, and where it got to. The client secret or certificate is never stored: only
-- the path of the file that holds it, read at each collection.
CREATE TABLE collectors (
    registration_key TEXT PRIMARY KEY,
    registration TEXT NOT NULL,
    admin_endpoint TEXT NOT NULL,
    provider_subscription TEXT NOT NULL,
    client_id TEXT NOT NULL,
    directory TEXT NOT NULL,
    secret_file TEXT,
    certificate_file TEXT,
    ca_file TEXT,
    start_hour INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_success_at INTEGER,
    last_error_at INTEGER,
    last_error_code TEXT,
    last_error_message TEXT
) STRICT;

-- Every user subscription a stack ever listed, with its directory: remembered forever, so
-- that the rows of a deleted subscription still find their tenant.
CREATE TABLE collector_subscribers (
    registration_key TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    display_name TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    PRIMARY KEY (registration_key, subscription_id)
) STRICT;

-- Per subscriber, the last reported hour (hours since the epoch) fully collected: written
-- in the same transaction as that hour's records.
CREATE TABLE collector_cursors (
    registration_key TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    last_hour INTEGER NOT NULL,
    PRIMARY KEY (registration_key, subscription_id)
) STRICT;

-- Rows of user subscriptions the stack has not listed: held as the stack sent them, and
-- collected once the subscription is known.
CREATE TABLE collector_held (
    held_id INTEGER PRIMARY KEY,
    registration_key TEXT NOT NULL,
    reported_hour INTEGER NOT NULL,
    subscription_id TEXT NOT NULL,
    row_json TEXT NOT NULL
) STRICT;

CREATE INDEX collector_held_by_registration ON collector_held (registration_key, held_id);

-- Which node collects a stack now: a lease that its holder renews while it collects and
-- that another node takes once it has expired (the holder died).
CREATE TABLE collector_leases (
    registration_key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
