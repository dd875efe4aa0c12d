// Compare: one prompt (and image) sent to 2-3 chat models at once; answers side by side with latency, tokens, cost.
import { costOf } from '../lib/api.js';
import { chatSpec, chatUsage, prettyCalls, prettyIfJson, runChat } from '../lib/chatrun.js';
import { attachments, userContent } from '../lib/media.js';
import { clear, errorBox, field, fmt, h, requestPanel } from '../lib/ui.js';

export async function render(root, ctx) {
  const chat = ctx.models.filter((m) => m.task === 'chat');
  const boxes = chat.map((m, i) => h('input', { type: 'checkbox', name: 'models', value: m.id, checked: i < 3 }));
  const limit = () => boxes.forEach((b) => { b.disabled = !b.checked && boxes.filter((x) => x.checked).length >= 3; });
  boxes.forEach((b) => b.addEventListener('change', limit)); limit();
  const prompt = h('textarea', { name: 'prompt', rows: 3, required: true, value: 'Describe this image in one sentence.' });
  const maxTokens = h('input', { type: 'number', name: 'max_tokens', value: '48', min: 1 });
  const att = attachments({ target: root });
  const cols = h('div', { class: 'columns' });
  const errors = h('div');
  const panel = requestPanel();
  const go = h('button', { type: 'submit' }, 'Send to all');
  att.onerror = (e) => errors.append(errorBox(e));

  root.append(h('h1', {}, 'Compare'), h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); run(); } },
    h('fieldset', { class: 'models' }, h('legend', {}, 'Models (2-3)'), chat.map((m, i) => h('label', { class: 'check' }, boxes[i], ` ${m.id}`, m.capabilities.vision ? h('small', { class: 'muted' }, ' vision') : null))),
    field('Prompt', prompt), att.el, h('div', { class: 'row' }, field('max_tokens', maxTokens)), h('div', { class: 'actions' }, go)), errors, cols, panel.el);

  async function run() {
    clear(errors);
    const ids = boxes.filter((b) => b.checked).map((b) => b.value);
    if (ids.length < 2) return errors.append(errorBox({ message: 'Pick two or three models.' }));
    const content = userContent(prompt.value, att.urls());
    const bodies = ids.map((model) => ({ model, messages: [{ role: 'user', content }], max_tokens: +maxTokens.value, stream: true, stream_options: { include_usage: true } }));
    panel.request(chatSpec(bodies[0]));
    panel.stats({ note: `the same request to ${ids.join(', ')} (only "model" differs)` });
    go.disabled = true;
    clear(cols, bodies.map((body) => {
      const text = h('div', { class: 'text answer' });
      const stats = h('dl', { class: 'stats' }, h('div', {}, h('dt', {}, 'status'), h('dd', {}, 'sending…')));
      const col = h('section', { class: 'card col', 'data-model': body.model }, h('h2', {}, body.model), stats, text);
      col.run = async () => {
        try {
          const r = await runChat(body, { onDelta: (m) => { text.textContent = m.content; } });
          text.textContent = prettyIfJson(r.message.content) ?? r.message.content;
          if (r.message.tool_calls.length) text.append(h('pre', { class: 'code' }, prettyCalls(r.message.tool_calls)));
          const u = chatUsage(r.usage);
          const rows = { latency: fmt.ms(r.ms), 'first token': fmt.ms(r.ttft), tokens: u ? `${u.input_tokens} in / ${u.output_tokens} out` : '–', cost: fmt.usd(costOf(null, r.usage)), finish: r.finish };
          clear(stats, Object.entries(rows).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', { 'data-stat': k }, v))));
          col.classList.add('done');
        } catch (e) {
          clear(stats); text.replaceWith(errorBox(e)); col.classList.add('failed');
        }
      };
      return col;
    }));
    await Promise.all([...cols.children].map((c) => c.run()));
    go.disabled = false;
  }
}
