#!/usr/bin/env bash
# Runs every check and test Warren has. Installs nothing by hand: cargo fetches
# the Rust dependencies from Cargo.lock. Used by README's test command and by CI.
# Ends with one line, `total: N passed, M failed`, summing every test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# promtool (Debian's `prometheus` package) for the `promtool check metrics`
# test in tests/mgmt/metrics.rs, which skips it with a notice without it.
# Installed as root (CI) when missing; fails loudly when that install fails.
PROMTOOL_INSTALL="apt-get update && apt-get install -y --no-install-recommends prometheus"
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== promtool: installing Debian's prometheus: $PROMTOOL_INSTALL"
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null); then
      echo "installing promtool failed: run '$PROMTOOL_INSTALL' as root" >&2
      exit 1
    fi
  else
    echo "NOTICE: promtool is missing, 'promtool check metrics' will be skipped: install it as root with '$PROMTOOL_INSTALL'" >&2
  fi
fi

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee -a "$LOG"

# Sum cargo's `test result: ok. N passed; M failed` lines and any runner's
# `name: N passed, M failed` line.
summary() {
  awk '
    /^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
    /^[a-z-]+: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
    END { printf "total: %d passed, %d failed\n", p, f }
  ' "$LOG"
}

echo "== interop (pika, amqplib, amqp091-go against the broker cargo test just built)"
# interop/run.sh installs the clients (venv, npm ci, Debian's Go packages as
# root), fails loudly naming the install command when it cannot, and ends with
# `interop: N passed, M failed`. The debug broker from `cargo test` above saves
# a release build; plain `interop/run.sh` builds and uses the release broker.
interop_rc=0
WARREN_BIN="${CARGO_TARGET_DIR:-target}/debug/warren" interop/run.sh 2>&1 | tee -a "$LOG" || interop_rc=$?

# The crash test (interop/crash/README.md): kill -9 the broker cargo test just
# built mid-publish and mid-consume, restart it on the same data directory,
# check that nothing confirmed or unacked was lost. Ends with
# `crash: N passed, M failed`.
crash_rc=0
echo "== crash test (kill -9 the broker, restart, check what survived)"
WARREN_PROFILE=debug WARREN_BIN="${CARGO_TARGET_DIR:-target}/debug/warren" interop/crash/run.sh 2>&1 | tee -a "$LOG" || crash_rc=$?

# rabbitmqadmin v2 against the same broker binary (interop/README.md, "admin"):
# vhost and user limits declared, listed and deleted; the policy steps are
# pending until Warren has policies (WARREN_ADMIN_PENDING=1 runs them). The
# first run installs rabbitmqadmin with `cargo install --debug` (about 2
# minutes on 2 cores), later runs reuse it. Ends with `admin: N passed, M failed`.
admin_rc=0
echo "== rabbitmqadmin v2 (limits and policies through the management API)"
WARREN_BIN="${CARGO_TARGET_DIR:-target}/debug/warren" interop/admin/run.sh 2>&1 | tee -a "$LOG" || admin_rc=$?

# Three warren processes form a cluster (interop/cluster/harness.sh smoke, README
# "Clusters"): free loopback ports, /api/nodes on every node shows three running nodes
# and one metadata leader; n3 leaves and joins again through `warrenctl cluster join`;
# the leader is killed -9, a new one elected, and it rejoins after a restart.
# About 15 s; needs curl and python3. Ends with `cluster: N passed, M failed`.
cluster_rc=0
echo "== cluster smoke (three processes form a cluster)"
WARREN_BIN="${CARGO_TARGET_DIR:-target}/debug/warren" DIR="${TMPDIR:-/tmp}/warren-cluster-$$" interop/cluster/harness.sh smoke 2>&1 | tee -a "$LOG" || cluster_rc=$?

# The management web page in headless Chromium (interop/browser/run.sh, README
# "The management web page"): Debian's chromium and chromium-driver (installed
# with apt-get as root when missing), selenium in a venv, the broker cargo test
# built; screenshots in target/browser-screenshots/. Ends with
# `browser: N passed, M failed`.
browser_rc=0
echo "== browser (the management web page in headless Chromium)"
WARREN_BIN="${CARGO_TARGET_DIR:-target}/debug/warren" interop/browser/run.sh 2>&1 | tee -a "$LOG" || browser_rc=$?

summary
[ "$interop_rc" = 0 ] || exit "$interop_rc"
[ "$crash_rc" = 0 ] || exit "$crash_rc"
[ "$admin_rc" = 0 ] || exit "$admin_rc"
[ "$cluster_rc" = 0 ] || exit "$cluster_rc"
exit "$browser_rc"
