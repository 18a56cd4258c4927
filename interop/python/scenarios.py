#!/usr/bin/env python3
"""Warren interop scenarios driven by pika (the Python client RabbitMQ documents).

Usage: scenarios.py [SCENARIO ...]

The broker is the one in INTEROP_AMQP_URL (only 127.0.0.1/localhost/::1 are
accepted). Scenarios f and g need features Warren does not have yet; they run
only when WARREN_INTEROP_PENDING=1 (or when named on the command line).

Output, one line per scenario: `ok <name> (<secs>s)`, `FAIL <name>: <why>` or
`pending <name>`; exit status 0 when every scenario that ran passed.
"""

import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import pika
import pika.exceptions
import pika.spec

sys.dont_write_bytecode = True  # no __pycache__ beside the scenarios
from harness import (  # noqa: E402
    PENDING_TIMEOUT,
    Failure,
    amqp_url,
    check,
    publish_confirmed,
    queue_depth,
    run,
    tls_context,
    tls_settings,
)


# --------------------------------------------------------------------------
# a. work queue: prefetch 1, manual acks, two workers


def scenario_a(ctx):
    setup = ctx.connect("setup")
    sch = setup.channel()
    sch.confirm_delivery()
    q = ctx.declare_queue(sch, "work")

    # Phase 1: prefetch 1 is honoured. Worker A takes one job and holds it;
    # while it holds it, every other job must go to worker B.
    n1 = 20
    publish_confirmed(sch, "", q, [b"job-%d" % i for i in range(n1)])
    a_conn, b_conn = ctx.connect("worker-a"), ctx.connect("worker-b")
    a_ch, b_ch = a_conn.channel(), b_conn.channel()
    a_ch.basic_qos(prefetch_count=1)
    b_ch.basic_qos(prefetch_count=1)
    a_got, b_got = [], []

    def on_a(ch, method, props, body):
        a_got.append((method.delivery_tag, body))  # held: no ack yet

    def on_b(ch, method, props, body):
        b_got.append(body)
        check(not method.redelivered, f"worker B got a redelivered job {body!r}")
        ch.basic_ack(method.delivery_tag)

    a_ch.basic_consume(q, on_a, auto_ack=False)
    ctx.pump([a_conn], lambda: len(a_got) >= 1, "worker A's first job")
    b_ch.basic_consume(q, on_b, auto_ack=False)
    ctx.pump([a_conn, b_conn], lambda: len(b_got) >= n1 - 1, "worker B to take the other jobs", extra=0.3)
    check(len(a_got) == 1, f"worker A holds an unacked job with prefetch 1 but got {len(a_got)} jobs")
    check(len(b_got) == n1 - 1, f"worker B should get {n1 - 1} jobs, got {len(b_got)}")
    a_ch.basic_ack(a_got[0][0])
    everything = sorted([a_got[0][1]] + b_got)
    check(everything == sorted(b"job-%d" % i for i in range(n1)), "phase 1: jobs lost or duplicated")
    a_ch.basic_qos(prefetch_count=1)  # round trip: the ack has been processed
    check(queue_depth(sch, q) == 0, "phase 1: queue not empty after all jobs were acked")
    a_conn.close()
    b_conn.close()

    # Phase 2: two workers in their own threads share 200 jobs; each job is
    # processed exactly once and both workers get work.
    n2 = 200
    done = {"A": [], "B": []}
    stop = threading.Event()
    errors = []
    ready = threading.Barrier(3, timeout=20)

    def worker(tag):
        try:
            conn = ctx.connect(f"thread-{tag}")
            ch = conn.channel()
            ch.basic_qos(prefetch_count=1)

            def on_msg(ch, method, props, body):
                time.sleep(0.002)  # the "work"
                done[tag].append((body, method.redelivered))
                ch.basic_ack(method.delivery_tag)

            ch.basic_consume(q, on_msg, auto_ack=False)
            ready.wait()
            while not stop.is_set():
                conn.process_data_events(time_limit=0.02)
            conn.close()
        except Exception as e:  # reported by the main thread
            errors.append(f"worker {tag}: {e!r}")
            try:
                ready.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in ("A", "B")]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        raise Failure(f"workers did not start: {errors}")
    publish_confirmed(sch, "", q, [b"task-%d" % i for i in range(n2)])
    while len(done["A"]) + len(done["B"]) < n2 and ctx.left() > 0 and not errors:
        setup.process_data_events(time_limit=0.05)
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    check(not errors, "; ".join(errors))
    bodies = [b for b, _ in done["A"] + done["B"]]
    check(len(bodies) == n2, f"phase 2: {len(bodies)} deliveries for {n2} jobs")
    check(sorted(bodies) == sorted(b"task-%d" % i for i in range(n2)), "phase 2: jobs lost or duplicated")
    check(all(not r for _, r in done["A"] + done["B"]), "phase 2: a job was redelivered")
    check(done["A"] and done["B"], f"phase 2: one worker got no work (A={len(done['A'])}, B={len(done['B'])})")
    check(queue_depth(sch, q) == 0, "phase 2: queue not empty")


