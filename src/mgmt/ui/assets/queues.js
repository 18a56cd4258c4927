// The queue list and a queue's page.

import { enc, DASH, h, add, field, input, checkbox, select, flash } from './dom.js';
import { get, num, rate, percent, yesNo, bytes, duration, oldestAge, compactJson, parseJsonObject } from './format.js';
import { api, vhostNames } from './api.js';
import { confirmButton, form, submit, table, pagedList, state, props, argTags, queueHref, exchangeHref, exchangeLabel, features, publishForm } from './widgets.js';
import { SAMPLES_QUERY, seedHistory, chartPair, sampleOf, pushSample } from './charts.js';

export async function queuesPage(page) {
  document.title = 'Queues - Warren';
  const vhosts = await vhostNames();
  const st = state.queues;
  add(page, h('h1', { tabindex: -1 }, 'Queues'));
  const list = h('section', { 'aria-label': 'Queue list' });
  page.append(list);
  const cols = [
    { label: 'Virtual host', key: 'vhost', cell: (q) => q.vhost },
    { label: 'Name', key: 'name', name: true, cell: (q) => h('a', { href: queueHref(q.vhost, q.name) }, q.name) },
    { label: 'Type', key: 'type', cell: (q) => q.type },
    { label: 'Features', cell: (q) => features(q) },
    { label: 'State', key: 'state', cell: (q) => q.state },
    { label: 'Ready', key: 'messages_ready', num: true, cell: (q) => num(q.messages_ready) },
    { label: 'Unacked', key: 'messages_unacknowledged', num: true, cell: (q) => num(q.messages_unacknowledged) },
    { label: 'Total', key: 'messages', num: true, cell: (q) => num(q.messages) },
    { label: 'Incoming', key: 'message_stats.publish_details.rate', num: true, cell: (q) => rate(get(q, 'message_stats.publish_details.rate')) },
    { label: 'Deliver / get', key: 'message_stats.deliver_get_details.rate', num: true, cell: (q) => rate(get(q, 'message_stats.deliver_get_details.rate')) },
    { label: 'Ack', key: 'message_stats.ack_details.rate', num: true, cell: (q) => rate(get(q, 'message_stats.ack_details.rate')) },
    { label: 'Oldest message', key: 'head_message_age_seconds', num: true, cell: (q) => duration(oldestAge(q)) },
    { label: 'Consumers', key: 'consumers', num: true, cell: (q) => num(q.consumers) },
    { label: 'Policy', key: 'policy', cell: (q) => q.policy || DASH },
    { label: 'Arguments', cell: (q) => argTags(q.arguments) },
  ];
  const load = pagedList(list, {
    title: 'Queues', tableId: 'queues-table', state: st, cols, vhosts,
    path: '/api/queues', vhostPath: (vh) => `/api/queues/${enc(vh)}`,
  });
  await load();

  page.append(h('h2', {}, 'Add a queue'));
  const vh = select(vhosts, { value: st.vhost || vhosts[0] });
  const name = input({ required: true, 'data-test': 'new-queue-name' });
  const durable = select([['true', 'Durable'], ['false', 'Transient']]);
  const autoDelete = checkbox({});
  const args = h('textarea', { rows: 2, placeholder: '{"x-message-ttl": 60000, "x-dead-letter-exchange": "dlx"}' });
  page.append(form({ id: 'add-queue', 'aria-label': 'Add a queue' }, [
    field('Virtual host', vh), field('Name', name), field('Durability', durable), field('Auto delete', autoDelete, { check: true }),
    field('Arguments (JSON object)', args, { wide: true, hint: 'x-queue-type, x-message-ttl, x-max-length, x-dead-letter-exchange, ...' }),
    submit('Add queue'),
  ], async () => {
    if (!name.value) throw new Error('A queue needs a name.');
    await api('PUT', `/api/queues/${enc(vh.value)}/${enc(name.value)}`, {
      durable: durable.value === 'true', auto_delete: autoDelete.checked, arguments: parseJsonObject(args.value, 'Arguments'),
    });
    flash(`Queue ${name.value} added.`);
    name.value = '';
    await load();
  }));
  return load;
}

