// Usage per key and model over time: GET /v1/usage totals, and one query per time bucket for the charts
// (the endpoint has no time grouping yet; see NOTES.md).
import { api } from '../lib/api.js';
import { barChart, legend } from '../lib/chart.js';
import { clear, errorBox, field, fmt, h, select } from '../lib/ui.js';

const RANGES = { '24h': [24, 3600], '7d': [7, 86400], '30d': [30, 86400] };
const COLS = [['requests', 'requests'], ['input_tokens', 'input tok'], ['output_tokens', 'output tok'], ['images', 'images'], ['audio_seconds', 'audio s'], ['video_seconds', 'video s'], ['cost', 'cost']];

function buckets(range) {
  const [n, step] = RANGES[range];
  const now = Date.now() / 1000;
  const d = new Date();
  step === 3600 ? d.setMinutes(0, 0, 0) : d.setHours(0, 0, 0, 0);
  const last = d.getTime() / 1000;
  return Array.from({ length: n }, (_, i) => {
    const start = last - (n - 1 - i) * step;
    const t = new Date(start * 1000);
    return { start, end: Math.min(start + step, now + 1), label: step === 3600 ? `${t.getHours()}h` : `${t.getMonth() + 1}/${t.getDate()}` };
  });
}

// Short tick labels: $0.25, $2.5e-6.
const tickUsd = (v) => (v === 0 ? '$0' : v >= 0.01 ? `$${+v.toFixed(2)}` : `$${v.toExponential(1).replace('.0e', 'e')}`);

async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i]); } }));
  return out;
}

export async function render(root, ctx) {
  const range = select(Object.keys(RANGES), '7d', { name: 'range' });
  const model = select([['', 'all models'], ...ctx.models.map((m) => m.id)], '', { name: 'model' });
  const key = h('input', { name: 'key_id', list: 'usage-keys', placeholder: ctx.me.admin ? 'all keys' : 'this key', disabled: !ctx.me.admin, size: 18 });
  const keys = h('datalist', { id: 'usage-keys' }, h('option', { value: 'all' }));
  const out = h('div');
  root.append(h('h1', {}, 'Usage'), h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('Range', range), field('Model', model), field('Key', key), keys, h('button', { type: 'submit' }, 'Refresh')), out);
  for (const el of [range, model]) el.addEventListener('change', load);
  if (ctx.me.admin) api.get('v1/admin/keys').then((r) => keys.append(...r.data.map((k) => h('option', { value: k.id }, k.name)))).catch(() => {});

  async function load() {
    const q = (start, end) => {
      const p = new URLSearchParams({ start, end });
      if (model.value) p.set('model', model.value);
      if (ctx.me.admin) p.set('key_id', key.value || 'all');
      return `v1/usage?${p}`;
    };
    clear(out, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const bs = buckets(range.value);
      const [total, series] = await Promise.all([api.get(q(bs[0].start, bs.at(-1).end)), pool(bs, 4, (b) => api.get(q(b.start, b.end)))]);
      const models = [...new Set(total.data.map((r) => r.model))];
      const per = (col) => models.map((m) => ({ name: m, values: series.map((s) => s.data.filter((r) => r.model === m).reduce((a, r) => a + r[col], 0)) }));
      const labels = bs.map((b) => b.label);
      clear(out,
        h('p', { class: 'muted' }, `Key: ${total.key_id ?? 'anonymous'} · ${fmt.time(total.start)} – ${fmt.time(Math.min(total.end, Date.now() / 1000))}`),
        h('div', { class: 'charts' },
          h('figure', { class: 'card' }, h('figcaption', {}, 'Cost (USD)'), barChart({ labels, series: per('cost'), format: tickUsd, title: 'cost per bucket' })),
          h('figure', { class: 'card' }, h('figcaption', {}, 'Requests'), barChart({ labels, series: per('requests'), format: (v) => fmt.num(v), integer: true, title: 'requests per bucket' }))),
        legend(models),
        h('div', { class: 'scroll' }, h('table', { class: 'grid usage' },
          h('thead', {}, h('tr', {}, h('th', {}, 'key'), h('th', {}, 'model'), COLS.map(([, t]) => h('th', { class: 'num' }, t)))),
          h('tbody', {}, total.data.map((r) => h('tr', {}, h('td', { class: 'mono' }, r.key_id ?? '–'), h('td', {}, r.model), COLS.map(([c]) => h('td', { class: 'num' }, c === 'cost' ? fmt.usd(r[c]) : fmt.num(r[c])))))),
          h('tfoot', {}, h('tr', {}, h('th', { colspan: 2 }, 'total'), COLS.map(([c]) => h('th', { class: 'num' }, c === 'cost' ? fmt.usd(total.total[c]) : fmt.num(total.total[c]))))))),
        total.data.length ? null : h('p', { class: 'muted' }, 'No usage in this range.'));
    } catch (e) { clear(out, errorBox(e)); }
  }
  load();
}
