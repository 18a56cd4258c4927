#!/usr/bin/env bash
# Three `warren` processes on loopback forming a cluster (docs/cluster-design.md section 8).
#
#   harness.sh start    start warren@n1..n3 (ports picked at run time, data dirs in $DIR)
#   harness.sh wait     wait until /api/nodes on every node shows 3 running nodes, 1 leader
#   harness.sh status   print each node's /api/nodes (name, state, leader)
#   harness.sh stop     stop the three (SIGTERM, then SIGKILL after 5 s)
#   harness.sh kill N   kill -9 node N;   harness.sh restart N   start node N again
#   harness.sh pause N  SIGSTOP node N;   harness.sh resume N    SIGCONT it
#   harness.sh cut N    isolate node N from the other two, both directions (every cluster
#                       link; the test hook WARREN_TEST_LINK_FAULTS); harness.sh heal  undo it
#   harness.sh faults TEXT  replace the fault file with TEXT (its lines, e.g. `loss A B` or
#                       `delay A B 50-500`: raft/src/transport/policy.rs); heal undoes it too
#   harness.sh id N     print node N's Raft id (what fault lines name)
#   harness.sh leader Q print the number of the node leading quorum queue Q (as the first
#                       node that names one says)
#   harness.sh uris     print the three nodes' AMQP URIs
#   harness.sh smoke    start, wait (30 s cap); n3 leaves (warrenctl cluster leave), is
#                       restarted with a dead seed and joined (warrenctl cluster join); the
#                       leader is killed (-9), a new one elected, it restarts and rejoins; a
#                       queue declared through n2 is listed by n1 and n3; stop;
#                       ends with `cluster: N passed, M failed`
#
# DIR (default /tmp/warren-cluster) holds n1..n3/ (data), n1.log.., `env` (ports and
# pids) so later commands find the nodes, and `faults`, the link fault file every node
# reads (`isolate <raft id>`, `loss A B`, `delay A B MS` lines; the ids are in nN/raft/node). WARREN_BIN picks the broker binary (default
# target/debug/warren, built with warrenctl if missing; WARRENCTL_BIN: next to it). Every node has the other two as seeds: the first
# by name (n1) initializes the cluster, n2 and n3 join it. Logs are kept on failure.
# CLUSTER_SECRET=1 at start writes an owner-only random secret to $DIR/secret and passes
# it (--cluster-secret-file) to every node, on later restarts too.
set -euo pipefail
cd "$(dirname "$0")/../.."

DIR="${DIR:-${TMPDIR:-/tmp}/warren-cluster}"
BIN="${WARREN_BIN:-${CARGO_TARGET_DIR:-target}/debug/warren}"
CTL="${WARRENCTL_BIN:-$(dirname "$BIN")/warrenctl}"
NODES="1 2 3"

