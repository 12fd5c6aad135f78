#!/usr/bin/env bash
# Import cost as history grows: months of N records each imported one after the other into
# one embedded database; each month's rate, against the first's, and peak RSS.
#
#   bench/history.sh [RECORDS_PER_MONTH] [MONTHS]      (default: 1000000 6)
#
# The issue's target: the last month imports at >= 90 % of the first month's rate, with peak
# RSS <= 256 MB. Work files go to $BENCH_DIR (default /var/tmp/stackbill-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
per_month=${1:-1000000}
months=${2:-6}
dir=${BENCH_DIR:-/var/tmp/stackbill-bench}
mkdir -p "$dir"
# BENCH_PROFILE=debug (the smoke run in scripts/test.sh) checks the script on the debug build.
profile=${BENCH_PROFILE:-release}
if [ "$profile" = release ]; then cargo build --release --locked -p stackbill >&2; else cargo build --locked -p stackbill >&2; fi
bin=${CARGO_TARGET_DIR:-target}/$profile/stackbill

db="$dir/history-$per_month.db"
rm -f "$db" "$db-wal" "$db-shm" "$db.key"
STACKBILL_ADMIN_TOKEN=bench "$bin" demo --no-serve --usage-records 0 --db "$db" >/dev/null 2>&1

echo "| month | records | seconds | records/s | of the first month's rate | peak RSS | database |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
first=
for m in $(seq 1 "$months"); do
  month=$(printf '2026-%02d' "$m")
  file="$dir/history-$per_month-$month.ndjson"
  [ -s "$file" ] || "$bin" generate --records "$per_month" --month "$month" --seed "$m" --out "$file" 2>/dev/null
  cat "$file" > /dev/null   # every month starts with its file in the page cache
  /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" usage import "$file" --db "$db" --json > "$dir/out"
  read -r secs rss < "$dir/time"
  size=$(du -m "$db" | cut -f1)
  first=$(python3 - "$m" "$dir/out" "$secs" "$rss" "$size" "${first:-0}" <<'PY'
import json, sys
m, out, secs, rss, size, first = sys.argv[1], json.load(open(sys.argv[2])), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
assert out["accepted"] == out["records"], out   # distinct ids: every record of a month is new
rate = out["accepted"] / secs
first = first or rate
print(f"| {m} | {out['accepted']:,} | {secs:.1f} | {rate:,.0f} | {rate / first:.0%} | {rss / 1024:.0f} MB | {size} MB |", file=sys.stderr)
print(first)
PY
)
done 2>&1
