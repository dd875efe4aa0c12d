// The console shell: sign-in, navigation and hash routing; each page is its own lazily loaded module.
import { api, auth, needsKey, whoami } from './lib/api.js';
import { clear, errorBox, field, h } from './lib/ui.js';

const PAGES = [
  ['catalog', 'Catalog'], ['chat', 'Chat'], ['images', 'Images'], ['speech', 'Speech'],
  ['transcribe', 'Transcribe'], ['video', 'Video'], ['compare', 'Compare'], ['usage', 'Usage'],
  ['keys', 'Keys', true], ['deployments', 'Deployments', true],
];
const main = document.getElementById('main');
const ctx = { models: [], me: null, refreshModels };
let leave = null;

async function refreshModels() {
  ctx.models = (await api.get('v1/models')).data;
  return ctx.models;
}

async function boot() {
  try {
    if (!auth.key && (await needsKey())) return signIn(null);
    await refreshModels();
    ctx.me = await whoami();
  } catch (e) {
    if (e.status === 401) return signIn(auth.key ? e : null);
    return clear(main, errorBox(e));
  }
  document.getElementById('who').textContent = ctx.me.key_id ? `${ctx.me.name || ctx.me.key_id}${ctx.me.admin ? ' (admin)' : ''}` : '';
  document.getElementById('signout').hidden = !auth.key;
  clear(document.getElementById('nav'), PAGES.filter(([, , admin]) => !admin || ctx.me.admin).map(([id, label]) => h('a', { href: `#/${id}`, 'data-page': id }, label)));
  route();
}

function signIn(err) {
  auth.set('');
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, placeholder: 'mms-…' });
  clear(main, h('form', { class: 'card signin', onsubmit: (ev) => { ev.preventDefault(); auth.set(input.value.trim()); boot(); } },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This server needs an API key. It is kept in this tab only (sessionStorage) and sent as a Bearer header.'),
    err && errorBox(err),
    field('API key', input),
    h('button', { type: 'submit' }, 'Sign in')));
  input.focus();
}

async function route() {
  if (!ctx.me) return;
  const name = (location.hash.match(/^#\/([\w-]+)/) || [])[1] || 'catalog';
  const page = PAGES.find(([id]) => id === name) || PAGES[0];
  if (page[2] && !ctx.me.admin) return clear(main, errorBox({ message: 'This page is for admin keys.' }));
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('on', a.dataset.page === page[0]));
  document.title = `${page[1]} · mmserve`;
  if (leave) { leave(); leave = null; }
  const root = h('div', { class: 'page', id: `page-${page[0]}` });
  clear(main, root);
  try {
    const mod = await import(`./pages/${page[0]}.js`);
    leave = (await mod.render(root, ctx)) || null;
  } catch (e) {
    root.append(errorBox(e));
  }
}

document.getElementById('signout').addEventListener('click', () => { auth.set(''); location.hash = '#/catalog'; location.reload(); });
addEventListener('hashchange', route);
boot();
