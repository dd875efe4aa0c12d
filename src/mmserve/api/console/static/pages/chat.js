// Chat playground: text, images (upload, paste, drop), video as frames, streaming, reasoning, tools, JSON output.
import { costOf } from '../lib/api.js';
import { chatSpec, chatUsage, prettyCalls, prettyIfJson, runChat } from '../lib/chatrun.js';
import { attachments, userContent } from '../lib/media.js';
import { append, clear, errorBox, field, fmt, h, modelSelect, requestPanel, select, usageStats } from '../lib/ui.js';

const TOOL_EXAMPLE = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Rome'] } }, required: ['city'], additionalProperties: false } } }];
const SCHEMA_EXAMPLE = { type: 'object', properties: { stars: { type: 'integer', minimum: 1, maximum: 5 } }, required: ['stars'], additionalProperties: false };

function bubble(role, content) {
  const el = h('div', { class: `msg ${role}` }, h('div', { class: 'role' }, role));
  if (typeof content === 'string') el.append(h('div', { class: 'text' }, content));
  else for (const p of content) el.append(p.type === 'text' ? h('div', { class: 'text' }, p.text) : h('img', { class: 'inline', src: p.image_url.url, alt: 'attached image' }));
  return el;
}

function assistantView() {
  const reasoning = h('pre', { class: 'reasoning-text' });
  const rbox = h('details', { class: 'reasoning', hidden: true, open: true }, h('summary', {}, 'Reasoning'), reasoning);
  const text = h('div', { class: 'text answer' });
  const calls = h('pre', { class: 'code calls', hidden: true });
  const el = h('div', { class: 'msg assistant' }, h('div', { class: 'role' }, 'assistant'), rbox, text, calls);
  return {
    el,
    update(m, done) {
      rbox.hidden = !m.reasoning;
      reasoning.textContent = m.reasoning;
      const json = done ? prettyIfJson(m.content) : null;
      text.className = json ? 'text answer json' : 'text answer';
      text.textContent = json ?? m.content;
      calls.hidden = !m.tool_calls.length;
      if (m.tool_calls.length) calls.textContent = `tool_calls ${prettyCalls(m.tool_calls)}`;
    },
  };
}

