#!/usr/bin/env bash
# Runs every check and test stackbill has: formatting, lints, the Rust test suites on SQLite
# and again on PostgreSQL, the Azure SDK conformance suite (the real azure-mgmt-* clients
# against a real server), and the console in a real headless Chromium.
# Needs a Rust toolchain and python3 with venv; installs the SDK and Playwright from PyPI into
# a virtualenv, and Debian's postgresql, poppler-utils (pdftotext), time and chromium packages when
# they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

# need COMMAND PACKAGE: installs the Debian package when the command is missing.
need() {
  command -v "$1" > /dev/null && return
  echo "installing $1 (Debian package $2)" >&2
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2; }
  else
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2
  fi
}
# The invoice PDF tests read the documents' text with pdftotext.
need pdftotext poppler-utils

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test (SQLite)"
cargo test --workspace --locked

echo "== cargo test (PostgreSQL)"
pg_dir=$(mktemp -d /tmp/stackbill-pg.XXXXXX)
chmod 755 "$pg_dir"
trap './scripts/pg-cluster.sh stop "$pg_dir"' EXIT
STACKBILL_TEST_POSTGRES=$(./scripts/pg-cluster.sh start "$pg_dir")
export STACKBILL_TEST_POSTGRES
cargo test --workspace --locked

echo "== Azure SDK conformance (sdk-tests/)"
cargo build --locked -p stackbill
venv=${STACKBILL_SDK_VENV:-/var/tmp/stackbill-sdk-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r sdk-tests/requirements.txt
bin="$(realpath "$target")/debug/stackbill"
echo "-- on SQLite"
(cd sdk-tests && env -u STACKBILL_TEST_POSTGRES STACKBILL_BIN="$bin" "$venv/bin/python" -m pytest -q)
echo "-- on PostgreSQL"
(cd sdk-tests && STACKBILL_BIN="$bin" "$venv/bin/python" -m pytest -q)

echo "== The console in a real browser (browser-tests/)"
need chromium chromium
"$venv/bin/pip" install --quiet --disable-pip-version-check -r browser-tests/requirements.txt
# Screenshots of every page, for people to look at.
screenshots=${STACKBILL_SCREENSHOTS:-"$(realpath "$target")/console-screenshots"}
(cd browser-tests && env -u STACKBILL_TEST_POSTGRES STACKBILL_BIN="$bin" \
  STACKBILL_SCREENSHOTS="$screenshots" "$venv/bin/python" -m pytest -q)
echo "console screenshots: $screenshots"

echo "== Benchmark smoke run (bench/smoke.sh: toy sizes, counts checked)"
need /usr/bin/time time
bench/smoke.sh
