"""The DuckDB pipeline a user would pick instead of stackbill: read the NDJSON, keep one
record per (cloudId, id), and sum exact quantities per subscription and meter.
Prints one JSON line: records, seconds, records_per_second."""

import json
import sys
import time

import duckdb

path = sys.argv[1]
con = duckdb.connect()
start = time.perf_counter()
rows = con.execute(
    """
    WITH raw AS (
        SELECT * FROM read_json(?, format = 'newline_delimited', columns = {
            id: 'VARCHAR', cloudId: 'VARCHAR', tenantId: 'VARCHAR', subscriptionId: 'VARCHAR',
            meterId: 'VARCHAR', quantity: 'VARCHAR', usageStartTime: 'VARCHAR',
            usageEndTime: 'VARCHAR', instanceData: 'JSON'})
    ),
    dedup AS (
        SELECT DISTINCT ON (cloudId, id) * FROM raw
    )
    SELECT subscriptionId, meterId, sum(CAST(quantity AS DECIMAL(38, 10))) AS quantity, count(*) AS n
    FROM dedup GROUP BY subscriptionId, meterId
    """,
    [path],
).fetchall()
seconds = time.perf_counter() - start
records = sum(r[3] for r in rows)
print(json.dumps({"records": records, "groups": len(rows), "seconds": round(seconds, 3),
                  "records_per_second": round(records / seconds)}))