# --------------------------------------------------------------------------
# b. publisher confirms under load


def async_confirmed_publish(ctx, q, n):
    """Publish n persistent messages without waiting (SelectConnection), count confirms."""
    st = {"outstanding": set(), "acks": 0, "nacks": 0, "frames": 0, "multi": 0, "error": None, "published": False}
    params = pika.URLParameters(ctx.url)
    params.socket_timeout = 10

    def on_open(conn):
        conn.channel(on_open_callback=on_channel)

    def on_channel(ch):
        ch.confirm_delivery(ack_nack_callback=on_confirm, callback=lambda _f: publish_all(ch))

    def publish_all(ch):
        props = pika.BasicProperties(delivery_mode=2, content_type="application/octet-stream")
        for i in range(n):
            st["outstanding"].add(i + 1)
            ch.basic_publish("", q, b"%06d" % i + b"." * 100, props)
        st["published"] = True

    def on_confirm(frame):
        m = frame.method
        st["frames"] += 1
        if m.multiple:
            st["multi"] += 1
            tags = [t for t in st["outstanding"] if t <= m.delivery_tag]
        else:
            tags = [m.delivery_tag] if m.delivery_tag in st["outstanding"] else []
        if not tags and st["error"] is None:
            st["error"] = f"confirm for unknown or already confirmed tag {m.delivery_tag} (multiple={m.multiple})"
        for t in tags:
            st["outstanding"].discard(t)
        if isinstance(m, pika.spec.Basic.Ack):
            st["acks"] += len(tags)
        else:
            st["nacks"] += len(tags)
        if st["published"] and not st["outstanding"]:
            frame_conn.close()

    def on_open_error(conn, err):
        st["error"] = f"connection failed: {err!r}"
        conn.ioloop.stop()

    def on_close(conn, reason):
        if not isinstance(reason, pika.exceptions.ConnectionClosedByClient) and st["error"] is None:
            st["error"] = f"connection closed: {reason!r}"
        conn.ioloop.stop()

    def on_timeout():
        st["error"] = f"timed out with {len(st['outstanding'])} of {n} messages unconfirmed"
        if frame_conn.is_open:
            frame_conn.close()
        else:
            frame_conn.ioloop.stop()

    frame_conn = pika.SelectConnection(params, on_open_callback=on_open,
                                       on_open_error_callback=on_open_error, on_close_callback=on_close)
    frame_conn.ioloop.call_later(max(ctx.left() - 10, 5), on_timeout)
    frame_conn.ioloop.start()
    return st


def scenario_b(ctx):
    n = 5000
    setup = ctx.connect("setup")
    ch = setup.channel()
    q = ctx.declare_queue(ch, "confirms", durable=True)

    st = async_confirmed_publish(ctx, q, n)
    check(st["error"] is None, st["error"] or "")
    check(st["acks"] == n and st["nacks"] == 0, f"{st['acks']} acks and {st['nacks']} nacks for {n} messages")

    # The blocking API: every publish waits for its confirm; a mandatory
    # unroutable message comes back as basic.return (UnroutableError).
    ch.confirm_delivery()
    m = 500
    publish_confirmed(ch, "", q, [b"sync-%d" % i for i in range(m)], persistent=True)
    try:
        ch.basic_publish("", ctx.name("nowhere"), b"lost", mandatory=True)
        raise Failure("a mandatory message to no queue was confirmed without a basic.return")
    except pika.exceptions.UnroutableError:
        pass

    check(queue_depth(ch, q) == n + m, f"queue holds {queue_depth(ch, q)} messages, expected {n + m}")
    got = []
    ch.basic_consume(q, lambda c, mth, p, body: got.append(body), auto_ack=True)
    ctx.pump([setup], lambda: len(got) >= n + m, f"{n + m} messages back", extra=0.1)
    check(len(got) == n + m, f"consumed {len(got)} messages, expected {n + m}")
    check(got[:n] == [b"%06d" % i + b"." * 100 for i in range(n)], "async batch came back changed or out of order")
    check(got[n:] == [b"sync-%d" % i for i in range(m)], "sync batch came back changed or out of order")


# --------------------------------------------------------------------------
# c. topic pub/sub with two consumer groups (competing consumers inside each)

