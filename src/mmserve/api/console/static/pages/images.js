// Images playground: generate (JSON), and edit with a mask painted on a canvas (multipart /v1/images/edits).
import { costOf, send } from '../lib/api.js';
import { SDK } from '../lib/snippets.js';
import { b64ToBlob, clear, errorBox, field, fmt, h, modelSelect, requestPanel, select, usageStats } from '../lib/ui.js';

const SAVE = ['import base64', 'for i, image in enumerate(result.data):', '    open(f"image_{i}.png", "wb").write(base64.b64decode(image.b64_json))'];

// The mask painter: an image with a canvas over it, in the image's own pixels.
function painter() {
  const img = h('img', { alt: 'image to edit' });
  const paint = h('canvas', { class: 'paint' });
  const brush = h('input', { type: 'range', name: 'brush', min: 4, max: 128, value: '32' });
  let drawing = false, last = null, painted = false, source = null;
  const pos = (e) => [(e.offsetX * paint.width) / paint.clientWidth, (e.offsetY * paint.height) / paint.clientHeight];
  const line = (a, b) => {
    const g = paint.getContext('2d');
    Object.assign(g, { strokeStyle: '#ff2d55', lineCap: 'round', lineJoin: 'round', lineWidth: (+brush.value * paint.width) / paint.clientWidth });
    g.beginPath(); g.moveTo(...a); g.lineTo(...b); g.stroke();
    painted = true;
  };
  paint.addEventListener('pointerdown', (e) => { drawing = true; last = pos(e); line(last, last); paint.setPointerCapture(e.pointerId); });
  paint.addEventListener('pointermove', (e) => { if (drawing) { const p = pos(e); line(last, p); last = p; } });
  paint.addEventListener('pointerup', () => { drawing = false; });
  const wipe = () => { paint.getContext('2d').clearRect(0, 0, paint.width, paint.height); painted = false; };
  const stage = h('div', { class: 'stage', hidden: true }, img, paint);
  return {
    el: h('div', {}, stage, h('div', { class: 'row' }, field('Brush', brush), h('button', { type: 'button', class: 'ghost', onclick: wipe }, 'Clear mask'))),
    async load(blob, name) {
      source = { blob, name };
      img.src = URL.createObjectURL(blob);
      await img.decode();
      Object.assign(paint, { width: img.naturalWidth, height: img.naturalHeight });
      stage.hidden = false;
      wipe();
    },
    get source() { return source; },
    get size() { return `${img.naturalWidth}x${img.naturalHeight}`; },
    // OpenAI's mask: same size, fully transparent (alpha 0) where the image is repainted.
    async mask() {
      if (!painted) return null;
      const m = h('canvas', { width: paint.width, height: paint.height });
      const g = m.getContext('2d');
      g.fillStyle = '#000'; g.fillRect(0, 0, m.width, m.height);
      g.globalCompositeOperation = 'destination-out'; g.drawImage(paint, 0, 0);
      return new Promise((ok) => m.toBlob(ok, 'image/png'));
    },
  };
}

