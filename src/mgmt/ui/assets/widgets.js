// Page building blocks: confirm buttons, forms, tables, the server-paged
// list, property lists, tags and links, and the publish form.

import { enc, DASH, h, add, field, input, checkbox, select, flash } from './dom.js';
import { num, parseJsonObject } from './format.js';
import { api, listQuery } from './api.js';

/** A button that asks again in place before doing something destructive. */
export function confirmButton(label, question, action, attrs = {}) {
  const wrap = h('span', {});
  const btn = h('button', Object.assign({ type: 'button', class: 'danger' }, attrs), label);
  btn.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: 'danger', 'data-confirm': 'yes' }, `Yes, ${label.toLowerCase()}`);
    const no = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const box = h('span', { class: 'confirm', role: 'group', 'aria-label': question }, h('span', {}, question), yes, no);
    no.addEventListener('click', () => { box.replaceWith(btn); btn.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try { await action(); } catch (e) { flash(e.message, true); }
      if (box.isConnected) { box.replaceWith(btn); btn.focus(); }
    });
    btn.replaceWith(box);
    yes.focus();
  });
  wrap.append(btn);
  return wrap;
}

/** A form whose submit runs `action(form)`, reporting errors. */
export function form(attrs, kids, action) {
  const f = h('form', Object.assign({ class: 'grid', novalidate: true }, attrs), kids);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const btns = f.querySelectorAll('button[type=submit]');
    btns.forEach((b) => { b.disabled = true; });
    try { await action(f); } catch (e) { flash(e.message, true); } finally { btns.forEach((b) => { b.disabled = false; }); }
  });
  return f;
}
export const submit = (label, attrs) => h('div', { class: 'submit' }, h('button', Object.assign({ type: 'submit' }, attrs), label));

/** A table: cols are {label, key (server sort key), num, cell(row)}. */
export function table(cols, rows, opts = {}) {
  const t = h('table', { id: opts.id });
  if (opts.caption) t.append(h('caption', {}, opts.caption));
  const tr = h('tr', {});
  for (const c of cols) {
    const th = h('th', { scope: 'col', class: c.num ? 'num' : null });
    if (opts.sort && c.key) {
      const active = opts.sort.sort === c.key;
      th.setAttribute('aria-sort', active ? (opts.sort.rev ? 'descending' : 'ascending') : 'none');
      th.append(h('button', {
        type: 'button',
        onclick: () => opts.onSort(c.key),
      }, c.label));
    } else {
      th.append(c.label);
    }
    tr.append(th);
  }
  t.append(h('thead', {}, tr));
  const body = h('tbody', {});
  if (!rows.length) {
    body.append(h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, opts.empty || 'Nothing here.')));
  }
  for (const row of rows) {
    body.append(h('tr', {}, cols.map((c) => {
      const v = c.cell(row);
      return h('td', { class: c.num ? 'num' : (c.name ? 'name' : null) }, v === undefined || v === null || v === '' ? DASH : v);
    })));
  }
  t.append(body);
  // Wide tables scroll sideways inside the page, not the page itself.
  return h('div', { class: 'table-wrap' }, t);
}

