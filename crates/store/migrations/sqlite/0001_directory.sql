-- The directory: partners, billing subscriptions, registrations, and the effective-dated
-- tenant mapping events. Instants are INTEGER microseconds since the Unix epoch (UTC);
-- decimals are TEXT in canonical form, never REAL; GUIDs are lowercase hyphenated TEXT.

CREATE TABLE partners (
    partner_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    offer_type TEXT NOT NULL CHECK (offer_type IN ('CSP', 'CSPSS', 'EA', 'PAYG')),
    partner_id TEXT REFERENCES partners (partner_id),
    customer_tenant_id TEXT,
    display_name TEXT NOT NULL,
    rate_card TEXT NOT NULL,
    markup_percent TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX subscriptions_by_partner ON subscriptions (partner_id);

-- A deleted registration keeps its row (deleted_at set) so that its mapping history, and
-- the routing of usage received while it was live, stay explainable.
CREATE TABLE registrations (
    registration_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL COLLATE NOCASE,
    cloud_id TEXT NOT NULL,
    default_subscription_id TEXT NOT NULL REFERENCES subscriptions (subscription_id),
    billing_model TEXT NOT NULL CHECK (billing_model IN ('PayAsYouUse', 'Capacity', 'Development')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    deleted_at INTEGER
) STRICT;

CREATE UNIQUE INDEX registrations_live_name ON registrations (name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX registrations_live_cloud ON registrations (cloud_id) WHERE deleted_at IS NULL;

-- Append-only: rows are never updated or deleted. event_id is the recording order.
CREATE TABLE mapping_events (
    event_id INTEGER PRIMARY KEY,
    registration_id INTEGER NOT NULL REFERENCES registrations (registration_id),
    tenant_id TEXT NOT NULL,
    subscription_id TEXT,
    effective_from INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX mapping_events_by_registration ON mapping_events (registration_id, event_id);

-- Meters added or overridden by the operator; the built-in catalog is compiled in.
CREATE TABLE meters (
    meter_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    category TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- API tokens; only a SHA-256 of each secret is stored.
CREATE TABLE tokens (
    token_id TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'partner', 'stack', 'customer')),
    partner_id TEXT,
    cloud_id TEXT,
    tenant_id TEXT,
    name TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
