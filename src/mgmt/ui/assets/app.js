// Warren's management page: a client of the management HTTP API on the same
// origin. Everything shown is put in the DOM as text (textContent, never
// HTML), so names such as "<script>" display as typed. No inline handlers, no
// eval: the page's Content-Security-Policy allows only this file.
'use strict';
(() => {
  // ---------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const DASH = '\u2013';
  const REFRESH_MS = 5000;

  /** An element: attributes (on* are listeners), then children (text or nodes). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'value') el.value = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    add(el, kids);
    return el;
  }
  function add(el, kids) {
    for (const k of [kids].flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      el.append(k instanceof Node ? k : String(k));
    }
    return el;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    add(el, kids);
    return el;
  }
  let uid = 0;
  const nextId = (p) => `${p}-${++uid}`;

  /** A labelled form field: [label, control]. */
  function field(label, control, opts = {}) {
    control.id = control.id || nextId('f');
    const wrap = h('div', { class: opts.wide ? 'wide' : (opts.check ? 'check' : null) });
    const lab = h('label', { for: control.id, class: opts.check ? 'inline' : null }, label);
    if (opts.check) add(wrap, [control, lab]); else add(wrap, [lab, control]);
    if (opts.hint) {
      const hid = nextId('hint');
      control.setAttribute('aria-describedby', hid);
      add(wrap, h('small', { id: hid, class: 'muted' }, opts.hint));
    }
    return wrap;
  }
  const input = (attrs) => h('input', attrs);
  const checkbox = (attrs) => h('input', Object.assign({ type: 'checkbox' }, attrs));
  function select(options, attrs) {
    const el = h('select', attrs);
    for (const o of options) {
      const [value, label] = Array.isArray(o) ? o : [o, o];
      el.append(h('option', { value }, label));
    }
    if (attrs && attrs.value !== undefined) el.value = attrs.value;
    return el;
  }

  function get(obj, path) {
    let v = obj;
    for (const part of path.split('.')) {
      if (v === null || v === undefined || typeof v !== 'object') return undefined;
      v = v[part];
    }
    return v;
  }
  const nf = new Intl.NumberFormat('en');
  const nf1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1, minimumFractionDigits: 1 });
  const num = (v) => (typeof v === 'number' ? nf.format(v) : DASH);
  const rate = (v) => (typeof v === 'number' ? `${nf1.format(v)}/s` : DASH);
  const percent = (v) => (typeof v === 'number' ? `${Math.round(v * 100)} %` : DASH);
  const yesNo = (v) => (v === true ? 'yes' : v === false ? 'no' : DASH);
  function bytes(v) {
    if (typeof v !== 'number') return DASH;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${i ? nf1.format(v) : v} ${units[i]}`;
  }
  function duration(secs) {
    if (typeof secs !== 'number' || !isFinite(secs)) return DASH;
    secs = Math.max(0, secs);
    if (secs < 60) return `${secs < 10 ? nf1.format(secs) : Math.round(secs)} s`;
    if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
    if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
    return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
  }
  /** Seconds the oldest ready message has waited, from what the API reports. */
  function oldestAge(q) {
    if (q.messages_ready === 0) return undefined;
    // Warren's own field; else RabbitMQ's head_message_timestamp (the head
    // message's timestamp property, seconds).
    for (const k of ['head_message_age_seconds', 'oldest_message_age_seconds']) {
      if (typeof q[k] === 'number') return q[k];
    }
    const ts = q.head_message_timestamp;
    if (typeof ts === 'number') return Date.now() / 1000 - (ts > 1e11 ? ts / 1000 : ts);
    return undefined;
  }
  const json = (v) => JSON.stringify(v, null, 2);
  function compactJson(v) {
    if (v === undefined || v === null) return DASH;
    if (typeof v === 'object' && Object.keys(v).length === 0) return DASH;
    return JSON.stringify(v);
  }
  function parseJsonObject(text, what) {
    if (!text.trim()) return {};
    let v;
    try { v = JSON.parse(text); } catch (e) { throw new Error(`${what}: not JSON (${e.message})`); }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: must be a JSON object`);
    return v;
  }
  /** A typed value from a form field: numbers and booleans as such. */
  function typed(text) {
    const t = text.trim();
    if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
    if (t === 'true' || t === 'false') return t === 'true';
    return text;
  }

  function flash(text, bad) {
    const box = h('div', { class: bad ? 'bad' : null }, text);
    $('flash').append(box);
    setTimeout(() => box.remove(), bad ? 9000 : 5000);
  }

  // ------------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, reason) { super(reason); this.status = status; }
  }
  const session = {
    get auth() { return sessionStorage.getItem('warren.auth'); },
    get user() { return sessionStorage.getItem('warren.user') || ''; },
    get tags() { try { return JSON.parse(sessionStorage.getItem('warren.tags') || '[]'); } catch (e) { return []; } },
  };
  function basic(user, pass) {
    const bytesOf = new TextEncoder().encode(`${user}:${pass}`);
    let bin = '';
    bytesOf.forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin);
  }
  async function api(method, path, body, opts = {}) {
    const auth = opts.auth || session.auth;
    const headers = Object.assign({ Authorization: `Basic ${auth}`, Accept: 'application/json' }, opts.headers || {});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    // credentials: 'omit' keeps the browser's own login prompt away on a 401.
    const r = await fetch(path, {
      method, headers, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (!r.ok) {
      const reason = (data && typeof data === 'object' && (data.reason || data.error)) || `HTTP ${r.status} ${r.statusText}`;
      if (r.status === 401 && !opts.auth && /login failed/i.test(reason)) logout('Your login is no longer valid: log in again.');
      throw new ApiError(r.status, reason);
    }
    return data;
  }
  function listQuery(st) {
    const p = new URLSearchParams({ page: String(st.page), page_size: String(st.page_size) });
    if (st.name) p.set('name', st.name);
    if (st.name && st.regex) p.set('use_regex', 'true');
    if (st.sort) p.set('sort', st.sort);
    if (st.sort && st.rev) p.set('sort_reverse', 'true');
    return p.toString();
  }
  let vhostCache = null;
  async function vhostNames() {
    if (!vhostCache) vhostCache = (await api('GET', '/api/vhosts')).map((v) => v.name);
    return vhostCache;
  }

  // --------------------------------------------------------------- widgets
  /** A button that asks again in place before doing something destructive. */
  function confirmButton(label, question, action, attrs = {}) {
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
  function form(attrs, kids, action) {
    const f = h('form', Object.assign({ class: 'grid', novalidate: true }, attrs), kids);
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const btns = f.querySelectorAll('button[type=submit]');
      btns.forEach((b) => { b.disabled = true; });
      try { await action(f); } catch (e) { flash(e.message, true); } finally { btns.forEach((b) => { b.disabled = false; }); }
    });
    return f;
  }
  const submit = (label, attrs) => h('div', { class: 'submit' }, h('button', Object.assign({ type: 'submit' }, attrs), label));

  /** A table: cols are {label, key (server sort key), num, cell(row)}. */
  function table(cols, rows, opts = {}) {
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
  function pagedList(container, cfg) {
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
  const state = {
    queues: listState(),
    exchanges: listState(),
    connections: listState(),
    channels: listState(),
  };

  function props(pairs, cls) {
    const dl = h('dl', { class: cls ? `props ${cls}` : 'props' });
    for (const [k, v] of pairs) add(dl, [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? DASH : v)]);
    return dl;
  }
  function tags(list) {
    const arr = Array.isArray(list) ? list : String(list || '').split(',').filter(Boolean);
    return arr.length ? arr.map((t) => h('span', { class: 'tag' }, t)) : DASH;
  }
  function argTags(args) {
    const keys = Object.keys(args || {});
    return keys.length ? keys.map((k) => h('span', { class: 'tag', title: `${k} = ${JSON.stringify(args[k])}` }, `${k}: ${JSON.stringify(args[k])}`)) : DASH;
  }
  const queueHref = (vh, name) => `#/queues/${enc(vh)}/${enc(name)}`;
  const exchangeHref = (vh, name) => `#/exchanges/${enc(vh)}/${enc(name || 'amq.default')}`;
  const exchangeLabel = (name) => (name === '' ? '(AMQP default)' : name);
  const features = (o) => [o.durable ? 'D' : null, o.auto_delete ? 'AD' : null, o.exclusive ? 'Excl' : null, o.internal ? 'I' : null]
    .filter(Boolean).map((f) => h('abbr', { class: 'tag', title: { D: 'durable', AD: 'auto-delete', Excl: 'exclusive', I: 'internal' }[f] }, f));

  // ----------------------------------------------------------- the charts
  const history = [];
  const HISTORY_MAX = 120; // 10 minutes at one sample each 5 s

  function chart(title, series, samples, emptyText) {
    const W = 600, H = 180, L = 52, R = 10, T = 10, B = 24;
    const fig = h('figure', { class: 'chart' }, h('figcaption', {}, title));
    const values = samples.flatMap((p) => series.map((sr) => p[sr.key]).filter((v) => typeof v === 'number'));
    const last = samples[samples.length - 1] || {};
    const summary = series.map((sr) => `${sr.label} ${sr.fmt(last[sr.key])}`).join(', ');
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title}: ${values.length ? summary : emptyText}` });
    fig.append(svg);
    if (!values.length) {
      svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, emptyText));
    } else {
      let max = Math.max(...values, 0);
      const step = niceStep(max / 4 || 0.25);
      max = step * 4;
      const t1 = samples[samples.length - 1].t, t0 = Math.min(samples[0].t, t1 - 60000);
      const x = (t) => L + ((t - t0) / (t1 - t0 || 1)) * (W - L - R);
      const y = (v) => T + (1 - v / max) * (H - T - B);
      for (let i = 0; i <= 4; i++) {
        const v = step * i;
        svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
        svg.append(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, series[0].axis(v)));
      }
      svg.append(s('text', { x: L, y: H - 6, class: 'axis' }, `${Math.round((t1 - t0) / 1000)} s ago`));
      svg.append(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'axis' }, 'now'));
      for (const sr of series) {
        const pts = samples.filter((p) => typeof p[sr.key] === 'number').map((p) => `${x(p.t).toFixed(1)},${y(p[sr.key]).toFixed(1)}`);
        if (pts.length === 1) pts.push(pts[0].replace(/^[\d.]+/, (m) => String(Number(m) - 3)));
        svg.append(s('polyline', { points: pts.join(' '), class: `series s-${sr.cls}` }));
      }
    }
    fig.append(h('ul', { class: 'legend' }, series.map((sr) => h('li', {},
      h('span', { class: `swatch s-${sr.cls}`, 'aria-hidden': 'true' }), `${sr.label}: `, h('strong', { 'data-series': sr.key }, sr.fmt(last[sr.key]))))));
    return fig;
  }
  // With msg_rates_age/lengths_age the API adds `samples` (newest first,
  // {sample, timestamp}) to each *_details: the charts start from them
  // instead of from empty. Counts become rates between neighbouring samples.
  const SAMPLES_QUERY = 'msg_rates_age=600&msg_rates_incr=5&lengths_age=600&lengths_incr=5';
  function seedHistory(stats, lengths) {
    const points = new Map();
    const put = (t, k, v) => {
      if (!points.has(t)) points.set(t, { t });
      points.get(t)[k] = v;
    };
    const rates = (arr, key) => {
      if (!Array.isArray(arr)) return;
      for (let i = 0; i + 1 < arr.length; i++) {
        const a = arr[i], b = arr[i + 1];
        const dt = (a.timestamp - b.timestamp) / 1000;
        if (dt > 0 && typeof a.sample === 'number' && typeof b.sample === 'number') put(a.timestamp, key, Math.max(0, (a.sample - b.sample) / dt));
      }
    };
    const levels = (arr, key) => {
      if (Array.isArray(arr)) arr.forEach((x) => { if (typeof x.sample === 'number') put(x.timestamp, key, x.sample); });
    };
    rates(get(stats, 'publish_details.samples'), 'publish');
    rates(get(stats, 'deliver_get_details.samples'), 'deliver');
    levels(get(lengths, 'messages_ready_details.samples'), 'ready');
    levels(get(lengths, 'messages_unacknowledged_details.samples'), 'unacked');
    const seeded = [...points.values()].filter((p) => typeof p.t === 'number').sort((a, b) => a.t - b.t);
    if (!seeded.length) return [];
    // The broker's clock may differ from the browser's: end the seed at now.
    const shift = Date.now() - seeded[seeded.length - 1].t;
    seeded.forEach((p) => { p.t += shift; });
    return seeded.slice(-HISTORY_MAX);
  }
  const rateAxis = (v) => `${+v.toFixed(2)}/s`;
  const countAxis = (v) => nf.format(+v.toFixed(2));
  function chartPair(samples) {
    return [
      chart('Message rates', [
        { key: 'publish', label: 'Publish', cls: 'publish', fmt: rate, axis: rateAxis },
        { key: 'deliver', label: 'Deliver / get', cls: 'deliver', fmt: rate, axis: rateAxis },
      ], samples, 'No rates reported (message_stats is empty)'),
      chart('Queued messages', [
        { key: 'ready', label: 'Ready', cls: 'ready', fmt: num, axis: countAxis },
        { key: 'unacked', label: 'Unacked', cls: 'unacked', fmt: num, axis: countAxis },
      ], samples, 'No data yet'),
    ];
  }
  function sampleOf(stats, lengths) {
    return {
      t: Date.now(),
      publish: get(stats, 'publish_details.rate'),
      deliver: get(stats, 'deliver_get_details.rate'),
      ready: get(lengths, 'messages_ready'),
      unacked: get(lengths, 'messages_unacknowledged'),
    };
  }
  function pushSample(hist, sample) {
    hist.push(sample);
    while (hist.length > HISTORY_MAX) hist.shift();
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
    return 10 * p;
  }

  // ---------------------------------------------------------------- pages
  async function overviewPage(page) {
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

  // ----- queues
  async function queuesPage(page) {
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

  async function queuePage(page, vhost, name) {
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

  /** Publish to an exchange (routing key from `fixedKey()` or a field). */
  function publishForm(vhost, exchange, fixedKey, after, id) {
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

  // ----- exchanges
  let exchangeTypes = null;
  async function exchangesPage(page) {
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

  async function exchangePage(page, vhost, name) {
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

  // ----- connections and channels
  const connHref = (n) => `#/connections/${enc(n)}`;
  async function connectionsPage(page) {
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

  async function channelsPage(page) {
    document.title = 'Channels - Warren';
    add(page, h('h1', { tabindex: -1 }, 'Channels'));
    const list = h('section', { 'aria-label': 'Channel list' });
    page.append(list);
    const load = pagedList(list, { title: 'Channels', tableId: 'channels-table', state: state.channels, path: '/api/channels', cols: channelCols(true) });
    await load();
    return load;
  }

  async function connectionPage(page, name) {
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

  // ----- admin
  const adminTabs = [
    ['users', 'Users'], ['vhosts', 'Virtual hosts'], ['permissions', 'Permissions'], ['policies', 'Policies'],
    ['operator-policies', 'Operator policies'], ['limits', 'Limits'], ['definitions', 'Definitions'],
  ];
  async function adminPage(page, tab) {
    tab = tab || 'users';
    const label = (adminTabs.find((t) => t[0] === tab) || adminTabs[0])[1];
    document.title = `Admin: ${label} - Warren`;
    add(page, [
      h('h1', { tabindex: -1 }, `Admin: ${label}`),
      h('nav', { class: 'subnav', 'aria-label': 'Admin' }, h('ul', {}, adminTabs.map(([k, l]) => h('li', {},
        h('a', { href: `#/admin/${k}`, 'aria-current': k === tab ? 'page' : null }, l))))),
    ]);
    const box = h('div', {});
    page.append(box);
    const fn = { users: adminUsers, vhosts: adminVhosts, permissions: adminPermissions, policies: (b) => adminPolicies(b, 'policies'),
      'operator-policies': (b) => adminPolicies(b, 'operator-policies'), limits: adminLimits, definitions: adminDefinitions }[tab];
    if (!fn) throw new Error(`No admin page ${tab}.`);
    await fn(box);
    return null;
  }

  async function adminUsers(box) {
    const list = h('div', {});
    box.append(list);
    async function load() {
      const users = await api('GET', '/api/users');
      list.replaceChildren(table([
        { label: 'Name', name: true, cell: (u) => u.name },
        { label: 'Tags', cell: (u) => tags(u.tags) },
        { label: 'Has password', cell: (u) => yesNo(!!u.password_hash) },
        { label: 'Action', cell: (u) => (u.name === session.user ? h('span', { class: 'muted' }, 'you') : confirmButton('Delete', `Delete user ${u.name}?`, async () => {
          await api('DELETE', `/api/users/${enc(u.name)}`);
          flash(`User ${u.name} deleted.`);
          await load();
        })) },
      ], users, { id: 'users-table' }));
    }
    await load();
    box.append(h('h2', {}, 'Add or update a user'));
    const name = input({ required: true, autocomplete: 'off' }), pass = input({ type: 'password', autocomplete: 'new-password' });
    const tagsIn = input({ list: 'tag-list', placeholder: 'management, monitoring' });
    box.append(h('datalist', { id: 'tag-list' }, ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) => h('option', { value: t }))));
    box.append(form({ id: 'add-user', 'aria-label': 'Add or update a user' }, [
      field('Username', name), field('Password', pass, { hint: 'Leave empty for a user without a password (it cannot log in with one).' }),
      field('Tags (comma-separated)', tagsIn, { hint: 'administrator, monitoring, policymaker, management' }), submit('Save user'),
    ], async () => {
      if (!name.value) throw new Error('A user needs a name.');
      const body = { tags: tagsIn.value.split(',').map((t) => t.trim()).filter(Boolean).join(',') };
      if (pass.value) body.password = pass.value; else body.password_hash = '';
      await api('PUT', `/api/users/${enc(name.value)}`, body);
      flash(`User ${name.value} saved.`);
      name.value = ''; pass.value = '';
      await load();
    }));
  }

  async function adminVhosts(box) {
    const list = h('div', {});
    box.append(list);
    async function load() {
      const vhosts = await api('GET', '/api/vhosts');
      vhostCache = vhosts.map((v) => v.name);
      list.replaceChildren(table([
        { label: 'Name', name: true, cell: (v) => v.name },
        { label: 'Description', cell: (v) => v.description },
        { label: 'Tags', cell: (v) => tags(v.tags) },
        { label: 'Default queue type', cell: (v) => v.default_queue_type },
        { label: 'Messages', num: true, cell: (v) => num(v.messages) },
        { label: 'Action', cell: (v) => confirmButton('Delete', `Delete vhost ${v.name} and everything in it?`, async () => {
          await api('DELETE', `/api/vhosts/${enc(v.name)}`);
          flash(`Virtual host ${v.name} deleted.`);
          await load();
        }) },
      ], vhosts, { id: 'vhosts-table' }));
    }
    await load();
    box.append(h('h2', {}, 'Add a virtual host'));
    const name = input({ required: true }), desc = input({}), vtags = input({});
    box.append(form({ id: 'add-vhost', 'aria-label': 'Add a virtual host' }, [
      field('Name', name), field('Description', desc), field('Tags (comma-separated)', vtags), submit('Add virtual host'),
    ], async () => {
      if (!name.value) throw new Error('A virtual host needs a name.');
      await api('PUT', `/api/vhosts/${enc(name.value)}`, { description: desc.value, tags: vtags.value });
      flash(`Virtual host ${name.value} added.`);
      name.value = '';
      await load();
    }));
  }

  async function adminPermissions(box) {
    const list = h('div', {});
    box.append(list);
    async function load() {
      const perms = await api('GET', '/api/permissions');
      list.replaceChildren(table([
        { label: 'User', cell: (p) => p.user }, { label: 'Virtual host', cell: (p) => p.vhost },
        { label: 'Configure', cell: (p) => h('code', {}, p.configure) }, { label: 'Write', cell: (p) => h('code', {}, p.write) },
        { label: 'Read', cell: (p) => h('code', {}, p.read) },
        { label: 'Action', cell: (p) => confirmButton('Clear', `Clear ${p.user}'s permissions on ${p.vhost}?`, async () => {
          await api('DELETE', `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`);
          flash('Permissions cleared.');
          await load();
        }) },
      ], perms, { id: 'permissions-table' }));
    }
    await load();
    box.append(h('h2', {}, 'Set permissions'));
    const users = (await api('GET', '/api/users')).map((u) => u.name);
    const vhosts = await vhostNames();
    const user = select(users), vh = select(vhosts);
    const conf = input({ value: '.*' }), write = input({ value: '.*' }), read = input({ value: '.*' });
    box.append(form({ id: 'set-permission', 'aria-label': 'Set permissions' }, [
      field('User', user), field('Virtual host', vh), field('Configure regexp', conf), field('Write regexp', write), field('Read regexp', read),
      submit('Set permissions'),
    ], async () => {
      await api('PUT', `/api/permissions/${enc(vh.value)}/${enc(user.value)}`, { configure: conf.value, write: write.value, read: read.value });
      flash('Permissions set.');
      await load();
    }));
  }

  async function adminPolicies(box, kind) {
    const list = h('div', {});
    box.append(list);
    async function load() {
      const ps = await api('GET', `/api/${kind}`);
      list.replaceChildren(table([
        { label: 'Virtual host', cell: (p) => p.vhost }, { label: 'Name', name: true, cell: (p) => p.name },
        { label: 'Pattern', cell: (p) => h('code', {}, p.pattern) }, { label: 'Apply to', cell: (p) => p['apply-to'] },
        { label: 'Definition', cell: (p) => h('code', {}, compactJson(p.definition)) }, { label: 'Priority', num: true, cell: (p) => num(p.priority) },
        { label: 'Action', cell: (p) => confirmButton('Delete', `Delete policy ${p.name}?`, async () => {
          await api('DELETE', `/api/${kind}/${enc(p.vhost)}/${enc(p.name)}`);
          flash(`Policy ${p.name} deleted.`);
          await load();
        }) },
      ], ps, { id: `${kind}-table`, empty: 'No policies.' }));
    }
    await load();
    box.append(h('h2', {}, kind === 'policies' ? 'Add or update a policy' : 'Add or update an operator policy'));
    const vh = select(await vhostNames()), name = input({ required: true }), pattern = input({ value: '.*' });
    const applyTo = select(['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues', 'streams']);
    const priority = input({ type: 'number', value: '0' });
    const def = h('textarea', { rows: 3, placeholder: '{"max-length": 10000, "dead-letter-exchange": "dlx"}' });
    box.append(form({ id: `add-${kind}`, 'aria-label': 'Add a policy' }, [
      field('Virtual host', vh), field('Name', name), field('Pattern (regexp)', pattern), field('Apply to', applyTo),
      field('Priority', priority), field('Definition (JSON object)', def, { wide: true }), submit('Save policy'),
    ], async () => {
      if (!name.value) throw new Error('A policy needs a name.');
      await api('PUT', `/api/${kind}/${enc(vh.value)}/${enc(name.value)}`, {
        pattern: pattern.value, 'apply-to': applyTo.value, priority: Number(priority.value) || 0,
        definition: parseJsonObject(def.value, 'Definition'),
      });
      flash(`Policy ${name.value} saved.`);
      await load();
    }));
  }

  async function adminLimits(box) {
    const vlist = h('div', {}), ulist = h('div', {});
    add(box, [h('h2', {}, 'Virtual host limits'), vlist]);
    const flat = (rows, who) => rows.flatMap((r) => Object.entries(r.value || {}).map(([k, v]) => ({ who: r[who], name: k, value: v })));
    async function load() {
      const vl = flat(await api('GET', '/api/vhost-limits'), 'vhost');
      vlist.replaceChildren(table([
        { label: 'Virtual host', cell: (l) => l.who }, { label: 'Limit', cell: (l) => l.name }, { label: 'Value', num: true, cell: (l) => num(l.value) },
        { label: 'Action', cell: (l) => confirmButton('Clear', `Clear ${l.name} on ${l.who}?`, async () => {
          await api('DELETE', `/api/vhost-limits/${enc(l.who)}/${enc(l.name)}`);
          flash('Limit cleared.');
          await load();
        }) },
      ], vl, { id: 'vhost-limits-table', empty: 'No virtual host limits.' }));
      const ul = flat(await api('GET', '/api/user-limits'), 'user');
      ulist.replaceChildren(table([
        { label: 'User', cell: (l) => l.who }, { label: 'Limit', cell: (l) => l.name }, { label: 'Value', num: true, cell: (l) => num(l.value) },
        { label: 'Action', cell: (l) => confirmButton('Clear', `Clear ${l.name} of ${l.who}?`, async () => {
          await api('DELETE', `/api/user-limits/${enc(l.who)}/${enc(l.name)}`);
          flash('Limit cleared.');
          await load();
        }) },
      ], ul, { id: 'user-limits-table', empty: 'No user limits.' }));
    }
    const vh = select(await vhostNames()), vname = select(['max-connections', 'max-queues']), vvalue = input({ type: 'number', value: '100' });
    box.append(form({ id: 'set-vhost-limit', 'aria-label': 'Set a virtual host limit' }, [
      field('Virtual host', vh), field('Limit', vname), field('Value', vvalue, { hint: '-1 removes the bound' }), submit('Set limit'),
    ], async () => {
      await api('PUT', `/api/vhost-limits/${enc(vh.value)}/${enc(vname.value)}`, { value: Number(vvalue.value) });
      flash('Limit set.');
      await load();
    }));
    add(box, [h('h2', {}, 'User limits'), ulist]);
    const users = (await api('GET', '/api/users')).map((u) => u.name);
    const user = select(users), uname = select(['max-connections', 'max-channels']), uvalue = input({ type: 'number', value: '100' });
    box.append(form({ id: 'set-user-limit', 'aria-label': 'Set a user limit' }, [
      field('User', user), field('Limit', uname), field('Value', uvalue), submit('Set limit'),
    ], async () => {
      await api('PUT', `/api/user-limits/${enc(user.value)}/${enc(uname.value)}`, { value: Number(uvalue.value) });
      flash('Limit set.');
      await load();
    }));
    await load();
  }

  async function adminDefinitions(box) {
    const vhosts = await vhostNames();
    box.append(h('h2', {}, 'Export'));
    const evh = select([['', 'All virtual hosts'], ...vhosts.map((v) => [v, v])]);
    box.append(form({ id: 'export-definitions', 'aria-label': 'Export definitions' }, [
      field('Virtual host', evh), submit('Download definitions'),
    ], async () => {
      const defs = await api('GET', evh.value ? `/api/definitions/${enc(evh.value)}` : '/api/definitions');
      const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `warren-definitions${evh.value ? `-${evh.value.replace(/[^\w.-]/g, '_')}` : ''}.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      flash('Definitions downloaded.');
    }));
    box.append(h('h2', {}, 'Import'));
    const file = h('input', { type: 'file', accept: 'application/json,.json', 'data-test': 'definitions-file' });
    const ivh = select([['', 'All virtual hosts (as in the file)'], ...vhosts.map((v) => [v, v])]);
    box.append(form({ id: 'import-definitions', 'aria-label': 'Import definitions' }, [
      field('Definitions file (RabbitMQ JSON)', file), field('Into virtual host', ivh), submit('Upload definitions'),
    ], async () => {
      const f = file.files && file.files[0];
      if (!f) throw new Error('Choose a definitions file first.');
      const text = await f.text();
      try { JSON.parse(text); } catch (e) { throw new Error(`The file is not JSON: ${e.message}`); }
      await api('POST', ivh.value ? `/api/definitions/${enc(ivh.value)}` : '/api/definitions', text);
      vhostCache = null;
      flash('Definitions imported.');
    }));
  }

  // ------------------------------------------------------ login and routes
  const routes = [
    [/^\/?$/, 'overview', overviewPage],
    [/^\/queues$/, 'queues', queuesPage],
    [/^\/queues\/([^/]*)\/([^/]*)$/, 'queues', queuePage],
    [/^\/exchanges$/, 'exchanges', exchangesPage],
    [/^\/exchanges\/([^/]*)\/([^/]*)$/, 'exchanges', exchangePage],
    [/^\/connections$/, 'connections', connectionsPage],
    [/^\/connections\/([^/]+)$/, 'connections', connectionPage],
    [/^\/channels$/, 'channels', channelsPage],
    [/^\/admin(?:\/([\w-]+))?$/, 'admin', adminPage],
  ];
  let timer = null;
  let generation = 0;

  function showLogin(message) {
    clearInterval(timer);
    history.length = 0; // the next user's charts start afresh
    $('nav').hidden = true;
    $('who').hidden = true;
    $('page').replaceChildren();
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    document.title = 'Log in - Warren';
    $('login-user').focus();
  }

  function logout(message) {
    sessionStorage.removeItem('warren.auth');
    sessionStorage.removeItem('warren.user');
    sessionStorage.removeItem('warren.tags');
    vhostCache = null;
    showLogin(message);
  }

  async function render(moveFocus) {
    clearInterval(timer);
    timer = null;
    const gen = ++generation;
    if (!session.auth) { showLogin(); return; }
    $('login').hidden = true;
    $('nav').hidden = false;
    $('who').hidden = false;
    $('who-name').textContent = `${session.user} (${session.tags.join(', ') || 'no tags'})`;
    const t = session.tags;
    $('nav-admin').parentElement.hidden = !(t.includes('administrator') || t.includes('policymaker'));
    const path = (location.hash || '#/').slice(1);
    let found = null;
    for (const [re, name, fn] of routes) {
      const m = re.exec(path);
      if (m) { found = [name, fn, m.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p)))]; break; }
    }
    const page = h('div', { id: 'page' });
    $('page').replaceWith(page);
    document.querySelectorAll('#nav a').forEach((a) => {
      if (found && a.dataset.page === found[0]) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    if (!found) {
      page.append(h('h1', { tabindex: -1 }, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
      return;
    }
    let refresh = null;
    try {
      refresh = await found[1](page, ...found[2]);
    } catch (e) {
      if (gen !== generation) return;
      if (!page.querySelector('h1')) page.append(h('h1', { tabindex: -1 }, 'Error'));
      page.append(h('p', { class: 'error', role: 'alert' }, e.message));
    }
    if (gen !== generation) return;
    if (moveFocus) {
      const h1 = page.querySelector('h1');
      if (h1) h1.focus();
    }
    if (refresh) {
      // Not while the tab is hidden, a confirmation is open, or the keyboard
      // focus sits in what a refresh would redraw (it would be lost).
      const busy = () => page.querySelector('.confirm')
        || (document.activeElement && document.activeElement.closest('.table-wrap, .pager'));
      timer = setInterval(() => {
        if (document.hidden || busy()) return;
        refresh().catch((e) => flash(e.message, true));
      }, REFRESH_MS);
    }
  }

  async function login(ev) {
    ev.preventDefault();
    const user = $('login-user').value, pass = $('login-pass').value;
    const err = $('login-error');
    err.textContent = '';
    $('login-submit').disabled = true;
    try {
      const auth = basic(user, pass);
      const me = await api('GET', '/api/whoami', undefined, { auth });
      sessionStorage.setItem('warren.auth', auth);
      sessionStorage.setItem('warren.user', me.name);
      sessionStorage.setItem('warren.tags', JSON.stringify(Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean)));
      $('login-pass').value = '';
      await render(true);
    } catch (e) {
      if (e.status === 401 && /not management/i.test(e.message)) {
        err.textContent = `Refused: ${user} has no management tag (the management API refuses it).`;
      } else if (e.status === 401) {
        err.textContent = 'Login failed: wrong username or password.';
      } else {
        err.textContent = `Login failed: ${e.message}`;
      }
    } finally {
      $('login-submit').disabled = false;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout('You are logged out.'));
    // The skip link moves the focus; as a plain #main link it would change the route.
    document.querySelector('.skip').addEventListener('click', (ev) => {
      ev.preventDefault();
      const h1 = document.querySelector('#page h1');
      (h1 || $('main')).focus();
    });
    window.addEventListener('hashchange', () => render(true));
    render(false);
  });
})();