/** A server-paged, server-sorted list with a vhost and name filter. */
export function pagedList(container, cfg) {
  const st = cfg.state;
  const tableBox = h('div', { 'aria-live': 'off' });
  const pager = h('nav', { class: 'pager', 'aria-label': `${cfg.title} pages` });
  const nameInput = input({ type: 'search', value: st.name, placeholder: 'part of a name', 'data-test': 'filter' });
  const regex = checkbox({ checked: st.regex });
  const size = select([20, 50, 100, 500].map((n) => [String(n), String(n)]), { value: String(st.page_size) });
  const bar = h('div', { class: 'toolbar' });
  if (cfg.vhosts) {
    const vh = select([['', 'All vhosts'], ...cfg.vhosts.map((v) => [v, v])], { value: st.vhost });
    vh.addEventListener('change', () => { st.vhost = vh.value; st.page = 1; load(); });
    bar.append(field('Virtual host', vh));
  }
  let debounce = null;
  nameInput.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { st.name = nameInput.value; st.page = 1; load(); }, 300);
  });
  regex.addEventListener('change', () => { st.regex = regex.checked; st.page = 1; load(); });
  size.addEventListener('change', () => { st.page_size = Number(size.value); st.page = 1; load(); });
  bar.append(field('Filter by name', nameInput), field('Regular expression', regex, { check: true }), field('Per page', size));
  add(container, [bar, tableBox, pager]);

  let latest = 0;
  async function load() {
    const base = st.vhost && cfg.vhostPath ? cfg.vhostPath(st.vhost) : cfg.path;
    const mine = ++latest;
    let data;
    try {
      data = await api('GET', `${base}?${listQuery(st)}`);
      if (mine !== latest) return; // a later load (filter, sort, page) answers instead
    } catch (e) {
      if (mine !== latest) return;
      if (/page out of range/i.test(e.message) && st.page > 1) { st.page = 1; return load(); }
      tableBox.replaceChildren(h('p', { class: 'error', role: 'alert' }, e.message));
      return;
    }
    const t = table(cfg.cols, data.items || [], {
      id: cfg.tableId,
      caption: `${cfg.title}: ${num(data.filtered_count)} shown of ${num(data.total_count)} (page ${data.page} of ${data.page_count})`,
      sort: st,
      empty: `No ${cfg.title.toLowerCase()}.`,
      onSort: (key) => {
        if (st.sort === key) st.rev = !st.rev; else { st.sort = key; st.rev = false; }
        st.page = 1;
        load().then(() => {
          const btn = [...tableBox.querySelectorAll('th button')].find((b) => b.textContent === cfg.cols.find((c) => c.key === key).label);
          if (btn) btn.focus();
        });
      },
    });
    tableBox.replaceChildren(t);
    const prev = h('button', { type: 'button', class: 'secondary', disabled: data.page <= 1 }, 'Previous page');
    const next = h('button', { type: 'button', class: 'secondary', disabled: data.page >= data.page_count }, 'Next page');
    // Keep the keyboard focus on the pager's buttons across the redraw.
    const refocus = (label) => () => {
      const btns = [...pager.querySelectorAll('button')].filter((b) => !b.disabled);
      const b = btns.find((x) => x.textContent === label) || btns[0];
      if (b) b.focus();
    };
    prev.addEventListener('click', () => { st.page = Math.max(1, st.page - 1); load().then(refocus('Previous page')); });
    next.addEventListener('click', () => { st.page += 1; load().then(refocus('Next page')); });
    const jump = input({ type: 'number', min: 1, max: data.page_count, value: String(data.page), class: 'short' });
    jump.addEventListener('change', () => {
      const p = Math.min(Math.max(1, Number(jump.value) || 1), data.page_count);
      st.page = p; load();
    });
    pager.replaceChildren(prev, h('span', {}, `Page ${data.page} of ${data.page_count}`), next, field('Go to page', jump));
  }
  return load;
}
const listState = (extra) => Object.assign({ page: 1, page_size: 50, name: '', regex: false, sort: '', rev: false, vhost: '' }, extra);
export const state = {
  queues: listState(),
  exchanges: listState(),
  connections: listState(),
  channels: listState(),
};

export function props(pairs, cls) {
  const dl = h('dl', { class: cls ? `props ${cls}` : 'props' });
  for (const [k, v] of pairs) add(dl, [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? DASH : v)]);
  return dl;
}
export function tags(list) {
  const arr = Array.isArray(list) ? list : String(list || '').split(',').filter(Boolean);
  return arr.length ? arr.map((t) => h('span', { class: 'tag' }, t)) : DASH;
}
export function argTags(args) {
  const keys = Object.keys(args || {});
  return keys.length ? keys.map((k) => h('span', { class: 'tag', title: `${k} = ${JSON.stringify(args[k])}` }, `${k}: ${JSON.stringify(args[k])}`)) : DASH;
}
export const queueHref = (vh, name) => `#/queues/${enc(vh)}/${enc(name)}`;
export const exchangeHref = (vh, name) => `#/exchanges/${enc(vh)}/${enc(name || 'amq.default')}`;
export const exchangeLabel = (name) => (name === '' ? '(AMQP default)' : name);
export const features = (o) => [o.durable ? 'D' : null, o.auto_delete ? 'AD' : null, o.exclusive ? 'Excl' : null, o.internal ? 'I' : null]
  .filter(Boolean).map((f) => h('abbr', { class: 'tag', title: { D: 'durable', AD: 'auto-delete', Excl: 'exclusive', I: 'internal' }[f] }, f));

/** Publish to an exchange (routing key from `fixedKey()` or a field). */
export function publishForm(vhost, exchange, fixedKey, after, id) {
  const key = input({});
  const mode = select([['1', 'Non-persistent (1)'], ['2', 'Persistent (2)']]);
  const headers = h('textarea', { rows: 1, placeholder: '{"x-delay": 5000}' });
  const properties = h('textarea', { rows: 1, placeholder: '{"content_type": "application/json", "message_id": "m1"}' });
  const payload = h('textarea', { rows: 4, 'data-test': 'payload' });
  const kids = [];
  if (!fixedKey) kids.push(field('Routing key', key));
  kids.push(field('Delivery mode', mode), field('Headers (JSON object)', headers, { wide: true }),
    field('Properties (JSON object)', properties, { wide: true }), field('Payload', payload, { wide: true }), submit('Publish message'));
  return form({ id, 'aria-label': 'Publish a message' }, kids, async () => {
    const p = parseJsonObject(properties.value, 'Properties');
    p.delivery_mode = Number(mode.value);
    const hd = parseJsonObject(headers.value, 'Headers');
    if (Object.keys(hd).length) p.headers = hd;
    const r = await api('POST', `/api/exchanges/${enc(vhost)}/${enc(exchange || 'amq.default')}/publish`, {
      properties: p, routing_key: fixedKey ? fixedKey() : key.value, payload: payload.value, payload_encoding: 'string',
    });
    flash(r && r.routed ? 'Message published.' : 'Message published, but not routed to any queue.', !(r && r.routed));
    if (after) await after();
  });
}
