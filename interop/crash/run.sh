#!/usr/bin/env bash
# The crash test (interop/crash/README.md): kill -9 the broker while it holds
# confirmed publishes and unacked deliveries, restart it on the same data
# directory, check that nothing confirmed or unacked was lost.
#
# Builds warren-crash (interop/bench, lapin) and, unless WARREN_BIN is given,
# the broker; then runs a small configuration fit for CI: 3 rounds x (publish,
# consume, delayed, retry, dedup, stream) x 2000 messages, some thirty seconds
# in all.
# Ends with the line `crash: N passed, M failed` and exits non-zero when a
# round failed.
#
# Environment:
#   WARREN_BIN=PATH           the broker binary to test; build none
#   WARREN_PROFILE=debug      build the dev profile (default: release)
#   WARREN_CRASH_ROUNDS=3     rounds per mode
#   WARREN_CRASH_MESSAGES=2000  messages per round
#   WARREN_CRASH_SEED=S       seed of the first round (default: the clock;
#                             every round prints the seed that replays it)
#   WARREN_CRASH_TIMEOUT=300  seconds for the whole run
# Arguments are passed on to warren-crash (later flags win), e.g.
#   interop/crash/run.sh --mode publish --rounds 10 --messages 20000
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

loud() { # a setup problem: printed in a box so nobody reads past it
    echo "!!" >&2
    while [ $# -gt 0 ]; do echo "!! $1" >&2; shift; done
    echo "!!" >&2
}

not_run() { # the summary line still counts the run, as one failure
    loud "$@"
    echo "crash: 0 passed, 1 failed"
    exit 2
}

for tool in cargo kill timeout; do
    if ! command -v "$tool" >/dev/null; then
        case $tool in
        cargo) not_run "cargo is missing: install Rust with rustup (https://rustup.rs)" ;;
        kill) not_run "kill is missing: install it with 'apt-get install procps'" ;;
        timeout) not_run "timeout is missing: install it with 'apt-get install coreutils'" ;;
        esac
    fi
done

profile=${WARREN_PROFILE:-release}
flags=(--locked)
[ "$profile" = debug ] || flags+=(--release)
target=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== building the crash test: cargo build ${flags[*]} -p warren-bench --bin warren-crash"
cargo build "${flags[@]}" -p warren-bench --bin warren-crash ||
    not_run "cargo build of warren-crash failed"
if [ -n "${WARREN_BIN:-}" ]; then
    bin=$WARREN_BIN
else
    echo "== building the broker: cargo build ${flags[*]} --bin warren"
    cargo build "${flags[@]}" --bin warren || not_run "cargo build of the broker failed"
    bin="$target/$profile/warren"
fi
[ -x "$bin" ] || not_run "no broker binary at $bin"

OUT=$(mktemp "${TMPDIR:-/tmp}/warren-crash-out.XXXXXX")
CRASH_PID=""
cleanup() {
    # warren-crash kills its brokers when it gets SIGTERM; it is sent one if
    # this script is stopped first.
    if [ -n "$CRASH_PID" ] && kill -0 "$CRASH_PID" 2>/dev/null; then
        kill -TERM "$CRASH_PID" 2>/dev/null || true
        wait "$CRASH_PID" 2>/dev/null || true
    fi
    rm -f "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

seed=${WARREN_CRASH_SEED:-$(date +%s)}
started=$(date +%s)
timeout -k 10 "${WARREN_CRASH_TIMEOUT:-300}" "$target/$profile/warren-crash" \
    --warren-bin "$bin" --mode all \
    --rounds "${WARREN_CRASH_ROUNDS:-3}" --messages "${WARREN_CRASH_MESSAGES:-2000}" \
    --seed "$seed" "$@" > >(tee "$OUT") 2>&1 &
CRASH_PID=$!
rc=0
wait "$CRASH_PID" || rc=$?
CRASH_PID=""
wait # for tee
echo "== crash test: $(($(date +%s) - started)) s, exit code $rc"
if ! grep -qE '^crash: [0-9]+ passed, [0-9]+ failed' "$OUT"; then
    # It ended without a summary (a usage error, the time limit): count it.
    loud "warren-crash ended without its summary line (exit code $rc)"
    echo "crash: 0 passed, 1 failed"
    [ "$rc" != 0 ] || rc=1
fi
exit "$rc"
