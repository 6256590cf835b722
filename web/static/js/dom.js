// DOM helpers and formatting. Everything the app shows goes through h()
// and text nodes, never through HTML strings, so task data cannot inject
// markup (web_test.go checks).

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// h creates an HTML element: h('a', {href: '#/', class: 'x'}, 'text', child).
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s creates an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// mount replaces the children of el.
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// fmtTime shows a timestamp in local time: 2026-11-22 10:03:12.
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtClock shows the time of day with milliseconds, for timelines.
export function fmtClock(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

// fmtDur shows a duration in milliseconds compactly: 850 ms, 4.2 s, 3 m 10 s.
export function fmtDur(ms) {
  if (ms === null || ms === undefined || isNaN(ms)) return '';
  ms = Math.max(0, ms);
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
  const m = Math.floor(sec / 60), rs = Math.floor(sec % 60);
  if (m < 60) return rs ? `${m} m ${rs} s` : `${m} m`;
  const hh = Math.floor(m / 60), rm = m % 60;
  if (hh < 48) return rm ? `${hh} h ${rm} m` : `${hh} h`;
  const d = Math.floor(hh / 24), rh = hh % 24;
  return rh ? `${d} d ${rh} h` : `${d} d`;
}

// since is the time from iso until now, in milliseconds.
export const since = (iso) => Date.now() - new Date(iso).getTime();

// ago shows how long ago iso was: "3 m 10 s ago".
export const ago = (iso) => (iso ? `${fmtDur(since(iso))} ago` : '');

// shortID shortens a UUID to its last 12 hex digits, which differ between
// tasks (the first ones are a timestamp).
export const shortID = (id) => (id ? String(id).slice(-12) : '');

export function pill(status, label) {
  return h('span', { class: `pill ${status}` }, label || status);
}

export function timeCell(iso) {
  return h('span', { class: 'nowrap', title: fmtTime(iso) }, ago(iso));
}

// debounce delays fn until calls stop for ms.
export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// toast shows a short message in the corner.
export function toast(msg, kind = '') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind}` }, msg);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 3500);
}

// errorBox renders an API error (or any error) for a page.
export function errorBox(err, title = 'Something went wrong') {
  const fields = (err && err.fields) || [];
  return h('div', { class: 'alert error', role: 'alert' },
    h('h3', {}, title),
    h('div', {}, err && err.message ? err.message : String(err)),
    fields.length ? h('ul', {}, fields.map((f) => h('li', {}, h('code', {}, f.field), ': ', f.message))) : null);
}

// emptyRow is a table row spanning cols with a message.
export function emptyRow(cols, msg) {
  return h('tr', {}, h('td', { colspan: cols, class: 'empty' }, msg));
}

// query builds a URL query string from an object, skipping empty values.
export function query(obj) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (v !== '' && v !== null && v !== undefined) q.set(k, v);
  }
  const str = q.toString();
  return str ? `?${str}` : '';
}

// field wraps a control with its label, hint and error slot.
export function field(label, control, { hint, required, type, wide, id } = {}) {
  const cid = id || control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = cid;
  return h('div', { class: ['field', wide && 'wide'] },
    h('label', { for: cid }, label, required ? h('span', { class: 'req', title: 'required' }, '*') : null,
      type ? h('span', { class: 'type' }, type) : null),
    control,
    hint ? h('div', { class: 'hint' }, hint) : null,
    h('div', { class: 'err', hidden: true }));
}

// setFieldError shows msg under the field holding control ('' clears it).
export function setFieldError(control, msg) {
  const f = control.closest('.field');
  if (!f) return;
  const e = f.querySelector('.err');
  f.classList.toggle('bad', !!msg);
  e.textContent = msg || '';
  e.hidden = !msg;
}

// select builds a <select> from [value, label] pairs or plain values.
export function select(options, value, attrs = {}) {
  const el = h('select', attrs, options.map((o) => {
    const [v, label, extra] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, ...(extra || {}) }, label);
  }));
  if (value !== undefined) el.value = value;
  return el;
}
