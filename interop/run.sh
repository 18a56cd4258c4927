#!/usr/bin/env bash
# Runs the interop scenarios (interop/README.md) with pika, amqplib and
# amqp091-go against a Warren broker it builds and starts on a free loopback
# port, then prints one summary line per language and `interop: N passed, M failed`.
#
# Installs what the scenarios need: a Python venv with the pinned pika
# (interop/python/.venv), `npm ci` from the committed lockfile, and, as root,
# Debian's golang-go and golang-github-rabbitmq-amqp091-go-dev when missing.
# A missing tool it cannot install fails that language loudly, with the
# command that installs it.
#
# Environment:
#   WARREN_INTEROP_PENDING=1  also run scenarios marked pending (none today: a
#                             scenario for a feature Warren lacks is listed in
#                             PENDING_SCENARIOS and flagged pending per language)
#   WARREN_PROFILE=debug      build/use the dev-profile broker (default: release)
#   WARREN_BIN=PATH           use this broker binary; build nothing
#   INTEROP_AMQP_URL=URL      run against an already running broker on the
#                             loopback (e.g. RabbitMQ) instead of starting Warren
#   INTEROP_AMQPS_URL=URL INTEROP_TLS_CA=PEM INTEROP_TLS_CERT=PEM INTEROP_TLS_KEY=PEM
#                             with INTEROP_AMQP_URL: the external broker's amqps
#                             listener, its CA and a client certificate whose CN
#                             is a user (EXTERNAL); without them h-tls is skipped
#                             and not counted. When run.sh starts Warren it makes
#                             these itself (openssl) and starts it with TLS.
#   INTEROP_PLUGINS=1         with INTEROP_AMQP_URL: the external broker has the
#                             features RabbitMQ needs plugins for (delayed retries,
#                             x-delayed-message, x-message-deduplication); without
#                             it PLUGIN_SCENARIOS are skipped and not counted.
#                             When run.sh starts Warren it exports it itself.
#   INTEROP_LANGS="python node go"  the languages to run (default: all three)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
INTEROP="$ROOT/interop"

LANGS=${INTEROP_LANGS:-python node go}
DEFAULT_SCENARIOS=(a-work-queue b-confirms c-topic-groups d-consumer-dies e-headers f-retry-dlx-ttl g-rpc-reply-to h-tls
    i-retry-backoff j-delayed-job k-dedup-webhook l-stream-fanout-and-replay)
PENDING_SCENARIOS=()
# Need an amqps broker: run.sh starts Warren with TLS; against an external
# broker they run only when INTEROP_AMQPS_URL and INTEROP_TLS_{CA,CERT,KEY} are set.
TLS_SCENARIOS=(h-tls)
# Warren features RabbitMQ lacks without plugins: against an external broker
# they run only with INTEROP_PLUGINS=1 (run.sh sets it when it starts Warren).
PLUGIN_SCENARIOS=(i-retry-backoff j-delayed-job k-dedup-webhook)
TLS_USER=interop-tls-client # the client certificate's CN, the EXTERNAL user
LANG_TIMEOUT=240 # seconds, per language (each scenario also bounds itself at ~60 s)

