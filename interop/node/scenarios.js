#!/usr/bin/env node
// Warren interop scenarios driven by amqplib (the Node client RabbitMQ documents).
//
// Usage: node scenarios.js [SCENARIO ...]
//
// The broker is the one in INTEROP_AMQP_URL (only 127.0.0.1/localhost/::1 are
// accepted). Scenarios f and g need features Warren does not have yet; they run
// only when WARREN_INTEROP_PENDING=1 (or when named on the command line).
//
// Output, one line per scenario: `ok <name> (<secs>s)`, `FAIL <name>: <why>` or
// `pending <name>`; exit status 0 when every scenario that ran passed.

const crypto = require('node:crypto');
const amqp = require('amqplib');
const { Failure, PENDING_TIMEOUT_MS, check, publishConfirmed, range, run, sameList, sleep, sorted, tlsSettings } = require('./harness');

// ---------------------------------------------------------------------------
// a. work queue: prefetch 1, manual acks, two workers

async function scenarioA(ctx) {
  const setup = await ctx.connect('setup');
  const sch = await ctx.channel(setup, 'setup', true);
  const q = await ctx.declareQueue(sch, 'work');

  // Phase 1: worker A holds one job; with prefetch 1 every other job goes to B.
  const n1 = 20;
  await publishConfirmed(sch, '', q, range(n1, (i) => `job-${i}`));
  const aConn = await ctx.connect('worker-a');
  const bConn = await ctx.connect('worker-b');
  const aCh = await ctx.channel(aConn, 'worker-a');
  const bCh = await ctx.channel(bConn, 'worker-b');
  await aCh.prefetch(1);
  await bCh.prefetch(1);
  const aGot = [];
  const bGot = [];
  await aCh.consume(q, (m) => aGot.push(m), { noAck: false });
  await ctx.waitFor(() => aGot.length >= 1, "worker A's first job");
  await bCh.consume(
    q,
    (m) => {
      bGot.push(m.content.toString());
      if (m.fields.redelivered) ctx.errors.push(`worker B got a redelivered job ${m.content}`);
      bCh.ack(m);
    },
    { noAck: false },
  );
  await ctx.waitFor(() => bGot.length >= n1 - 1, 'worker B to take the other jobs', 300);
  check(aGot.length === 1, `worker A holds an unacked job with prefetch 1 but got ${aGot.length} jobs`);
  check(bGot.length === n1 - 1, `worker B should get ${n1 - 1} jobs, got ${bGot.length}`);
  aCh.ack(aGot[0]);
  check(
    sameList(sorted([aGot[0].content.toString(), ...bGot]), sorted(range(n1, (i) => `job-${i}`))),
    'phase 1: jobs lost or duplicated',
  );
  await aCh.prefetch(1); // a round trip: the ack is in
  check((await sch.checkQueue(q)).messageCount === 0, 'phase 1: queue not empty after all jobs were acked');
  await aConn.close();
  await bConn.close();

  // Phase 2: two workers share 200 jobs; each is processed once, both get work.
  const n2 = 200;
  const done = { A: [], B: [] };
  for (const tag of ['A', 'B']) {
    const conn = await ctx.connect(`worker2-${tag}`);
    const ch = await ctx.channel(conn, `worker2-${tag}`);
    await ch.prefetch(1);
    await ch.consume(
      q,
      (m) => {
        setTimeout(() => {
          // the "work"
          done[tag].push([m.content.toString(), m.fields.redelivered]);
          ch.ack(m);
        }, 2);
      },
      { noAck: false },
    );
  }
  await publishConfirmed(sch, '', q, range(n2, (i) => `task-${i}`));
  await ctx.waitFor(() => done.A.length + done.B.length >= n2, 'all tasks processed', 200);
  const all = [...done.A, ...done.B];
  check(all.length === n2, `phase 2: ${all.length} deliveries for ${n2} jobs`);
  check(
    sameList(sorted(all.map((x) => x[0])), sorted(range(n2, (i) => `task-${i}`))),
    'phase 2: jobs lost or duplicated',
  );
  check(
    all.every((x) => !x[1]),
    'phase 2: a job was redelivered',
  );
  check(
    done.A.length > 0 && done.B.length > 0,
    `phase 2: one worker got no work (A=${done.A.length}, B=${done.B.length})`,
  );
  check((await sch.checkQueue(q)).messageCount === 0, 'phase 2: queue not empty');
}

// ---------------------------------------------------------------------------
// b. publisher confirms under load

