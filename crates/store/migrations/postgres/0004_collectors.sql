-- The collector (SPEC §10): one per registration (by its lower-cased name), how to reach
-- the stack, and where it got to. The client secret or certificate is never stored: only
-- the path of the file that holds it, read at each collection.
CREATE TABLE collectors (
    registration_key TEXT COLLATE "C" PRIMARY KEY,
    registration TEXT COLLATE "C" NOT NULL,
    admin_endpoint TEXT COLLATE "C" NOT NULL,
    provider_subscription TEXT COLLATE "C" NOT NULL,
    client_id TEXT COLLATE "C" NOT NULL,
    directory TEXT COLLATE "C" NOT NULL,
    secret_file TEXT COLLATE "C",
    certificate_file TEXT COLLATE "C",
    ca_file TEXT COLLATE "C",
    start_hour BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_success_at BIGINT,
    last_error_at BIGINT,
    last_error_code TEXT COLLATE "C",
    last_error_message TEXT COLLATE "C"
);

-- Every user subscription a stack ever listed, with its directory: remembered forever, so
-- that the rows of a deleted subscription still find their tenant.
CREATE TABLE collector_subscribers (
    registration_key TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    state TEXT COLLATE "C" NOT NULL,
    display_name TEXT COLLATE "C" NOT NULL,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (registration_key, subscription_id)
);

-- Per subscriber, the last reported hour (hours since the epoch) fully collected: written
-- in the same transaction as that hour's records.
CREATE TABLE collector_cursors (
    registration_key TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    last_hour BIGINT NOT NULL,
    PRIMARY KEY (registration_key, subscription_id)
);

-- Rows of user subscriptions the stack has not listed: held as the stack sent them, and
-- collected once the subscription is known.
CREATE TABLE collector_held (
    held_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_key TEXT COLLATE "C" NOT NULL,
    reported_hour BIGINT NOT NULL,
    subscription_id TEXT COLLATE "C" NOT NULL,
    row_json TEXT COLLATE "C" NOT NULL
);

CREATE INDEX collector_held_by_registration ON collector_held (registration_key, held_id);

-- Which node collects a stack now: a lease that its holder renews while it collects and
-- that another node takes once it has expired (the holder died).
CREATE TABLE collector_leases (
    registration_key TEXT COLLATE "C" PRIMARY KEY,
    holder TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
