// The harness the amqplib scenarios share: connections, names, deadlines, cleanup, the runner.

const amqp = require('amqplib');
const crypto = require('node:crypto');
const fs = require('node:fs');

const SCENARIO_TIMEOUT_MS = 60_000;
const PENDING_TIMEOUT_MS = 20_000; // f and g take about a second on RabbitMQ; fail fast where unsupported
const LANG = 'node';

class Failure extends Error {}

function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function amqpUrl() {
  const url = process.env.INTEROP_AMQP_URL || '';
  if (!url) {
    console.error('INTEROP_AMQP_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/%2F)');
    process.exit(2);
  }
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
    console.error(`refusing to connect to ${host}: interop scenarios only talk to the loopback`);
    process.exit(2);
  }
  return url;
}

const TLS_ENV = ['INTEROP_AMQPS_URL', 'INTEROP_TLS_CA', 'INTEROP_TLS_CERT', 'INTEROP_TLS_KEY'];

// The amqps URL, CA file and client certificate/key run.sh made, or null.
function tlsSettings() {
  const values = TLS_ENV.map((k) => process.env[k] || '');
  if (!values.every(Boolean)) return null;
  const host = new URL(values[0]).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(host)) {
    console.error(`refusing to connect to ${host}: interop scenarios only talk to the loopback`);
    process.exit(2);
  }
  const [url, ca, cert, key] = values;
  return { url, ca: fs.readFileSync(ca), cert: fs.readFileSync(cert), key: fs.readFileSync(key) };
}

// Whether the broker has what RabbitMQ needs plugins for (run.sh sets it for Warren).
const pluginsOn = () => process.env.INTEROP_PLUGINS === '1';
const PLUGINS_SKIP = 'a Warren feature RabbitMQ lacks without plugins (INTEROP_PLUGINS=1 runs it)';

class Ctx {
  constructor(url, scenario) {
    this.url = url;
    this.prefix = `interop.${LANG}.${scenario}.${crypto.randomBytes(4).toString('hex')}`;
    this.deadline = Date.now() + SCENARIO_TIMEOUT_MS;
    this.conns = [];
    this.queues = [];
    this.exchanges = [];
    this.errors = []; // unexpected connection/channel errors
  }

  name(suffix) {
    return `${this.prefix}.${suffix}`;
  }

  left() {
    return this.deadline - Date.now();
  }

  // `url` and `socketOptions` (TLS: ca, cert, key, credentials) override the plain broker's.
  async connect(label, { expectDeath = false, url = this.url, socketOptions = {} } = {}) {
    const conn = await amqp.connect(url, {
      timeout: 10_000,
      clientProperties: { connection_name: `${this.prefix}.${label}` },
      ...socketOptions,
    });
    conn.on('error', (err) => {
      if (!expectDeath) this.errors.push(`connection ${label}: ${err.message}`);
    });
    this.conns.push(conn);
    return conn;
  }

  async channel(conn, label, confirm = false) {
    const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
    ch.on('error', (err) => this.errors.push(`channel ${label}: ${err.message}`));
    return ch;
  }

  async declareQueue(ch, suffix, options = {}) {
    const name = this.name(suffix);
    await ch.assertQueue(name, { durable: false, ...options });
    this.queues.push(name);
    return name;
  }

  async declareExchange(ch, suffix, kind, options = {}) {
    const name = this.name(suffix);
    await ch.assertExchange(name, kind, { durable: false, ...options });
    this.exchanges.push(name);
    return name;
  }

  // Polls `until()` (while the event loop delivers messages), then waits `extraMs` more.
  async waitFor(until, what, extraMs = 0) {
    while (!until()) {
      check(this.errors.length === 0, this.errors.join('; '));
      if (this.left() <= 0) throw new Failure(`timed out waiting for ${what}`);
      await sleep(5);
    }
    if (extraMs) await sleep(extraMs);
    check(this.errors.length === 0, this.errors.join('; '));
  }

