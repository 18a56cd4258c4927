#!/usr/bin/env bash
# The cluster fault test (issue 18; not in the test command): three nodes (harness.sh), a
# quorum queue, warren-chaos publishing with confirms and consuming through every node,
# and a nemesis that, at random (seeded) moments, does one of (ACTIONS):
#   kill   kill -9 a node, restart it after 2-7 s
#   pause  SIGSTOP a node for 2-9 s, then SIGCONT
#   cut    cut a node off the other two (every cluster link, both directions; `harness.sh
#          cut`, the transport's test hook) for 2-10 s, then heal
#   loss   one-way loss for 2-10 s (the fault file's `loss A B`): a node (half the time
#          the queue's leader) hears nobody (sends but cannot receive), or nobody hears it,
#          or one direction between two nodes is silent; a silent direction's link closes
#          after 3 s, as on a TCP timeout
#   delay  a slow node: every frame to and from it held back 50-550 ms (jittered, in
#          order), half the time with 10-30% of its outgoing frames lost (each late by a
#          retransmission), for 3-12 s
#   flap   kill -9 the quorum queue's leader and restart it 0.2-0.9 s later, before an
#          election timeout (2.5-5 s): the window where a leader comes back with entries it
#          had not flushed, or had not replicated, and its followers still take it for
#          their leader
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
#                                                   random (default all six)
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
read -r -a ACTS <<<"${ACTIONS:-kill pause cut loss delay flap}"
ids() { # the three nodes' raft ids, as fault lines name them (ID1 ID2 ID3)
    ID1=$($H id 1) && ID2=$($H id 2) && ID3=$($H id 3)
}
id_of() { local v="ID$1"; echo "${!v}"; }
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
            loss)
                down=$((2 + RANDOM % 9)); mode=$((RANDOM % 3))
                # Half the time the queue's leader: a leader that cannot hear must not
                # confirm, and must be replaced.
                if [ $((RANDOM % 2)) = 0 ] && l=$($H leader chaos 2>/dev/null); then n=$l; fi
                o1=$((n % 3 + 1)); o2=$((o1 % 3 + 1))
                ids || { echo "  (no raft ids)"; continue; }
                me=$(id_of "$n"); a=$(id_of "$o1"); b=$(id_of "$o2")
                case $mode in
                    0) what="n$n hears nobody (sends, cannot receive)"
                       lines="loss $a $me"$'\n'"loss $b $me"$'\n' ;;
                    1) what="nobody hears n$n (receives, cannot send)"
                       lines="loss $me $a"$'\n'"loss $me $b"$'\n' ;;
                    *) what="n$n -> n$o1 silent, n$o1 -> n$n flows"
                       lines="loss $me $a"$'\n' ;;
                esac
                echo "  t=$SECONDS one-way loss: $what for ${down} s"
                $H faults "$lines"; sleep "$down"; $H heal ;;
            delay)
                down=$((3 + RANDOM % 10)); lo=$((50 + RANDOM % 100)); hi=$((lo + RANDOM % 401))
                o1=$((n % 3 + 1)); o2=$((o1 % 3 + 1))
                ids || { echo "  (no raft ids)"; continue; }
                me=$(id_of "$n"); a=$(id_of "$o1"); b=$(id_of "$o2")
                lines=""
                for o in $a $b; do lines+="delay $me $o $lo-$hi"$'\n'"delay $o $me $lo-$hi"$'\n'; done
                what="every link of n$n delayed $lo-$hi ms"
                if [ $((RANDOM % 2)) = 0 ]; then
                    pct=$((10 + RANDOM % 21))
                    for o in $a $b; do lines+="loss $me $o $pct%"$'\n'; done
                    what="$what, $pct% of its frames lost"
                fi
                echo "  t=$SECONDS $what for ${down} s"
                $H faults "$lines"; sleep "$down"; $H heal ;;
            flap)
                # n is not used: the target is whoever leads the queue now.
                l=$($H leader chaos 2>/dev/null) || { echo "  t=$SECONDS flap: no queue leader known"; continue; }
                back="0.$((2 + RANDOM % 8))"
                echo "  t=$SECONDS kill -9 the queue's leader n$l, restart after ${back} s"
                $H kill "$l"; sleep "$back"; $H restart "$l" ;;
            *) echo "unknown nemesis action in ACTIONS: ${ACTS[*]}" >&2; exit 2 ;;
        esac
        $H wait 60 >/dev/null || echo "  (not formed again within 60 s)"
        walcheck_live
    done
    wait "$client"; rc=$?
    cat "$DIR/chaos.out"
    $H stop >/dev/null 2>&1
    # Evidence that the shaping faults acted (the nodes log each link a loss closed).
    closed=$(cat "$DIR"/n*.log 2>/dev/null | grep -c "closing the link as a TCP timeout would")
    echo "links closed by a one-way loss: $closed"
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
