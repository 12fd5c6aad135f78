-- Usage: the raw accepted records (the audit trail) and an hourly pre-aggregate.
--
-- Repeated values (stacks, tenants, subscriptions, meters and instance data) are stored
-- once in `usage_values` and referenced by a small integer, so a record row holds little
-- more than its id and quantity.

CREATE TABLE usage_values (
    value_id INTEGER PRIMARY KEY,
    kind INTEGER NOT NULL,            -- 1 cloud, 2 tenant, 3 subscription, 4 meter, 5 instance data
    value TEXT NOT NULL,
    UNIQUE (kind, value)
) STRICT;

-- Append-only: a row is never updated or deleted. `rowid` is the acceptance order.
CREATE TABLE usage_records (
    cloud_ref INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    tenant_ref INTEGER NOT NULL,
    subscription_ref INTEGER NOT NULL,
    meter_ref INTEGER NOT NULL,
    quantity TEXT NOT NULL,           -- canonical decimal text
    usage_hour INTEGER NOT NULL,      -- whole hours since the Unix epoch (UTC)
    instance_ref INTEGER,
    reported_at INTEGER NOT NULL,     -- microseconds; the acceptance instant when not given
    accepted_at INTEGER NOT NULL      -- microseconds
) STRICT;

-- The idempotency key, for the data's whole life.
CREATE UNIQUE INDEX usage_records_key ON usage_records (cloud_ref, record_id);

-- Sum of accepted quantities per stack, tenant, meter and hour. Routing is applied when it
-- is read, so a backdated registration change re-routes without rewriting anything.
CREATE TABLE usage_hourly (
    cloud_ref INTEGER NOT NULL,
    tenant_ref INTEGER NOT NULL,
    meter_ref INTEGER NOT NULL,
    usage_hour INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (cloud_ref, tenant_ref, meter_ref, usage_hour)
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_hourly_by_hour ON usage_hourly (usage_hour);

-- The same sums per calendar month (`month_hour`: the month's first hour), for invoices: a
-- tenant whose routing does not change within a month is billed from one row per meter.
CREATE TABLE usage_monthly (
    cloud_ref INTEGER NOT NULL,
    tenant_ref INTEGER NOT NULL,
    meter_ref INTEGER NOT NULL,
    month_hour INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (month_hour, cloud_ref, tenant_ref, meter_ref)
) STRICT, WITHOUT ROWID;
