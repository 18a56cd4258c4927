// DOM helpers: elements built with createElement and textContent (never
// HTML), labelled form controls, and the flash messages.

export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;
export const DASH = '\u2013';
export const REFRESH_MS = 5000;

/** An element: attributes (on* are listeners), then children (text or nodes). */
export function h(tag, attrs, ...kids) {
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
export function add(el, kids) {
  for (const k of [kids].flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : String(k));
  }
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  add(el, kids);
  return el;
}
let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/** A labelled form field: [label, control]. */
export function field(label, control, opts = {}) {
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
export const input = (attrs) => h('input', attrs);
export const checkbox = (attrs) => h('input', Object.assign({ type: 'checkbox' }, attrs));
export function select(options, attrs) {
  const el = h('select', attrs);
  for (const o of options) {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    el.append(h('option', { value }, label));
  }
  if (attrs && attrs.value !== undefined) el.value = attrs.value;
  return el;
}

export function flash(text, bad) {
  const box = h('div', { class: bad ? 'bad' : null }, text);
  $('flash').append(box);
  setTimeout(() => box.remove(), bad ? 9000 : 5000);
}
