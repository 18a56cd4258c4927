#!/usr/bin/env bash
# Runs every check and test Warren has. Installs nothing by hand: cargo fetches
# the Rust dependencies from Cargo.lock. Used by README's test command and by CI.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
