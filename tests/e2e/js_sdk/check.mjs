// The official openai JavaScript SDK against a running `mmserve serve` on the demo catalog.
// Usage: node check.mjs <base url>. Prints one JSON object of what each surface answered;
// tests/e2e/js_sdk/test_js_sdk.py asserts on it.
import OpenAI, { toFile } from 'openai';

const client = new OpenAI({ baseURL: `${process.argv[2]}/v1`, apiKey: 'unused', maxRetries: 0 });
// a 16x16 PNG: a red cross on white
const PNG =
  'iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAANUlEQVR42mP8//8/AymAiYFEwIIpdJeREc5WxrCfZBtor4EREkrI7sYFIP4ZvH4YDvFAQxsAvN0VE/1kM0YAAAAASUVORK5CYII=';
const out = {};

const chat = await client.chat.completions.create({
  model: 'demo-vlm',
  max_tokens: 8,
  messages: [
    {
      role: 'user',
      content: [
        { type: 'text', text: 'What is in this image?' },
        { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
      ],
    },
  ],
});
out.chat = {
  content: typeof chat.choices[0].message.content,
  finish: chat.choices[0].finish_reason,
  prompt_tokens: chat.usage.prompt_tokens,
  image_tokens: chat.usage.prompt_tokens_details?.image_tokens ?? 0,
};

const stream = await client.chat.completions.create({
  model: 'demo-tools',
  max_tokens: 8,
  seed: 3,
  messages: [{ role: 'user', content: 'Say hello.' }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? '';
  if (chunk.usage) usage = chunk.usage;
}
const same = await client.chat.completions.create({
  model: 'demo-tools',
  max_tokens: 8,
  seed: 3,
  messages: [{ role: 'user', content: 'Say hello.' }],
});
out.stream = { same_text: text === same.choices[0].message.content, completion_tokens: usage?.completion_tokens };

const emb = await client.embeddings.create({ model: 'demo-embed', input: ['a red square', 'a blue circle'] });
const short = await client.embeddings.create({ model: 'demo-embed', input: 'a red square', dimensions: 8 });
const norm = Math.hypot(...emb.data[0].embedding);
out.embeddings = { count: emb.data.length, dims: emb.data[0].embedding.length, short: short.data[0].embedding.length, norm };

const resp = await client.responses.create({ model: 'demo-tools', input: 'Write one word.', max_output_tokens: 16 });
const again = await client.responses.retrieve(resp.id);
out.responses = { status: resp.status, text: typeof resp.output_text, retrieved: again.id === resp.id };

const comp = await client.completions.create({ model: 'demo-tools', prompt: 'Once upon a time', max_tokens: 5, echo: true });
out.completions = { echoed: comp.choices[0].text.startsWith('Once upon a time'), tokens: comp.usage.completion_tokens };

const events = [];
const images = await client.images.generate({
  model: 'demo-image',
  prompt: 'A sunset over mountains',
  size: '256x256',
  stream: true,
  partial_images: 1,
});
for await (const event of images) {
  events.push({ type: event.type, png: Buffer.from(event.b64_json, 'base64').subarray(1, 4).toString() });
}
out.images = events;

const speech = await client.audio.speech.create({
  model: 'demo-tts',
  voice: 'sage',
  input: 'The weather is nice today.',
  response_format: 'wav',
});
const wav = Buffer.from(await speech.arrayBuffer());
const transcript = await client.audio.transcriptions.create({
  model: 'demo-asr',
  file: await toFile(wav, 'speech.wav'),
  response_format: 'verbose_json',
});
out.audio = { riff: wav.subarray(0, 4).toString(), bytes: wav.length, text: typeof transcript.text, duration: transcript.duration };

try {
  await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
  out.error = null;
} catch (e) {
  out.error = { status: e.status, type: e.type, param: e.param, message: e.message };
}

console.log(JSON.stringify(out));