free_ports() { # N free loopback ports
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

load() { [ -f "$DIR/env" ] || { echo "no cluster in $DIR (run start)" >&2; exit 1; }; . "$DIR/env"; }

api() { # node path
    local port="MGMT_$1"
    curl -sf -u guest:guest "http://127.0.0.1:${!port}$2"
}

start() {
    if [ ! -x "$BIN" ] || [ ! -x "$CTL" ]; then cargo build -q -p warren --bins; fi
    rm -rf "$DIR"; mkdir -p "$DIR"
    if [ "${CLUSTER_SECRET:-0}" = 1 ]; then
        (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' >"$DIR/secret")
    fi
    read -r -a P <<<"$(free_ports 9)"
    : >"$DIR/env"
    for i in $NODES; do
        k=$(( (i - 1) * 3 ))
        echo "AMQP_$i=${P[$k]} MGMT_$i=${P[$((k + 1))]} CLUSTER_$i=${P[$((k + 2))]}" >>"$DIR/env"
    done
    . "$DIR/env"
    for i in $NODES; do
        launch "$i"
    done
    echo "started warren@n1..n3 in $DIR"
}

launch() { # node [seed]: start it (again) with its ports and the other two as seeds
    local i=$1 seeds=() amqp="AMQP_$1" mgmt="MGMT_$1" cport="CLUSTER_$1"
    for j in $NODES; do
        [ "$j" = "$i" ] && continue
        local other="CLUSTER_$j"
        seeds+=(--cluster-seed "127.0.0.1:${!other}")
    done
    if [ -n "${2:-}" ]; then seeds=(--cluster-seed "$2"); fi
    if [ -f "$DIR/secret" ]; then seeds+=(--cluster-secret-file "$DIR/secret"); fi
    mkdir -p "$DIR/n$i"
    WARREN_TEST_LINK_FAULTS="$DIR/faults" RUST_LOG="${RUST_LOG:-info,openraft=warn}" "$BIN" --bind 127.0.0.1 --port "${!amqp}" \
        --management-port "${!mgmt}" --data-dir "$DIR/n$i" --node-name "warren@n$i" \
        --cluster-port "${!cport}" "${seeds[@]}" >>"$DIR/n$i.log" 2>&1 &
    echo "PID_$i=$!" >>"$DIR/env"
}

formed_on() { # node: 0 when its /api/nodes has 3 running nodes and exactly 1 leader
    local body
    body=$(api "$1" /api/nodes 2>/dev/null) || return 1
    python3 -c '
import json, sys
nodes = json.loads(sys.argv[1])
running = [n for n in nodes if n.get("running")]
leaders = [n["name"] for n in nodes if n.get("cluster", {}).get("metadata_leader")]
sys.exit(0 if len(nodes) == 3 and len(running) == 3 and len(leaders) == 1 else 1)' "$body"
}

wait_formed() { # cap in seconds
    load
    local deadline=$((SECONDS + ${1:-30}))
    while [ $SECONDS -lt $deadline ]; do
        local ok=1
        for i in $NODES; do formed_on "$i" || { ok=0; break; }; done
        [ $ok = 1 ] && { echo "formed: 3 running nodes, 1 leader, on every node"; return 0; }
        sleep 0.3
    done
    echo "not formed within ${1:-30} s" >&2
    return 1
}

status() {
    load
    for i in $NODES; do
        echo "-- warren@n$i (http port $(eval echo \$MGMT_$i))"
        api "$i" /api/nodes | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    c = n.get("cluster", {})
    lead = "leader" if c.get("metadata_leader") else ""
    print("  %-12s %-11s %-6s %s" % (n["name"], n["state"], lead, c.get("raft_role", "")))' \
            || echo "  (no answer)"
    done
}

stop() {
    load
    for i in $NODES; do
        local pid="PID_$i"
        kill -TERM "${!pid}" 2>/dev/null || true
    done
    for i in $NODES; do
        local pid="PID_$i"
        for _ in $(seq 50); do kill -0 "${!pid}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${!pid}" 2>/dev/null || true
    done
    echo "stopped"
}

faults() { # text: replace the fault file at once (the nodes read it again within 150 ms)
    printf '%s' "$1" >"$DIR/faults.tmp" && mv -f "$DIR/faults.tmp" "$DIR/faults"
}

raft_id() { # node: its raft id, from its node file
    local id
    id=$(sed -n 's/^id = //p' "$DIR/n$1/raft/node" 2>/dev/null)
    [ -n "$id" ] || { echo "node $1 has no raft id yet ($DIR/n$1/raft/node)" >&2; return 1; }
    echo "$id"
}

cut() { # node: isolate it from the other two
    load
    local id
    id=$(raft_id "$1") || return 1
    faults "isolate $id
"
}

queue_leader() { # queue: the number of the node leading it, as the first node naming one says
    load
    local i name
    for i in $NODES; do
        name=$(api "$i" "/api/queues/%2f/$1" 2>/dev/null \
            | python3 -c 'import json,sys; print(json.load(sys.stdin).get("leader") or "")' 2>/dev/null) || continue
        case "${name#warren@n}" in 1|2|3) echo "${name#warren@n}"; return 0 ;; esac
    done
    echo "no node names a leader of $1" >&2
    return 1
}

smoke() {
    local passed=0 failed=0
    check() { if "$@"; then passed=$((passed + 1)); echo "ok: $*"; else failed=$((failed + 1)); echo "FAILED: $*"; fi; }
    start
    check wait_formed 30
    status || true
    check definitions_everywhere
    check leave_and_rejoin
    check leader_killed_and_restarted
    stop
    if [ $failed = 0 ]; then rm -rf "$DIR"; else echo "logs kept in $DIR"; fi
    echo "cluster: $passed passed, $failed failed"
    [ $failed = 0 ]
}

leader_killed_and_restarted() { # kill -9 the metadata leader; a new one; it restarts and rejoins
    load
    local leader
    leader=$(api 1 /api/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata_leader"] or "")')
    leader=${leader#warren@n}
    case "$leader" in 1|2|3) ;; *) echo "no leader known" >&2; return 1 ;; esac
    local pid="PID_$leader"
    kill -KILL "${!pid}"; wait "${!pid}" 2>/dev/null || true
    local other=$(( leader % 3 + 1 )) deadline=$((SECONDS + 15))
    until api "$other" /api/nodes 2>/dev/null | python3 -c '
import json, sys
nodes = json.load(sys.stdin)
down = [n for n in nodes if not n["running"]]
leaders = [n for n in nodes if n["cluster"]["metadata_leader"] and n["running"]]
sys.exit(0 if len(down) == 1 and len(leaders) == 1 else 1)'; do
        [ $SECONDS -lt $deadline ] || { echo "no new leader after killing n$leader" >&2; return 1; }
        sleep 0.3
    done
    echo "n$leader killed: n$other sees it unreachable and a new leader"
    launch "$leader"
    wait_formed 20
}

definitions_everywhere() { # a queue declared through n2's API is listed by n1 and n3
    load
    local port="MGMT_2"
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
        -d '{"durable":true}' "http://127.0.0.1:${!port}/api/queues/%2f/smoke-q" >/dev/null \
        || { echo "declare through n2 refused" >&2; return 1; }
    for i in 1 3; do
        local home
        home=$(api "$i" /api/queues/%2f/smoke-q | python3 -c 'import json,sys; print(json.load(sys.stdin)["node"])') \
            || { echo "n$i does not know smoke-q" >&2; return 1; }
        [ "$home" = "warren@n2" ] || { echo "n$i says smoke-q lives on $home" >&2; return 1; }
    done
    echo "smoke-q declared through n2 is listed on n1 and n3 (home warren@n2)"
}

ctl() { # node args...: warrenctl against that node's management API
    local mgmt="MGMT_$1"; shift
    "$CTL" --url "http://127.0.0.1:${!mgmt}" "$@"
}

leave_and_rejoin() { # n3 leaves; restarted with a dead seed it waits; `cluster join` adds it
    load
    ctl 3 cluster leave || return 1
    local deadline=$((SECONDS + 10))
    until api 1 /api/nodes | python3 -c 'import json,sys; sys.exit(0 if len(json.load(sys.stdin)) == 2 else 1)'; do
        [ $SECONDS -lt $deadline ] || { echo "n3 still listed after leave" >&2; return 1; }
        sleep 0.3
    done
    kill -TERM "$PID_3"; wait "$PID_3" 2>/dev/null || true
    local dead
    dead=$(free_ports 1)
    launch 3 "127.0.0.1:$dead"
    load
    sleep 2
    ctl 3 cluster status | grep -q "forming" || { echo "n3 is not waiting to join" >&2; return 1; }
    ctl 3 cluster join "127.0.0.1:$CLUSTER_2" || return 1
    wait_formed 20 && ctl 3 cluster status
}

case "${1:-}" in
    start) start ;;
    wait) wait_formed "${2:-30}" ;;
    status) status ;;
    stop) stop ;;
    smoke) smoke ;;
    kill) load; pid="PID_${2:?node number}"; kill -KILL "${!pid}" ;;
    restart) load; launch "${2:?node number}" ;;
    pause) load; pid="PID_${2:?node number}"; kill -STOP "${!pid}" ;;
    resume) load; pid="PID_${2:?node number}"; kill -CONT "${!pid}" ;;
    cut) cut "${2:?node number}" ;;
    heal) load; faults "" ;;
    faults) load; faults "${2?fault lines}" ;;
    id) load; raft_id "${2:?node number}" ;;
    leader) queue_leader "${2:?queue name}" ;;
    uris) load; for i in $NODES; do p="AMQP_$i"; echo "amqp://guest:guest@127.0.0.1:${!p}/%2f"; done ;;
    *) sed -n '2,24p' "$0"; exit 2 ;;
esac
