// Catalog: every card with task, capabilities, limits, prices and live deployment state; filters; compare 2-4.
import { clear, field, fmt, h, select } from '../lib/ui.js';

const CAPS = ['vision', 'tools', 'reasoning', 'edits', 'translation', 'image_to_video'];
const PRICES = { input_per_1m_tokens: 'in / 1M tok', output_per_1m_tokens: 'out / 1M tok', per_image: 'image', per_audio_second: 'audio s', per_video_second: 'video s' };
// A long list (espeak-ng has ~130 voices) shows its first items and its length.
const list = (v) => (v.length > 12 ? `${v.slice(0, 8).join(', ')} … (${v.length} in all)` : v.join(', '));
const show = (v) => (v == null || v === '' ? '–' : Array.isArray(v) ? (v.length ? list(v) : '–') : typeof v === 'boolean' ? (v ? 'yes' : 'no') : typeof v === 'number' ? fmt.num(v) : String(v));

export const badge = (state) => h('span', { class: `badge s-${state || 'none'}`, 'data-state': state || '' }, state || 'n/a');

function caps(m) {
  const c = m.capabilities;
  const out = CAPS.filter((k) => c[k]).map((k) => k.replace(/_/g, ' '));
  if (m.task === 'chat') out.push(`${fmt.num(c.context_length)} ctx`, c.vision ? `${c.max_images} images` : null);
  for (const k of ['sizes', 'fps', 'durations', 'voices', 'languages']) if (c[k]?.length) out.push(`${k}: ${list(c[k])}`);
  for (const k of ['tool_call_format', 'reasoning_format']) if (c[k]) out.push(`${k.split('_')[0]}: ${c[k]}`);
  return out.filter(Boolean);
}

function limits(m) {
  const l = m.limits;
  const by = {
    chat: [['max output', l.max_output_tokens], ['image urls', l.allow_image_urls ? 'allowed' : 'base64 only']],
    'image-generation': [['max n', l.max_n], ['max pixels', l.max_image_pixels]],
    speech: [['max chars', l.max_input_chars]],
    transcription: [['max audio', l.max_audio_seconds && `${l.max_audio_seconds} s`]],
    'video-generation': [['max video', l.max_video_seconds && `${l.max_video_seconds} s`]],
  }[m.task] || [];
  return by.filter(([, v]) => v != null);
}

function card(m, picked, onPick) {
  const d = m.deployment;
  const prices = Object.entries(PRICES).filter(([k]) => m.pricing[k]).map(([k, label]) => `${fmt.price(m.pricing[k])} ${label}`);
  return h('article', { class: 'card model', 'data-model': m.id },
    h('header', {}, h('h3', {}, m.id), badge(d.state)),
    h('div', { class: 'pills' }, h('span', { class: 'pill task' }, m.task), caps(m).map((c) => h('span', { class: 'pill' }, c))),
    m.description && h('p', { class: 'desc' }, m.description),
    h('dl', { class: 'kv' },
      limits(m).map(([k, v]) => [h('dt', {}, k), h('dd', {}, show(v))]),
      h('dt', {}, 'price'), h('dd', {}, prices.join(' · ') || 'free'),
      h('dt', {}, 'deployment'), h('dd', {}, `${d.mode}, ${d.replicas_loaded ?? 0}/${d.replicas} replicas, ${d.active ?? 0} active, ${d.queue_depth ?? 0} queued`),
      d.error && [h('dt', {}, 'error'), h('dd', { class: 'bad' }, d.error)]),
    h('label', { class: 'pick' }, h('input', { type: 'checkbox', checked: picked.has(m.id), disabled: !picked.has(m.id) && picked.size >= 4, onchange: (e) => onPick(m.id, e.target.checked) }), ' compare'));
}

const LIVE = ['state', 'replicas_loaded', 'active', 'queue_depth', 'load_seconds', 'error'];

// What people compare first (prices, live state) on top; then capabilities, limits, deployment settings.
function rows(m) {
  const out = [['task', m.task], ['engine', m.engine]];
  for (const [k, v] of Object.entries(m.pricing)) out.push([`pricing.${k}`, v]);
  const dep = Object.entries(m.deployment).map(([k, v]) => [`deployment.${k}`, k === 'load_seconds' && v != null ? `${v.toFixed(2)} s` : v]);
  out.push(...dep.filter(([k]) => LIVE.includes(k.split('.')[1])));
  for (const [k, v] of Object.entries(m.capabilities)) out.push([`capabilities.${k}`, v]);
  for (const [k, v] of Object.entries(m.limits)) out.push([`limits.${k}`, v]);
  out.push(...dep.filter(([k]) => !LIVE.includes(k.split('.')[1])), ['owned by', m.owned_by]);
  return out;
}

function compare(models) {
  const table = new Map();
  models.forEach((m, i) => rows(m).forEach(([k, v]) => { if (!table.has(k)) table.set(k, Array(models.length).fill(undefined)); table.get(k)[i] = show(v); }));
  return h('section', { class: 'compare-models' },
    h('h2', {}, `Side by side (${models.length})`, h('small', { class: 'muted' }, ' fields no model has are left out')),
    h('div', { class: 'scroll' }, h('table', { class: 'grid' },
      h('thead', {}, h('tr', {}, h('th', {}, ''), models.map((m) => h('th', {}, m.id)))),
      h('tbody', {}, [...table].filter(([, vals]) => vals.some((v) => v !== '–' && v !== undefined)).map(([k, vals]) => h('tr', { class: new Set(vals).size > 1 ? 'diff' : '' }, h('th', {}, k), vals.map((v) => h('td', {}, v ?? '–'))))))));
}

export async function render(root, ctx) {
  const picked = new Set();
  const tasks = [...new Set(ctx.models.map((m) => m.task))];
  const task = select([['', 'all tasks'], ...tasks], '', { name: 'task', onchange: draw });
  const cap = select([['', 'any capability'], ...CAPS.map((c) => [c, c.replace(/_/g, ' ')])], '', { name: 'capability', onchange: draw });
  const text = h('input', { type: 'search', name: 'q', placeholder: 'id or description', oninput: draw });
  const grid = h('div', { class: 'cards' });
  const side = h('div');
  const count = h('span', { class: 'muted' });
  root.append(h('h1', {}, 'Models'), h('div', { class: 'toolbar' }, field('Task', task), field('Capability', cap), field('Search', text), count), side, grid);

  function draw() {
    const q = text.value.toLowerCase();
    const shown = ctx.models.filter((m) => (!task.value || m.task === task.value) && (!cap.value || m.capabilities[cap.value]) && (!q || `${m.id} ${m.description || ''}`.toLowerCase().includes(q)));
    count.textContent = `${shown.length} of ${ctx.models.length} models`;
    clear(grid, shown.map((m) => card(m, picked, (id, on) => { on ? picked.add(id) : picked.delete(id); draw(); })));
    const chosen = ctx.models.filter((m) => picked.has(m.id));
    clear(side, chosen.length >= 2 ? compare(chosen) : chosen.length === 1 ? h('p', { class: 'muted' }, 'Pick at least one more model to compare them side by side (up to four).') : null);
  }
  draw();
  // Live deployment state: refresh every 5 s while the page is open.
  const timer = setInterval(async () => { try { await ctx.refreshModels(); draw(); } catch { /* next tick */ } }, 5000);
  return () => clearInterval(timer);
}
