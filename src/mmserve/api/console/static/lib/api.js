// The one place requests leave the console: the API root, the key, errors, SSE, prices.

const KEY = 'mmserve.key';
// The console lives at <root>/console/, so the API root is one level up (proxy prefixes included).
export const ROOT = new URL('../', location.href.split('#')[0]);
export const url = (path) => new URL(path, ROOT).href;

// The key is kept in sessionStorage only (gone when the tab closes), never in a URL.
export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set(key) { key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, err = {}, headers = null) {
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.param = err.param || null;
    this.retryAfter = headers?.get('retry-after') || null;
  }
}

export function authHeaders(h = {}) {
  return auth.key ? { ...h, Authorization: `Bearer ${auth.key}` } : h;
}

// A multipart spec is a list of [name, value, filename?]; values are strings, numbers or Blobs.
export function formData(entries) {
  const fd = new FormData();
  for (const [k, v, name] of entries) v instanceof Blob ? fd.append(k, v, name || 'file') : fd.append(k, String(v));
  return fd;
}

// spec: {path, method, json, form, accept, signal}. Resolves to the Response (2xx) or throws ApiError.
export async function send(spec) {
  const body = spec.json !== undefined || spec.form;
  const init = { method: spec.method || (body ? 'POST' : 'GET'), headers: authHeaders(), signal: spec.signal };
  if (spec.json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(spec.json);
  } else if (spec.form) init.body = formData(spec.form);
  if (spec.accept) init.headers.Accept = spec.accept;
  const res = await fetch(url(spec.path), init);
  if (!res.ok) throw await errorOf(res);
  return res;
}

async function errorOf(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const err = body?.error || { message: typeof body?.detail === 'string' ? body.detail : res.statusText };
  return new ApiError(res.status, err, res.headers);
}

export const api = {
  get: async (path) => (await send({ path })).json(),
  post: async (path, json) => (await send({ path, json })).json(),
  patch: async (path, json) => (await send({ path, json, method: 'PATCH' })).json(),
  del: async (path) => (await send({ path, method: 'DELETE' })).json(),
};

// Server-sent events of a fetch Response: yields each parsed `data:` payload until [DONE].
export async function* sse(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (let m; (m = /\r?\n\r?\n/.exec(buf));) {
      const block = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      const data = block.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      const obj = JSON.parse(data);
      if (obj.error) throw new ApiError(500, obj.error);
      yield obj;
    }
  }
}

// The cost of a request as the server metered it: the x-mmserve-cost header, else usage.cost.
export function costOf(res, usage) {
  const header = res?.headers?.get('x-mmserve-cost');
  if (header != null) return +header;
  return typeof usage?.cost === 'number' ? usage.cost : null;
}

// Whether this server needs a key (GET /health is open): asked first, so no 401 is provoked.
export async function needsKey() {
  return !!(await (await fetch(url('health'))).json()).auth;
}

// Who the key is (auth off: the anonymous admin).
export const whoami = () => api.get('v1/me');
