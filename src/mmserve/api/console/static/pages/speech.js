// Speech playground: voice, format, speed; streamed playback (SSE deltas: PCM through Web Audio,
// MP3 through Media Source) or the whole clip; an audio player either way.
import { costOf, send, sse } from '../lib/api.js';
import { SDK } from '../lib/snippets.js';
import { b64ToBlob, clear, errorBox, field, fmt, h, modelSelect, requestPanel, select, usageStats } from '../lib/ui.js';

const VOICES = 'alloy ash ballad coral echo fable nova onyx sage shimmer verse marin cedar'.split(' ');
const TYPES = { mp3: 'audio/mpeg', opus: 'audio/ogg', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/wav' };
const RATE = 24000;
const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

// 16-bit mono PCM at 24 kHz as a WAV file (what the player gets for `pcm`).
function wav(chunks) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const v = new DataView(new ArrayBuffer(44));
  const w = (o, s) => [...s].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
  w(0, 'RIFF'); v.setUint32(4, 36 + n, true); w(8, 'WAVEfmt '); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, RATE, true); v.setUint32(28, RATE * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true); w(36, 'data'); v.setUint32(40, n, true);
  return new Blob([v, ...chunks], { type: 'audio/wav' });
}

// Plays PCM chunks back to back as they arrive.
function pcmPlayer() {
  const ac = new AudioContext({ sampleRate: RATE });
  let at = 0, carry = null;
  return {
    push(u8) {
      const all = carry ? new Uint8Array([...carry, ...u8]) : u8;
      const even = all.length & ~1;
      carry = even < all.length ? all.slice(even) : null;
      const pcm = new Int16Array(all.buffer.slice(all.byteOffset, all.byteOffset + even));
      if (!pcm.length) return;
      const buf = ac.createBuffer(1, pcm.length, RATE);
      buf.getChannelData(0).set(Float32Array.from(pcm, (s) => s / 32768));
      const src = ac.createBufferSource();
      src.buffer = buf; src.connect(ac.destination);
      at = Math.max(at, ac.currentTime + 0.05); src.start(at); at += buf.duration;
    },
    close: () => setTimeout(() => ac.close(), Math.max(0, (at - ac.currentTime) * 1000) + 200),
  };
}

// Appends MP3 chunks to a MediaSource playing in the audio element.
function mseFeeder(audio) {
  const ms = new MediaSource();
  const queue = [];
  let sb = null, ended = false;
  const pump = () => {
    if (!sb || sb.updating) return;
    if (queue.length) sb.appendBuffer(queue.shift());
    else if (ended && ms.readyState === 'open') ms.endOfStream();
  };
  ms.addEventListener('sourceopen', () => { sb = ms.addSourceBuffer('audio/mpeg'); sb.mode = 'sequence'; sb.addEventListener('updateend', pump); pump(); });
  audio.src = URL.createObjectURL(ms);
  return { push: (u8) => { queue.push(u8); pump(); }, end: () => { ended = true; pump(); } };
}

