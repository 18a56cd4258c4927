// The exchange list and an exchange's page.

import { enc, DASH, h, add, field, input, checkbox, select, flash } from './dom.js';
import { get, num, rate, compactJson, parseJsonObject } from './format.js';
import { api, vhostNames } from './api.js';
import { confirmButton, form, submit, table, pagedList, state, props, argTags, queueHref, exchangeHref, exchangeLabel, features, publishForm } from './widgets.js';

let exchangeTypes = null;
export async function exchangesPage(page) {
  document.title = 'Exchanges - Warren';
  const vhosts = await vhostNames();
  if (!exchangeTypes) exchangeTypes = ((await api('GET', '/api/overview')).exchange_types || []).map((t) => t.name);
  add(page, h('h1', { tabindex: -1 }, 'Exchanges'));
  const list = h('section', { 'aria-label': 'Exchange list' });
  page.append(list);
  const load = pagedList(list, {
    title: 'Exchanges', tableId: 'exchanges-table', state: state.exchanges, vhosts,
    path: '/api/exchanges', vhostPath: (vh) => `/api/exchanges/${enc(vh)}`,
    cols: [
      { label: 'Virtual host', key: 'vhost', cell: (x) => x.vhost },
      { label: 'Name', key: 'name', name: true, cell: (x) => h('a', { href: exchangeHref(x.vhost, x.name) }, exchangeLabel(x.name)) },
      { label: 'Type', key: 'type', cell: (x) => x.type },
      { label: 'Features', cell: (x) => features(x) },
      { label: 'Policy', key: 'policy', cell: (x) => x.policy || DASH },
      { label: 'Rate in', key: 'message_stats.publish_in_details.rate', num: true, cell: (x) => rate(get(x, 'message_stats.publish_in_details.rate')) },
      { label: 'Rate out', key: 'message_stats.publish_out_details.rate', num: true, cell: (x) => rate(get(x, 'message_stats.publish_out_details.rate')) },
      { label: 'Arguments', cell: (x) => argTags(x.arguments) },
    ],
  });
  await load();
  page.append(h('h2', {}, 'Add an exchange'));
  const vh = select(vhosts, { value: state.exchanges.vhost || vhosts[0] });
  const name = input({ required: true });
  const type = select(exchangeTypes.length ? exchangeTypes : ['direct', 'fanout', 'topic', 'headers']);
  const durable = select([['true', 'Durable'], ['false', 'Transient']]);
  const autoDelete = checkbox({}), internal = checkbox({});
  const args = h('textarea', { rows: 2, placeholder: '{"alternate-exchange": "unrouted"}' });
  page.append(form({ id: 'add-exchange', 'aria-label': 'Add an exchange' }, [
    field('Virtual host', vh), field('Name', name), field('Type', type), field('Durability', durable),
    field('Auto delete', autoDelete, { check: true }), field('Internal', internal, { check: true }),
    field('Arguments (JSON object)', args, { wide: true }), submit('Add exchange'),
  ], async () => {
    if (!name.value) throw new Error('An exchange needs a name.');
    await api('PUT', `/api/exchanges/${enc(vh.value)}/${enc(name.value)}`, {
      type: type.value, durable: durable.value === 'true', auto_delete: autoDelete.checked, internal: internal.checked,
      arguments: parseJsonObject(args.value, 'Arguments'),
    });
    flash(`Exchange ${name.value} added.`);
    name.value = '';
    await load();
  }));
  return load;
}

