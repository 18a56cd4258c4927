// The message rate and queue length charts (SVG) and their sample history.

import { h, s } from './dom.js';
import { get, nf, num, rate } from './format.js';

export const history = [];
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
export const SAMPLES_QUERY = 'msg_rates_age=600&msg_rates_incr=5&lengths_age=600&lengths_incr=5';
export function seedHistory(stats, lengths) {
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
export function chartPair(samples) {
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
export function sampleOf(stats, lengths) {
  return {
    t: Date.now(),
    publish: get(stats, 'publish_details.rate'),
    deliver: get(stats, 'deliver_get_details.rate'),
    ready: get(lengths, 'messages_ready'),
    unacked: get(lengths, 'messages_unacknowledged'),
  };
}
export function pushSample(hist, sample) {
  hist.push(sample);
  while (hist.length > HISTORY_MAX) hist.shift();
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}
