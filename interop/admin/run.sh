#!/usr/bin/env bash
# Drives Warren's management API with rabbitmqadmin v2 (the Rust CLI,
# crate `rabbitmqadmin`): declares, lists and deletes vhost limits, user
# limits, policies and operator policies, checking what it prints. Starts
# Warren on free loopback ports (as interop/run.sh does) unless ADMIN_API_PORT
# points at a running broker, and ends with `admin: N passed, M failed`.
#
# Installs rabbitmqadmin with `cargo install rabbitmqadmin --version
# $RMQADMIN_VERSION --locked --no-default-features --debug` (no TLS backend,
# so no OpenSSL: it only talks plain http to the loopback; the dev profile
# halves the build, ~2 min on 2 cores) into $CARGO_TARGET_DIR/rabbitmqadmin
# (default target/), skipped when that version is already there. See
# interop/README.md.
#
# Environment:
#   WARREN_ADMIN_PENDING=1  also run the steps marked pending (PENDING_STEPS,
#                           none today)
#   WARREN_PROFILE=debug    build/use the dev-profile broker (default: release)
#   WARREN_BIN=PATH         use this broker binary; build nothing
#   ADMIN_API_PORT=PORT     run against the management API already on
#                           127.0.0.1:PORT (guest/guest; e.g. RabbitMQ's)
#   RMQADMIN=PATH           use this rabbitmqadmin v2 binary; install nothing
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
RMQADMIN_VERSION=2.35.0
# Steps that need what Warren does not have yet: run only with
# WARREN_ADMIN_PENDING=1 (none today). Against RabbitMQ every step passes.
PENDING_STEPS=()

run_pending=0
[ "${WARREN_ADMIN_PENDING:-0}" = 1 ] && run_pending=1

# shellcheck source=interop/lib.sh
source "$ROOT/interop/lib.sh" admin


passed=0 failed=0
not_run() { # a setup failure: every step counts as failed
    loud "$@"
    echo "admin: 0 passed, $((${#STEPS[@]})) failed"
    exit 1
}

# --- rabbitmqadmin ------------------------------------------------------------

install_rmqadmin() {
    if [ -n "${RMQADMIN:-}" ]; then
        [ -x "$RMQADMIN" ] || return 1
        return 0
    fi
    local root="$TARGET/rabbitmqadmin"
    RMQADMIN="$root/bin/rabbitmqadmin"
    if [ "$("$RMQADMIN" --version 2>/dev/null)" = "rabbitmqadmin $RMQADMIN_VERSION" ]; then
        return 0
    fi
    command -v cargo >/dev/null || { loud "cargo is missing: install Rust with rustup (https://rustup.rs)"; return 1; }
    echo "== installing rabbitmqadmin $RMQADMIN_VERSION into $root (cargo install, about 2 minutes once)"
    local t0=$SECONDS
    if ! cargo install rabbitmqadmin --version "$RMQADMIN_VERSION" --locked --no-default-features --debug \
        --root "$root" --target-dir "$TARGET/rabbitmqadmin-build" >"$TMP/install.log" 2>&1; then
        tail -n 30 "$TMP/install.log" >&2
        loud "cargo install rabbitmqadmin $RMQADMIN_VERSION failed (needs crates.io and rustc >= 1.94)"
        return 1
    fi
    echo "== installed rabbitmqadmin in $((SECONDS - t0))s"
}

# --- the broker ---------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

port_open() {
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5).close()' "$1" 2>/dev/null
}

start_broker() {
    local bin
    if [ -n "${WARREN_BIN:-}" ]; then
        bin=$WARREN_BIN
    else
        local profile=${WARREN_PROFILE:-release} flag=--release
        [ "$profile" = debug ] && flag=
        echo "== building the broker: cargo build $flag --locked --bin warren"
        cargo build $flag --locked --bin warren || return 1
        bin="$TARGET/$profile/warren"
    fi
    [ -x "$bin" ] || { loud "no broker binary at $bin"; return 1; }
    local port mgmt
    port=$(free_port)
    mgmt=$(free_port)
    while [ "$mgmt" = "$port" ]; do mgmt=$(free_port); done
    mkdir -p "$TMP/data"
    NO_COLOR=1 "$bin" --bind 127.0.0.1 --port "$port" --management-bind 127.0.0.1 \
        --management-port "$mgmt" --data-dir "$TMP/data" >"$TMP/warren.log" 2>&1 &
    BROKER_PID=$!
    for _ in $(seq 300); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            loud "the broker exited at start:" "$(tail -n 20 "$TMP/warren.log")"
            return 1
        fi
        if port_open "$mgmt"; then
            ADMIN_API_PORT=$mgmt
            echo "== broker: $bin, AMQP 127.0.0.1:$port, management API 127.0.0.1:$mgmt (pid $BROKER_PID)"
            return 0
        fi
        sleep 0.1
    done
    loud "the broker's management API did not open 127.0.0.1:$mgmt within 30 s"
    return 1
}

# --- steps --------------------------------------------------------------------

VHOST=interop-admin
USER_NAME=interop-admin-user
OUT="$TMP/out"

# rabbitmqadmin against the broker, output in $OUT; its exit code.
admin() {
    HOME="$TMP" "$RMQADMIN" -H 127.0.0.1 -P "$ADMIN_API_PORT" -u guest -p guest --non-interactive "$@" \
        >"$OUT" 2>&1
}