export async function queuePage(page, vhost, name) {
  document.title = `Queue ${name} - Warren`;
  const base = `/api/queues/${enc(vhost)}/${enc(name)}`;
  const info = h('div', { id: 'queue-info' }), consumers = h('div', {}), bindings = h('div', {});
  const charts = h('div', { class: 'charts' });
  const qHistory = [];
  add(page, [
    h('p', {}, h('a', { href: '#/queues' }, '\u2190 All queues')),
    h('h1', { tabindex: -1 }, `Queue ${name}`), h('p', { class: 'muted' }, `Virtual host ${vhost}`),
    info, charts, h('h2', {}, 'Consumers'), consumers, h('h2', {}, 'Bindings'), bindings,
  ]);
  async function load() {
    const first = qHistory.length === 0;
    const q = await api('GET', first ? `${base}?${SAMPLES_QUERY}` : base);
    if (first) qHistory.push(...seedHistory(q.message_stats, q));
    pushSample(qHistory, sampleOf(q.message_stats, q));
    charts.replaceChildren(...chartPair(qHistory));
    // Two columns on wide screens, read row by row: counts on the left,
    // the matching rates on the right.
    info.replaceChildren(props([
      ['Type', q.type], ['State', q.state],
      ['Ready', h('span', { 'data-field': 'messages_ready' }, num(q.messages_ready))],
      ['Incoming rate', h('span', { 'data-field': 'publish_rate' }, rate(get(q, 'message_stats.publish_details.rate')))],
      ['Unacked', h('span', { 'data-field': 'messages_unacknowledged' }, num(q.messages_unacknowledged))],
      ['Deliver / get rate', rate(get(q, 'message_stats.deliver_get_details.rate'))],
      ['Total', h('span', { 'data-field': 'messages' }, num(q.messages))],
      ['Ack rate', rate(get(q, 'message_stats.ack_details.rate'))],
      ['Delayed / waiting', num(q.messages_delayed)],
      ['Depth change', rate(get(q, 'messages_details.rate'))],
      ['Bytes', bytes(q.message_bytes)],
      ['Oldest message age', duration(oldestAge(q))],
      ['Consumers', num(q.consumers)],
      ['Consumer capacity', percent(typeof q.consumer_capacity === 'number' ? q.consumer_capacity : q.consumer_utilisation)],
      ['Exclusive consumer', q.exclusive_consumer_tag],
      ['Head message timestamp', typeof q.head_message_timestamp === 'number' ? new Date(q.head_message_timestamp * 1000).toISOString() : DASH],
      ['Features', features(q)], ['Policy', q.policy],
      ['Operator policy', q.operator_policy], ['Effective policy definition', compactJson(q.effective_policy_definition)],
      ['Arguments', argTags(q.arguments)],
    ], 'two'));
    const all = await api('GET', `/api/consumers/${enc(vhost)}`);
    const mine = (all || []).filter((c) => get(c, 'queue.name') === name);
    consumers.replaceChildren(table([
      { label: 'Channel', cell: (c) => get(c, 'channel_details.name') },
      { label: 'Consumer tag', name: true, cell: (c) => c.consumer_tag },
      { label: 'Ack required', cell: (c) => yesNo(c.ack_required) },
      { label: 'Exclusive', cell: (c) => yesNo(c.exclusive) },
      { label: 'Prefetch', num: true, cell: (c) => num(c.prefetch_count) },
      { label: 'Priority', num: true, cell: (c) => num(c.priority) },
      { label: 'Status', cell: (c) => c.activity_status },
    ], mine, { id: 'queue-consumers', empty: 'No consumers.' }));
    const bs = await api('GET', `${base}/bindings`);
    bindings.replaceChildren(table([
      { label: 'From exchange', name: true, cell: (b) => (b.source === '' ? '(AMQP default)' : h('a', { href: exchangeHref(vhost, b.source) }, b.source)) },
      { label: 'Routing key', name: true, cell: (b) => b.routing_key },
      { label: 'Arguments', cell: (b) => argTags(b.arguments) },
      { label: 'Action', cell: (b) => (b.source === '' ? DASH : confirmButton('Unbind', `Remove the binding from ${b.source}?`, async () => {
        await api('DELETE', `/api/bindings/${enc(vhost)}/e/${enc(b.source)}/q/${enc(name)}/${enc(b.properties_key)}`);
        flash('Binding removed.');
        await load();
      })) },
    ], bs || [], { id: 'queue-bindings' }));
  }
  await load();

  // Add a binding to this queue.
  const bSource = input({ required: true }), bKey = input({}), bArgs = h('textarea', { rows: 1, placeholder: '{}' });
  page.append(form({ 'aria-label': 'Bind this queue' }, [
    field('From exchange', bSource), field('Routing key', bKey), field('Arguments (JSON object)', bArgs, { wide: true }), submit('Bind'),
  ], async () => {
    await api('POST', `/api/bindings/${enc(vhost)}/e/${enc(bSource.value)}/q/${enc(name)}`, {
      routing_key: bKey.value, arguments: parseJsonObject(bArgs.value, 'Arguments'),
    });
    flash('Binding added.');
    await load();
  }));

  page.append(h('h2', {}, 'Publish a message'));
  page.append(h('p', { class: 'muted' }, 'Published to the default exchange with this queue\u2019s name as routing key.'));
  page.append(publishForm(vhost, '', () => name, load, 'publish-form'));

  page.append(h('h2', {}, 'Get messages'));
  const ackmode = select([
    ['ack_requeue_true', 'Nack message, requeue true'], ['ack_requeue_false', 'Automatic ack (remove)'],
    ['reject_requeue_true', 'Reject, requeue true'], ['reject_requeue_false', 'Reject, requeue false'],
  ]);
  const encoding = select([['auto', 'Automatic string/base64'], ['base64', 'base64']]);
  const count = input({ type: 'number', min: 1, value: '1' });
  const truncate = input({ type: 'number', min: 1, value: '50000' });
  const got = h('div', { id: 'got-messages', 'aria-live': 'polite' });
  page.append(form({ id: 'get-form', 'aria-label': 'Get messages' }, [
    field('Ack mode', ackmode), field('Encoding', encoding), field('Messages', count), field('Truncate (bytes)', truncate), submit('Get messages'),
  ], async () => {
    const msgs = await api('POST', `${base}/get`, {
      count: Number(count.value) || 1, ackmode: ackmode.value, encoding: encoding.value, truncate: Number(truncate.value) || undefined,
    });
    if (!msgs.length) got.replaceChildren(h('p', { class: 'muted' }, 'Queue is empty.'));
    else {
      got.replaceChildren(...msgs.map((m, i) => h('article', { class: 'message', 'aria-label': `Message ${i + 1}` },
        h('h3', {}, `Message ${i + 1}`),
        props([
          ['Exchange', exchangeLabel(m.exchange)], ['Routing key', m.routing_key], ['Redelivered', yesNo(m.redelivered)],
          ['Remaining in queue', num(m.message_count)], ['Properties', compactJson(m.properties)],
          ['Payload', h('span', {}, `${num(m.payload_bytes)} bytes, encoding ${m.payload_encoding}`)],
        ]),
        h('pre', { class: 'payload' }, m.payload))));
    }
    await load();
  }));
  page.append(got);

  page.append(h('h2', {}, 'Purge or delete'));
  page.append(h('div', { class: 'actions' },
    confirmButton('Purge', `Remove every ready message from ${name}?`, async () => {
      await api('DELETE', `${base}/contents`);
      flash(`Queue ${name} purged.`);
      await load();
    }, { 'data-action': 'purge' }),
    confirmButton('Delete', `Delete queue ${name} and its messages?`, async () => {
      await api('DELETE', base);
      flash(`Queue ${name} deleted.`);
      location.hash = '#/queues';
    }, { 'data-action': 'delete' })));
  return load;
}