TOPIC_KEYS = {
    # routing key: groups whose bindings match
    "orders.eu.created": {"g1", "g2"},
    "orders.us.created": {"g1"},
    "orders.eu.cancelled": {"g2"},
    "billing.eu.invoice.paid": {"g2"},
    "audit.us.login": {"g2"},
    "audit": {"g2"},
    "inventory.us.restocked": set(),
    "orders.created": set(),
}
TOPIC_BINDINGS = {"g1": ["orders.*.created"], "g2": ["*.eu.#", "audit.#"]}


def scenario_c(ctx):
    setup = ctx.connect("setup")
    ch = setup.channel()
    ex = ctx.declare_exchange(ch, "events", "topic")
    queues = {}
    for g, patterns in TOPIC_BINDINGS.items():
        queues[g] = ctx.declare_queue(ch, g)
        for p in patterns:
            ch.queue_bind(queues[g], ex, routing_key=p)

    got = {}  # (group, member) -> [message ids]
    conns = []
    for g in TOPIC_BINDINGS:
        for member in (1, 2):
            conn = ctx.connect(f"{g}-{member}")
            c = conn.channel()
            c.basic_qos(prefetch_count=5)
            got[(g, member)] = []

            def on_msg(c, method, props, body, key=(g, member)):
                got[key].append((props.message_id, method.routing_key))
                c.basic_ack(method.delivery_tag)

            c.basic_consume(queues[g], on_msg, auto_ack=False)
            conns.append(conn)

    ch.confirm_delivery()
    keys = list(TOPIC_KEYS)
    rounds = 15
    expected = {"g1": set(), "g2": set()}
    for i in range(rounds * len(keys)):
        key = keys[i % len(keys)]
        ch.basic_publish(ex, key, b"event", pika.BasicProperties(message_id=str(i)))
        for g in TOPIC_KEYS[key]:
            expected[g].add((str(i), key))

    def received(g):
        return got[(g, 1)] + got[(g, 2)]

    ctx.pump(conns, lambda: all(len(received(g)) >= len(expected[g]) for g in expected),
             "both groups' messages", extra=0.3)
    for g in expected:
        r = received(g)
        check(len(r) == len(set(r)), f"group {g}: a message was delivered twice")
        check(set(r) == expected[g],
              f"group {g}: missing {sorted(expected[g] - set(r))[:5]}, unexpected {sorted(set(r) - expected[g])[:5]}")
        check(got[(g, 1)] and got[(g, 2)],
              f"group {g}: competing consumers did not share ({len(got[(g, 1)])}/{len(got[(g, 2)])})")


# --------------------------------------------------------------------------
# d. a consumer dies mid-batch; its unacked messages go to the other consumer


