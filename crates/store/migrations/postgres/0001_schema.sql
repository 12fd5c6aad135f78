-- stackbill's PostgreSQL schema: the same tables as the SQLite schema (migrations/sqlite),
-- with exact NUMERIC for quantities and money. Instants are BIGINT microseconds since the
-- Unix epoch (UTC); GUIDs are lowercase hyphenated TEXT.
--
-- Every usage table is keyed by the stack first (cloud_ref), so that usage can be
-- distributed by stack across servers (docs/scaling.md).

CREATE TABLE partners (
    partner_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE subscriptions (
    subscription_id TEXT COLLATE "C" PRIMARY KEY,
    offer_type TEXT COLLATE "C" NOT NULL CHECK (offer_type IN ('CSP', 'CSPSS', 'EA', 'PAYG')),
    partner_id TEXT COLLATE "C" REFERENCES partners (partner_id),
    customer_tenant_id TEXT COLLATE "C",
    display_name TEXT COLLATE "C" NOT NULL,
    rate_card TEXT COLLATE "C" NOT NULL,
    markup_percent NUMERIC NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX subscriptions_by_partner ON subscriptions (partner_id);

-- A deleted registration keeps its row (deleted_at set). Names compare without case.
CREATE TABLE registrations (
    registration_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    cloud_id TEXT COLLATE "C" NOT NULL,
    default_subscription_id TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (subscription_id),
    billing_model TEXT COLLATE "C" NOT NULL CHECK (billing_model IN ('PayAsYouUse', 'Capacity', 'Development')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    azure_resource_group TEXT COLLATE "C",
    azure_object_id TEXT COLLATE "C",
    azure_tags TEXT COLLATE "C"
);

CREATE UNIQUE INDEX registrations_live_name ON registrations (lower(name)) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX registrations_live_cloud ON registrations (cloud_id) WHERE deleted_at IS NULL;

-- Append-only: rows are never updated or deleted. event_id is the recording order.
CREATE TABLE mapping_events (
    event_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    registration_id BIGINT NOT NULL REFERENCES registrations (registration_id),
    tenant_id TEXT COLLATE "C" NOT NULL,
    subscription_id TEXT COLLATE "C",
    effective_from BIGINT NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE INDEX mapping_events_by_registration ON mapping_events (registration_id, event_id);

CREATE TABLE meters (
    meter_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    unit TEXT COLLATE "C" NOT NULL,
    category TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    token_id TEXT COLLATE "C" PRIMARY KEY,
    role TEXT COLLATE "C" NOT NULL CHECK (role IN ('admin', 'partner', 'stack', 'customer')),
    partner_id TEXT COLLATE "C",
    cloud_id TEXT COLLATE "C",
    tenant_id TEXT COLLATE "C",
    name TEXT COLLATE "C" NOT NULL,
    secret_sha256 BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Repeated usage values, stored once and referenced by number.
CREATE TABLE usage_values (
    value_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind BIGINT NOT NULL,             -- 1 cloud, 2 tenant, 3 subscription, 4 meter, 5 instance data
    value TEXT COLLATE "C" NOT NULL,
    UNIQUE (kind, value)
);

-- Append-only. `rowid` is the acceptance order: writers are serialized (store_clock), so
-- the numbers grow in commit order.
CREATE TABLE usage_records (
    cloud_ref BIGINT NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    tenant_ref BIGINT NOT NULL,
    subscription_ref BIGINT NOT NULL,
    meter_ref BIGINT NOT NULL,
    quantity NUMERIC NOT NULL,
    usage_hour BIGINT NOT NULL,
    instance_ref BIGINT,
    reported_at BIGINT NOT NULL,
    accepted_at BIGINT NOT NULL,
    rowid BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (cloud_ref, record_id)
);

-- Rows arrive in rowid order, so a block range index finds a rowid range cheaply.
CREATE INDEX usage_records_by_rowid ON usage_records USING brin (rowid);

CREATE TABLE usage_hourly (
    cloud_ref BIGINT NOT NULL,
    tenant_ref BIGINT NOT NULL,
    meter_ref BIGINT NOT NULL,
    usage_hour BIGINT NOT NULL,
    quantity NUMERIC NOT NULL,
    records BIGINT NOT NULL,
    PRIMARY KEY (cloud_ref, tenant_ref, meter_ref, usage_hour)
);

CREATE INDEX usage_hourly_by_hour ON usage_hourly (usage_hour);

CREATE TABLE usage_monthly (
    cloud_ref BIGINT NOT NULL,
    tenant_ref BIGINT NOT NULL,
    meter_ref BIGINT NOT NULL,
    month_hour BIGINT NOT NULL,
    quantity NUMERIC NOT NULL,
    records BIGINT NOT NULL,
    PRIMARY KEY (month_hour, cloud_ref, tenant_ref, meter_ref)
);

CREATE TABLE usage_batches (
    accepted_at BIGINT PRIMARY KEY,
    last_rowid BIGINT NOT NULL
);

CREATE TABLE usage_late (
    month_hour BIGINT NOT NULL,
    record_rowid BIGINT NOT NULL,
    PRIMARY KEY (month_hour, record_rowid)
);

CREATE TABLE rate_card_versions (
    version_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    currency TEXT COLLATE "C" NOT NULL,
    recorded_at BIGINT NOT NULL
);

CREATE INDEX rate_card_versions_by_name ON rate_card_versions (name, version_id);

CREATE TABLE rate_card_tiers (
    version_id BIGINT NOT NULL REFERENCES rate_card_versions (version_id),
    meter_id TEXT COLLATE "C" NOT NULL,
    effective_date BIGINT NOT NULL,
    included_quantity NUMERIC NOT NULL,
    from_quantity NUMERIC NOT NULL,
    unit_price NUMERIC NOT NULL
);

CREATE INDEX rate_card_tiers_by_version ON rate_card_tiers (version_id);

CREATE TABLE finalized_periods (
    period TEXT COLLATE "C" NOT NULL,
    partner_id TEXT COLLATE "C" NOT NULL,
    finalized_at BIGINT NOT NULL,
    PRIMARY KEY (period, partner_id)
);

CREATE TABLE final_invoices (
    subscription_id TEXT COLLATE "C" NOT NULL,
    period TEXT COLLATE "C" NOT NULL,
    partner_id TEXT COLLATE "C",
    currency TEXT COLLATE "C" NOT NULL,
    total NUMERIC NOT NULL,
    finalized_at BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, period)
);

CREATE TABLE final_invoice_lines (
    subscription_id TEXT COLLATE "C" NOT NULL,
    period TEXT COLLATE "C" NOT NULL,
    meter_id TEXT COLLATE "C" NOT NULL,
    quantity NUMERIC NOT NULL,
    amount NUMERIC NOT NULL,
    unpriced BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, period, meter_id)
);

-- `rowid`: the order adjustments were written in.
CREATE TABLE final_invoice_adjustments (
    subscription_id TEXT COLLATE "C" NOT NULL,
    period TEXT COLLATE "C" NOT NULL,
    adjusted_period TEXT COLLATE "C" NOT NULL,
    meter_id TEXT COLLATE "C" NOT NULL,
    quantity NUMERIC NOT NULL,
    amount NUMERIC NOT NULL,
    reason TEXT COLLATE "C" NOT NULL,
    rowid BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX final_invoice_adjustments_by_adjusted
    ON final_invoice_adjustments (subscription_id, adjusted_period);

CREATE TABLE store_clock (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_micros BIGINT NOT NULL
);

INSERT INTO store_clock (id, last_micros) VALUES (1, 0);
