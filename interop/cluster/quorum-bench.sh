#!/usr/bin/env bash
# Quorum queues on three local nodes, Warren against RabbitMQ (issue 18's benchmark):
# starts the cluster (harness.sh, or rabbitmq-cluster.sh), runs warren-load's scenario
# against node 1 with `--queue-type quorum` PASSES times, and prints per pass the confirmed
# publish rate, the delivery rate, the three nodes' CPU per delivered message (their
# user+system time over the pass, /proc/PID/stat) and each node's RSS after the pass.
#
#   interop/cluster/quorum-bench.sh warren|rabbitmq [SECONDS=10] [PASSES=2] [SCENARIO=1p1c-persistent-confirm]
#
# Needs target/release/warren-load (and warren; WARREN_BIN / LOAD_BIN pick others).
set -euo pipefail
cd "$(dirname "$0")/../.."
BROKER="${1:?warren or rabbitmq}"; SECS="${2:-10}"; PASSES="${3:-2}"
SCENARIO="${4:-1p1c-persistent-confirm}"
T="${CARGO_TARGET_DIR:-target}/release"
export WARREN_BIN="${WARREN_BIN:-$T/warren}"
LOAD="${LOAD_BIN:-$T/warren-load}"
export DIR="${DIR:-/tmp/quorum-bench-$BROKER}"
HZ=$(getconf CLK_TCK)

case "$BROKER" in
    warren)
        interop/cluster/harness.sh start >/dev/null
        interop/cluster/harness.sh wait 60 >/dev/null
        # shellcheck disable=SC1091
        . "$DIR/env"
        PIDS=("$PID_1" "$PID_2" "$PID_3")
        URI=$(interop/cluster/harness.sh uris | head -1)
        stop() { interop/cluster/harness.sh stop >/dev/null 2>&1 || true; }
        ;;
    rabbitmq)
        URI=$(interop/cluster/rabbitmq-cluster.sh start 5702 "$DIR" | sed -n 2p)
        mapfile -t PIDS < <(interop/cluster/rabbitmq-cluster.sh pids 5702 "$DIR")
        stop() { interop/cluster/rabbitmq-cluster.sh stop 5702 "$DIR"; }
        ;;
    *) echo "warren or rabbitmq" >&2; exit 2 ;;
esac
trap stop EXIT

ticks() { # the three nodes' utime+stime, in clock ticks
    local sum=0 pid f
    for pid in "${PIDS[@]}"; do
        read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat")
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}

rss() { # each node's RSS in MiB
    local pid out=()
    for pid in "${PIDS[@]}"; do
        out+=("$(awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")")
    done
    echo "${out[*]}"
}

echo "$BROKER: $SCENARIO, ${SECS} s, quorum queue on three nodes, client on node 1 ($URI)"
for pass in $(seq 1 "$PASSES"); do
    before=$(ticks)
    json=$("$LOAD" --uri "$URI" --scenario "$SCENARIO" --duration "$SECS" --queue-type quorum --json 2>/dev/null)
    after=$(ticks)
    python3 - "$json" "$((after - before))" "$HZ" "$(rss)" "$pass" <<'PY'
import json, sys
r = json.loads(sys.argv[1])["scenarios"][0]; ticks = int(sys.argv[2]); hz = int(sys.argv[3])
cpu = ticks / hz
delivered = r["delivered"] or 1
print(f"pass {sys.argv[5]}: status {r['status']}, published {r['published']} at {r['publish_rate']:.0f}/s, "
      f"delivered {r['delivered']} at {r['deliver_rate']:.0f}/s, three nodes' CPU {cpu:.1f} s = "
      f"{cpu * 1e6 / delivered:.1f} us per delivered message ({cpu / r['wall_secs']:.2f} cores), "
      f"RSS MiB {sys.argv[4]}")
PY
done