def child_die_consumer(url, q):
    """Consumer A of scenario d, run as a child process and killed with SIGKILL."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []

    def on_msg(c, method, props, body):
        got.append((method.delivery_tag, body))
        print(f"got {body.decode()} {int(method.redelivered)}", flush=True)

    ch.basic_consume(q, on_msg, auto_ack=False)
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    for tag, body in got[:4]:
        ch.basic_ack(tag)
    ch.basic_qos(prefetch_count=10)  # a round trip after the acks: they are in
    print("acked " + " ".join(b.decode() for _, b in got[:4]), flush=True)
    print("ready", flush=True)
    while time.monotonic() < deadline + 30:
        conn.process_data_events(time_limit=0.1)


def dies_round(ctx, how):
    n = 50
    setup = ctx.connect(f"setup-{how}")
    ch = setup.channel()
    ch.confirm_delivery()
    q = ctx.declare_queue(ch, f"batch-{how}")
    ids = [b"m%02d" % i for i in range(n)]
    publish_confirmed(ch, "", q, ids)

    a_seen, a_acked = set(), []
    if how == "kill":
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child-die-consumer", q],
                                stdout=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        try:
            while True:
                try:
                    line = lines.get(timeout=max(ctx.left(), 0.1)).split()
                except queue.Empty:
                    raise Failure("consumer A (child process) did not get its batch")
                if line[0] == "got":
                    check(line[2] == "0", f"consumer A got {line[1]} marked redelivered")
                    a_seen.add(line[1].encode())
                elif line[0] == "acked":
                    a_acked = [x.encode() for x in line[1:]]
                elif line[0] == "ready":
                    break
        except Failure:
            proc.kill()
            raise
        a_kill = proc
    else:
        a_conn = ctx.connect("consumer-a")
        a_ch = a_conn.channel()
        a_ch.basic_qos(prefetch_count=10)
        got = []
        a_ch.basic_consume(q, lambda c, m, p, body: got.append((m.delivery_tag, body)), auto_ack=False)
        ctx.pump([a_conn], lambda: len(got) >= 10, "consumer A's batch")
        for tag, body in got[:4]:
            a_ch.basic_ack(tag)
        a_ch.basic_qos(prefetch_count=10)
        a_seen = {b for _, b in got}
        a_acked = [b for _, b in got[:4]]
    check(len(a_acked) == 4 and len(a_seen) >= 10, f"consumer A saw {len(a_seen)} and acked {len(a_acked)}")

    b_conn = ctx.connect(f"consumer-b-{how}")
    b_ch = b_conn.channel()
    b_ch.basic_qos(prefetch_count=10)
    b_got = []

    def on_b(c, method, props, body):
        b_got.append((body, method.redelivered))
        c.basic_ack(method.delivery_tag)

    b_ch.basic_consume(q, on_b, auto_ack=False)
    ctx.pump([b_conn], lambda: len(b_got) >= 5, "consumer B's first messages")
    # A dies mid-batch, holding unacked messages.
    if how == "kill":
        a_kill.send_signal(signal.SIGKILL)
        a_kill.wait(timeout=10)
        time.sleep(0.1)
        while not lines.empty():  # what A printed before it died
            line = lines.get().split()
            if line and line[0] == "got":
                a_seen.add(line[1].encode())
        check(len(a_seen) <= 14, f"consumer A (prefetch 10, acked 4) was sent {len(a_seen)} messages")
    else:
        a_conn.close()
    want = n - len(a_acked)
    ctx.pump([b_conn], lambda: len(b_got) >= want, f"{want} messages at consumer B", extra=0.3)

    bodies = [b for b, _ in b_got]
    check(len(bodies) == len(set(bodies)), "consumer B got a message twice")
    check(set(bodies) == set(ids) - set(a_acked),
          f"lost: {sorted(set(ids) - set(a_acked) - set(bodies))}, extra: {sorted(set(bodies) & set(a_acked))}")
    redelivered = {b for b, r in b_got if r}
    unacked_seen = a_seen - set(a_acked)
    check(unacked_seen <= redelivered,
          f"A's unacked messages {sorted(unacked_seen - redelivered)} reached B without redelivered=true")
    # A held 6 to 10 unacked messages when it died. pika's close() first rejects
    # (requeue) deliveries that reached it but not its callback, and the broker
    # may hand A more before the cancel, so only the killed round has a ceiling.
    ceiling = 10 if how == "kill" else n
    check(6 <= len(redelivered) <= ceiling, f"{len(redelivered)} redelivered messages; A held 6 to 10 unacked")
    check(queue_depth(ch, q) == 0, "queue not empty at the end")


def scenario_d(ctx):
    dies_round(ctx, "kill")  # the process is killed: TCP drops without connection.close
    dies_round(ctx, "close")  # connection.close with unacked messages


# --------------------------------------------------------------------------
# e. headers routing (x-match all and any)


def scenario_e(ctx):
    conn = ctx.connect("setup")
    ch = conn.channel()
    ex = ctx.declare_exchange(ch, "hdr", "headers")
    q_all = ctx.declare_queue(ch, "all")
    q_any = ctx.declare_queue(ch, "any")
    q_num = ctx.declare_queue(ch, "num")
    ch.queue_bind(q_all, ex, arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, ex, arguments={"x-match": "any", "format": "zip", "region": "eu"})
    ch.queue_bind(q_num, ex, arguments={"version": 2})  # x-match defaults to all
    cases = [
        ({"format": "pdf", "type": "report"}, {"all"}),
        ({"format": "pdf", "type": "report", "extra": "x"}, {"all"}),
        ({"format": "pdf"}, set()),
        ({"format": "zip"}, {"any"}),
        ({"region": "eu", "type": "report"}, {"any"}),
        ({"format": "pdf", "type": "log"}, set()),
        (None, set()),
        ({"format": "zip", "region": "eu", "type": "report"}, {"any"}),
        ({"format": "pdf", "type": "report", "region": "eu"}, {"all", "any"}),
        ({"version": 2}, {"num"}),
        ({"version": 3, "format": "zip"}, {"any"}),
        ({"x-match": "any", "format": "pdf"}, set()),
    ]
    ch.confirm_delivery()
    for i, (headers, _) in enumerate(cases):
        ch.basic_publish(ex, f"ignored.{i}", b"doc", pika.BasicProperties(message_id=str(i), headers=headers))
    for label, q in (("all", q_all), ("any", q_any), ("num", q_num)):
        got = []
        while True:
            method, props, _ = ch.basic_get(q, auto_ack=True)
            if method is None:
                break
            got.append(int(props.message_id))
        want = [i for i, (_, dest) in enumerate(cases) if label in dest]
        check(got == want, f"x-match {label} queue got {got}, expected {want}")


# --------------------------------------------------------------------------
# f. retry: nack -> DLX -> retry queue with TTL -> back to the work queue


def scenario_f(ctx):
    ctx.deadline = min(ctx.deadline, time.monotonic() + PENDING_TIMEOUT)
    conn = ctx.connect("setup")
    ch = conn.channel()
    retry_ex = ctx.declare_exchange(ch, "retry", "direct")
    work = ctx.name("work")
    retry = ctx.name("retry-wait")
    ctx.declare_queue(ch, "work", arguments={"x-dead-letter-exchange": retry_ex})
    ctx.declare_queue(ch, "retry-wait", arguments={"x-message-ttl": 200, "x-dead-letter-exchange": ""})
    ch.queue_bind(retry, retry_ex, routing_key=work)

    n, attempts = 10, 3
    seen = {}
    finals = {}
    wconn = ctx.connect("worker")
    wch = wconn.channel()
    wch.basic_qos(prefetch_count=5)

    def deaths(props, queue_name, reason):
        for d in (props.headers or {}).get("x-death", []):
            if d.get("queue") == queue_name and d.get("reason") == reason:
                return d
        return None

    def on_msg(c, method, props, body):
        seen[body] = seen.get(body, 0) + 1
        rejected = deaths(props, work, "rejected")
        attempt = 1 + (rejected["count"] if rejected else 0)
        check(attempt == seen[body], f"{body!r}: attempt {seen[body]} but x-death says {attempt}")
        if attempt < attempts:
            c.basic_nack(method.delivery_tag, requeue=False)
        else:
            finals[body] = props
            c.basic_ack(method.delivery_tag)

    wch.basic_consume(work, on_msg, auto_ack=False)
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", work, b"job-%d" % i)
    ctx.pump([wconn, conn], lambda: len(finals) >= n, "every job's third attempt", extra=0.5)
    check(all(v == attempts for v in seen.values()), f"attempts per job: {seen}")
    for body, props in finals.items():
        rej = deaths(props, work, "rejected")
        exp = deaths(props, retry, "expired")
        check(rej and rej["count"] == attempts - 1 and rej.get("exchange") == "",
              f"{body!r}: x-death for the work queue is {rej}")
        check(exp and exp["count"] == attempts - 1 and exp.get("exchange") == retry_ex,
              f"{body!r}: x-death for the retry queue is {exp}")
    check(queue_depth(ch, work) == 0 and queue_depth(ch, retry) == 0, "queues not empty at the end")


# --------------------------------------------------------------------------
# g. RPC with direct reply-to


def scenario_g(ctx):
    ctx.deadline = min(ctx.deadline, time.monotonic() + PENDING_TIMEOUT)
    sconn = ctx.connect("server")
    sch = sconn.channel()
    rpc_q = ctx.declare_queue(sch, "rpc")
    reply_tos = []

    def on_request(c, method, props, body):
        reply_tos.append(props.reply_to)
        c.basic_publish("", props.reply_to, body.upper(),
                        pika.BasicProperties(correlation_id=props.correlation_id))
        c.basic_ack(method.delivery_tag)

    sch.basic_qos(prefetch_count=10)
    sch.basic_consume(rpc_q, on_request, auto_ack=False)

    cconn = ctx.connect("client")
    cch = cconn.channel()
    replies = {}

    def on_reply(c, method, props, body):
        replies[props.correlation_id] = body

    cch.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
    n = 20
    requests = {}
    for i in range(n):
        cid = uuid.uuid4().hex
        requests[cid] = b"request-%d" % i
        cch.basic_publish("", rpc_q, requests[cid],
                          pika.BasicProperties(reply_to="amq.rabbitmq.reply-to", correlation_id=cid))
    ctx.pump([sconn, cconn], lambda: len(replies) >= n, f"{n} replies", extra=0.2)
    check(all(r.startswith("amq.rabbitmq.reply-to.") for r in reply_tos),
          f"server saw reply_to {reply_tos[:1]}, expected amq.rabbitmq.reply-to.<token>")
    check(replies == {cid: body.upper() for cid, body in requests.items()}, "replies do not match requests")


# --------------------------------------------------------------------------
# h. TLS: amqps verified against the run's CA, confirms and consumes over it,
#    then EXTERNAL login with a client certificate


def scenario_h(ctx):
    tls = tls_settings()
    # A server certificate from an unknown CA is refused by the client.
    try:
        ctx.connect("untrusted", url=tls["url"], context=tls_context())
        raise Failure("connected over amqps although the server certificate is not trusted")
    except ssl.SSLCertVerificationError:
        pass
    except pika.exceptions.AMQPConnectionError as e:
        check("CERTIFICATE_VERIFY_FAILED" in repr(e), f"untrusted amqps failed, but not on the certificate: {e!r}")

    trusted = tls_context(tls["ca"])
    conn = ctx.connect("tls-plain", url=tls["url"], context=trusted)
    ch = conn.channel()
    ch.confirm_delivery()
    q = ctx.declare_queue(ch, "tls")
    n = 50
    bodies = [b"tls-%d-" % i + b"x" * (i * 97) for i in range(n)]
    publish_confirmed(ch, "", q, bodies, persistent=True)  # each publish waits for its confirm
    check(queue_depth(ch, q) == n, f"queue should hold {n} confirmed messages")
    got = []

    def on_message(c, method, props, body):
        got.append(body)
        c.basic_ack(method.delivery_tag)

    cch = conn.channel()
    cch.basic_qos(prefetch_count=10)
    cch.basic_consume(q, on_message)
    ctx.pump([conn], lambda: len(got) >= n, "the messages published over TLS", extra=0.2)
    check(got == bodies, f"consumed {len(got)} messages over TLS, not the {n} published in order")

    # EXTERNAL: the client certificate's CN names the user; no password is sent.
    ext = ctx.connect(
        "tls-external",
        url=tls["url"],
        context=tls_context(tls["ca"], tls["cert"], tls["key"]),
        credentials=pika.credentials.ExternalCredentials(),
    )
    ech = ext.channel()
    ech.confirm_delivery()
    eq = ech.queue_declare("", exclusive=True).method.queue
    publish_confirmed(ech, "", eq, [b"external-1", b"external-2"])
    bodies = []
    for _ in range(2):
        method, _props, body = ech.basic_get(eq, auto_ack=True)
        check(method is not None, "basic.get on the EXTERNAL connection found no message")
        bodies.append(body)
    check(bodies == [b"external-1", b"external-2"], f"EXTERNAL connection got {bodies}")
    ext.close()


# --------------------------------------------------------------------------
# i. delayed retries: a job fails twice and succeeds on the third attempt

RETRY_ARGS = {
    "x-delayed-retry-min": 200,
    "x-delayed-retry-max": 2000,
    "x-delayed-retry-multiplier": 2,  # exponential: 200 ms, then 400 ms
    "x-delayed-retry-jitter": "equal",  # each delay uniformly between half and all of it
    "x-delivery-limit": 5,
}
RETRY_GAPS = [(0.100, 0.200), (0.200, 0.400)]  # seconds: jitter's bounds on the 1st and 2nd retry
RETRY_SLACK = 0.150  # scheduling slack above the upper bounds only


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def scenario_i(ctx):
    conn = ctx.connect("setup")
    ch = conn.channel()
    ch.confirm_delivery()
    q = ctx.declare_queue(ch, "jobs", durable=True, arguments=RETRY_ARGS)
    wconn = ctx.connect("worker")
    wch = wconn.channel()
    wch.basic_qos(prefetch_count=10)
    got = []  # (arrival, body, redelivered, headers)

    def on_msg(c, method, props, body):
        got.append((time.monotonic(), body, method.redelivered, dict(props.headers or {})))
        if body == b"job-1" and len(attempts()) < 3:
            c.basic_reject(method.delivery_tag, requeue=True)  # fails: back after a backoff
        else:
            c.basic_ack(method.delivery_tag)

    def attempts():
        return [g for g in got if g[1] == b"job-1"]

    wch.basic_consume(q, on_msg, auto_ack=False)
    publish_confirmed(ch, "", q, [b"job-1"], persistent=True)
    ctx.pump([wconn], lambda: len(attempts()) >= 2, "job-1's first retry")
    # job-1 waits out its second backoff: a job published now is not held behind it.
    sent = time.monotonic()
    publish_confirmed(ch, "", q, [b"job-2"], persistent=True)
    ctx.pump([wconn], lambda: any(g[1] == b"job-2" for g in got), "job-2")
    ctx.pump([wconn], lambda: len(attempts()) >= 3, "job-1's second retry", extra=0.3)

    order = [(g[1].decode(), len([h for h in got[: i + 1] if h[1] == g[1]])) for i, g in enumerate(got)]
    check(order == [("job-1", 1), ("job-1", 2), ("job-2", 1), ("job-1", 3)],
          f"deliveries (job, attempt) {order}; job-2 must come while job-1 waits, job-1 three times")
    job2 = next(g for g in got if g[1] == b"job-2")
    check(not job2[2] and "x-delivery-count" not in job2[3],
          f"job-2 (first delivery) has redelivered={job2[2]}, headers {job2[3]}")
    a = attempts()
    check(not a[0][2], "job-1's first delivery is marked redelivered")
    check("x-delivery-count" not in a[0][3], f"job-1's first delivery has x-delivery-count: {a[0][3]}")
    for n in (1, 2):
        _, _, redelivered, headers = a[n]
        count = headers.get("x-delivery-count")
        check(redelivered, f"job-1's delivery {n + 1} is not marked redelivered")
        check(is_int(count) and count == n, f"job-1's delivery {n + 1} has x-delivery-count {count!r}, expected {n}")
        lo, hi = RETRY_GAPS[n - 1]
        gap = a[n][0] - a[n - 1][0]
        check(lo <= gap <= hi + RETRY_SLACK,
              f"retry {n} came {gap * 1000:.0f} ms after delivery {n}, expected {lo * 1000:.0f}-{hi * 1000:.0f} ms"
              f" (+{RETRY_SLACK * 1000:.0f} ms slack)")
    check(job2[0] - sent < RETRY_GAPS[1][0],
          f"job-2 took {(job2[0] - sent) * 1000:.0f} ms from publish to delivery while job-1 waited")
    check(queue_depth(ch, q) == 0, "queue not empty at the end")


# --------------------------------------------------------------------------
# j. a delayed job through an x-delayed-message exchange


def scenario_j(ctx):
    delay = 300  # ms
    conn = ctx.connect("setup")
    ch = conn.channel()
    ex = ctx.declare_exchange(ch, "later", "x-delayed-message", durable=True,
                              arguments={"x-delayed-type": "direct"})
    q = ctx.declare_queue(ch, "jobs", durable=True)
    ch.queue_bind(q, ex, routing_key="job")
    ch.confirm_delivery()
    t0 = time.monotonic()
    ch.basic_publish(ex, "job", b"delayed-job", pika.BasicProperties(delivery_mode=2, headers={"x-delay": delay}))
    while (elapsed := time.monotonic() - t0) < 0.250:
        depth = queue_depth(ch, q)
        check(depth == 0, f"the queue holds {depth} message(s) {elapsed * 1000:.0f} ms after the publish"
                          f" (x-delay {delay})")
        time.sleep(0.02)
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append((time.monotonic(), m, p, body)), auto_ack=True)
    ctx.pump([conn], lambda: got, "the delayed message", extra=0.3)
    check(len(got) == 1, f"{len(got)} deliveries of one delayed message")
    at, method, props, body = got[0]
    waited = (at - t0) * 1000
    check(waited >= delay, f"the message arrived {waited:.0f} ms after its publish, x-delay was {delay}")
    check(body == b"delayed-job" and method.routing_key == "job" and props.delivery_mode == 2,
          f"delivered {body!r} with routing key {method.routing_key!r}, delivery mode {props.delivery_mode}")
    x_delay = (props.headers or {}).get("x-delay")
    check(is_int(x_delay) and x_delay == -delay, f"delivered with x-delay {x_delay!r}, expected {-delay}")


# --------------------------------------------------------------------------
# k. a duplicate webhook swallowed by an x-message-deduplication exchange


def scenario_k(ctx):
    conn = ctx.connect("setup")
    ch = conn.channel()
    ex = ctx.declare_exchange(ch, "webhooks", "x-message-deduplication",
                              arguments={"x-cache-size": 1000, "x-cache-ttl": 60000})
    q = ctx.declare_queue(ch, "deliveries")
    ch.queue_bind(q, ex)
    ch.confirm_delivery()
    event, other = f"evt-{uuid.uuid4().hex}", f"evt-{uuid.uuid4().hex}"
    sends = [(event, b"webhook-1"), (event, b"webhook-1-again"), (other, b"webhook-2")]
    for i, (event_id, body) in enumerate(sends):
        try:
            ch.basic_publish(ex, "", body, pika.BasicProperties(headers={"x-deduplication-header": event_id}))
        except pika.exceptions.NackError:
            raise Failure(f"publish {i + 1} ({body!r}) was nacked, expected a confirm")
    got = []
    ch.basic_consume(q, lambda c, m, p, body: got.append(body), auto_ack=True)
    ctx.pump([conn], lambda: len(got) >= 2, "the two distinct webhooks", extra=0.3)
    check(got == [b"webhook-1", b"webhook-2"], f"the queue got {got}, expected [b'webhook-1', b'webhook-2']")


# --------------------------------------------------------------------------
# l. a stream read by three services independently, then replayed from a timestamp


def scenario_l(ctx):
    n1, n2 = 150, 150
    n = n1 + n2
    bodies = [b"event-%d" % i for i in range(n)]
    setup = ctx.connect("setup")
    sch = setup.channel()
    q = ctx.declare_queue(sch, "events", durable=True, arguments={"x-queue-type": "stream"})

    # A stream consumer without basic.qos is refused: channel close 406, the connection lives on.
    rconn = ctx.connect("no-prefetch")
    rch = rconn.channel()
    try:
        rch.basic_consume(q, lambda *a: None, auto_ack=False, arguments={"x-stream-offset": "first"})
        raise Failure("basic.consume on a stream without basic.qos was accepted, expected 406")
    except pika.exceptions.ChannelClosedByBroker as e:
        check(e.reply_code == 406, f"basic.consume without prefetch: channel closed with {e.reply_code}"
                                   f" {e.reply_text!r}, expected 406 PRECONDITION_FAILED")
    check(rconn.is_open, "the refused consume closed the connection, expected only the channel")
    rconn.channel().close()  # the connection still works
    rconn.close()

    def consumer(label, offset):
        conn = ctx.connect(label)
        ch = conn.channel()
        ch.basic_qos(prefetch_count=50)
        got = []

        def on_message(c, method, props, body):
            got.append(((props.headers or {}).get("x-stream-offset"), body, method.redelivered))
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(q, on_message, auto_ack=False, arguments={"x-stream-offset": offset})
        return conn, got

    # Three services attached before anything is published, each on its own connection.
    services = [consumer(f"service-{i}", off) for i, off in enumerate(("first", "next", "first"))]

    pconn = ctx.connect("publisher")
    pch = pconn.channel()
    pch.confirm_delivery()
    publish_confirmed(pch, "", q, bodies[:n1], persistent=True)
    # A timestamp (whole seconds) after the first batch's last confirm, and the second
    # batch published after it: at least 1.5 s after the first.
    t1 = time.time()
    ts = int(t1) + 1
    time.sleep(max(t1 + 1.5, ts + 0.2) - time.time())
    publish_confirmed(pch, "", q, bodies[n1:], persistent=True)

    conns = [c for c, _ in services]
    ctx.pump(conns, lambda: all(len(g) >= n for _, g in services), "every service to read every message", extra=0.3)
    first_offsets = None
    for i, (_, got) in enumerate(services):
        offsets = [o for o, _, _ in got]
        check([b for _, b, _ in got] == bodies,
              f"service {i} got {len(got)} messages (first {[b for _, b, _ in got[:3]]}), expected all {n} in order")
        check(all(isinstance(o, int) for o in offsets), f"service {i}: x-stream-offset headers {offsets[:5]}...")
        check(all(a < b for a, b in zip(offsets, offsets[1:])),
              f"service {i}: x-stream-offset not increasing: {offsets[:10]}...")
        check(not any(r for _, _, r in got), f"service {i} got redelivered messages")
        if first_offsets is None:
            first_offsets = offsets
        check(offsets == first_offsets, f"service {i} saw other offsets than service 0 for the same messages")

    # A fourth consumer replays from the timestamp: it gets the whole second batch, in order,
    # starting at or before its first message (chunk granularity) but not from the start.
    rconn, rgot = consumer("replay", datetime.fromtimestamp(ts, tz=timezone.utc))
    ctx.pump([rconn], lambda: rgot and rgot[-1][1] == bodies[-1], "the replay to reach the last message", extra=0.3)
    rbodies = [b for _, b, _ in rgot]
    check(rbodies[0] in bodies, f"the replay started with {rbodies[0]!r}")
    k = bodies.index(rbodies[0])
    check(0 < k <= n1, f"the replay from {ts} (between the batches) started at message {k} (offset {rgot[0][0]}),"
                       f" expected the second batch's first ({n1}) or a few before it, not the start")
    check(rbodies == bodies[k:], f"the replay got {len(rbodies)} messages from message {k}, not the stream's tail")
    check([o for o, _, _ in rgot] == first_offsets[k:],
          "the replay's x-stream-offset headers differ from the services'")

    for c in conns + [rconn, pconn]:
        c.close()
    sch.queue_delete(q)
    ctx.queues.remove(q)
    try:
        setup.channel().queue_declare(q, passive=True)
        raise Failure(f"the stream {q} still exists after queue.delete")
    except pika.exceptions.ChannelClosedByBroker as e:
        check(e.reply_code == 404, f"passive declare after delete: {e.reply_code} {e.reply_text!r}, expected 404")


# --------------------------------------------------------------------------

SCENARIOS = [
    ("a-work-queue", scenario_a, False),
    ("b-confirms", scenario_b, False),
    ("c-topic-groups", scenario_c, False),
    ("d-consumer-dies", scenario_d, False),
    ("e-headers", scenario_e, False),
    ("f-retry-dlx-ttl", scenario_f, False),
    ("g-rpc-reply-to", scenario_g, False),
    ("h-tls", scenario_h, False),
    ("i-retry-backoff", scenario_i, False),
    ("j-delayed-job", scenario_j, False),
    ("k-dedup-webhook", scenario_k, False),
    ("l-stream-fanout-and-replay", scenario_l, False),
]
# Warren features RabbitMQ lacks without plugins: skipped unless INTEROP_PLUGINS=1.
NEEDS_PLUGINS = ("i-retry-backoff", "j-delayed-job", "k-dedup-webhook")


def main(argv):
    if len(argv) == 2 and argv[0] == "--child-die-consumer":
        child_die_consumer(amqp_url(), argv[1])
        return 0
    return run(SCENARIOS, argv, needs_tls=("h-tls",), needs_plugins=NEEDS_PLUGINS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