run_pending=0
[ "${WARREN_INTEROP_PENDING:-0}" = 1 ] && run_pending=1
expected=${#DEFAULT_SCENARIOS[@]}
[ $run_pending = 1 ] && expected=$((expected + ${#PENDING_SCENARIOS[@]}))
if [ -n "${INTEROP_AMQP_URL:-}" ] && [ -z "${INTEROP_AMQPS_URL:-}" ]; then
    expected=$((expected - ${#TLS_SCENARIOS[@]})) # the runners skip them
fi
if [ -n "${INTEROP_AMQP_URL:-}" ] && [ "${INTEROP_PLUGINS:-0}" != 1 ]; then
    expected=$((expected - ${#PLUGIN_SCENARIOS[@]})) # the runners skip them
fi

# shellcheck source=interop/lib.sh
source "$INTEROP/lib.sh" interop

started=$(date +%s)
declare -A SUMMARY PASSED FAILED SETUP_ERR


is_root() { [ "$(id -u)" = 0 ]; }

# --- toolchains ------------------------------------------------------------

setup_python() {
    local venv="$INTEROP/python/.venv" req="$INTEROP/python/requirements.txt"
    if ! command -v python3 >/dev/null; then
        SETUP_ERR[python]="python3 is missing: install it with 'apt-get install python3 python3-venv'"
        return 1
    fi
    local stamp
    stamp=$(python3 --version 2>&1; cat "$req")
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.interop-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "== python: creating $venv with $(python3 --version 2>&1) and $(tr '\n' ' ' <"$req")"
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >"$TMP/venv.log" 2>&1; then
            cat "$TMP/venv.log" >&2
            SETUP_ERR[python]="'python3 -m venv' failed: install the venv module with 'apt-get install python3-venv'"
            return 1
        fi
        if ! "$venv/bin/pip" install --disable-pip-version-check -q -r "$req" >"$TMP/pip.log" 2>&1; then
            cat "$TMP/pip.log" >&2
            SETUP_ERR[python]="'pip install -r interop/python/requirements.txt' failed (needs PyPI)"
            return 1
        fi
        echo "$stamp" >"$venv/.interop-stamp"
    fi
}

setup_node() {
    local dir="$INTEROP/node"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        SETUP_ERR[node]="node/npm are missing: install them with 'apt-get install nodejs npm' (Node >= 18)"
        return 1
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 18 ]; then
        SETUP_ERR[node]="node $(node --version) is too old: amqplib needs Node >= 18 ('apt-get install nodejs' from a newer release, or nvm)"
        return 1
    fi
    local stamp
    stamp=$(node --version; cat "$dir/package-lock.json")
    if [ "$(cat "$dir/node_modules/.interop-stamp" 2>/dev/null)" != "$stamp" ]; then
        echo "== node: npm ci (amqplib from interop/node/package-lock.json)"
        if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$TMP/npm.log" 2>&1; then
            cat "$TMP/npm.log" >&2
            SETUP_ERR[node]="'npm ci' in interop/node failed (needs the npm registry)"
            return 1
        fi
        echo "$stamp" >"$dir/node_modules/.interop-stamp"
    fi
}

GO_AMQP=/usr/share/gocode/src/github.com/rabbitmq/amqp091-go
GO_INSTALL="apt-get update && apt-get install -y golang-go golang-github-rabbitmq-amqp091-go-dev"

setup_go() {
    if ! command -v go >/dev/null || [ ! -f "$GO_AMQP/go.mod" ]; then
        if is_root && command -v apt-get >/dev/null; then
            echo "== go: installing Debian's Go and amqp091-go: $GO_INSTALL"
            if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                golang-go golang-github-rabbitmq-amqp091-go-dev) >"$TMP/apt.log" 2>&1; then
                cat "$TMP/apt.log" >&2
                SETUP_ERR[go]="apt-get install golang-go golang-github-rabbitmq-amqp091-go-dev failed"
                return 1
            fi
        else
            SETUP_ERR[go]="go or Debian's amqp091-go is missing: install them as root with '$GO_INSTALL'"
            return 1
        fi
    fi
    # Module mode without a proxy: go.mod replaces amqp091-go with Debian's copy.
    export GOPROXY=off GOFLAGS= GO111MODULE=on GOTOOLCHAIN=local GOSUMDB=off
    [ -n "${HOME:-}" ] || export GOCACHE="$TMP/go-cache"
    if ! (cd "$INTEROP/go" && go build -o "$TMP/interop-go" .) >"$TMP/go-build.log" 2>&1; then
        cat "$TMP/go-build.log" >&2
        SETUP_ERR[go]="building interop/go failed (go $(go env GOVERSION 2>/dev/null), amqp091-go from $GO_AMQP)"
        return 1
    fi
}

# --- the broker ------------------------------------------------------------

free_port() {
    python3 - <<'EOF'
import socket
busy = {5672, 5673, 5674, 5675, 5682, 5690, 5691}
for _ in range(50):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in busy:
        print(port)
        break
EOF
}

port_open() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()' "$1" 2>/dev/null
}

# A throwaway CA, a server certificate for localhost/127.0.0.1 and a client
# certificate whose CN is $TLS_USER, made with the openssl CLI in $TMP/tls.
make_certs() {
    command -v openssl >/dev/null || {
        loud "openssl is missing, so the TLS scenario cannot run: install it with 'apt-get install openssl'"
        return 1
    }
    local d="$TMP/tls"
    mkdir -p "$d"
    (
        cd "$d" &&
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext &&
            printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
            openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Warren interop CA" \
                -keyout ca.key -out ca.pem &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr &&
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile server.ext -out server.pem &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$TLS_USER" -keyout client.key -out client.csr &&
            openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
                -extfile client.ext -out client.pem
    ) >"$TMP/openssl.log" 2>&1 || {
        loud "making the TLS certificates with openssl failed:" "$(tail -n 5 "$TMP/openssl.log")"
        return 1
    }
}

# The EXTERNAL user (named by the client certificate's CN) with full
# permissions on /, created through the management API.
create_tls_user() {
    python3 - "$1" "$TLS_USER" <<'EOF' || { loud "creating the TLS user $TLS_USER through the management API failed"; return 1; }
import base64, json, sys, urllib.request
base, user = sys.argv[1], sys.argv[2]
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
for path, body in [
    (f"/api/users/{user}", {"password": "unused-external-login", "tags": ""}),
    (f"/api/permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"}),
]:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="PUT",
                                 headers={"authorization": auth, "content-type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()
EOF
}

start_broker() {
    local bin
    if [ -n "${WARREN_BIN:-}" ]; then
        bin=$WARREN_BIN
    else
        command -v cargo >/dev/null || { loud "cargo is missing: install Rust with rustup (https://rustup.rs)"; return 1; }
        local profile=${WARREN_PROFILE:-release} flag=--release
        [ "$profile" = debug ] && flag=
        echo "== building the broker: cargo build $flag --locked --bin warren"
        cargo build $flag --locked --bin warren || { loud "cargo build of the broker failed"; return 1; }
        bin="${CARGO_TARGET_DIR:-$ROOT/target}/$profile/warren"
    fi
    [ -x "$bin" ] || { loud "no broker binary at $bin"; return 1; }
    local port tls_port mgmt_port tls_args=()
    port=$(free_port)
    tls_port=$(free_port)
    mgmt_port=$(free_port)
    while [ -n "$tls_port" ] && [ "$tls_port" = "$port" ]; do tls_port=$(free_port); done
    while [ -n "$mgmt_port" ] && { [ "$mgmt_port" = "$port" ] || [ "$mgmt_port" = "$tls_port" ]; }; do
        mgmt_port=$(free_port)
    done
    [ -n "$port" ] && [ -n "$tls_port" ] && [ -n "$mgmt_port" ] || { loud "found no free loopback port"; return 1; }
    # amqps with client certificates asked for and verified, not required
    # (the scenario's first connections log in with PLAIN and no certificate).
    if make_certs; then
        tls_args=(--tls-port "$tls_port" --tls-cert "$TMP/tls/server.pem" --tls-key "$TMP/tls/server.key"
            --tls-ca "$TMP/tls/ca.pem" --tls-verify-peer)
    fi
    mkdir -p "$TMP/data"
    NO_COLOR=1 "$bin" --bind 127.0.0.1 --port "$port" --management-bind 127.0.0.1 --management-port "$mgmt_port" \
        "${tls_args[@]}" --data-dir "$TMP/data" >"$TMP/warren.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 300); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            loud "the broker exited at start:" "$(tail -n 20 "$TMP/warren.log")"
            return 1
        fi
        if port_open "$port" && port_open "$mgmt_port"; then
            export INTEROP_AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F"
            export INTEROP_PLUGINS=1 # Warren has them built in
            echo "== broker: $bin on 127.0.0.1:$port (pid $BROKER_PID, data in $TMP/data)"
            if [ ${#tls_args[@]} != 0 ] && port_open "$tls_port" && create_tls_user "http://127.0.0.1:$mgmt_port"; then
                export INTEROP_AMQPS_URL="amqps://guest:guest@127.0.0.1:$tls_port/%2F"
                export INTEROP_TLS_CA="$TMP/tls/ca.pem" INTEROP_TLS_CERT="$TMP/tls/client.pem"
                export INTEROP_TLS_KEY="$TMP/tls/client.key"
                echo "== amqps: 127.0.0.1:$tls_port (CA, server and client certificates in $TMP/tls; EXTERNAL user $TLS_USER)"
            fi
            return 0
        fi
        sleep 0.1
    done
    loud "the broker did not open 127.0.0.1:$port within 30 s"
    return 1
}

# --- running one language --------------------------------------------------

run_lang() { # lang, label, command...
    local lang=$1 label=$2
    shift 2
    echo "== $label"
    local t0=$SECONDS rc
    timeout -k 10 "$LANG_TIMEOUT" "$@" 2>&1 | tee "$TMP/$lang.out" | sed -u "s/^/  [$lang] /"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 124 ] && echo "  [$lang] killed after ${LANG_TIMEOUT}s"
    local ok pend
    ok=$(grep -c '^ok ' "$TMP/$lang.out")
    pend=$(grep '^pending ' "$TMP/$lang.out" | cut -d' ' -f2 | tr '\n' ' ')
    PASSED[$lang]=$ok
    FAILED[$lang]=$((expected - ok))
    [ "$rc" != 0 ] && [ "${FAILED[$lang]}" = 0 ] && FAILED[$lang]=1 # crashed after its scenarios
    local s="$label: $ok/$expected scenarios ok"
    [ "${FAILED[$lang]}" != 0 ] && s+=", ${FAILED[$lang]} not ok ($(grep '^FAIL ' "$TMP/$lang.out" | cut -d' ' -f2 | tr -d : | tr '\n' ' ')exit $rc)"
    s+=" in $((SECONDS - t0))s"
    [ -n "$pend" ] && s+="; pending, not run (WARREN_INTEROP_PENDING=1 runs them): ${pend% }"
    SUMMARY[$lang]=$s
}

# --- main ------------------------------------------------------------------

broker_ok=1
if [ -n "${INTEROP_AMQP_URL:-}" ]; then
    echo "== broker: external, $INTEROP_AMQP_URL"
else
    start_broker || broker_ok=0
fi

for lang in $LANGS; do
    case $lang in
    python)
        label="python (pika $(sed -n 's/^pika==//p' "$INTEROP/python/requirements.txt"))"
        setup_python && [ $broker_ok = 1 ] &&
            run_lang python "$label" "$INTEROP/python/.venv/bin/python" "$INTEROP/python/scenarios.py"
        ;;
    node)
        label="node (amqplib $(node -p 'require(process.argv[1]).packages["node_modules/amqplib"].version' "$INTEROP/node/package-lock.json" 2>/dev/null))"
        setup_node && [ $broker_ok = 1 ] && run_lang node "$label" node "$INTEROP/node/scenarios.js"
        ;;
    go)
        label="go (amqp091-go $(dpkg-query -W -f '${Version}' golang-github-rabbitmq-amqp091-go-dev 2>/dev/null || echo '?'))"
        setup_go && [ $broker_ok = 1 ] && run_lang go "$label" "$TMP/interop-go"
        ;;
    *)
        label=$lang
        SETUP_ERR[$lang]="unknown language '$lang' in INTEROP_LANGS (python, node, go)"
        ;;
    esac
    if [ -n "${SETUP_ERR[$lang]:-}" ]; then
        loud "interop $lang: ${SETUP_ERR[$lang]}"
        SUMMARY[$lang]="$label: NOT RUN: ${SETUP_ERR[$lang]}"
        PASSED[$lang]=0
        FAILED[$lang]=$expected
    elif [ $broker_ok = 0 ]; then
        SUMMARY[$lang]="$label: NOT RUN: no broker"
        PASSED[$lang]=0
        FAILED[$lang]=$expected
    fi
done

if [ -n "$BROKER_PID" ] && ! kill -0 "$BROKER_PID" 2>/dev/null; then
    loud "the broker died during the run; the last lines of its log:" "$(tail -n 30 "$TMP/warren.log")"
    broker_ok=0
fi

total_pass=0 total_fail=0
echo "== interop summary ($(($(date +%s) - started))s)"
for lang in $LANGS; do
    echo "  ${SUMMARY[$lang]}"
    total_pass=$((total_pass + PASSED[$lang]))
    total_fail=$((total_fail + FAILED[$lang]))
done
if [ $total_fail != 0 ] && [ -f "$TMP/warren.log" ]; then
    echo "== the broker's log (last 30 lines)"
    tail -n 30 "$TMP/warren.log"
fi
[ $broker_ok = 0 ] && [ $total_fail = 0 ] && total_fail=1
echo "interop: $total_pass passed, $total_fail failed"
[ $total_fail = 0 ]
