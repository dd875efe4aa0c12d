// Usage per key and model over time: GET /v1/usage?group_by=hour|day in the browser's time zone
// for the charts, and the period's totals per key and model for the table.
import { api } from '../lib/api.js';
import { barChart, legend } from '../lib/chart.js';
import { clear, errorBox, field, fmt, h, select } from '../lib/ui.js';

const RANGES = { '24h': [24, 'hour'], '7d': [7, 'day'], '30d': [30, 'day'] };
const COLS = [['requests', 'requests'], ['input_tokens', 'input tok'], ['output_tokens', 'output tok'], ['images', 'images'], ['audio_seconds', 'audio s'], ['video_seconds', 'video s'], ['cost', 'cost']];
const TZ = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';

function label(start, groupBy) {
  const t = new Date(start * 1000);
  return groupBy === 'hour' ? `${t.getHours()}h` : `${t.getMonth() + 1}/${t.getDate()}`;
}

// Short tick labels: $0.25, $2.5e-6.
const tickUsd = (v) => (v === 0 ? '$0' : v >= 0.01 ? `$${+v.toFixed(2)}` : `$${v.toExponential(1).replace('.0e', 'e')}`);

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
    const [n, groupBy] = RANGES[range.value];
    const first = new Date(); // the start of the first local hour or day shown
    if (groupBy === 'hour') first.setHours(first.getHours() - (n - 1), 0, 0, 0);
    else first.setHours(0, 0, 0, 0), first.setDate(first.getDate() - (n - 1));
    const p = new URLSearchParams({ start: first.getTime() / 1000, group_by: groupBy, tz: TZ });
    if (model.value) p.set('model', model.value);
    if (ctx.me.admin) p.set('key_id', key.value || 'all');
    clear(out, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const series = await api.get(`v1/usage?${p}`);
      const models = [...new Set(series.data.map((r) => r.model))].sort();
      const at = new Map(series.buckets.map((b, i) => [b, i]));
      const per = (col) => models.map((m) => {
        const values = series.buckets.map(() => 0);
        for (const r of series.data) if (r.model === m) values[at.get(r.bucket_start)] += r[col];
        return { name: m, values };
      });
      const rows = new Map(); // the table: the period's sums per key and model
      for (const r of series.data) {
        const k = `${r.key_id} ${r.model}`;
        if (!rows.has(k)) rows.set(k, { ...r, ...Object.fromEntries(COLS.map(([c]) => [c, 0])) });
        for (const [c] of COLS) rows.get(k)[c] += r[c];
      }
      const table = [...rows.values()].sort((a, b) => `${a.key_name ?? ''}${a.model}`.localeCompare(`${b.key_name ?? ''}${b.model}`));
      const labels = series.buckets.map((b) => label(b, groupBy));
      const cell = (c, v, tag = 'td') => h(tag, { class: 'num' }, c === 'cost' ? fmt.usd(v) : fmt.num(v));
      clear(out,
        h('p', { class: 'muted' }, `Key: ${series.key_id ?? 'anonymous'} · ${fmt.time(series.buckets[0])} – ${fmt.time(Math.min(series.end, Date.now() / 1000))} · ${series.tz}`),
        h('div', { class: 'charts' },
          h('figure', { class: 'card' }, h('figcaption', {}, 'Cost (USD)'), barChart({ labels, series: per('cost'), format: tickUsd, title: `cost per ${groupBy}` })),
          h('figure', { class: 'card' }, h('figcaption', {}, 'Requests'), barChart({ labels, series: per('requests'), format: (v) => fmt.num(v), integer: true, title: `requests per ${groupBy}` }))),
        legend(models),
        h('div', { class: 'scroll' }, h('table', { class: 'grid usage' },
          h('thead', {}, h('tr', {}, h('th', {}, 'key'), h('th', {}, 'model'), COLS.map(([, t]) => h('th', { class: 'num' }, t)))),
          h('tbody', {}, table.map((r) => h('tr', { 'data-key': r.key_id ?? '' },
            h('td', { title: r.key_id ?? '' }, r.key_name || r.key_id || '–', r.key_id ? h('small', { class: 'muted mono' }, ` ${r.key_id}`) : null),
            h('td', {}, r.model), COLS.map(([c]) => cell(c, r[c]))))),
          h('tfoot', {}, h('tr', {}, h('th', { colspan: 2 }, 'total'), COLS.map(([c]) => cell(c, series.total[c], 'th')))))),
        series.data.length ? null : h('p', { class: 'muted' }, 'No usage in this range.'));
    } catch (e) { clear(out, errorBox(e)); }
  }
  load();
}
