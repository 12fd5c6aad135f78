#!/usr/bin/env bash
# Runs every check and test stackbill has: formatting, lints, and the whole test suite.
# Installs nothing but what cargo fetches from crates.io; needs a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked
