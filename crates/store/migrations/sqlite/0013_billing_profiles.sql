-- Billing profiles (what an invoice document prints about its issuer and its addressee) and
-- invoice numbers. Profiles are append-only versions: the one recorded last is current, and a
-- final invoice prints the versions recorded by its finalization. address is the printed
-- lines joined by a line feed.
CREATE TABLE billing_profiles (
    version_id INTEGER PRIMARY KEY,
    owner_kind TEXT NOT NULL CHECK (owner_kind IN ('partner', 'subscription')),
    owner_id TEXT NOT NULL,
    legal_name TEXT,
    address TEXT,
    country TEXT,
    tax_id TEXT,
    invoice_prefix TEXT,
    tax_rate_percent TEXT,
    recorded_at INTEGER NOT NULL
) STRICT;

CREATE INDEX billing_profiles_by_owner ON billing_profiles (owner_kind, owner_id, version_id);

-- The last invoice number given per partner ('' for subscriptions of no partner) and year:
-- numbers are taken in the finalization's transaction, so they run without gaps.
CREATE TABLE invoice_sequences (
    partner_id TEXT NOT NULL,
    year INTEGER NOT NULL,
    last_number INTEGER NOT NULL,
    PRIMARY KEY (partner_id, year)
) STRICT;

-- A final invoice's number (unique within its partner: the sequence is per partner), and
-- its tax as frozen; NULL on invoices finalized before they were kept.
ALTER TABLE final_invoices ADD COLUMN invoice_number TEXT;
ALTER TABLE final_invoices ADD COLUMN tax_rate_percent TEXT;
ALTER TABLE final_invoices ADD COLUMN tax_amount TEXT;
