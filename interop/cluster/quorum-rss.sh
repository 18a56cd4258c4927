#!/usr/bin/env bash
# The memory of three nodes holding one quorum queue of MESSAGES (200000) bodies of SIZE
# (1024) bytes (issue 18, step 8): starts harness.sh's cluster in DIR (/tmp/qb), fills the
# queue through n1 with warren-overload (confirmed, no consumers), waits 15 s, prints each
# node's VmRSS, the queue, and each node's spill files and Raft data on disk, then stops.
#
#   WARREN_BIN=target/release/warren WARRENCTL_BIN=target/debug/warrenctl \
#       OVERLOAD_BIN=target/release/warren-overload interop/cluster/quorum-rss.sh
set -u
cd "$(dirname "$0")/../.."
export DIR="${DIR:-/tmp/qb}"
MESSAGES="${MESSAGES:-200000}"
SIZE="${SIZE:-1024}"
OVERLOAD="${OVERLOAD_BIN:-${CARGO_TARGET_DIR:-target}/release/warren-overload}"
H=interop/cluster/harness.sh

$H start
$H wait 60 || { $H stop; exit 1; }
. "$DIR/env"
rss() {
    for i in 1 2 3; do
        local p="PID_$i"
        printf "n%s %s  " "$i" "$(awk '/VmRSS/ {print $2 " kB"}' "/proc/${!p}/status")"
    done
    echo
}
echo "idle: $(rss)"
"$OVERLOAD" --port "$AMQP_1" --mgmt-port "$MGMT_1" --mode persistent --size "$SIZE" \
    --messages "$MESSAGES" --producers 2 --queue qq --queue-type quorum --duration 600 \
    --sample-secs 10 2>&1 | tail -2
sleep 15
echo "holding $MESSAGES: $(rss)"
curl -s -u guest:guest "http://127.0.0.1:$MGMT_2/api/queues/%2f/qq" | python3 -c '
import json, sys
q = json.load(sys.stdin)
print("queue:", q.get("messages"), "messages, leader", q.get("leader"))'
for i in 1 2 3; do
    echo "n$i spill files: $(du -sh "$DIR/n$i/quorum-bodies" 2>/dev/null | cut -f1)" \
        " raft (WAL, snapshots): $(du -sh "$DIR/n$i/raft" 2>/dev/null | cut -f1)"
done
$H stop