export async function render(root, ctx) {
  const model = modelSelect(ctx, 'speech');
  const voices = h('datalist', { id: 'voices' });
  const voice = h('input', { name: 'voice', list: 'voices', value: 'sage' });
  const voiceCount = h('small', { class: 'muted voices' });
  const format = select(Object.keys(TYPES), 'mp3', { name: 'response_format' });
  const speed = h('input', { type: 'range', name: 'speed', min: 0.25, max: 4, step: 0.05, value: '1' });
  const speedOut = h('output', {}, '1.00×');
  speed.addEventListener('input', () => { speedOut.textContent = `${(+speed.value).toFixed(2)}×`; });
  const input = h('textarea', { name: 'input', rows: 4, required: true, value: 'The weather is nice today and the sun is shining.' });
  const stream = h('input', { type: 'checkbox', name: 'stream', checked: true });
  const audio = h('audio', { controls: true, class: 'player' });
  const errors = h('div');
  const panel = requestPanel();
  const go = h('button', { type: 'submit' }, 'Speak');
  // the loaded engine's voices (GET /v1/models); OpenAI's names while the model lists none (not loaded yet)
  const fillVoices = () => {
    const list = model.card()?.capabilities.voices || [];
    clear(voices, (list.length ? list : VOICES).map((v) => h('option', { value: v })));
    voiceCount.textContent = list.length ? `${list.length} voices` : '';
  };
  model.addEventListener('change', fillVoices); fillVoices();

  root.append(h('h1', {}, 'Speech'), h('div', { class: 'split' },
    h('div', {}, h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); run(); } },
      h('div', { class: 'row' }, field('Model', model), field('Voice', voice, voiceCount), voices, field('Format', format), h('label', { class: 'check' }, stream, ' stream')),
      field('Speed', h('span', { class: 'inline' }, speed, speedOut)), field('Text', input), h('div', { class: 'actions' }, go)), errors, panel.el),
    h('div', { class: 'card' }, h('h2', {}, 'Player'), audio)));

  async function run() {
    clear(errors);
    go.disabled = true;
    const fmtName = format.value;
    const body = { model: model.value, input: input.value, voice: voice.value, response_format: fmtName, speed: +speed.value };
    if (stream.checked) body.stream_format = 'sse';
    const py = stream.checked
      ? ['import base64, json', `audio = open("speech.${fmtName}", "wb")`, 'for line in result.iter_lines():', '    if line.startswith("data: "):', '        event = json.loads(line[6:])', '        if event["type"] == "speech.audio.delta":', '            audio.write(base64.b64decode(event["audio"]))', '        else:', '            print(event["usage"])']
      : ['import base64, json', 'envelope = json.loads(result.content)', `open("speech.${fmtName}", "wb").write(base64.b64decode(envelope["data"][0]["b64_json"]))`, 'print(envelope["usage"])'];
    const spec = { path: 'v1/audio/speech', json: body, stream: stream.checked, accept: stream.checked ? 'text/event-stream' : 'application/json', sdk: { fn: 'client.audio.speech.create', known: SDK.speech, args: [`extra_headers={"Accept": "${stream.checked ? 'text/event-stream' : 'application/json'}"}`], tail: py } };
    panel.request(spec);
    const t0 = performance.now();
    let first = null, usage = null;
    try {
      const res = await send(spec);
      if (!stream.checked) {
        const env = await res.json();
        usage = env.usage;
        audio.src = URL.createObjectURL(b64ToBlob(env.data[0].b64_json, TYPES[fmtName]));
        audio.play().catch(() => {});
        panel.response(env);
      } else {
        const chunks = [];
        const live = fmtName === 'pcm' ? pcmPlayer() : fmtName === 'mp3' && window.MediaSource?.isTypeSupported('audio/mpeg') ? mseFeeder(audio) : null;
        if (live && fmtName === 'mp3') audio.play().catch(() => {});
        for await (const ev of sse(res)) {
          if (ev.type === 'speech.audio.delta') {
            const u8 = bytes(ev.audio);
            first ??= performance.now() - t0;
            chunks.push(u8);
            live?.push(u8);
          } else if (ev.type === 'speech.audio.done') usage = ev.usage;
        }
        if (fmtName === 'mp3' && live) live.end();
        else {
          live?.close();
          audio.src = URL.createObjectURL(fmtName === 'pcm' ? wav(chunks) : new Blob(chunks, { type: TYPES[fmtName] }));
          if (!live) audio.play().catch(() => {});
        }
        panel.response(`${chunks.length} speech.audio.delta events (${chunks.reduce((a, c) => a + c.length, 0)} bytes), then speech.audio.done:\n${JSON.stringify(usage, null, 2)}`);
      }
      panel.stats({ latency: fmt.ms(performance.now() - t0), 'first audio': first != null ? fmt.ms(first) : null, ...usageStats(usage, costOf(null, usage)) });
    } catch (e) {
      panel.stats({ status: `error ${e.status || ''}` });
      errors.append(errorBox(e));
    } finally { go.disabled = false; }
  }
}
