#!/usr/bin/env bash
# The cluster fault test (issue 18; not in the test command): three nodes (harness.sh), a
# quorum queue, warren-chaos publishing with confirms and consuming through every node,
# and a nemesis that, at random (seeded) moments, kills -9 a node and restarts it, pauses
# one (SIGSTOP) and resumes it, or cuts one off the other two (every cluster link, both
# directions; `harness.sh cut`, the transport's test hook) for 2-10 s and heals.
# warren-chaos then checks that every confirmed message was delivered at least once and
# that none was invented. Once the cluster is stopped, warren-walcheck reads the three
# nodes' WALs (read-only) and checks Raft's Log Matching and State Machine Safety for every
# group two nodes hold: an index with the same log id must carry the same payload on every
# node, committed entries must agree, each log must be contiguous. Counting messages missed
# a restarted leader that re-used its followers' log ids; the WALs show it. The same check
# also runs on the running nodes after each nemesis action (the queues purge applied
# entries, so the end sees few of theirs); a mismatch there fails the run too.
#
#   interop/cluster/chaos.sh [SECONDS] [SEED...]   one run per seed (default 60 s, seed 1)
#   ACTIONS="cut" interop/cluster/chaos.sh ...      only these nemesis actions, picked at
#                                                   random (default "kill pause cut")
#
# Prints each run's nemesis actions, its `chaos:` verdict line and walcheck's lines (one per
# group, then `walcheck: PASS ...` or `walcheck: FAIL ...`; either verdict failing fails the
# run), then `chaos runs: N passed, M failed`. Builds target/release binaries when missing
# (WARREN_BIN / CHAOS_BIN / WALCHECK_BIN pick others). Logs and data dirs of failed runs
# stay in $DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."

SECS="${1:-60}"; shift || true
SEEDS=("${@:-1}")
export WARREN_BIN="${WARREN_BIN:-${CARGO_TARGET_DIR:-target}/release/warren}"
CHAOS="${CHAOS_BIN:-${CARGO_TARGET_DIR:-target}/release/warren-chaos}"
WALCHECK="${WALCHECK_BIN:-${CARGO_TARGET_DIR:-target}/release/warren-walcheck}"
if [ ! -x "$WARREN_BIN" ] || [ ! -x "$CHAOS" ]; then
    cargo build -q --release -p warren --bins && cargo build -q --release -p warren-bench --bin warren-chaos
fi
if [ ! -x "$WALCHECK" ]; then
    cargo build -q --release -p warren-raft --bin warren-walcheck
fi
H=interop/cluster/harness.sh
# walcheck on the running nodes, after each nemesis action: the queue groups purge what
# they applied, so the final check sees only their last entries. A live read sees a prefix
# of each node's WAL (a half-written record reads as a torn tail), and Raft's properties
# hold between any two moments, so a mismatch is as real as at the end; an unreadable WAL
# (a file reclaimed while read, exit 2) is no verdict.
walcheck_live() {
    "$WALCHECK" --show 10 "$DIR/n1" "$DIR/n2" "$DIR/n3" >"$DIR/walcheck-live.out" 2>&1
    case $? in
        0) live=$((live + 1)) ;;
        1) live=$((live + 1)); live_failed=$((live_failed + 1))
           echo "  t=$SECONDS walcheck on the running nodes:"; sed 's/^/    /' "$DIR/walcheck-live.out"
           cp "$DIR/walcheck-live.out" "$DIR/walcheck-live-$SECONDS.out" ;;
        *) return ;;
    esac
    local c
    c=$(sed -n 's/.*, \([0-9]*\) entries compared, [0-9]* mismatches, [0-9]* gaps$/\1/p' "$DIR/walcheck-live.out" | tail -1)
    live_compared=$((live_compared + ${c:-0}))
}
read -r -a ACTS <<<"${ACTIONS:-kill pause cut}"
passed=0; failed=0
for seed in "${SEEDS[@]}"; do
    export DIR="${TMPDIR:-/tmp}/warren-chaos-$seed"
    echo "== seed $seed, ${SECS} s"
    $H start >/dev/null && $H wait 60 >/dev/null || { echo "cluster did not form"; failed=$((failed + 1)); $H stop >/dev/null 2>&1; continue; }
    mapfile -t URIS < <($H uris)
    args=(); for u in "${URIS[@]}"; do args+=(--uri "$u"); done
    "$CHAOS" "${args[@]}" --duration "$SECS" >"$DIR/chaos.out" 2>"$DIR/chaos.err" &
    client=$!
    RANDOM=$seed
    live=0; live_failed=0; live_compared=0
    end=$((SECONDS + SECS - 5))
    while [ $SECONDS -lt $end ]; do
        sleep $((4 + RANDOM % 8))
        [ $SECONDS -ge $end ] && break
        n=$((1 + RANDOM % 3))
        case ${ACTS[$((RANDOM % ${#ACTS[@]}))]} in
            kill)
                down=$((2 + RANDOM % 6))
                echo "  t=$SECONDS kill -9 n$n, restart after ${down} s"
                $H kill "$n"; sleep "$down"; $H restart "$n" ;;
            pause)
                down=$((2 + RANDOM % 8))
                echo "  t=$SECONDS SIGSTOP n$n for ${down} s"
                $H pause "$n"; sleep "$down"; $H resume "$n" ;;
            cut)
                down=$((2 + RANDOM % 9))
                echo "  t=$SECONDS cut n$n off for ${down} s"
                $H cut "$n"; sleep "$down"; $H heal ;;
            *) echo "unknown nemesis action in ACTIONS: ${ACTS[*]}" >&2; exit 2 ;;
        esac
        $H wait 60 >/dev/null || echo "  (not formed again within 60 s)"
        walcheck_live
    done
    wait "$client"; rc=$?
    cat "$DIR/chaos.out"
    $H stop >/dev/null 2>&1
    # The nodes are stopped: their WALs are what they would reopen with.
    "$WALCHECK" --show 10 "$DIR/n1" "$DIR/n2" "$DIR/n3" >"$DIR/walcheck.out" 2>&1
    wrc=$?
    cat "$DIR/walcheck.out"
    [ "$wrc" -le 1 ] || echo "walcheck: FAIL (a WAL could not be read)"
    echo "walcheck: live: $live checks of the running nodes, $live_failed failed, $live_compared entries compared"
    [ "$live_failed" = 0 ] || wrc=1
    [ "$wrc" = 0 ] || { [ "$rc" = 0 ] && rc=$wrc; }
    if [ "$rc" = 0 ]; then passed=$((passed + 1)); rm -rf "$DIR"; else failed=$((failed + 1)); echo "  logs kept in $DIR"; fi
done
echo "chaos runs: $passed passed, $failed failed"
[ "$failed" = 0 ]
