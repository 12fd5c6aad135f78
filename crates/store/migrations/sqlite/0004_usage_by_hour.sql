-- Drill-down and as-of invoices read the raw records of one period.
CREATE INDEX usage_records_by_hour ON usage_records (usage_hour, meter_ref);
