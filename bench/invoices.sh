#!/usr/bin/env bash
# Invoice benchmark: every invoice of one month for TENANTS customer subscriptions, from
# RECORDS imported usage records.
#
#   bench/invoices.sh [RECORDS] [TENANTS]      (default: 10000000 10000)
#
# Work files go to $BENCH_DIR (default /var/tmp/stackbill-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-10000000}
tenants=${2:-10000}
dir=${BENCH_DIR:-/var/tmp/stackbill-bench}
mkdir -p "$dir"
cargo build --release --locked -p stackbill >&2
bin=${CARGO_TARGET_DIR:-target}/release/stackbill

db="$dir/invoices-$records-$tenants.db"
file="$dir/usage-$records-t$tenants.ndjson"
if [ ! -s "$db" ]; then
  rm -f "$db" "$db-wal" "$db-shm"
  STACKBILL_ADMIN_TOKEN=bench "$bin" demo --no-serve --usage-records 0 --tenants "$tenants" --db "$db" >/dev/null 2>&1
  [ -s "$file" ] || "$bin" generate --records "$records" --tenants "$tenants" --month 2026-09 --seed 7 --out "$file" 2>/dev/null
  "$bin" usage import "$file" --db "$db" --json >&2
fi
"$bin" invoice list 2026-09 --db "$db" --json > /dev/null   # warm the page cache
/usr/bin/time -f "%e %M" -o "$dir/time" "$bin" invoice list 2026-09 --db "$db" --json > "$dir/invoices.json"
read -r secs rss < "$dir/time"
python3 - "$dir/invoices.json" "$secs" "$rss" "$records" "$tenants" <<'PY'
import json, sys
invoices = json.load(open(sys.argv[1]))
secs, rss, records, tenants = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
lines = sum(len(i["lines"]) for i in invoices)
print(f"| {records:,} | {tenants:,} | {len(invoices):,} | {lines:,} | {secs:.2f} | {rss / 1024:.0f} MB |")
PY