export async function exchangePage(page, vhost, name) {
  if (name === 'amq.default') name = '';
  const apiName = name || 'amq.default';
  document.title = `Exchange ${exchangeLabel(name)} - Warren`;
  const base = `/api/exchanges/${enc(vhost)}/${enc(apiName)}`;
  const info = h('div', {}), from = h('div', {}), to = h('div', {});
  add(page, [
    h('p', {}, h('a', { href: '#/exchanges' }, '\u2190 All exchanges')),
    h('h1', { tabindex: -1 }, `Exchange ${exchangeLabel(name)}`), h('p', { class: 'muted' }, `Virtual host ${vhost}`),
    info, h('h2', {}, 'Bindings from this exchange'), from, h('h2', {}, 'Bindings to this exchange'), to,
  ]);
  const destHref = (b) => (b.destination_type === 'queue' ? queueHref(vhost, b.destination) : exchangeHref(vhost, b.destination));
  const unbind = (b) => confirmButton('Unbind', `Remove the binding to ${b.destination}?`, async () => {
    await api('DELETE', `/api/bindings/${enc(vhost)}/e/${enc(b.source)}/${b.destination_type === 'queue' ? 'q' : 'e'}/${enc(b.destination)}/${enc(b.properties_key)}`);
    flash('Binding removed.');
    await load();
  });
  async function load() {
    const x = await api('GET', base);
    info.replaceChildren(props([
      ['Type', x.type], ['Features', features(x)], ['Policy', x.policy], ['Arguments', argTags(x.arguments)],
      ['Rate in', rate(get(x, 'message_stats.publish_in_details.rate'))],
      ['Rate out', rate(get(x, 'message_stats.publish_out_details.rate'))],
    ]));
    if (name === '') {
      from.replaceChildren(h('p', { class: 'muted' }, 'The default exchange is bound to every queue by its name.'));
      to.replaceChildren();
      return;
    }
    const src = await api('GET', `${base}/bindings/source`);
    from.replaceChildren(table([
      { label: 'To', name: true, cell: (b) => h('a', { href: destHref(b) }, b.destination) },
      { label: 'Type', cell: (b) => b.destination_type },
      { label: 'Routing key', name: true, cell: (b) => b.routing_key },
      { label: 'Arguments', cell: (b) => argTags(b.arguments) },
      { label: 'Action', cell: (b) => unbind(b) },
    ], src || [], { id: 'exchange-bindings', empty: 'No bindings.' }));
    const dst = await api('GET', `${base}/bindings/destination`);
    to.replaceChildren(table([
      { label: 'From', name: true, cell: (b) => h('a', { href: exchangeHref(vhost, b.source) }, b.source) },
      { label: 'Routing key', name: true, cell: (b) => b.routing_key },
      { label: 'Arguments', cell: (b) => argTags(b.arguments) },
      { label: 'Action', cell: (b) => unbind(b) },
    ], dst || [], { empty: 'No bindings.' }));
  }
  await load();

  if (name !== '') {
    page.append(h('h2', {}, 'Add a binding from this exchange'));
    const dType = select([['q', 'Queue'], ['e', 'Exchange']]);
    const dest = input({ required: true }), key = input({}), args = h('textarea', { rows: 1, placeholder: '{"x-match": "all"}' });
    page.append(form({ id: 'add-binding', 'aria-label': 'Add a binding' }, [
      field('Destination type', dType), field('Destination', dest), field('Routing key', key),
      field('Arguments (JSON object)', args, { wide: true }), submit('Bind'),
    ], async () => {
      if (!dest.value) throw new Error('A binding needs a destination.');
      await api('POST', `/api/bindings/${enc(vhost)}/e/${enc(name)}/${dType.value}/${enc(dest.value)}`, {
        routing_key: key.value, arguments: parseJsonObject(args.value, 'Arguments'),
      });
      flash('Binding added.');
      dest.value = '';
      await load();
    }));
  }

  page.append(h('h2', {}, 'Publish a message'));
  page.append(publishForm(vhost, name, null, load, 'exchange-publish-form'));

  page.append(h('h2', {}, 'Route explain'));
  page.append(h('p', { class: 'muted' }, 'Which queues a message would reach, and through which bindings, without publishing it.'));
  const rKey = input({}), rHeaders = h('textarea', { rows: 1, placeholder: '{"CC": ["audit"]}' });
  const result = h('div', { id: 'route-result', 'aria-live': 'polite' });
  page.append(form({ id: 'route-explain', 'aria-label': 'Route explain' }, [
    field('Routing key', rKey), field('Headers (JSON object)', rHeaders, { wide: true }), submit('Explain'),
  ], async () => {
    const body = { exchange: name, routing_key: rKey.value };
    const hd = parseJsonObject(rHeaders.value, 'Headers');
    if (Object.keys(hd).length) body.headers = hd;
    const r = await api('POST', `/api/route-explain/${enc(vhost)}`, body);
    const kids = [
      h('p', { class: r.routed ? null : 'error' }, r.routed ? `Routed to ${r.queues.length} queue(s).` : 'Not routed: no queue would receive it.'),
    ];
    if (r.queues && r.queues.length) kids.push(h('ul', { class: 'route-queues' }, r.queues.map((q) => h('li', {}, h('a', { href: queueHref(vhost, q) }, q)))));
    if (r.delayed_ms) kids.push(h('p', {}, `Delayed by ${num(r.delayed_ms)} ms first.`));
    kids.push(table([
      { label: 'Exchange', name: true, cell: (hop) => exchangeLabel(hop.exchange) },
      { label: 'Type', cell: (hop) => hop.type },
      { label: 'Bindings matched', cell: (hop) => ((hop.bindings || []).length
        ? h('ul', {}, hop.bindings.map((b) => h('li', {}, `${b.destination_type} ${b.destination} (key "${b.routing_key}")`)))
        : DASH) },
      { label: 'Alternate exchange', cell: (hop) => hop.alternate_exchange },
      { label: 'Partition', cell: (hop) => (hop.partition ? compactJson(hop.partition) : DASH) },
    ], r.hops || [], { caption: 'Hops, in order' }));
    result.replaceChildren(...kids);
  }));
  page.append(result);

  if (name !== '' && !name.startsWith('amq.')) {
    page.append(h('h2', {}, 'Delete'));
    page.append(confirmButton('Delete', `Delete exchange ${name}?`, async () => {
      await api('DELETE', base);
      flash(`Exchange ${name} deleted.`);
      location.hash = '#/exchanges';
    }, { 'data-action': 'delete' }));
  }
  return load;
}
