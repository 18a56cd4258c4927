// The overview page.

import { REFRESH_MS, h, add } from './dom.js';
import { get, num, rate } from './format.js';
import { api } from './api.js';
import { table, props } from './widgets.js';
import { history, SAMPLES_QUERY, seedHistory, chartPair, sampleOf, pushSample } from './charts.js';

export async function overviewPage(page) {
  document.title = 'Overview - Warren';
  const totals = h('div', {}), charts = h('div', { class: 'charts' }), rates = h('div', {}), node = h('div', {});
  add(page, [h('h1', { tabindex: -1 }, 'Overview'), totals, h('h2', {}, 'Charts'), charts, h('h2', {}, 'Message rates'), rates, h('h2', {}, 'Node'), node]);
  async function load() {
    // Afresh (from the API's samples) on the first visit and after being
    // away: a line across the gap would show rates nobody measured.
    const first = !history.length || Date.now() - history[history.length - 1].t > 3 * REFRESH_MS;
    const o = await api('GET', first ? `/api/overview?${SAMPLES_QUERY}` : '/api/overview');
    const ms = o.message_stats || {};
    const qt = o.queue_totals || {}, ot = o.object_totals || {};
    if (first) history.splice(0, history.length, ...seedHistory(ms, qt));
    pushSample(history, sampleOf(ms, qt));
    const dl = h('dl', { class: 'totals', id: 'totals' });
    for (const [label, v, key] of [
      ['Connections', ot.connections, 'connections'], ['Channels', ot.channels, 'channels'], ['Exchanges', ot.exchanges, 'exchanges'],
      ['Queues', ot.queues, 'queues'], ['Consumers', ot.consumers, 'consumers'], ['Ready', qt.messages_ready, 'messages_ready'],
      ['Unacked', qt.messages_unacknowledged, 'messages_unacknowledged'], ['Total messages', qt.messages, 'messages'],
    ]) dl.append(h('div', {}, h('dt', {}, label), h('dd', { 'data-total': key }, num(v))));
    totals.replaceChildren(dl);
    charts.replaceChildren(...chartPair(history));
    const rateRows = [
      ['Publish', 'publish'], ['Publisher confirm', 'confirm'], ['Deliver (manual ack)', 'deliver'],
      ['Deliver (auto ack)', 'deliver_no_ack'], ['Get', 'get'], ['Deliver / get', 'deliver_get'], ['Ack', 'ack'], ['Redelivered', 'redeliver'],
      ['Unroutable (return)', 'return_unroutable'], ['Unroutable (drop)', 'drop_unroutable'],
    ];
    rates.replaceChildren(table([
      { label: 'Rate', cell: (r) => r[0] },
      { label: 'Per second', num: true, cell: (r) => h('span', { 'data-rate': r[1] }, rate(get(ms, `${r[1]}_details.rate`))) },
      { label: 'Total', num: true, cell: (r) => num(ms[r[1]]) },
    ], rateRows, { id: 'rates', caption: Object.keys(ms).length ? 'Messages per second, over the server\u2019s last sample' : 'The broker reports no message rates yet.' }));
    node.replaceChildren(props([
      ['Product', `${o.product_name || ''} ${o.product_version || ''} (Warren)`],
      ['Cluster', o.cluster_name], ['Node', o.node], ['Management version', o.management_version],
      ['Listeners', (o.listeners || []).map((l) => `${l.protocol} ${l.ip_address}:${l.port}`).join(', ')],
    ]));
  }
  await load();
  return load;
}
