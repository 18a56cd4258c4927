#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for side-by-side benchmarks of quorum
# queues (issue 18): three private nodes from ../shared/rabbitmq-node.sh (AMQP on
# BASE_PORT, +10, +20; management on each +10000), one Erlang cookie for all three, the
# second and third joined to the first with rabbitmqctl.
#
#   interop/cluster/rabbitmq-cluster.sh start [BASE_PORT=5702] [DIR=/tmp/rabbitmq-cluster]
#   interop/cluster/rabbitmq-cluster.sh pids  [BASE_PORT] [DIR]   the three beam.smp pids
#   interop/cluster/rabbitmq-cluster.sh stop  [BASE_PORT] [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
CMD="${1:-start}"; BASE="${2:-5702}"; DIR="${3:-/tmp/rabbitmq-cluster}"
PORTS=("$BASE" $((BASE + 10)) $((BASE + 20)))
NODE_SH="${RABBITMQ_NODE_SH:-../shared/rabbitmq-node.sh}"
CTL=/usr/lib/rabbitmq/bin/rabbitmqctl

ctl() { # port args...: rabbitmqctl against that node, with its cookie
    local p=$1; shift
    HOME="$DIR/$p/home" "$CTL" -n "rabbit$p@localhost" "$@"
}

pid_of() { # port: the node's beam.smp (its command line names its home, not its node)
    pgrep -f "beam.smp.*-home $DIR/$1/home" | head -1
}

case "$CMD" in
    start)
        cookie=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)
        for p in "${PORTS[@]}"; do
            mkdir -p "$DIR/$p/home"
            rm -f "$DIR/$p/home/.erlang.cookie"
            printf '%s' "$cookie" >"$DIR/$p/home/.erlang.cookie"
            chmod 400 "$DIR/$p/home/.erlang.cookie"
            setsid "$NODE_SH" "$p" $((p + 10000)) "$DIR/$p" >"$DIR/$p.log" 2>&1 &
        done
        for p in "${PORTS[@]}"; do
            for _ in $(seq 1 120); do
                (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
                sleep 0.5
            done
        done
        for p in "${PORTS[@]:1}"; do
            ctl "$p" stop_app >/dev/null
            ctl "$p" join_cluster "rabbit$BASE@localhost" >/dev/null
            ctl "$p" start_app >/dev/null
        done
        ctl "$BASE" cluster_status --formatter json \
            | python3 -c 'import json,sys; s=json.load(sys.stdin); r=s["running_nodes"]; print("running:", " ".join(sorted(r))); sys.exit(0 if len(r) == 3 else 1)'
        for p in "${PORTS[@]}"; do echo "amqp://guest:guest@127.0.0.1:$p/%2f"; done
        ;;
    pids) for p in "${PORTS[@]}"; do pid_of "$p"; done ;;
    stop)
        for p in "${PORTS[@]}"; do ctl "$p" stop >/dev/null 2>&1 || true; done
        ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
esac
