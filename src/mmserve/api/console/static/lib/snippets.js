// The exact request a playground sent, as curl and as openai-python code (the key stays a variable).
import { auth, url } from './api.js';

const MAX = 160;
const cut = (s, full) => (full || s.length <= MAX ? s : `${s.slice(0, 60)}…[${s.length} chars]`);
const deep = (v, full) => (full ? v : typeof v === 'string' ? cut(v) : Array.isArray(v) ? v.map((x) => deep(x)) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deep(x)])) : v);
export const shorten = (v) => deep(v, false);
const sq = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

export function curl(spec, { full = false } = {}) {
  const method = spec.method || (spec.json !== undefined || spec.form ? 'POST' : 'GET');
  const lines = [`curl -s${spec.stream ? 'N' : ''}${method === 'POST' || method === 'GET' ? '' : ` -X ${method}`} ${sq(url(spec.path))}`];
  if (auth.key) lines.push('-H "Authorization: Bearer $MMSERVE_API_KEY"');
  if (spec.accept) lines.push(`-H ${sq(`Accept: ${spec.accept}`)}`);
  if (spec.json !== undefined) lines.push('-H "Content-Type: application/json"', `-d ${sq(JSON.stringify(deep(spec.json, full), null, 2))}`);
  for (const [k, v, name] of spec.form || []) lines.push(`-F ${sq(v instanceof Blob ? `${k}=@${name || 'file'}` : `${k}=${v}`)}`);
  if (spec.out) lines.push(`-o ${spec.out}`);
  return lines.join(' \\\n  ');
}

// Python literal of a JSON value, indented like json.dumps(indent=4) when long.
export function py(v, ind = 0) {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v !== 'object') return JSON.stringify(v);
  const flat = JSON.stringify(v);
  const entries = Array.isArray(v) ? v.map((x) => py(x, ind + 4)) : Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${py(x, ind + 4)}`);
  const [o, c] = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
  if (!entries.length) return o + c;
  if (flat.length + ind < 80) return o + entries.join(', ') + c;
  const pad = ' '.repeat(ind + 4);
  return `${o}\n${entries.map((e) => pad + e).join(',\n')},\n${' '.repeat(ind)}${c}`;
}

// spec.sdk: {fn: 'client.chat.completions.create', known: [fields the SDK method takes], args: [extra kwargs], result, tail: [lines]}
export function python(spec, { full = false } = {}) {
  const sdk = spec.sdk || { fn: null };
  const head = ['import os', '', 'from openai import OpenAI', '', `client = OpenAI(base_url=${JSON.stringify(url('v1'))}, api_key=os.environ.get("MMSERVE_API_KEY", "unused"))`, ''];
  if (!sdk.fn) return [...head, `# ${spec.method || 'GET'} ${spec.path}`, `result = client.get(${JSON.stringify('/' + spec.path.replace(/^v1\//, ''))}, cast_to=object)`].join('\n');
  const body = spec.json !== undefined ? deep(spec.json, full) : {};
  for (const [k0, v, name] of spec.form || []) {
    const k = k0.replace(/\[\]$/, '');
    const val = v instanceof Blob ? { __file: name || 'file' } : v;
    body[k] = k0.endsWith('[]') ? [...(body[k] || []), val] : val;
  }
  const args = [];
  const extra = {};
  for (const [k, v] of Object.entries(body)) {
    if (!sdk.known.includes(k)) { extra[k] = v; continue; }
    args.push(v?.__file ? `    ${k}=open(${JSON.stringify(v.__file)}, "rb"),` : `    ${k}=${py(v, 4)},`);
  }
  if (Object.keys(extra).length) args.push(`    extra_body=${py(extra, 4)},`);
  for (const a of sdk.args || []) args.push(`    ${a},`);
  return [...head, `${sdk.result || 'result'} = ${sdk.fn}(`, ...args, ')', ...(sdk.tail || [])].join('\n');
}

export const SDK = {
  chat: ['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'stream', 'stream_options', 'tools', 'tool_choice', 'parallel_tool_calls', 'response_format', 'reasoning_effort', 'presence_penalty', 'frequency_penalty', 'user'],
  images: ['model', 'prompt', 'n', 'size', 'quality', 'response_format', 'output_format', 'output_compression', 'background', 'style', 'user', 'image', 'mask'],
  speech: ['model', 'input', 'voice', 'instructions', 'response_format', 'speed', 'stream_format'],
  transcribe: ['model', 'file', 'language', 'prompt', 'temperature', 'response_format', 'timestamp_granularities', 'stream'],
  videos: ['model', 'prompt', 'seconds', 'size', 'input_reference'],
};
