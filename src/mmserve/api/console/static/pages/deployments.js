// Deployments (admins): live state, replicas, queue, load/unload (POST /v1/admin/deployments/{id}/load|unload).
import { api } from '../lib/api.js';
import { clear, errorBox, fmt, h } from '../lib/ui.js';
import { badge } from './catalog.js';

// where a card's replicas run (GET /v1/models: deployment.runs_in)
const RUNS_IN = {
  here: "in the server's process",
  worker: 'in worker processes of their own (deployment.process)',
  cluster: 'in Ray actors on the cluster',
};

export async function render(root, ctx) {
  const table = h('div', { class: 'scroll' });
  const errors = h('div');
  root.append(h('h1', {}, 'Deployments'), h('p', { class: 'muted' }, 'Refreshed every 3 s. Dedicated models load at start; serverless ones on first use and unload when idle.'), errors, table);

  const act = (id, what) => async (e) => {
    e.target.disabled = true;
    clear(errors);
    try { await api.post(`v1/admin/deployments/${encodeURIComponent(id)}/${what}`, {}); } catch (err) {
      errors.append(errorBox(err.status === 404 && err.code !== 'model_not_found' ? { ...err, message: `This server has no ${what} endpoint yet (POST /v1/admin/deployments/{id}/${what}).` } : err));
    }
    draw(await ctx.refreshModels());
  };

  function draw(models) {
    clear(table, h('table', { class: 'grid deployments' },
      h('thead', {}, h('tr', {}, ['model', 'task', 'mode', 'state', 'runs in', 'replicas', 'active', 'queue', 'load time', 'idle unload', 'error', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, models.map((m) => {
        const d = m.deployment;
        return h('tr', { 'data-model': m.id }, h('td', {}, m.id), h('td', {}, m.task), h('td', {}, d.mode), h('td', {}, badge(d.state)),
          h('td', { class: 'runs-in', title: RUNS_IN[d.runs_in] || '' }, d.runs_in ?? '–'),
          h('td', { class: 'num' }, `${d.replicas_loaded ?? 0} / ${d.replicas}`), h('td', { class: 'num' }, `${d.active ?? 0} / ${d.max_concurrency * d.replicas}`),
          h('td', { class: 'num' }, `${d.queue_depth ?? 0} / ${d.max_queue}`), h('td', { class: 'num' }, d.load_seconds != null ? fmt.sec(d.load_seconds) : '–'),
          h('td', {}, d.idle_unload_s ? `${d.idle_unload_s} s` : '–'), h('td', { class: 'bad' }, d.error || ''),
          h('td', {}, h('button', { type: 'button', class: 'link', disabled: d.state === 'loaded' || d.state === 'loading', onclick: act(m.id, 'load') }, 'Load'), ' ',
            h('button', { type: 'button', class: 'link', disabled: !d.replicas_loaded, onclick: act(m.id, 'unload') }, 'Unload')));
      }))));
  }
  draw(ctx.models);
  const timer = setInterval(async () => { try { draw(await ctx.refreshModels()); } catch (e) { clear(errors, errorBox(e)); } }, 3000);
  return () => clearInterval(timer);
}
