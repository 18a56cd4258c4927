// Formatting values from the API for display, and parsing what forms hold.

import { DASH } from './dom.js';

export function get(obj, path) {
  let v = obj;
  for (const part of path.split('.')) {
    if (v === null || v === undefined || typeof v !== 'object') return undefined;
    v = v[part];
  }
  return v;
}
export const nf = new Intl.NumberFormat('en');
const nf1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1, minimumFractionDigits: 1 });
export const num = (v) => (typeof v === 'number' ? nf.format(v) : DASH);
export const rate = (v) => (typeof v === 'number' ? `${nf1.format(v)}/s` : DASH);
export const percent = (v) => (typeof v === 'number' ? `${Math.round(v * 100)} %` : DASH);
export const yesNo = (v) => (v === true ? 'yes' : v === false ? 'no' : DASH);
export function bytes(v) {
  if (typeof v !== 'number') return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? nf1.format(v) : v} ${units[i]}`;
}
export function duration(secs) {
  if (typeof secs !== 'number' || !isFinite(secs)) return DASH;
  secs = Math.max(0, secs);
  if (secs < 60) return `${secs < 10 ? nf1.format(secs) : Math.round(secs)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}
/** Seconds the oldest ready message has waited, from what the API reports. */
export function oldestAge(q) {
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
export const json = (v) => JSON.stringify(v, null, 2);
export function compactJson(v) {
  if (v === undefined || v === null) return DASH;
  if (typeof v === 'object' && Object.keys(v).length === 0) return DASH;
  return JSON.stringify(v);
}
export function parseJsonObject(text, what) {
  if (!text.trim()) return {};
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error(`${what}: not JSON (${e.message})`); }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: must be a JSON object`);
  return v;
}
/** A typed value from a form field: numbers and booleans as such. */
export function typed(text) {
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === 'true' || t === 'false') return t === 'true';
  return text;
}
