# Shared by the interop runners (sourced, not run): a loud line for setup
# problems, and a temporary directory with the broker a runner starts in it,
# both cleaned up when the runner exits.
#
# After sourcing: TMP is a fresh directory (named after $1), BROKER_PID is
# empty until the runner starts a broker and sets it.

loud() { # a setup problem: printed in a box so nobody reads past it
    echo "!!" >&2
    while [ $# -gt 0 ]; do echo "!! $1" >&2; shift; done
    echo "!!" >&2
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/warren-${1:-interop}.XXXXXX")
BROKER_PID=""
cleanup() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