export async function render(root, ctx) {
  const model = modelSelect(ctx, 'chat');
  model.append(h('option', { value: 'auto' }, 'auto (router)'));
  const system = h('textarea', { name: 'system', rows: 2, placeholder: 'optional system prompt (/think, /no_think)' });
  const prompt = h('textarea', { name: 'prompt', rows: 3, required: true, placeholder: 'Ask something; paste an image here' });
  const maxTokens = h('input', { type: 'number', name: 'max_tokens', value: '64', min: 1 });
  const temperature = h('input', { type: 'number', name: 'temperature', value: '0.7', min: 0, max: 2, step: 0.1 });
  const stream = h('input', { type: 'checkbox', name: 'stream', checked: true });
  const effort = select([['', '(default)'], 'none', 'low', 'medium', 'high'], '', { name: 'reasoning_effort' });
  const format = select(['text', 'json_object', 'json_schema'], 'text', { name: 'response_format' });
  const schema = h('textarea', { name: 'schema', rows: 5, class: 'mono', value: JSON.stringify(SCHEMA_EXAMPLE, null, 2) });
  const useTools = h('input', { type: 'checkbox', name: 'use_tools' });
  const tools = h('textarea', { name: 'tools', rows: 6, class: 'mono', value: JSON.stringify(TOOL_EXAMPLE, null, 2) });
  const toolChoice = select(['auto', 'required', 'none'], 'auto', { name: 'tool_choice' });
  const schemaField = field('JSON schema', schema);
  const toolFields = h('div', { class: 'row' }, field('tools (JSON)', tools), field('tool_choice', toolChoice));
  const sync = () => { schemaField.hidden = format.value !== 'json_schema'; toolFields.hidden = !useTools.checked; };
  format.addEventListener('change', sync); useTools.addEventListener('change', sync); sync();

  const log = h('div', { class: 'log', 'aria-live': 'polite' });
  const errors = h('div');
  const panel = requestPanel();
  const sendBtn = h('button', { type: 'submit' }, 'Send');
  const stopBtn = h('button', { type: 'button', class: 'ghost', disabled: true }, 'Stop');
  const att = attachments({ target: root });
  att.onerror = (e) => append(errors, [errorBox(e)]);
  let history = [];
  let abort = null;
  const reset = h('button', { type: 'button', class: 'ghost', onclick: () => { history = []; clear(log); clear(errors); } }, 'New chat');

  const form = h('form', { class: 'card', onsubmit: (ev) => { ev.preventDefault(); go(); } },
    h('div', { class: 'row' }, field('Model', model), field('max_tokens', maxTokens), field('temperature', temperature), h('label', { class: 'check' }, stream, ' stream')),
    field('System', system), field('Message', prompt), att.el,
    h('details', { class: 'options' }, h('summary', {}, 'Reasoning, tools and JSON output'),
      h('div', { class: 'row' }, field('reasoning_effort', effort), field('response_format', format), h('label', { class: 'check' }, useTools, ' tools')),
      schemaField, toolFields),
    h('div', { class: 'actions' }, sendBtn, stopBtn, reset));
  root.append(h('h1', {}, 'Chat'), h('div', { class: 'split' }, h('div', {}, form, errors, panel.el), log));

  stopBtn.addEventListener('click', () => abort?.abort());

  async function go() {
    clear(errors);
    const body = { model: model.value, messages: [], max_tokens: +maxTokens.value, temperature: +temperature.value };
    try {
      if (format.value === 'json_object') body.response_format = { type: 'json_object' };
      if (format.value === 'json_schema') body.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema: JSON.parse(schema.value), strict: true } };
      if (useTools.checked) Object.assign(body, { tools: JSON.parse(tools.value), tool_choice: toolChoice.value });
    } catch (e) { return errors.append(errorBox({ message: `Not valid JSON: ${e.message}` })); }
    if (effort.value) body.reasoning_effort = effort.value;
    if (stream.checked) Object.assign(body, { stream: true, stream_options: { include_usage: true } });
    const user = { role: 'user', content: userContent(prompt.value, att.urls()) };
    body.messages = [...(system.value.trim() ? [{ role: 'system', content: system.value }] : []), ...history, user];
    log.append(bubble('user', user.content));
    const view = assistantView();
    log.append(view.el);
    panel.request(chatSpec(body));
    abort = new AbortController();
    sendBtn.disabled = true; stopBtn.disabled = false;
    try {
      const r = await runChat(body, { signal: abort.signal, onDelta: (m) => { view.update(m, false); log.scrollTop = log.scrollHeight; } });
      view.update(r.message, true);
      const u = chatUsage(r.usage);
      panel.stats({ model: r.model, route: r.route, latency: fmt.ms(r.ms), 'first token': r.ttft != null ? fmt.ms(r.ttft) : null, finish: r.finish, ...usageStats(r.usage && { ...u, reasoning_tokens: r.usage.completion_tokens_details?.reasoning_tokens }, costOf(null, r.usage)) });
      panel.response(r.raw);
      history.push(user, { role: 'assistant', content: r.message.content || null, ...(r.message.tool_calls.length ? { tool_calls: r.message.tool_calls } : {}) });
      prompt.value = '';
      att.reset();
    } catch (e) {
      view.el.remove();
      log.lastChild?.remove();
      panel.stats({ status: e.name === 'AbortError' ? 'stopped' : `error ${e.status || ''}` });
      if (e.name !== 'AbortError') errors.append(errorBox(e));
    } finally {
      sendBtn.disabled = false; stopBtn.disabled = true; abort = null;
    }
  }
  return () => abort?.abort();
}
