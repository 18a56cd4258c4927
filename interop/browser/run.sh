#!/usr/bin/env bash
# The management web page in a real browser: headless Chromium from Debian's
# packages, driven by Python selenium through Debian's chromedriver (no browser
# or driver is ever downloaded). Starts the broker given by WARREN_BIN on free
# loopback ports with a data directory of its own, runs tests.py, stops the
# broker, and ends with one line: `browser: N passed, M failed`.
#
# Installs what it needs: a venv with the pinned selenium and pika
# (interop/browser/.venv, from requirements.txt), and, as root, Debian's
# chromium and chromium-driver when missing. A missing piece it cannot install
# fails loudly with the command that installs it.
#
# Environment:
#   WARREN_BIN=PATH             the broker binary (required: this runner builds nothing;
#                               scripts/test.sh passes the debug binary cargo test built)
#   BROWSER_SCREENSHOTS=DIR     where the screenshots go (default: target/browser-screenshots)
#   BROWSER_TESTS="a b"         run only these tests (names from tests.py)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
HERE="$ROOT/interop/browser"
TOTAL=$(grep -c "^@test" "$HERE/tests.py") # counted as failed when nothing runs

fail_all() {
    loud "$@"
    echo "browser: 0 passed, $TOTAL failed"
    exit 1
}

# shellcheck source=interop/lib.sh
source "$ROOT/interop/lib.sh" browser

# --- the browser -------------------------------------------------------------
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
APT_INSTALL="apt-get update && apt-get install -y chromium chromium-driver"
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== browser: installing Debian's Chromium and its driver: $APT_INSTALL"
        if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
            >"$TMP/apt.log" 2>&1; then
            tail -n 20 "$TMP/apt.log" >&2
            fail_all "installing chromium and chromium-driver failed: run '$APT_INSTALL'"
        fi
    else
        fail_all "Chromium or its driver is missing ($CHROMIUM, $CHROMEDRIVER): install them as root with '$APT_INSTALL'"
    fi
fi
[ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] || fail_all "no $CHROMIUM or $CHROMEDRIVER after installing: run '$APT_INSTALL'"

# --- python ------------------------------------------------------------------
command -v python3 >/dev/null || fail_all "python3 is missing: install it with 'apt-get install python3 python3-venv'"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
stamp=$(python3 --version 2>&1; cat "$REQ")
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.browser-stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "== browser: creating $VENV with $(python3 --version 2>&1) and selenium, pika from $REQ"
    rm -rf "$VENV"
    python3 -m venv "$VENV" >"$TMP/venv.log" 2>&1 || {
        cat "$TMP/venv.log" >&2
        fail_all "'python3 -m venv' failed: install the venv module with 'apt-get install python3-venv'"
    }
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ" >"$TMP/pip.log" 2>&1 || {
        cat "$TMP/pip.log" >&2
        fail_all "'pip install -r interop/browser/requirements.txt' failed (needs PyPI)"
    }
    echo "$stamp" >"$VENV/.browser-stamp"
fi

# --- the broker --------------------------------------------------------------
[ -n "${WARREN_BIN:-}" ] || fail_all "WARREN_BIN is not set: give the broker binary (e.g. WARREN_BIN=target/debug/warren after 'cargo build --bin warren')"
[ -x "$WARREN_BIN" ] || fail_all "no broker binary at $WARREN_BIN"

free_port() {
    python3 - <<'PY'
import socket
busy = {5672, 5673, 5674, 5675, 5682, 5690, 5691, 15672, 15690}
for _ in range(50):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in busy:
        print(port)
        break
PY
}
port_open() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()' "$1" 2>/dev/null
}

AMQP_PORT=$(free_port)
MGMT_PORT=$(free_port)
while [ "$MGMT_PORT" = "$AMQP_PORT" ]; do MGMT_PORT=$(free_port); done
mkdir -p "$TMP/data"
NO_COLOR=1 "$WARREN_BIN" --bind 127.0.0.1 --port "$AMQP_PORT" --management-bind 127.0.0.1 \
    --management-port "$MGMT_PORT" --data-dir "$TMP/data" >"$TMP/warren.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
    port_open "$AMQP_PORT" && port_open "$MGMT_PORT" && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
if ! port_open "$MGMT_PORT"; then
    tail -n 20 "$TMP/warren.log" >&2
    fail_all "the broker did not start ($WARREN_BIN)"
fi
echo "== browser: Warren on amqp 127.0.0.1:$AMQP_PORT, management http://127.0.0.1:$MGMT_PORT/ ($("$CHROMIUM" --version 2>/dev/null))"

SHOTS=${BROWSER_SCREENSHOTS:-${CARGO_TARGET_DIR:-$ROOT/target}/browser-screenshots}
mkdir -p "$SHOTS"
rm -f "$SHOTS"/FAILED-*.png # a failed test saves one; keep only this run's
WARREN_URL="http://127.0.0.1:$MGMT_PORT" WARREN_AMQP_PORT="$AMQP_PORT" BROWSER_PROFILE="$TMP/profile" \
    BROWSER_SCREENSHOTS="$SHOTS" CHROMIUM="$CHROMIUM" CHROMEDRIVER="$CHROMEDRIVER" SE_OFFLINE=true \
    timeout 300 "$VENV/bin/python" "$HERE/tests.py" ${BROWSER_TESTS:-}
rc=$?
if [ $rc = 124 ]; then
    loud "the browser tests took more than 300 s and were stopped"
    echo "browser: 0 passed, $TOTAL failed"
fi
if [ $rc -ne 0 ]; then
    echo "== browser: the broker's last log lines:" >&2
    tail -n 15 "$TMP/warren.log" >&2
fi
exit $rc
