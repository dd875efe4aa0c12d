// Keys (admins): list, create (the secret is shown once, never stored; an optional lifetime), edit limits, revoke.
// Needs the admin endpoints /v1/admin/keys; a server without them gets the CLI equivalents.
import { api } from '../lib/api.js';
import { clear, copy, errorBox, field, fmt, h, select } from '../lib/ui.js';

const num = (el) => (el.value === '' ? null : +el.value);
const LIFETIMES = [['', 'never'], [86400, '1 day'], [7 * 86400, '7 days'], [30 * 86400, '30 days'], [90 * 86400, '90 days'], [365 * 86400, '1 year']];

// A button that asks once more before acting (no blocking confirm() dialog).
function confirmButton(label, ask, act) {
  const b = h('button', { type: 'button', class: 'link danger' }, label);
  let armed = false;
  b.addEventListener('click', async () => {
    if (!armed) { armed = true; b.textContent = ask; setTimeout(() => { armed = false; b.textContent = label; }, 4000); return; }
    b.disabled = true; await act();
  });
  return b;
}

function cliHelp(err) {
  return h('div', { class: 'card' }, h('h2', {}, 'Key management needs the admin API'),
    h('p', {}, `This server answered ${err.status} to GET /v1/admin/keys: it manages keys with the CLI only. On the server host:`),
    h('pre', { class: 'code' }, 'mmserve keys create --name team-a --models demo-vlm --rpm 60 --tpm 100000\nmmserve keys list\nmmserve keys revoke <id>'));
}

export async function render(root, ctx) {
  const list = h('div');
  const secret = h('div');
  const errors = h('div');
  const name = h('input', { name: 'name', required: true, placeholder: 'team-a' });
  const rpm = h('input', { type: 'number', name: 'rpm', min: 1, placeholder: 'unlimited' });
  const tpm = h('input', { type: 'number', name: 'tpm', min: 1, placeholder: 'unlimited' });
  const admin = h('input', { type: 'checkbox', name: 'admin' });
  const expires = select(LIFETIMES, '', { name: 'expires' });
  const models = ctx.models.map((m) => h('input', { type: 'checkbox', name: 'models', value: m.id }));
  const create = h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); make(); } }, h('h2', {}, 'New key'),
    h('div', { class: 'row' }, field('Name', name), field('Requests / min', rpm), field('Tokens / min', tpm), field('Expires after', expires), h('label', { class: 'check' }, admin, ' admin')),
    h('fieldset', { class: 'models' }, h('legend', {}, 'Models (none checked: all)'), models.map((m) => h('label', { class: 'check' }, m, ` ${m.value}`))),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create key')));
  root.append(h('h1', {}, 'API keys'), secret, errors, list, create);

  async function make() {
    clear(errors);
    const chosen = models.filter((m) => m.checked).map((m) => m.value);
    try {
      const k = await api.post('v1/admin/keys', { name: name.value, models: chosen.length ? chosen : null, requests_per_min: num(rpm), tokens_per_min: num(tpm), admin: admin.checked, expires_in_s: num(expires) });
      const code = h('code', { class: 'secret' }, k.key);
      // Shown once: not kept in any variable, storage or URL after this box is dismissed.
      clear(secret, h('div', { class: 'card notice', role: 'status' }, h('strong', {}, `Key "${k.name}" created. Copy it now: it will not be shown again.`),
        h('p', {}, code, ' ', h('button', { type: 'button', class: 'link', onclick: (e) => copy(code.textContent, code).then((ok) => { e.target.textContent = ok ? 'Copied' : 'Selected'; }) }, 'Copy')),
        h('button', { type: 'button', class: 'ghost', onclick: () => clear(secret) }, 'Done')));
      create.reset();
      load();
    } catch (e) { errors.append(errorBox(e)); }
  }

  function row(k) {
    const r = h('input', { type: 'number', min: 1, value: k.requests_per_min ?? '', placeholder: '∞', class: 'narrow', 'aria-label': `requests per minute of ${k.name}` });
    const t = h('input', { type: 'number', min: 1, value: k.tokens_per_min ?? '', placeholder: '∞', class: 'narrow', 'aria-label': `tokens per minute of ${k.name}` });
    const save = h('button', { type: 'button', class: 'link', onclick: async () => {
      try { await api.patch(`v1/admin/keys/${k.id}`, { requests_per_min: num(r), tokens_per_min: num(t) }); save.textContent = 'Saved'; } catch (e) { errors.append(errorBox(e)); }
    } }, 'Save');
    return h('tr', { 'data-key': k.id }, h('td', { class: 'mono' }, k.id), h('td', { class: 'mono' }, `${k.prefix}…`), h('td', {}, k.name),
      h('td', {}, k.models ? k.models.join(', ') : 'all'), h('td', {}, r), h('td', {}, t), h('td', {}, k.admin ? 'yes' : ''), h('td', {}, fmt.time(k.created_at)), h('td', { class: k.expires_at && k.expires_at * 1000 < Date.now() ? 'bad' : '' }, k.expires_at ? fmt.time(k.expires_at) : 'never'),
      h('td', {}, save, ' ', confirmButton('Revoke', 'Really revoke?', async () => { try { await api.del(`v1/admin/keys/${k.id}`); } catch (e) { errors.append(errorBox(e)); } load(); })));
  }

  async function load() {
    try {
      const keys = (await api.get('v1/admin/keys')).data;
      clear(list, h('div', { class: 'scroll' }, h('table', { class: 'grid keys' },
        h('thead', {}, h('tr', {}, ['id', 'prefix', 'name', 'models', 'rpm', 'tpm', 'admin', 'created', 'expires', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, keys.length ? keys.map(row) : h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'No keys yet.'))))));
    } catch (e) {
      if (e.status === 404 || e.status === 405) { clear(list, cliHelp(e)); create.hidden = true; } else clear(list, errorBox(e));
    }
  }
  load();
}
