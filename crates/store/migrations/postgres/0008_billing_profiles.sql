-- Billing profiles (what an invoice document prints about its issuer and its addressee) and
-- invoice numbers. Profiles are append-only versions: the one recorded last is current, and a
-- final invoice prints the versions recorded by its finalization. address is the printed
-- lines joined by a line feed.
CREATE TABLE billing_profiles (
    version_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('partner', 'subscription')),
    owner_id TEXT COLLATE "C" NOT NULL,
    legal_name TEXT,
    address TEXT,
    country TEXT,
    tax_id TEXT,
    invoice_prefix TEXT,
    tax_rate_percent NUMERIC,
    recorded_at BIGINT NOT NULL
);

CREATE INDEX billing_profiles_by_owner ON billing_profiles (owner_kind, owner_id, version_id);

-- The last invoice number given per partner ('' for subscriptions of no partner) and year:
-- numbers are taken in the finalization's transaction, so they run without gaps.
CREATE TABLE invoice_sequences (
    partner_id TEXT COLLATE "C" NOT NULL,
    year BIGINT NOT NULL,
    last_number BIGINT NOT NULL,
    PRIMARY KEY (partner_id, year)
);

-- A final invoice's number (unique within its partner: the sequence is per partner), and
-- its tax as frozen; NULL on invoices finalized before they were kept.
ALTER TABLE final_invoices ADD COLUMN invoice_number TEXT COLLATE "C";
ALTER TABLE final_invoices ADD COLUMN tax_rate_percent NUMERIC;
ALTER TABLE final_invoices ADD COLUMN tax_amount NUMERIC;
