"""The harness the pika scenarios share: connections, names, deadlines, cleanup, the runner."""

import faulthandler
import os
import ssl
import sys
import time
import urllib.parse
import uuid

import pika

SCENARIO_TIMEOUT = 60.0  # seconds, per scenario (the watchdog adds a margin)
PENDING_TIMEOUT = 20.0  # f and g take about a second on RabbitMQ; fail fast where unsupported
LANG = "py"


class Failure(Exception):
    """An expectation about the broker's behaviour did not hold."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def amqp_url():
    url = os.environ.get("INTEROP_AMQP_URL", "")
    if not url:
        sys.exit("INTEROP_AMQP_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2F)")
    host = urllib.parse.urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing to connect to {host!r}: interop scenarios only talk to the loopback")
    return url


TLS_ENV = ("INTEROP_AMQPS_URL", "INTEROP_TLS_CA", "INTEROP_TLS_CERT", "INTEROP_TLS_KEY")


PLUGINS_SKIP = "a Warren feature RabbitMQ lacks without plugins (INTEROP_PLUGINS=1 runs it)"


def plugins_on():
    """Whether the broker has what RabbitMQ needs plugins for (run.sh sets it for Warren)."""
    return os.environ.get("INTEROP_PLUGINS") == "1"


def tls_settings():
    """The amqps URL, CA file and client certificate/key run.sh made, or None."""
    values = [os.environ.get(k, "") for k in TLS_ENV]
    if not all(values):
        return None
    host = urllib.parse.urlsplit(values[0]).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"refusing to connect to {host!r}: interop scenarios only talk to the loopback")
    return dict(zip(("url", "ca", "cert", "key"), values))


def tls_context(ca=None, cert=None, key=None):
    """A client context verifying the server (against `ca`, else the system roots)."""
    context = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
    if cert:
        context.load_cert_chain(cert, key)
    return context


class Ctx:
    """Per-scenario state: names, deadline, connections and things to delete."""

    def __init__(self, url, scenario):
        self.url = url
        self.prefix = f"interop.{LANG}.{scenario}.{uuid.uuid4().hex[:8]}"
        self.deadline = time.monotonic() + SCENARIO_TIMEOUT
        self.conns = []
        self.queues = []
        self.exchanges = []

    def name(self, suffix):
        return f"{self.prefix}.{suffix}"

    def left(self):
        return self.deadline - time.monotonic()

    def connect(self, label, url=None, context=None, credentials=None):
        """A connection to the broker; with `context`, over TLS (amqps `url`)."""
        params = pika.URLParameters(url or self.url)
        if context is not None:
            params.ssl_options = pika.SSLOptions(context, urllib.parse.urlsplit(url).hostname)
        if credentials is not None:
            params.credentials = credentials
        params.socket_timeout = 10
        params.stack_timeout = 15
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.client_properties = {"connection_name": f"{self.prefix}.{label}"}
        conn = pika.BlockingConnection(params)
        self.conns.append(conn)
        return conn

    def declare_queue(self, ch, suffix, **kw):
        name = self.name(suffix)
        ch.queue_declare(name, **kw)
        self.queues.append(name)
        return name

    def declare_exchange(self, ch, suffix, kind, **kw):
        name = self.name(suffix)
        ch.exchange_declare(name, exchange_type=kind, **kw)
        self.exchanges.append(name)
        return name

    def pump(self, conns, until, what, extra=0.0):
        """Process I/O on `conns` until `until()` holds, then `extra` seconds more."""
        while not until():
            if self.left() <= 0:
                raise Failure(f"timed out waiting for {what}")
            for c in conns:
                c.process_data_events(time_limit=0.01)
        end = time.monotonic() + extra
        while time.monotonic() < end:
            for c in conns:
                c.process_data_events(time_limit=0.01)

    def cleanup(self):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        if not self.queues and not self.exchanges:
            return
        try:
            conn = pika.BlockingConnection(pika.URLParameters(self.url))
            for q in self.queues:
                ch = conn.channel()
                try:
                    ch.queue_delete(q)
                    ch.close()
                except Exception:
                    pass
            for x in self.exchanges:
                ch = conn.channel()
                try:
                    ch.exchange_delete(x)
                    ch.close()
                except Exception:
                    pass
            conn.close()
        except Exception:
            pass


def publish_confirmed(ch, exchange, routing_key, bodies, headers_list=None, persistent=False):
    """Publish on a channel in confirm mode; each publish waits for its ack."""
    for i, body in enumerate(bodies):
        props = pika.BasicProperties(
            delivery_mode=2 if persistent else 1,
            message_id=str(i),
            headers=headers_list[i] if headers_list else None,
        )
        ch.basic_publish(exchange, routing_key, body, props)


def queue_depth(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def run(scenarios, argv, needs_tls=(), needs_plugins=()):
    """Runs the (name, function, pending) scenarios named in argv (all when empty).

    Those in `needs_tls` are skipped (not counted) without the INTEROP_AMQPS_URL
    and INTEROP_TLS_* settings that run.sh exports when it starts a TLS broker;
    those in `needs_plugins` without INTEROP_PLUGINS=1, which run.sh exports
    when it starts Warren (Warren has them built in; RabbitMQ needs plugins)."""
    url = amqp_url()
    pending_on = os.environ.get("WARREN_INTEROP_PENDING") == "1"
    names = [s[0] for s in scenarios]
    unknown = [a for a in argv if a not in names]
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}; known: {names}")
    failed = 0
    for name, fn, pending in scenarios:
        if argv and name not in argv:
            continue
        if pending and not pending_on and not argv:
            print(f"pending {name}", flush=True)
            continue
        if name in needs_tls and tls_settings() is None:
            print(f"skipped {name}: no amqps broker ({', '.join(TLS_ENV)} are not all set)", flush=True)
            continue
        if name in needs_plugins and not plugins_on():
            print(f"skipped {name}: {PLUGINS_SKIP}", flush=True)
            continue
        ctx = Ctx(url, name.split("-")[0])
        start = time.monotonic()
        faulthandler.dump_traceback_later(SCENARIO_TIMEOUT + 15, exit=True)
        try:
            fn(ctx)
            print(f"ok {name} ({time.monotonic() - start:.1f}s)", flush=True)
        except Failure as e:
            failed += 1
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:
            failed += 1
            print(f"FAIL {name}: {e!r}", flush=True)
        finally:
            faulthandler.cancel_dump_traceback_later()
            ctx.cleanup()
    return 1 if failed else 0
