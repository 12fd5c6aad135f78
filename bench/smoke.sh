#!/usr/bin/env bash
# The benchmarks at toy sizes on the debug build, as `scripts/test.sh` runs them: they must
# run end to end, and what they count must be right (every record of a month accepted once,
# every record posted over HTTP accepted); the times mean nothing at these sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_PROFILE=debug
BENCH_DIR=$(mktemp -d /tmp/stackbill-bench-smoke.XXXXXX)
export BENCH_DIR
trap 'rm -rf "$BENCH_DIR"' EXIT
bench/history.sh 20000 2
bench/http.sh 20000 4 500