export async function render(root, ctx) {
  const panel = requestPanel();
  const out = h('div', { class: 'gallery' });
  const errors = h('div');
  const model = modelSelect(ctx, 'image-generation');
  const prompt = h('textarea', { name: 'prompt', rows: 2, required: true, value: 'A lighthouse on a cliff at dusk' });
  const size = h('select', { name: 'size' });
  const n = h('input', { type: 'number', name: 'n', value: '1', min: 1, max: 10 });
  const quality = select(['auto', 'low', 'medium', 'high'], 'low', { name: 'quality' });
  const seed = h('input', { type: 'number', name: 'seed', placeholder: 'random', min: 0 });
  const outFormat = select(['png', 'jpeg', 'webp'], 'png', { name: 'output_format' });
  const mode = select([['generate', 'Generate'], ['edit', 'Edit (mask)']], 'generate', { name: 'mode' });
  const strength = h('input', { type: 'number', name: 'strength', value: '0.8', min: 0.05, max: 1, step: 0.05 });
  const file = h('input', { type: 'file', name: 'image', accept: 'image/png,image/jpeg,image/webp' });
  const paint = painter();
  const editBox = h('div', { class: 'edit', hidden: true }, h('div', { class: 'row' }, field('Image', file), field('strength', strength)),
    h('p', { class: 'muted' }, 'Paint the area to repaint; without a mask the whole image is redrawn (image-to-image).'), paint.el);
  const sizes = () => {
    const card = model.card();
    const list = card?.capabilities.sizes?.length ? card.capabilities.sizes : ['1024x1024', '512x512', '256x256'];
    clear(size, (mode.value === 'edit' ? ['auto', ...list] : list).map((s) => h('option', { value: s }, s)));
    size.value = mode.value === 'edit' ? 'auto' : list.includes('256x256') ? '256x256' : list[0];
    n.max = card?.limits.max_n || 10;
  };
  const sync = () => { editBox.hidden = mode.value !== 'edit'; sizes(); };
  model.addEventListener('change', sizes); mode.addEventListener('change', sync); sync();
  file.addEventListener('change', () => file.files[0] && paint.load(file.files[0], file.files[0].name));
  const go = h('button', { type: 'submit' }, 'Generate');
  mode.addEventListener('change', () => { go.textContent = mode.value === 'edit' ? 'Edit' : 'Generate'; });

  root.append(h('h1', {}, 'Images'), h('div', { class: 'split' },
    h('div', {}, h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); run(); } },
      h('div', { class: 'row' }, field('Mode', mode), field('Model', model), field('size', size), field('n', n)),
      field('Prompt', prompt),
      h('div', { class: 'row' }, field('quality', quality), field('seed', seed), field('output_format', outFormat)),
      editBox, h('div', { class: 'actions' }, go)), errors, panel.el),
    out));

  async function spec() {
    const common = { model: model.value, prompt: prompt.value, n: +n.value, size: size.value, quality: quality.value, output_format: outFormat.value, ...(seed.value ? { seed: +seed.value } : {}) };
    if (mode.value === 'generate') {
      return { path: 'v1/images/generations', json: common, sdk: { fn: 'client.images.generate', known: SDK.images, tail: SAVE } };
    }
    const src = paint.source;
    if (!src) throw new Error('Choose an image to edit (or "Edit" one you generated).');
    const mask = await paint.mask();
    const form = [['image', src.blob, src.name], ...(mask ? [['mask', mask, 'mask.png']] : []), ...Object.entries(common), ['strength', +strength.value]];
    return { path: 'v1/images/edits', form, sdk: { fn: 'client.images.edit', known: SDK.images, tail: SAVE } };
  }

  async function run() {
    clear(errors);
    go.disabled = true;
    try {
      const s = await spec();
      panel.request(s);
      const t0 = performance.now();
      const res = await send(s);
      const data = await res.json();
      const ms = performance.now() - t0;
      const type = `image/${data.output_format || 'png'}`;
      clear(out, data.data.map((d, i) => {
        const blob = b64ToBlob(d.b64_json, type);
        const src = URL.createObjectURL(blob);
        return h('figure', { class: 'result' }, h('img', { src, alt: `generated image ${i + 1}`, class: 'generated' }),
          h('figcaption', {}, `${data.size} · ${data.quality || ''} `,
            h('a', { href: src, download: `image_${i}.${data.output_format || 'png'}` }, 'download'), ' · ',
            h('button', { type: 'button', class: 'link', onclick: () => { mode.value = 'edit'; sync(); go.textContent = 'Edit'; paint.load(blob, `image_${i}.png`); } }, 'edit')));
      }));
      const u = data.usage || {};
      panel.stats({ latency: fmt.ms(ms), size: data.size, ...usageStats(u, costOf(res, u)) });
      panel.response(data);
    } catch (e) {
      panel.stats({ status: `error ${e.status || ''}` });
      errors.append(errorBox(e));
    } finally { go.disabled = false; }
  }
}
