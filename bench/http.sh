#!/usr/bin/env bash
# HTTP ingestion against the file import, on the same file: `stackbill serve` on loopback fed
# by 8 clients posting NDJSON batches of 1,000 records, and `stackbill usage import` of the
# file, each into a fresh embedded database.
#
#   bench/http.sh [RECORDS] [CLIENTS] [BATCH]          (default: 1000000 8 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
clients=${2:-8}
batch=${3:-1000}
dir=${BENCH_DIR:-/var/tmp/stackbill-bench}
mkdir -p "$dir"
# BENCH_PROFILE=debug (the smoke run in scripts/test.sh) checks the script on the debug build.
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --locked -p stackbill >&2; else cargo build --locked -p stackbill >&2; fi
bin=${CARGO_TARGET_DIR:-target}/$profile/stackbill
file="$dir/usage-$records.ndjson"
[ -s "$file" ] || "$bin" generate --records "$records" --month 2026-09 --seed 7 --out "$file" 2>/dev/null
cat "$file" > /dev/null

fresh() {
  rm -f "$1" "$1-wal" "$1-shm" "$1.key"
  STACKBILL_ADMIN_TOKEN=bench "$bin" demo --no-serve --usage-records 0 --db "$1" >/dev/null 2>&1
}

db="$dir/http-import.db"
fresh "$db"
/usr/bin/time -f "%e %M" -o "$dir/time" "$bin" usage import "$file" --db "$db" --json > "$dir/out"
read -r secs rss < "$dir/time"
import_rate=$(python3 -c "import json,sys; print(round(json.load(open('$dir/out'))['records'] / $secs))")

db="$dir/http-serve.db"
fresh "$db"
STACKBILL_ADMIN_TOKEN=bench RUST_LOG=warn "$bin" serve --db "$db" --listen 127.0.0.1:0 \
  --collect-every 0 --no-webhook-delivery 2> "$dir/serve.log" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  base=$(sed -n 's/^stackbill listening on //p' "$dir/serve.log")
  [ -n "$base" ] && break
  sleep 0.1
done
python3 bench/http_ingest.py "$base" bench "$file" "$clients" "$batch" > "$dir/http.json"
python3 - "$dir/http.json" "$import_rate" "$rss" "$records" "$clients" "$batch" <<'PY'
import json, sys
http, import_rate, import_rss = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
records, clients, batch = int(sys.argv[4]), sys.argv[5], sys.argv[6]
print("| pipeline | records | seconds | records/s | of the file import | batch p50 | batch p99 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| usage import (file) | {records:,} | {records / import_rate:.1f} | {import_rate:,} | 100% | | |")
print(f"| POST /v1/usage ({clients} clients, {batch} a batch) | {http['accepted']:,} | {http['seconds']} | {http['rate']:,} | {http['rate'] / import_rate:.0%} | {http['p50_ms']} ms | {http['p99_ms']} ms |")
assert http["failures"] == 0 and http["accepted"] == records, http
PY
