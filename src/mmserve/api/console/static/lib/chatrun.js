// One chat completion, streamed or not, with its timing: shared by the chat and compare pages.
import { send, sse } from './api.js';
import { SDK } from './snippets.js';

export function chatSpec(body) {
  const tail = body.stream
    ? ['for chunk in result:', '    if chunk.choices:', '        print(chunk.choices[0].delta.content or "", end="", flush=True)', '    elif chunk.usage:', '        print("\\nusage:", chunk.usage)']
    : ['print(result.choices[0].message)', 'print(result.usage)'];
  return { path: 'v1/chat/completions', json: body, stream: body.stream, sdk: { fn: 'client.chat.completions.create', known: SDK.chat, tail } };
}

// onDelta({content, reasoning, tool_calls}) gets the message so far after each chunk.
export async function runChat(body, { onDelta = () => {}, signal } = {}) {
  const t0 = performance.now();
  const res = await send({ ...chatSpec(body), signal });
  const out = { model: res.headers.get('x-mmserve-model'), route: res.headers.get('x-mmserve-route'), ttft: null, finish: null, usage: null };
  const msg = { content: '', reasoning: '', tool_calls: [] };
  if (!body.stream) {
    const data = await res.json();
    const m = data.choices[0].message;
    Object.assign(msg, { content: m.content ?? '', reasoning: m.reasoning_content ?? '', tool_calls: m.tool_calls || [] });
    Object.assign(out, { usage: data.usage, finish: data.choices[0].finish_reason, model: data.model, raw: data });
    onDelta(msg);
  } else {
    const chunks = [];
    for await (const chunk of sse(res)) {
      chunks.push(chunk);
      out.model = chunk.model || out.model;
      if (chunk.usage) out.usage = chunk.usage;
      const c = chunk.choices?.[0];
      if (!c) continue;
      const d = c.delta || {};
      if (out.ttft == null && (d.content || d.reasoning_content || d.tool_calls)) out.ttft = performance.now() - t0;
      if (d.reasoning_content) msg.reasoning += d.reasoning_content;
      if (d.content) msg.content += d.content;
      for (const tc of d.tool_calls || []) {
        const cur = (msg.tool_calls[tc.index] ||= { id: tc.id, type: 'function', function: { name: '', arguments: '' } });
        if (tc.id) cur.id = tc.id;
        if (tc.function?.name) cur.function.name = tc.function.name;
        if (tc.function?.arguments) cur.function.arguments += tc.function.arguments;
      }
      if (c.finish_reason) out.finish = c.finish_reason;
      onDelta(msg);
    }
    out.raw = chunks;
  }
  out.ms = performance.now() - t0;
  out.message = msg;
  return out;
}

// Chat usage in the metering's terms (prompt tokens include image tokens).
export const chatUsage = (u) => u && { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens };

// Pretty JSON when the text is JSON (json_object / json_schema answers), else the text itself.
export function prettyIfJson(text) {
  const t = text.trim();
  if (!/^[{[]/.test(t)) return null;
  try { return JSON.stringify(JSON.parse(t), null, 2); } catch { return null; }
}

export function prettyCalls(calls) {
  return JSON.stringify(calls.map((c) => {
    let args = c.function.arguments;
    try { args = JSON.parse(args); } catch { /* shown as sent */ }
    return { id: c.id, name: c.function.name, arguments: args };
  }), null, 2);
}
