-- What a final invoice's line was rated at, so that the invoice shows it as it was: the unit
-- price from quantity 0, whether further tiers applied, the included quantity and the
-- subscription's markup. NULL on lines finalized before they were kept.
ALTER TABLE final_invoice_lines ADD COLUMN unit_price NUMERIC;
ALTER TABLE final_invoice_lines ADD COLUMN tiered BIGINT;
ALTER TABLE final_invoice_lines ADD COLUMN included_quantity NUMERIC;
ALTER TABLE final_invoice_lines ADD COLUMN markup_percent NUMERIC;