async function scenarioB(ctx) {
  const n = 5000;
  const conn = await ctx.connect('publisher');
  const ch = await ctx.channel(conn, 'publisher', true);
  const q = await ctx.declareQueue(ch, 'confirms', { durable: true });

  // Pipelined: 5000 persistent publishes, one callback per confirm.
  let acks = 0;
  let nacks = 0;
  let ackFrames = 0;
  ch.on('ack', () => ackFrames++);
  const body = (i) => Buffer.from(`${String(i).padStart(6, '0')}${'.'.repeat(100)}`);
  for (let i = 0; i < n; i++) {
    const ok = ch.publish('', q, body(i), { persistent: true }, (err) => (err ? nacks++ : acks++));
    if (!ok) await new Promise((resolve) => ch.once('drain', resolve));
  }
  await Promise.race([
    ch.waitForConfirms(),
    sleep(Math.max(ctx.left() - 10_000, 5_000)).then(() => {
      throw new Failure(`timed out with ${n - acks - nacks} of ${n} unconfirmed`);
    }),
  ]);
  check(acks === n && nacks === 0, `${acks} acks and ${nacks} nacks for ${n} messages`);
  check(ackFrames > 0 && ackFrames <= n, `${ackFrames} basic.ack frames for ${n} messages`);

  // One at a time: each publish awaits its own confirm.
  const m = 500;
  for (let i = 0; i < m; i++) {
    await new Promise((resolve, reject) =>
      ch.publish('', q, Buffer.from(`sync-${i}`), { persistent: true }, (err) => (err ? reject(err) : resolve())),
    );
  }
  // A mandatory message that no queue takes comes back (basic.return), then is confirmed.
  const returned = [];
  ch.on('return', (msg) => returned.push(msg));
  await new Promise((resolve, reject) =>
    ch.publish('', ctx.name('nowhere'), Buffer.from('lost'), { mandatory: true }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  check(
    returned.length === 1 && returned[0].fields.replyCode === 312,
    `mandatory unroutable message: ${returned.length} basic.return(s) before its confirm`,
  );

  const depth = (await ch.checkQueue(q)).messageCount;
  check(depth === n + m, `queue holds ${depth} messages, expected ${n + m}`);
  const got = [];
  await ch.consume(q, (msg) => got.push(msg.content.toString()), { noAck: true });
  await ctx.waitFor(() => got.length >= n + m, `${n + m} messages back`, 100);
  check(got.length === n + m, `consumed ${got.length} messages, expected ${n + m}`);
  check(
    sameList(
      got.slice(0, n),
      range(n, (i) => body(i).toString()),
    ),
    'pipelined batch came back changed or out of order',
  );
  check(
    sameList(
      got.slice(n),
      range(m, (i) => `sync-${i}`),
    ),
    'sync batch came back changed or out of order',
  );
}

// ---------------------------------------------------------------------------
// c. topic pub/sub with two consumer groups (competing consumers inside each)

const TOPIC_KEYS = {
  'orders.eu.created': ['g1', 'g2'],
  'orders.us.created': ['g1'],
  'orders.eu.cancelled': ['g2'],
  'billing.eu.invoice.paid': ['g2'],
  'audit.us.login': ['g2'],
  audit: ['g2'],
  'inventory.us.restocked': [],
  'orders.created': [],
};
const TOPIC_BINDINGS = { g1: ['orders.*.created'], g2: ['*.eu.#', 'audit.#'] };

async function scenarioC(ctx) {
  const setup = await ctx.connect('setup');
  const ch = await ctx.channel(setup, 'setup', true);
  const ex = await ctx.declareExchange(ch, 'events', 'topic');
  const queues = {};
  for (const [g, patterns] of Object.entries(TOPIC_BINDINGS)) {
    queues[g] = await ctx.declareQueue(ch, g);
    for (const p of patterns) await ch.bindQueue(queues[g], ex, p);
  }
  const got = {};
  for (const g of Object.keys(TOPIC_BINDINGS)) {
    for (const member of [1, 2]) {
      const key = `${g}-${member}`;
      got[key] = [];
      const conn = await ctx.connect(key);
      const c = await ctx.channel(conn, key);
      await c.prefetch(5);
      await c.consume(
        queues[g],
        (m) => {
          got[key].push(`${m.properties.messageId}|${m.fields.routingKey}`);
          c.ack(m);
        },
        { noAck: false },
      );
    }
  }
  const keys = Object.keys(TOPIC_KEYS);
  const total = keys.length * 15;
  const expected = { g1: new Set(), g2: new Set() };
  for (let i = 0; i < total; i++) {
    const key = keys[i % keys.length];
    for (const g of TOPIC_KEYS[key]) expected[g].add(`${i}|${key}`);
  }
  for (let i = 0; i < total; i++) {
    ch.publish(ex, keys[i % keys.length], Buffer.from('event'), { messageId: String(i) });
  }
  await ch.waitForConfirms();
  const received = (g) => [...got[`${g}-1`], ...got[`${g}-2`]];
  await ctx.waitFor(
    () => Object.keys(expected).every((g) => received(g).length >= expected[g].size),
    "both groups' messages",
    300,
  );
  for (const g of Object.keys(expected)) {
    const r = received(g);
    check(r.length === new Set(r).size, `group ${g}: a message was delivered twice`);
    const missing = [...expected[g]].filter((x) => !r.includes(x));
    const extra = r.filter((x) => !expected[g].has(x));
    check(
      missing.length === 0 && extra.length === 0,
      `group ${g}: missing ${missing.slice(0, 5)}, unexpected ${extra.slice(0, 5)}`,
    );
    check(
      got[`${g}-1`].length > 0 && got[`${g}-2`].length > 0,
      `group ${g}: competing consumers did not share (${got[`${g}-1`].length}/${got[`${g}-2`].length})`,
    );
  }
}

// ---------------------------------------------------------------------------
// d. a consumer dies mid-batch; its unacked messages go to the other consumer

async function diesRound(ctx, how) {
  const n = 50;
  const setup = await ctx.connect(`setup-${how}`);
  const ch = await ctx.channel(setup, `setup-${how}`, true);
  const q = await ctx.declareQueue(ch, `batch-${how}`);
  const ids = range(n, (i) => `m${String(i).padStart(2, '0')}`);
  await publishConfirmed(ch, '', q, ids);

  const aConn = await ctx.connect(`consumer-a-${how}`, { expectDeath: true });
  const aCh = await aConn.createChannel();
  aCh.on('error', () => {});
  await aCh.prefetch(10);
  const aGot = [];
  await aCh.consume(
    q,
    (m) => {
      if (m) aGot.push(m);
    },
    { noAck: false },
  );
  await ctx.waitFor(() => aGot.length >= 10, "consumer A's batch");
  for (const m of aGot.slice(0, 4)) aCh.ack(m);
  await aCh.prefetch(10); // a round trip after the acks: they are in
  check(
    aGot.every((m) => !m.fields.redelivered),
    'consumer A got a message marked redelivered',
  );
  const aSeen = new Set(aGot.map((m) => m.content.toString()));
  const aAcked = new Set(aGot.slice(0, 4).map((m) => m.content.toString()));

  const bConn = await ctx.connect(`consumer-b-${how}`);
  const bCh = await ctx.channel(bConn, `consumer-b-${how}`);
  await bCh.prefetch(10);
  const bGot = [];
  await bCh.consume(
    q,
    (m) => {
      bGot.push([m.content.toString(), m.fields.redelivered]);
      bCh.ack(m);
    },
    { noAck: false },
  );
  await ctx.waitFor(() => bGot.length >= 5, "consumer B's first messages");
  // A dies mid-batch, holding unacked messages.
  check(aGot.length <= 14, `consumer A (prefetch 10, acked 4) was sent ${aGot.length} messages`);
  if (how === 'kill') {
    aConn.connection.stream.destroy(); // TCP closes without connection.close
    ctx.conns = ctx.conns.filter((c) => c !== aConn);
  } else {
    await aConn.close();
  }
  const want = n - aAcked.size;
  await ctx.waitFor(() => bGot.length >= want, `${want} messages at consumer B`, 300);

  const bodies = bGot.map((x) => x[0]);
  check(bodies.length === new Set(bodies).size, 'consumer B got a message twice');
  const expected = ids.filter((id) => !aAcked.has(id));
  check(
    sameList(sorted(bodies), sorted(expected)),
    `lost: ${expected.filter((id) => !bodies.includes(id))}, extra: ${bodies.filter((b) => aAcked.has(b))}`,
  );
  const redelivered = new Set(bGot.filter((x) => x[1]).map((x) => x[0]));
  const notFlagged = [...aSeen].filter((id) => !aAcked.has(id) && !redelivered.has(id));
  check(notFlagged.length === 0, `A's unacked messages ${notFlagged} reached B without redelivered=true`);
  check(
    redelivered.size >= 6 && redelivered.size <= 10,
    `${redelivered.size} redelivered messages; A held 6 to 10 unacked`,
  );
  check((await ch.checkQueue(q)).messageCount === 0, 'queue not empty at the end');
}

async function scenarioD(ctx) {
  await diesRound(ctx, 'kill');
  await diesRound(ctx, 'close');
}

// ---------------------------------------------------------------------------
// e. headers routing (x-match all and any)

async function scenarioE(ctx) {
  const conn = await ctx.connect('setup');
  const ch = await ctx.channel(conn, 'setup', true);
  const ex = await ctx.declareExchange(ch, 'hdr', 'headers');
  const qAll = await ctx.declareQueue(ch, 'all');
  const qAny = await ctx.declareQueue(ch, 'any');
  const qNum = await ctx.declareQueue(ch, 'num');
  await ch.bindQueue(qAll, ex, '', { 'x-match': 'all', format: 'pdf', type: 'report' });
  await ch.bindQueue(qAny, ex, '', { 'x-match': 'any', format: 'zip', region: 'eu' });
  await ch.bindQueue(qNum, ex, '', { version: 2 }); // x-match defaults to all
  const cases = [
    [{ format: 'pdf', type: 'report' }, ['all']],
    [{ format: 'pdf', type: 'report', extra: 'x' }, ['all']],
    [{ format: 'pdf' }, []],
    [{ format: 'zip' }, ['any']],
    [{ region: 'eu', type: 'report' }, ['any']],
    [{ format: 'pdf', type: 'log' }, []],
    [undefined, []],
    [{ format: 'zip', region: 'eu', type: 'report' }, ['any']],
    [{ format: 'pdf', type: 'report', region: 'eu' }, ['all', 'any']],
    [{ version: 2 }, ['num']],
    [{ version: 3, format: 'zip' }, ['any']],
    [{ 'x-match': 'any', format: 'pdf' }, []],
  ];
  cases.forEach(([headers], i) => {
    ch.publish(ex, `ignored.${i}`, Buffer.from('doc'), { messageId: String(i), headers });
  });
  await ch.waitForConfirms();
  for (const [label, q] of [
    ['all', qAll],
    ['any', qAny],
    ['num', qNum],
  ]) {
    const got = [];
    for (;;) {
      const m = await ch.get(q, { noAck: true });
      if (!m) break;
      got.push(Number(m.properties.messageId));
    }
    const want = cases.flatMap(([, dest], i) => (dest.includes(label) ? [i] : []));
    check(sameList(got, want), `x-match ${label} queue got [${got}], expected [${want}]`);
  }
}

// ---------------------------------------------------------------------------
// f. retry: nack -> DLX -> retry queue with TTL -> back to the work queue

async function scenarioF(ctx) {
  ctx.deadline = Math.min(ctx.deadline, Date.now() + PENDING_TIMEOUT_MS);
  const conn = await ctx.connect('setup');
  const ch = await ctx.channel(conn, 'setup', true);
  const retryEx = await ctx.declareExchange(ch, 'retry', 'direct');
  const work = await ctx.declareQueue(ch, 'work', { deadLetterExchange: retryEx });
  const retry = await ctx.declareQueue(ch, 'retry-wait', { messageTtl: 200, deadLetterExchange: '' });
  await ch.bindQueue(retry, retryEx, work);

  const n = 10;
  const attempts = 3;
  const seen = {};
  const finals = {};
  const deaths = (props, queue, reason) =>
    ((props.headers || {})['x-death'] || []).find((d) => d.queue === queue && d.reason === reason);
  const wconn = await ctx.connect('worker');
  const wch = await ctx.channel(wconn, 'worker');
  await wch.prefetch(5);
  await wch.consume(
    work,
    (m) => {
      const body = m.content.toString();
      seen[body] = (seen[body] || 0) + 1;
      const rejected = deaths(m.properties, work, 'rejected');
      const attempt = 1 + (rejected ? Number(rejected.count) : 0);
      if (attempt !== seen[body]) ctx.errors.push(`${body}: attempt ${seen[body]} but x-death says ${attempt}`);
      if (attempt < attempts) {
        wch.nack(m, false, false);
      } else {
        finals[body] = m.properties;
        wch.ack(m);
      }
    },
    { noAck: false },
  );
  for (let i = 0; i < n; i++) ch.sendToQueue(work, Buffer.from(`job-${i}`));
  await ch.waitForConfirms();
  await ctx.waitFor(() => Object.keys(finals).length >= n, "every job's third attempt", 500);
  check(
    Object.values(seen).every((v) => v === attempts),
    `attempts per job: ${JSON.stringify(seen)}`,
  );
  for (const [body, props] of Object.entries(finals)) {
    const rej = deaths(props, work, 'rejected');
    const exp = deaths(props, retry, 'expired');
    check(
      rej && Number(rej.count) === attempts - 1 && rej.exchange === '',
      `${body}: x-death for the work queue is ${JSON.stringify(rej)}`,
    );
    check(
      exp && Number(exp.count) === attempts - 1 && exp.exchange === retryEx,
      `${body}: x-death for the retry queue is ${JSON.stringify(exp)}`,
    );
  }
  check(
    (await ch.checkQueue(work)).messageCount === 0 && (await ch.checkQueue(retry)).messageCount === 0,
    'queues not empty at the end',
  );
}

// ---------------------------------------------------------------------------
// g. RPC with direct reply-to

async function scenarioG(ctx) {
  ctx.deadline = Math.min(ctx.deadline, Date.now() + PENDING_TIMEOUT_MS);
  const sconn = await ctx.connect('server');
  const sch = await ctx.channel(sconn, 'server');
  const rpcQ = await ctx.declareQueue(sch, 'rpc');
  const replyTos = [];
  await sch.prefetch(10);
  await sch.consume(
    rpcQ,
    (m) => {
      replyTos.push(m.properties.replyTo);
      sch.sendToQueue(m.properties.replyTo, Buffer.from(m.content.toString().toUpperCase()), {
        correlationId: m.properties.correlationId,
      });
      sch.ack(m);
    },
    { noAck: false },
  );

  const cconn = await ctx.connect('client');
  const cch = await ctx.channel(cconn, 'client');
  const replies = {};
  await cch.consume(
    'amq.rabbitmq.reply-to',
    (m) => {
      replies[m.properties.correlationId] = m.content.toString();
    },
    { noAck: true },
  );
  const n = 20;
  const requests = {};
  for (let i = 0; i < n; i++) {
    const cid = crypto.randomUUID();
    requests[cid] = `request-${i}`;
    cch.sendToQueue(rpcQ, Buffer.from(requests[cid]), { replyTo: 'amq.rabbitmq.reply-to', correlationId: cid });
  }
  await ctx.waitFor(() => Object.keys(replies).length >= n, `${n} replies`, 200);
  check(
    replyTos.every((r) => r.startsWith('amq.rabbitmq.reply-to.')),
    `server saw reply_to ${replyTos[0]}, expected amq.rabbitmq.reply-to.<token>`,
  );
  for (const [cid, body] of Object.entries(requests)) {
    check(replies[cid] === body.toUpperCase(), `reply to ${body} is ${replies[cid]}`);
  }
}

// ---------------------------------------------------------------------------

// --------------------------------------------------------------------------
// h. TLS: amqps verified against the run's CA, confirms and consumes over it,
//    then EXTERNAL login with a client certificate

async function scenarioH(ctx) {
  const tls = tlsSettings();
  // A server certificate from an unknown CA is refused by the client.
  let untrusted = null;
  try {
    untrusted = await ctx.connect('untrusted', { url: tls.url });
  } catch (e) {
    check(/certificate|CERT/.test(`${e && e.code} ${e && e.message}`), `untrusted amqps failed, but not on the certificate: ${e}`);
  }
  check(untrusted === null, 'connected over amqps although the server certificate is not trusted');

  const conn = await ctx.connect('tls-plain', { url: tls.url, socketOptions: { ca: [tls.ca] } });
  const ch = await ctx.channel(conn, 'tls-confirm', true);
  const q = await ctx.declareQueue(ch, 'tls');
  const n = 50;
  const bodies = range(n, (i) => `tls-${i}-` + 'x'.repeat(i * 97));
  await publishConfirmed(ch, '', q, bodies, () => ({ persistent: true }));
  const depth = (await ch.checkQueue(q)).messageCount;
  check(depth === n, `queue should hold ${n} confirmed messages, holds ${depth}`);
  const cch = await ctx.channel(conn, 'tls-consume');
  await cch.prefetch(10);
  const got = [];
  await cch.consume(q, (m) => {
    got.push(m.content.toString());
    cch.ack(m);
  });
  await ctx.waitFor(() => got.length >= n, 'the messages published over TLS', 200);
  check(sameList(got, bodies), `consumed ${got.length} messages over TLS, not the ${n} published in order`);

  // EXTERNAL: the client certificate's CN names the user; no password is sent.
  const ext = await ctx.connect('tls-external', {
    url: tls.url,
    socketOptions: { ca: [tls.ca], cert: tls.cert, key: tls.key, credentials: amqp.credentials.external() },
  });
  const ech = await ctx.channel(ext, 'external', true);
  const { queue: eq } = await ech.assertQueue('', { exclusive: true });
  await publishConfirmed(ech, '', eq, ['external-1', 'external-2']);
  const fetched = [];
  for (let i = 0; i < 2; i++) {
    const m = await ech.get(eq, { noAck: true });
    check(m, 'basic.get on the EXTERNAL connection found no message');
    fetched.push(m.content.toString());
  }
  check(sameList(fetched, ['external-1', 'external-2']), `EXTERNAL connection got ${fetched}`);
}

// ---------------------------------------------------------------------------
// i. delayed retries: a job fails twice and succeeds on the third attempt

const RETRY_ARGS = {
  'x-delayed-retry-min': 200,
  'x-delayed-retry-max': 2000,
  'x-delayed-retry-multiplier': 2, // exponential: 200 ms, then 400 ms
  'x-delayed-retry-jitter': 'equal', // each delay uniformly between half and all of it
  'x-delivery-limit': 5,
};
const RETRY_GAPS_MS = [
  [100, 200], // jitter's bounds on the 1st retry
  [200, 400], // and on the 2nd
];
const RETRY_SLACK_MS = 150; // scheduling slack above the upper bounds only

async function scenarioI(ctx) {
  const conn = await ctx.connect('setup');
  const ch = await ctx.channel(conn, 'setup', true);
  const q = await ctx.declareQueue(ch, 'jobs', { durable: true, arguments: RETRY_ARGS });
  const wconn = await ctx.connect('worker');
  const wch = await ctx.channel(wconn, 'worker');
  await wch.prefetch(10);
  const got = []; // [arrival ms, body, redelivered, headers]
  const attempts = () => got.filter((g) => g[1] === 'job-1');
  await wch.consume(
    q,
    (m) => {
      got.push([performance.now(), m.content.toString(), m.fields.redelivered, m.properties.headers || {}]);
      if (m.content.toString() === 'job-1' && attempts().length < 3) {
        wch.reject(m, true); // fails: back after a backoff
      } else {
        wch.ack(m);
      }
    },
    { noAck: false },
  );
  await publishConfirmed(ch, '', q, ['job-1'], () => ({ persistent: true }));
  await ctx.waitFor(() => attempts().length >= 2, "job-1's first retry");
  // job-1 waits out its second backoff: a job published now is not held behind it.
  const sent = performance.now();
  await publishConfirmed(ch, '', q, ['job-2'], () => ({ persistent: true }));
  await ctx.waitFor(() => got.some((g) => g[1] === 'job-2'), 'job-2');
  await ctx.waitFor(() => attempts().length >= 3, "job-1's second retry", 300);

  const order = got.map((g, i) => `${g[1]}#${got.slice(0, i + 1).filter((h) => h[1] === g[1]).length}`);
  check(
    sameList(order, ['job-1#1', 'job-1#2', 'job-2#1', 'job-1#3']),
    `deliveries (job#attempt) [${order}]; job-2 must come while job-1 waits, job-1 three times`,
  );
  const job2 = got.find((g) => g[1] === 'job-2');
  check(
    !job2[2] && !('x-delivery-count' in job2[3]),
    `job-2 (first delivery) has redelivered=${job2[2]}, headers ${JSON.stringify(job2[3])}`,
  );
  const a = attempts();
  check(!a[0][2], "job-1's first delivery is marked redelivered");
  check(!('x-delivery-count' in a[0][3]), `job-1's first delivery has x-delivery-count: ${JSON.stringify(a[0][3])}`);
  for (const n of [1, 2]) {
    const [, , redelivered, headers] = a[n];
    const count = headers['x-delivery-count'];
    check(redelivered, `job-1's delivery ${n + 1} is not marked redelivered`);
    check(
      Number.isInteger(count) && count === n,
      `job-1's delivery ${n + 1} has x-delivery-count ${JSON.stringify(count)}, expected ${n}`,
    );
    const [lo, hi] = RETRY_GAPS_MS[n - 1];
    const gap = a[n][0] - a[n - 1][0];
    check(
      gap >= lo && gap <= hi + RETRY_SLACK_MS,
      `retry ${n} came ${gap.toFixed(0)} ms after delivery ${n}, expected ${lo}-${hi} ms (+${RETRY_SLACK_MS} ms slack)`,
    );
  }
  check(
    job2[0] - sent < RETRY_GAPS_MS[1][0],
    `job-2 took ${(job2[0] - sent).toFixed(0)} ms from publish to delivery while job-1 waited`,
  );
  check((await ch.checkQueue(q)).messageCount === 0, 'queue not empty at the end');
}

// ---------------------------------------------------------------------------
// j. a delayed job through an x-delayed-message exchange

async function scenarioJ(ctx) {
  const delay = 300; // ms
  const conn = await ctx.connect('setup');
  const ch = await ctx.channel(conn, 'setup', true);
  const ex = await ctx.declareExchange(ch, 'later', 'x-delayed-message', {
    durable: true,
    arguments: { 'x-delayed-type': 'direct' },
  });
  const q = await ctx.declareQueue(ch, 'jobs', { durable: true });
  await ch.bindQueue(q, ex, 'job');
  const t0 = performance.now();
  await new Promise((resolve, reject) =>
    ch.publish(ex, 'job', Buffer.from('delayed-job'), { persistent: true, headers: { 'x-delay': delay } }, (err) =>
      err ? reject(new Failure('the delayed message was nacked')) : resolve(),
    ),
  );
  for (let elapsed = 0; elapsed < 250; elapsed = performance.now() - t0) {
    const depth = (await ch.checkQueue(q)).messageCount;
    check(
      depth === 0,
      `the queue holds ${depth} message(s) ${elapsed.toFixed(0)} ms after the publish (x-delay ${delay})`,
    );
    await sleep(20);
  }
  const got = [];
  await ch.consume(q, (m) => got.push([performance.now(), m]), { noAck: true });
  await ctx.waitFor(() => got.length >= 1, 'the delayed message', 300);
  check(got.length === 1, `${got.length} deliveries of one delayed message`);
  const [at, m] = got[0];
  const waited = at - t0;
  check(waited >= delay, `the message arrived ${waited.toFixed(0)} ms after its publish, x-delay was ${delay}`);
  check(
    m.content.toString() === 'delayed-job' && m.fields.routingKey === 'job' && m.properties.deliveryMode === 2,
    `delivered ${m.content} with routing key ${m.fields.routingKey}, delivery mode ${m.properties.deliveryMode}`,
  );
  const xDelay = (m.properties.headers || {})['x-delay'];
  check(
    Number.isInteger(xDelay) && xDelay === -delay,
    `delivered with x-delay ${JSON.stringify(xDelay)}, expected ${-delay}`,
  );
}

// ---------------------------------------------------------------------------
// k. a duplicate webhook swallowed by an x-message-deduplication exchange

async function scenarioK(ctx) {
  const conn = await ctx.connect('setup');
  const ch = await ctx.channel(conn, 'setup', true);
  const ex = await ctx.declareExchange(ch, 'webhooks', 'x-message-deduplication', {
    arguments: { 'x-cache-size': 1000, 'x-cache-ttl': 60000 },
  });
  const q = await ctx.declareQueue(ch, 'deliveries');
  await ch.bindQueue(q, ex, '');
  const event = `evt-${crypto.randomUUID()}`;
  const other = `evt-${crypto.randomUUID()}`;
  const sends = [
    [event, 'webhook-1'],
    [event, 'webhook-1-again'],
    [other, 'webhook-2'],
  ];
  for (const [i, [id, body]] of sends.entries()) {
    await new Promise((resolve, reject) =>
      ch.publish(ex, '', Buffer.from(body), { headers: { 'x-deduplication-header': id } }, (err) =>
        err ? reject(new Failure(`publish ${i + 1} (${body}) was nacked, expected a confirm`)) : resolve(),
      ),
    );
  }
  const got = [];
  await ch.consume(q, (m) => got.push(m.content.toString()), { noAck: true });
  await ctx.waitFor(() => got.length >= 2, 'the two distinct webhooks', 300);
  check(sameList(got, ['webhook-1', 'webhook-2']), `the queue got [${got}], expected [webhook-1,webhook-2]`);
}

// ---------------------------------------------------------------------------
// l. a stream read by three services independently, then replayed from a timestamp

async function scenarioL(ctx) {
  const n1 = 150;
  const n2 = 150;
  const n = n1 + n2;
  const bodies = range(n, (i) => `event-${i}`);
  const setup = await ctx.connect('setup');
  const sch = await ctx.channel(setup, 'setup');
  const q = await ctx.declareQueue(sch, 'events', { durable: true, arguments: { 'x-queue-type': 'stream' } });

  // A stream consumer without basic.qos is refused: channel close 406, the connection lives on.
  const rconn = await ctx.connect('no-prefetch');
  const rch = await rconn.createChannel();
  let closedWith = null;
  rch.on('error', (err) => (closedWith = err));
  let refused = null;
  try {
    await rch.consume(q, () => {}, { noAck: false, arguments: { 'x-stream-offset': 'first' } });
  } catch (e) {
    refused = e;
  }
  check(refused, 'basic.consume on a stream without basic.qos was accepted, expected 406');
  await ctx.waitFor(() => closedWith, 'the channel close');
  check(
    closedWith.code === 406,
    `basic.consume without prefetch: channel closed with ${closedWith.message}, expected 406`,
  );
  await (await rconn.createChannel()).close(); // the connection still works
  await rconn.close();

  const consumer = async (label, offset) => {
    const conn = await ctx.connect(label);
    const ch = await ctx.channel(conn, label);
    await ch.prefetch(50);
    const got = [];
    await ch.consume(
      q,
      (m) => {
        got.push([(m.properties.headers || {})['x-stream-offset'], m.content.toString(), m.fields.redelivered]);
        ch.ack(m);
      },
      { noAck: false, arguments: { 'x-stream-offset': offset } },
    );
    return { conn, got };
  };

  // Three services attached before anything is published, each on its own connection.
  const services = [];
  for (const [i, off] of ['first', 'next', 'first'].entries()) services.push(await consumer(`service-${i}`, off));

  const pconn = await ctx.connect('publisher');
  const pch = await ctx.channel(pconn, 'publisher', true);
  await publishConfirmed(pch, '', q, bodies.slice(0, n1), () => ({ persistent: true }));
  // A timestamp (whole seconds) after the first batch's last confirm, and the second
  // batch published after it: at least 1.5 s after the first.
  const t1 = Date.now();
  const ts = Math.floor(t1 / 1000) + 1;
  await sleep(Math.max(t1 + 1500, ts * 1000 + 200) - Date.now());
  await publishConfirmed(pch, '', q, bodies.slice(n1), () => ({ persistent: true }));

  await ctx.waitFor(() => services.every((s) => s.got.length >= n), 'every service to read every message', 300);
  let firstOffsets = null;
  for (const [i, { got }] of services.entries()) {
    const offsets = got.map((g) => g[0]);
    check(
      sameList(got.map((g) => g[1]), bodies),
      `service ${i} got ${got.length} messages (first ${got.slice(0, 3).map((g) => g[1])}), expected all ${n} in order`,
    );
    check(offsets.every(Number.isInteger), `service ${i}: x-stream-offset headers ${offsets.slice(0, 5)}...`);
    check(
      offsets.every((o, j) => j === 0 || offsets[j - 1] < o),
      `service ${i}: x-stream-offset not increasing: ${offsets.slice(0, 10)}...`,
    );
    check(!got.some((g) => g[2]), `service ${i} got redelivered messages`);
    if (firstOffsets === null) firstOffsets = offsets;
    check(sameList(offsets, firstOffsets), `service ${i} saw other offsets than service 0 for the same messages`);
  }

  // A fourth consumer replays from the timestamp (AMQP type T): it gets the whole second
  // batch, in order, starting at or before its first message (chunk granularity) but not
  // from the start.
  const replay = await consumer('replay', { '!': 'timestamp', value: ts });
  const rgot = replay.got;
  await ctx.waitFor(
    () => rgot.length && rgot[rgot.length - 1][1] === bodies[n - 1],
    'the replay to reach the last message',
    300,
  );
  const rbodies = rgot.map((g) => g[1]);
  const k = bodies.indexOf(rbodies[0]);
  check(
    k > 0 && k <= n1,
    `the replay from ${ts} (between the batches) started at message ${k} (${rbodies[0]}, offset ${rgot[0][0]}),` +
      ` expected the second batch's first (${n1}) or a few before it, not the start`,
  );
  check(
    sameList(rbodies, bodies.slice(k)),
    `the replay got ${rbodies.length} messages from message ${k}, not the stream's tail`,
  );
  check(
    sameList(rgot.map((g) => g[0]), firstOffsets.slice(k)),
    "the replay's x-stream-offset headers differ from the services'",
  );

  for (const c of [...services.map((s) => s.conn), replay.conn, pconn]) await c.close();
  await sch.deleteQueue(q);
  ctx.queues.splice(ctx.queues.indexOf(q), 1);
  const pch2 = await setup.createChannel();
  let gone = null;
  pch2.on('error', () => {});
  try {
    await pch2.checkQueue(q);
  } catch (e) {
    gone = e;
  }
  check(gone && gone.code === 404, `passive declare after delete: ${gone ? gone.message : 'declare-ok'}, expected 404`);
}

const SCENARIOS = [
  ['a-work-queue', scenarioA, false],
  ['b-confirms', scenarioB, false],
  ['c-topic-groups', scenarioC, false],
  ['d-consumer-dies', scenarioD, false],
  ['e-headers', scenarioE, false],
  ['f-retry-dlx-ttl', scenarioF, false],
  ['g-rpc-reply-to', scenarioG, false],
  ['h-tls', scenarioH, false],
  ['i-retry-backoff', scenarioI, false],
  ['j-delayed-job', scenarioJ, false],
  ['k-dedup-webhook', scenarioK, false],
  ['l-stream-fanout-and-replay', scenarioL, false],
];
// Warren features RabbitMQ lacks without plugins: skipped unless INTEROP_PLUGINS=1.
const NEEDS_PLUGINS = ['i-retry-backoff', 'j-delayed-job', 'k-dedup-webhook'];

run(SCENARIOS, process.argv.slice(2), ['h-tls'], NEEDS_PLUGINS).then(
  (code) => process.exit(code),
  (e) => {
    console.log(`FAIL runner: ${e.stack || e}`);
    process.exit(1);
  },
);