WHY=""
fail() { WHY="$*; output: $(tr '\n' ' ' <"$OUT" | cut -c1-300)"; return 1; }
# run CMD... and require exit 0
must() { admin "$@" || fail "rabbitmqadmin $* exited $?"; }
# the last output has a line matching the extended regex
has() { grep -Eq -- "$1" "$OUT" || fail "no line matches /$1/"; }
lacks() { ! grep -Eq -- "$1" "$OUT" || fail "a line matches /$1/"; }

step_setup() {
    must declare vhost --name "$VHOST" &&
        must declare user --name "$USER_NAME" --password "s3cret-$$" --tags ""
}
step_vhost-limit-declare() {
    must declare vhost_limit -V "$VHOST" --name max-queues --value 17 &&
        must declare vhost_limit -V "$VHOST" --name max-connections --value 9
}
step_vhost-limit-list() {
    # (without -V, rabbitmqadmin lists the default vhost's limits only)
    must list vhost_limits -V "$VHOST" && has "^$VHOST .*max-queues: 17" && has "^$VHOST .*max-connections: 9"
}
step_vhost-limit-delete() {
    must delete vhost_limit -V "$VHOST" --name max-queues &&
        must list vhost_limits -V "$VHOST" && lacks "max-queues" && has "max-connections: 9" &&
        must delete vhost_limit -V "$VHOST" --name max-connections &&
        must list vhost_limits -V "$VHOST" && lacks "max-"
}
step_user-limit-declare() {
    must declare user_limit --username "$USER_NAME" --name max-channels --value 23 &&
        must declare user_limit --username "$USER_NAME" --name max-connections --value 4
}
step_user-limit-list() {
    must list user_limits --username "$USER_NAME" && has "^$USER_NAME .*max-channels: 23" &&
        has "^$USER_NAME .*max-connections: 4" &&
        must list user_limits && has "^$USER_NAME .*max-channels: 23"
}
step_user-limit-delete() {
    must delete user_limit --username "$USER_NAME" --name max-channels &&
        must list user_limits --username "$USER_NAME" && lacks "max-channels" && has "max-connections: 4" &&
        must delete user_limit --username "$USER_NAME" --name max-connections &&
        must list user_limits && lacks "^$USER_NAME "
}
step_policy-declare() {
    must declare policy -V "$VHOST" --name admin-ttl --pattern '^admin\.' --apply-to queues --priority 2 \
        --definition '{"message-ttl": 5000, "max-length": 100}'
}
step_policy-list() {
    must list policies -V "$VHOST" &&
        has "^admin-ttl +$VHOST +\\^admin\\\\\\. +queues +2 " && has "message-ttl: 5000" && has "max-length: 100"
}
step_policy-delete() {
    must delete policy -V "$VHOST" --name admin-ttl && must list policies -V "$VHOST" && lacks "admin-ttl"
}
step_operator-policy-declare() {
    must declare operator_policy -V "$VHOST" --name admin-cap --pattern '.*' --apply-to queues \
        --definition '{"max-length": 1000}'
}
step_operator-policy-list() {
    must list operator_policies -V "$VHOST" && has "^admin-cap +$VHOST +\\.\\* +queues +0 " && has "max-length: 1000"
}
step_operator-policy-delete() {
    must delete operator_policy -V "$VHOST" --name admin-cap &&
        must list operator_policies -V "$VHOST" && lacks "admin-cap"
}
step_teardown() {
    must delete vhost --name "$VHOST" && must delete user --name "$USER_NAME" &&
        must list vhosts && lacks "^$VHOST "
}

STEPS=(setup vhost-limit-declare vhost-limit-list vhost-limit-delete user-limit-declare user-limit-list
    user-limit-delete policy-declare policy-list policy-delete operator-policy-declare operator-policy-list
    operator-policy-delete teardown)

is_pending() {
    local p
    for p in "${PENDING_STEPS[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}

# --- main ---------------------------------------------------------------------

command -v python3 >/dev/null || not_run "python3 is missing (used to find free ports): apt-get install python3"
install_rmqadmin || not_run "no rabbitmqadmin v2 to run"
echo "== $("$RMQADMIN" --version)"
if [ -n "${ADMIN_API_PORT:-}" ]; then
    echo "== broker: external, management API on 127.0.0.1:$ADMIN_API_PORT"
else
    start_broker || not_run "could not start the broker"
fi

started=$SECONDS
failed_names=() pending_names=()
for s in "${STEPS[@]}"; do
    if is_pending "$s" && [ $run_pending = 0 ]; then
        echo "pending $s"
        pending_names+=("$s")
        continue
    fi
    WHY=""
    if "step_$s"; then
        echo "ok $s"
        passed=$((passed + 1))
    else
        echo "FAIL $s: $WHY"
        failed=$((failed + 1))
        failed_names+=("$s")
    fi
done

echo "== admin summary ($((SECONDS - started))s): rabbitmqadmin $RMQADMIN_VERSION, $passed ok, $failed not ok${failed_names[*]:+ (${failed_names[*]})}"
[ ${#pending_names[@]} != 0 ] &&
    echo "   pending, not run (WARREN_ADMIN_PENDING=1 runs them): ${pending_names[*]}"
if [ $failed != 0 ] && [ -f "$TMP/warren.log" ]; then
    echo "== the broker's log (last 20 lines)"
    tail -n 20 "$TMP/warren.log"
fi
echo "admin: $passed passed, $failed failed"
[ $failed = 0 ]
