#!/usr/bin/env bash
# The plain PostgreSQL pipeline a user would pick instead of stackbill: COPY the NDJSON
# into a staging table, insert into a table keyed on (cloudId, id) with ON CONFLICT DO
# NOTHING, then sum exact quantities per subscription and meter.
# Usage: postgres_pipeline.sh FILE PSQL_CONNINFO. Prints one JSON line.
set -euo pipefail
file=$1
conn=$2
start=$(date +%s.%N)
psql "$conn" -v ON_ERROR_STOP=1 -q <<SQL
DROP TABLE IF EXISTS staging, usage;
CREATE UNLOGGED TABLE staging (doc jsonb);
CREATE TABLE usage (
    cloud_id uuid NOT NULL, id text NOT NULL, tenant_id uuid NOT NULL, subscription_id uuid NOT NULL,
    meter_id uuid NOT NULL, quantity numeric NOT NULL, usage_start timestamptz NOT NULL,
    instance_data jsonb, PRIMARY KEY (cloud_id, id));
\copy staging (doc) FROM '$file' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
INSERT INTO usage
SELECT (doc->>'cloudId')::uuid, doc->>'id', (doc->>'tenantId')::uuid, (doc->>'subscriptionId')::uuid,
       (doc->>'meterId')::uuid, (doc->>'quantity')::numeric, (doc->>'usageStartTime')::timestamptz,
       doc->'instanceData'
FROM staging ON CONFLICT DO NOTHING;
CREATE TEMP TABLE totals AS
SELECT subscription_id, meter_id, sum(quantity) AS quantity, count(*) AS n FROM usage GROUP BY 1, 2;
SQL
end=$(date +%s.%N)
records=$(psql "$conn" -At -c "SELECT count(*) FROM usage")
python3 -c "import json; s=$end-$start; print(json.dumps({'records': $records, 'seconds': round(s, 3), 'records_per_second': round($records / s)}))"