  async cleanup() {
    for (const c of this.conns) {
      try {
        await Promise.race([c.close(), sleep(2_000)]);
      } catch (_) {}
    }
    if (!this.queues.length && !this.exchanges.length) return;
    try {
      const conn = await amqp.connect(this.url, { timeout: 10_000 });
      conn.on('error', () => {});
      for (const q of this.queues) {
        const ch = await conn.createChannel();
        ch.on('error', () => {});
        try {
          await ch.deleteQueue(q);
          await ch.close();
        } catch (_) {}
      }
      for (const x of this.exchanges) {
        const ch = await conn.createChannel();
        ch.on('error', () => {});
        try {
          await ch.deleteExchange(x);
          await ch.close();
        } catch (_) {}
      }
      await conn.close();
    } catch (_) {}
  }
}

// Publishes every body on a confirm channel, honouring backpressure, and waits for the confirms.
async function publishConfirmed(ch, exchange, key, bodies, optionsFor = () => ({})) {
  for (let i = 0; i < bodies.length; i++) {
    if (!ch.publish(exchange, key, Buffer.from(bodies[i]), { messageId: String(i), ...optionsFor(i) })) {
      await new Promise((resolve) => ch.once('drain', resolve));
    }
  }
  await ch.waitForConfirms();
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));
const sorted = (a) => [...a].sort();
const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Scenarios in `needsTls` are skipped (not counted) without the INTEROP_AMQPS_URL and
// INTEROP_TLS_* settings that run.sh exports when it starts a TLS broker; those in
// `needsPlugins` without INTEROP_PLUGINS=1, which run.sh exports when it starts Warren
// (Warren has them built in; RabbitMQ needs plugins).
async function run(SCENARIOS, argv, needsTls = [], needsPlugins = []) {
  const url = amqpUrl();
  const pendingOn = process.env.WARREN_INTEROP_PENDING === '1';
  const names = SCENARIOS.map((s) => s[0]);
  const unknown = argv.filter((a) => !names.includes(a));
  if (unknown.length) {
    console.error(`unknown scenario(s) ${unknown}; known: ${names}`);
    return 2;
  }
  let failed = 0;
  for (const [name, fn, pending] of SCENARIOS) {
    if (argv.length && !argv.includes(name)) continue;
    if (pending && !pendingOn && !argv.length) {
      console.log(`pending ${name}`);
      continue;
    }
    if (needsTls.includes(name) && !tlsSettings()) {
      console.log(`skipped ${name}: no amqps broker (${TLS_ENV.join(', ')} are not all set)`);
      continue;
    }
    if (needsPlugins.includes(name) && !pluginsOn()) {
      console.log(`skipped ${name}: ${PLUGINS_SKIP}`);
      continue;
    }
    const ctx = new Ctx(url, name.split('-')[0]);
    const start = Date.now();
    let timer;
    try {
      await Promise.race([
        fn(ctx),
        new Promise((_, reject) => {
          const why = `scenario timed out after ${SCENARIO_TIMEOUT_MS / 1000}s`;
          timer = setTimeout(() => reject(new Failure(why)), SCENARIO_TIMEOUT_MS + 5_000);
        }),
      ]);
      console.log(`ok ${name} (${((Date.now() - start) / 1000).toFixed(1)}s)`);
    } catch (e) {
      failed++;
      // A broker's refusal (amqplib errors carry its reply code) needs no stack trace.
      const why = e instanceof Failure ? e.message : e && e.code !== undefined ? String(e) : (e && e.stack) || e;
      console.log(`FAIL ${name}: ${why}`);
    } finally {
      clearTimeout(timer);
      ctx.deadline = 0; // stops any waitFor still running in an abandoned scenario
      await Promise.race([ctx.cleanup(), sleep(10_000)]);
    }
  }
  return failed ? 1 : 0;
}

module.exports = {
  Ctx,
  Failure,
  PENDING_TIMEOUT_MS,
  check,
  publishConfirmed,
  range,
  run,
  sameList,
  sleep,
  sorted,
  tlsSettings,
};
