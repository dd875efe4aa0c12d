// Transcription playground: upload a file or record the microphone; segments and words with times.
import { costOf, send, sse } from '../lib/api.js';
import { SDK } from '../lib/snippets.js';
import { clear, errorBox, field, fmt, h, modelSelect, requestPanel, select, usageStats } from '../lib/ui.js';

function segmentsTable(rows, label) {
  return h('table', { class: 'grid segments' },
    h('thead', {}, h('tr', {}, h('th', {}, 'start'), h('th', {}, 'end'), h('th', {}, label))),
    h('tbody', {}, rows.map((r) => h('tr', {}, h('td', { class: 'num' }, r.start.toFixed(2)), h('td', { class: 'num' }, r.end.toFixed(2)), h('td', {}, r.text ?? r.word)))));
}

export async function render(root, ctx) {
  const model = modelSelect(ctx, 'transcription');
  const file = h('input', { type: 'file', name: 'file', accept: 'audio/*,video/mp4,video/webm,.mp3,.wav,.flac,.ogg,.m4a,.webm' });
  const rec = h('button', { type: 'button', class: 'ghost' }, '● Record');
  const preview = h('audio', { controls: true, class: 'player', hidden: true });
  const format = select(['json', 'text', 'srt', 'vtt', 'verbose_json'], 'verbose_json', { name: 'response_format' });
  const language = h('input', { name: 'language', placeholder: 'auto (e.g. en)', size: 8 });
  const seg = h('input', { type: 'checkbox', name: 'segment', checked: true });
  const word = h('input', { type: 'checkbox', name: 'word' });
  const stream = h('input', { type: 'checkbox', name: 'stream' });
  const out = h('div', { class: 'card transcript', hidden: true });
  const errors = h('div');
  const panel = requestPanel();
  const go = h('button', { type: 'submit' }, 'Transcribe');
  let audio = null; // {blob, name}
  let recorder = null;

  const pick = (blob, name) => { audio = { blob, name }; preview.src = URL.createObjectURL(blob); preview.hidden = false; };
  file.addEventListener('change', () => file.files[0] && pick(file.files[0], file.files[0].name));
  rec.addEventListener('click', async () => {
    if (recorder) { recorder.stop(); return; }
    try {
      const media = await navigator.mediaDevices.getUserMedia({ audio: true });
      const parts = [];
      recorder = new MediaRecorder(media);
      recorder.ondataavailable = (e) => parts.push(e.data);
      recorder.onstop = () => {
        media.getTracks().forEach((t) => t.stop());
        pick(new Blob(parts, { type: recorder.mimeType }), `recording.${recorder.mimeType.includes('ogg') ? 'ogg' : 'webm'}`);
        recorder = null; rec.textContent = '● Record';
      };
      recorder.start(); rec.textContent = '■ Stop';
    } catch (e) { errors.append(errorBox({ message: `Microphone: ${e.message}` })); }
  });
  const sync = () => { const v = format.value === 'verbose_json'; seg.disabled = word.disabled = !v; stream.disabled = !['json', 'text'].includes(format.value); };
  format.addEventListener('change', sync); sync();

  root.append(h('h1', {}, 'Transcribe'), h('div', { class: 'split' },
    h('div', {}, h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); run(); } },
      h('div', { class: 'row' }, field('Model', model), field('Audio file', file), rec), preview,
      h('div', { class: 'row' }, field('response_format', format), field('language', language),
        h('label', { class: 'check' }, seg, ' segments'), h('label', { class: 'check' }, word, ' words'), h('label', { class: 'check' }, stream, ' stream')),
      h('div', { class: 'actions' }, go)), errors, panel.el),
    out));

  async function run() {
    clear(errors);
    if (!audio) return errors.append(errorBox({ message: 'Choose an audio file or record one first.' }));
    const form = [['file', audio.blob, audio.name], ['model', model.value], ['response_format', format.value]];
    if (language.value) form.push(['language', language.value]);
    if (format.value === 'verbose_json') for (const [box, g] of [[seg, 'segment'], [word, 'word']]) if (box.checked) form.push(['timestamp_granularities[]', g]);
    const streaming = stream.checked && !stream.disabled;
    if (streaming) form.push(['stream', true]);
    const spec = { path: 'v1/audio/transcriptions', form, stream: streaming, sdk: { fn: 'client.audio.transcriptions.create', known: SDK.transcribe, tail: streaming ? ['for event in result:', '    print(event)'] : ['print(result)'] } };
    panel.request(spec);
    go.disabled = true;
    const t0 = performance.now();
    let first = null;
    try {
      const res = await send(spec);
      const text = h('p', { class: 'text' });
      clear(out, h('h2', {}, 'Transcript'), text); out.hidden = false;
      let data;
      if (streaming) {
        for await (const ev of sse(res)) {
          if (ev.type === 'transcript.text.delta') { first ??= performance.now() - t0; text.textContent += ev.delta; } else if (ev.type === 'transcript.text.done') data = ev;
        }
        text.textContent = data?.text ?? text.textContent;
      } else if ((res.headers.get('content-type') || '').includes('json')) {
        data = await res.json();
        text.textContent = data.text;
        if (data.segments?.length) out.append(h('h3', {}, 'Segments'), segmentsTable(data.segments, 'text'));
        if (data.words?.length) out.append(h('h3', {}, 'Words'), segmentsTable(data.words, 'word'));
        if (data.language) out.append(h('p', { class: 'muted' }, `language: ${data.language} · duration ${fmt.sec(data.duration)}`));
      } else {
        data = await res.text();
        text.className = 'text mono pre';
        text.textContent = data;
      }
      const seconds = data?.usage?.seconds ?? data?.duration;
      panel.stats({ latency: fmt.ms(performance.now() - t0), 'first text': first != null ? fmt.ms(first) : null, ...usageStats(data?.usage || (seconds ? { seconds } : null), costOf(res, data?.usage)) });
      panel.response(data);
    } catch (e) {
      panel.stats({ status: `error ${e.status || ''}` });
      errors.append(errorBox(e));
    } finally { go.disabled = false; }
  }
  return () => recorder?.stop();
}
