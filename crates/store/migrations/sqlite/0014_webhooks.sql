-- Webhooks (Standard Webhooks): each partner's endpoints, the events caused by a write (stored
-- in that write's transaction: the outbox), one delivery per (event, endpoint) with its retry
-- state, and every attempt (the delivery log).
CREATE TABLE webhook_endpoints (
    endpoint_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners (partner_id),
    url TEXT NOT NULL,
    -- The event types it receives, comma separated; '*' for every type.
    event_types TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The signing secret (whsec_...), sealed under the secret key file.
    secret_sealed TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_endpoints_by_partner ON webhook_endpoints (partner_id);

-- The body is stored exactly as it is sent, so every attempt signs the same bytes.
CREATE TABLE webhook_events (
    event_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- status: 'pending' (next_attempt_at is when it is due, or when a claim on it lapses),
-- 'delivered', or 'failed' (attempts exhausted, or the endpoint answered 410).
CREATE TABLE webhook_deliveries (
    event_id TEXT NOT NULL REFERENCES webhook_events (event_id),
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (endpoint_id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    PRIMARY KEY (event_id, endpoint_id)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, event_id);

CREATE TABLE webhook_attempts (
    event_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, endpoint_id, attempt)
) STRICT;

-- Conditions already announced ("first usage of this tenant in this month"), so that an event
-- that says "first" is emitted once.
CREATE TABLE webhook_marks (
    mark TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;

-- Refused records per hour, partner and code, for each partner's hourly usage.rejected digest
-- ('' for records of no known partner).
CREATE TABLE partner_rejections (
    hour INTEGER NOT NULL,
    partner_id TEXT NOT NULL,
    code TEXT NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (hour, partner_id, code)
) STRICT;
