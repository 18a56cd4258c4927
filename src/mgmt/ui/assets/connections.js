// The connection and channel lists and a connection's page.

import { enc, DASH, h, add, field, input, flash } from './dom.js';
import { get, num, rate, yesNo, bytes, json } from './format.js';
import { api } from './api.js';
import { confirmButton, form, table, pagedList, state, props } from './widgets.js';

const connHref = (n) => `#/connections/${enc(n)}`;
export async function connectionsPage(page) {
  document.title = 'Connections - Warren';
  add(page, h('h1', { tabindex: -1 }, 'Connections'));
  const list = h('section', { 'aria-label': 'Connection list' });
  page.append(list);
  const load = pagedList(list, {
    title: 'Connections', tableId: 'connections-table', state: state.connections, path: '/api/connections',
    cols: [
      { label: 'Name', key: 'name', name: true, cell: (c) => h('a', { href: connHref(c.name) }, c.name) },
      { label: 'Virtual host', key: 'vhost', cell: (c) => c.vhost },
      { label: 'User', key: 'user', cell: (c) => c.user },
      { label: 'State', key: 'state', cell: (c) => c.state },
      { label: 'TLS', key: 'ssl', cell: (c) => yesNo(c.ssl) },
      { label: 'Client', cell: (c) => [get(c, 'client_properties.product'), get(c, 'client_properties.version')].filter(Boolean).join(' ') || DASH },
      { label: 'Channels', key: 'channels', num: true, cell: (c) => num(c.channels) },
      { label: 'Publish', key: 'message_stats.publish_details.rate', num: true, cell: (c) => rate(get(c, 'message_stats.publish_details.rate')) },
      { label: 'Deliver / get', key: 'message_stats.deliver_get_details.rate', num: true, cell: (c) => rate(get(c, 'message_stats.deliver_get_details.rate')) },
      { label: 'From client', key: 'recv_oct_details.rate', num: true, cell: (c) => (typeof get(c, 'recv_oct_details.rate') === 'number' ? `${bytes(c.recv_oct_details.rate)}/s` : DASH) },
      { label: 'To client', key: 'send_oct_details.rate', num: true, cell: (c) => (typeof get(c, 'send_oct_details.rate') === 'number' ? `${bytes(c.send_oct_details.rate)}/s` : DASH) },
    ],
  });
  await load();
  return load;
}

const channelCols = (withConn) => [
  { label: 'Channel', key: 'name', name: true, cell: (c) => (withConn ? h('a', { href: connHref(get(c, 'connection_details.name') || '') }, c.name) : c.name) },
  { label: 'Virtual host', key: 'vhost', cell: (c) => c.vhost },
  { label: 'User', key: 'user', cell: (c) => c.user },
  { label: 'Mode', cell: (c) => [c.confirm ? 'confirm' : null, c.transactional ? 'transactional' : null].filter(Boolean).join(', ') || DASH },
  { label: 'State', key: 'state', cell: (c) => c.state },
  { label: 'Consumers', key: 'consumer_count', num: true, cell: (c) => num(c.consumer_count) },
  { label: 'Prefetch', key: 'prefetch_count', num: true, cell: (c) => num(c.prefetch_count) },
  { label: 'Unacked', key: 'messages_unacknowledged', num: true, cell: (c) => num(c.messages_unacknowledged) },
  { label: 'Unconfirmed', key: 'messages_unconfirmed', num: true, cell: (c) => num(c.messages_unconfirmed) },
  { label: 'Publish', key: 'message_stats.publish_details.rate', num: true, cell: (c) => rate(get(c, 'message_stats.publish_details.rate')) },
  { label: 'Deliver / get', key: 'message_stats.deliver_get_details.rate', num: true, cell: (c) => rate(get(c, 'message_stats.deliver_get_details.rate')) },
  { label: 'Ack', key: 'message_stats.ack_details.rate', num: true, cell: (c) => rate(get(c, 'message_stats.ack_details.rate')) },
];

export async function channelsPage(page) {
  document.title = 'Channels - Warren';
  add(page, h('h1', { tabindex: -1 }, 'Channels'));
  const list = h('section', { 'aria-label': 'Channel list' });
  page.append(list);
  const load = pagedList(list, { title: 'Channels', tableId: 'channels-table', state: state.channels, path: '/api/channels', cols: channelCols(true) });
  await load();
  return load;
}

export async function connectionPage(page, name) {
  document.title = `Connection ${name} - Warren`;
  const base = `/api/connections/${enc(name)}`;
  const info = h('div', {}), channels = h('div', {}), client = h('div', {});
  add(page, [
    h('p', {}, h('a', { href: '#/connections' }, '\u2190 All connections')),
    h('h1', { tabindex: -1 }, `Connection ${name}`), info, h('h2', {}, 'Channels'), channels, h('h2', {}, 'Client properties'), client,
  ]);
  async function load() {
    const c = await api('GET', base);
    info.replaceChildren(props([
      ['Virtual host', c.vhost], ['User', c.user], ['State', c.state], ['Protocol', c.protocol], ['TLS', yesNo(c.ssl)],
      ['From', `${c.peer_host}:${c.peer_port}`], ['To', c.host ? `${c.host}:${c.port}` : DASH],
      ['Connected at', typeof c.connected_at === 'number' ? new Date(c.connected_at).toISOString() : DASH],
      ['Heartbeat', typeof c.timeout === 'number' ? `${c.timeout} s` : DASH], ['Frame max', num(c.frame_max)], ['Channel max', num(c.channel_max)],
      ['Publish rate', rate(get(c, 'message_stats.publish_details.rate'))],
      ['Deliver / get rate', rate(get(c, 'message_stats.deliver_get_details.rate'))],
    ]));
    client.replaceChildren(h('pre', {}, json(c.client_properties || {})));
    const chs = await api('GET', `${base}/channels`);
    channels.replaceChildren(table(channelCols(false), chs || [], { empty: 'No channels.' }));
  }
  await load();
  page.append(h('h2', {}, 'Close this connection'));
  const reason = input({ value: 'Closed via management page' });
  page.append(form({ id: 'close-connection', 'aria-label': 'Close this connection' }, [
    field('Reason', reason), h('div', {}, confirmButton('Force close', `Close connection ${name}?`, async () => {
      await api('DELETE', base, undefined, { headers: { 'X-Reason': reason.value } });
      flash(`Connection ${name} closed.`);
      location.hash = '#/connections';
    }, { 'data-action': 'close' })),
  ], async () => {}));
  return load;
}
