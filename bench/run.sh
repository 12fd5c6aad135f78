#!/usr/bin/env bash
# Import benchmark: stackbill (on SQLite and on PostgreSQL) vs DuckDB vs plain PostgreSQL
# on the same generated files.
#
#   bench/run.sh [RECORDS...]        (default: 1000000 10000000)
#
# Needs: a Rust toolchain; python3 (DuckDB is installed into a virtualenv from PyPI);
# PostgreSQL server binaries (Debian's `postgresql` package; skipped when absent).
# Work files go to $BENCH_DIR (default /var/tmp/stackbill-bench): about 550 bytes per record.
set -euo pipefail
cd "$(dirname "$0")/.."
records_list=("$@")
[ ${#records_list[@]} -gt 0 ] || records_list=(1000000 10000000)
dir=${BENCH_DIR:-/var/tmp/stackbill-bench}
mkdir -p "$dir"

cargo build --release --locked -p stackbill >&2
bin=${CARGO_TARGET_DIR:-target}/release/stackbill

if [ ! -x "$dir/venv/bin/python" ]; then
  python3 -m venv "$dir/venv" >&2
  "$dir/venv/bin/pip" install --quiet duckdb >&2
fi

pg_bin=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 | xargs -r dirname || true)
pg_conn=
if [ -n "$pg_bin" ]; then
  pgdata="$dir/pgdata"
  rm -rf "$pgdata" && mkdir -p "$pgdata"
  chown postgres "$pgdata" "$dir" 2>/dev/null || true
  run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run_pg "$pg_bin/initdb -D $pgdata -A trust -U postgres >/dev/null"
  run_pg "$pg_bin/pg_ctl -D $pgdata -o '-p 55432 -k $pgdata -c listen_addresses=127.0.0.1 -c shared_buffers=256MB -c max_wal_size=4GB' -l $pgdata/log -w start >/dev/null"
  trap 'run_pg "$pg_bin/pg_ctl -D $pgdata -m fast stop >/dev/null" || true' EXIT
  pg_conn="host=127.0.0.1 port=55432 user=postgres dbname=postgres"
fi

# Peak resident memory of every process whose command line matches $1, sampled while $2.. runs.
peak_rss_kb() {
  local pattern=$1; shift
  local peak=0
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    local now
    now=$(ps -eo rss=,args= | awk -v p="$pattern" '$0 ~ p {s += $1} END {print s + 0}')
    [ "$now" -gt "$peak" ] && peak=$now
    sleep 0.2
  done
  wait "$pid"
  echo "$peak" > "$dir/peak"
}

echo "| records | pipeline | seconds | records/s | peak RSS |"
echo "| ---: | --- | ---: | ---: | ---: |"
for n in "${records_list[@]}"; do
  file="$dir/usage-$n.ndjson"
  [ -s "$file" ] || "$bin" generate --records "$n" --month 2026-09 --seed 7 --out "$file" 2>/dev/null
  cat "$file" > /dev/null   # every pipeline starts with the file in the page cache

  db="$dir/stackbill-$n.db"
  rm -f "$db" "$db-wal" "$db-shm"
  STACKBILL_ADMIN_TOKEN=bench "$bin" demo --no-serve --usage-records 0 --db "$db" >/dev/null 2>&1
  /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" usage import "$file" --db "$db" --json > "$dir/out"
  read -r secs rss < "$dir/time"
  python3 - "$n" "$dir/out" "$secs" "$rss" <<'PY'
import json, sys
n, out, secs, rss = sys.argv[1], json.load(open(sys.argv[2])), float(sys.argv[3]), int(sys.argv[4])
print(f"| {int(n):,} | stackbill (SQLite, durable) | {secs:.1f} | {out['records'] / secs:,.0f} | {rss / 1024:.0f} MB |")
PY

  /usr/bin/time -f "%e %M" -o "$dir/time" "$dir/venv/bin/python" bench/duckdb_pipeline.py "$file" > "$dir/out"
  read -r secs rss < "$dir/time"
  python3 - "$n" "$dir/out" "$secs" "$rss" <<'PY'
import json, sys
n, out, secs, rss = sys.argv[1], json.load(open(sys.argv[2])), float(sys.argv[3]), int(sys.argv[4])
print(f"| {int(n):,} | DuckDB (in memory, not durable) | {secs:.1f} | {out['records'] / secs:,.0f} | {rss / 1024:.0f} MB |")
PY

  if [ -n "$pg_conn" ]; then
    chmod a+r "$file"
    # Each PostgreSQL pipeline starts right after a checkpoint, so none pays for the last
    # one's writes.
    psql "$pg_conn" -q -c CHECKPOINT
    start=$(date +%s.%N)
    peak_rss_kb "postgres" bench/postgres_pipeline.sh "$file" "$pg_conn" > "$dir/out"
    end=$(date +%s.%N)
    python3 - "$n" "$dir/out" "$start" "$end" "$(cat "$dir/peak")" <<'PY'
import json, sys
n, out = sys.argv[1], json.load(open(sys.argv[2]))
secs, rss = float(sys.argv[4]) - float(sys.argv[3]), int(sys.argv[5])
print(f"| {int(n):,} | PostgreSQL 15 (COPY, ON CONFLICT, GROUP BY) | {secs:.1f} | {out['records'] / secs:,.0f} | {rss / 1024:.0f} MB (all server processes) |")
PY

    # stackbill on the same PostgreSQL server: one node, then two nodes at once (each
    # importing half of the file into one database).
    url="postgres://postgres@127.0.0.1:55432"
    for nodes in 1 2; do
      psql "$pg_conn" -q -c "DROP DATABASE IF EXISTS stackbill_bench" -c "CREATE DATABASE stackbill_bench" 2>/dev/null
      STACKBILL_ADMIN_TOKEN=bench "$bin" demo --no-serve --usage-records 0 --database-url "$url/stackbill_bench" >/dev/null 2>&1
      rm -f "$dir/part-"*
      if [ "$nodes" = 1 ]; then
        cp "$file" "$dir/part-a"
      else
        split -n l/2 "$file" "$dir/part-"
      fi
      cat "$dir/part-"* > /dev/null
      psql "$pg_conn" -q -c CHECKPOINT
      start=$(date +%s.%N)
      for part in "$dir/part-"*; do
        "$bin" usage import "$part" --format ndjson --database-url "$url/stackbill_bench" --json > "$part.out" &
      done
      wait
      end=$(date +%s.%N)
      python3 - "$n" "$start" "$end" "$nodes" "$dir"/part-*.out <<'PY'
import json, sys
n, start, end, nodes = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
outs = [json.load(open(f)) for f in sys.argv[5:]]
records = sum(o["records"] for o in outs)
assert sum(o["accepted"] + o["duplicates"] for o in outs) == records, outs
secs = end - start
label = "stackbill (PostgreSQL, durable)" if nodes == "1" else "stackbill (PostgreSQL, 2 nodes at once)"
print(f"| {n:,} | {label} | {secs:.1f} | {records / secs:,.0f} | |")
PY
      rm -f "$dir/part-"*
    done

    # The embedded database the SQLite pipeline made, copied into an empty PostgreSQL
    # database (`stackbill database copy`): every table, not only the usage records.
    psql "$pg_conn" -q -c "DROP DATABASE IF EXISTS stackbill_copy" -c "CREATE DATABASE stackbill_copy" 2>/dev/null
    cat "$db" > /dev/null
    psql "$pg_conn" -q -c CHECKPOINT
    /usr/bin/time -f "%e %M" -o "$dir/time" "$bin" database copy --db "$db" --to "$url/stackbill_copy" --json > "$dir/out"
    read -r secs rss < "$dir/time"
    python3 - "$n" "$dir/out" "$secs" "$rss" <<'PY'
import json, sys
n, out, secs, rss = sys.argv[1], json.load(open(sys.argv[2])), float(sys.argv[3]), int(sys.argv[4])
records = out["tables"]["usage_records"]
print(f"| {int(n):,} | stackbill database copy (SQLite to PostgreSQL, {out['rows']:,} rows in all) | {secs:.1f} | {records / secs:,.0f} | {rss / 1024:.0f} MB |")
PY
  fi
done
