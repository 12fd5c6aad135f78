-- Billing: rate card versions, final invoices and the record of finalized periods.

-- Every PUT of a rate card is a new version; the one recorded last is current, and an
-- as-of question picks the last one recorded by then.
CREATE TABLE rate_card_versions (
    version_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    currency TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX rate_card_versions_by_name ON rate_card_versions (name, version_id);

-- One row per tier of one entry (meter, effective date) of a version.
CREATE TABLE rate_card_tiers (
    version_id INTEGER NOT NULL REFERENCES rate_card_versions (version_id),
    meter_id TEXT NOT NULL,
    effective_date INTEGER NOT NULL,
    included_quantity TEXT NOT NULL,
    from_quantity TEXT NOT NULL,
    unit_price TEXT NOT NULL
) STRICT;

CREATE INDEX rate_card_tiers_by_version ON rate_card_tiers (version_id);

-- A period finalized for one partner ('' means every subscription, partner or not).
CREATE TABLE finalized_periods (
    period TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    finalized_at INTEGER NOT NULL,
    PRIMARY KEY (period, partner_id)
) STRICT;

-- Frozen invoices: written once at finalization, never changed.
CREATE TABLE final_invoices (
    subscription_id TEXT NOT NULL,
    period TEXT NOT NULL,
    partner_id TEXT,
    currency TEXT NOT NULL,
    total TEXT NOT NULL,
    finalized_at INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, period)
) STRICT;

CREATE TABLE final_invoice_lines (
    subscription_id TEXT NOT NULL,
    period TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    amount TEXT NOT NULL,
    unpriced INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, period, meter_id)
) STRICT;

CREATE TABLE final_invoice_adjustments (
    subscription_id TEXT NOT NULL,
    period TEXT NOT NULL,
    adjusted_period TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    quantity TEXT NOT NULL,
    amount TEXT NOT NULL,
    reason TEXT NOT NULL
) STRICT;

CREATE INDEX final_invoice_adjustments_by_adjusted
    ON final_invoice_adjustments (subscription_id, adjusted_period);
