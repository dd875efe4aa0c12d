// DOM helpers (text only: nothing from the server is parsed as HTML), formats and shared widgets.
import { curl, python, shorten } from './snippets.js';

export function h(tag, attrs = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value' || (k in el && typeof v !== 'string')) el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, kids);
  return el;
}

export function append(el, kids) {
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}

export const clear = (el, ...kids) => { el.replaceChildren(); return append(el, kids); };

export const fmt = {
  ms: (ms) => (ms == null ? '–' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`),
  usd: (v) => (v == null ? '–' : v === 0 ? '$0' : v < 0.01 ? `$${v.toPrecision(2)}` : `$${v.toFixed(4)}`),
  price: (v) => (v ? `$${+v.toPrecision(4)}` : '–'),
  num: (v) => (v == null ? '–' : Number.isInteger(v) ? v.toLocaleString('en') : Math.abs(v) >= 1 ? (+v.toFixed(2)).toLocaleString('en') : String(+v.toPrecision(3))), // 0.002 stays 0.002
  sec: (s) => (s == null ? '–' : `${(+s).toFixed(2)} s`),
  time: (t) => new Date(t * 1000).toLocaleString(),
};

// A labelled form control.
export const field = (label, control, hint) => h('label', { class: 'field' }, h('span', {}, label), control, hint && h('small', { class: 'muted' }, hint));

export function select(options, value, attrs = {}) {
  const s = h('select', attrs, options.map((o) => (Array.isArray(o) ? h('option', { value: o[0] }, o[1]) : h('option', { value: o }, o))));
  if (value != null && options.some((o) => (Array.isArray(o) ? o[0] : o) == value)) s.value = value;
  return s;
}

// A select of the catalog's models for a task (remembering the last choice of that task).
export function modelSelect(ctx, task, attrs = {}) {
  const models = ctx.models.filter((m) => m.task === task && (!attrs.need || attrs.need(m)));
  const key = `mmserve.model.${task}`;
  const s = select(models.length ? models.map((m) => m.id) : [['', `(no ${task} model for this key)`]], attrs.value || localStorage.getItem(key), { name: 'model', ...attrs, need: null });
  s.addEventListener('change', () => localStorage.setItem(key, s.value));
  s.card = () => ctx.models.find((m) => m.id === s.value);
  return s;
}

export function errorBox(e) {
  const extra = [e.param && `param: ${e.param}`, e.code && `code: ${e.code}`, e.retryAfter && `retry after ${e.retryAfter} s`].filter(Boolean);
  return h('div', { class: 'error', role: 'alert' }, e.status ? `${e.status}: ` : '', e.message || String(e), extra.length ? h('small', {}, ` (${extra.join(', ')})`) : null);
}

export const pretty = (v) => JSON.stringify(v, null, 2);

// Copies text (clipboard API on secure origins; else selects it for Ctrl+C).
export async function copy(text, pre) {
  try { await navigator.clipboard.writeText(text); return true; } catch {
    const r = document.createRange(); r.selectNodeContents(pre);
    getSelection().removeAllRanges(); getSelection().addRange(r); return false;
  }
}

// The request panel every playground shows: latency, usage, cost, and the exact request (curl, Python).
export function requestPanel() {
  const stats = h('dl', { class: 'stats' });
  const pre = h('pre', { class: 'code' });
  let texts = {};
  let tab = 'curl';
  const tabs = ['curl', 'python', 'response'].map((t) => h('button', { type: 'button', class: 'tab', 'data-tab': t, onclick: () => show(t) }, t === 'python' ? 'Python' : t === 'curl' ? 'curl' : 'Response'));
  const copyBtn = h('button', { type: 'button', class: 'link', onclick: async () => { copyBtn.textContent = (await copy(texts[tab]?.full ?? '', pre)) ? 'Copied' : 'Selected'; setTimeout(() => (copyBtn.textContent = 'Copy'), 1200); } }, 'Copy');
  const el = h('section', { class: 'request', hidden: true }, stats, h('div', { class: 'tabs' }, tabs, copyBtn), pre);
  function show(t) {
    tab = t;
    tabs.forEach((b) => b.classList.toggle('on', b.dataset.tab === t));
    pre.textContent = texts[t]?.shown ?? '';
  }
  return {
    el,
    request(spec) {
      texts = { curl: { shown: curl(spec), full: curl(spec, { full: true }) }, python: { shown: python(spec), full: python(spec, { full: true }) } };
      el.hidden = false;
      this.stats({ status: 'sending…' });
      show(tab === 'response' ? 'curl' : tab);
    },
    stats(s) {
      clear(stats, Object.entries(s).filter(([, v]) => v != null).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { 'data-stat': k }, v))));
    },
    response(v) {
      const text = typeof v === 'string' ? v : pretty(shorten(v));
      texts.response = { shown: text, full: typeof v === 'string' ? v : pretty(v) };
      if (tab === 'response') show('response');
    },
  };
}

// Usage and cost as the stats row shows them.
export function usageStats(u, cost) {
  const parts = Object.entries(u || {}).filter(([k, v]) => typeof v === 'number' && !/^(type|cost)$/.test(k)).map(([k, v]) => `${k.replace(/_/g, ' ')} ${fmt.num(v)}`);
  return { usage: parts.join(', ') || '–', cost: fmt.usd(cost) };
}

export function fileToDataURL(file) {
  return new Promise((ok, fail) => { const r = new FileReader(); r.onload = () => ok(r.result); r.onerror = fail; r.readAsDataURL(file); });
}

export const b64ToBlob = (b64, type) => new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type });
