// Image and video attachments for chat: file picker, paste and drop; a video becomes a few frames.
import { clear, fileToDataURL, h } from './ui.js';

const FRAME_SIDE = 512;

// A video file as `count` JPEG data URIs sampled evenly (chat takes images; mmserve has no video parts).
export async function videoFrames(file, count = 4) {
  const src = URL.createObjectURL(file);
  const v = h('video', { muted: true, preload: 'auto', src });
  try {
    await new Promise((ok, fail) => { v.onloadeddata = ok; v.onerror = () => fail(new Error('This browser cannot decode that video.')); });
    const scale = Math.min(1, FRAME_SIDE / Math.max(v.videoWidth, v.videoHeight));
    const c = h('canvas', { width: Math.round(v.videoWidth * scale), height: Math.round(v.videoHeight * scale) });
    const out = [];
    for (let i = 0; i < count; i++) {
      v.currentTime = ((i + 0.5) * v.duration) / count;
      await new Promise((ok) => { v.onseeked = ok; });
      c.getContext('2d').drawImage(v, 0, 0, c.width, c.height);
      out.push(c.toDataURL('image/jpeg', 0.85));
    }
    return out;
  } finally {
    URL.revokeObjectURL(src);
  }
}

// The attachments widget: {el, urls(), reset(), onerror}.
export function attachments({ frames = 4, target = document } = {}) {
  let items = []; // {url, label}
  const list = h('div', { class: 'thumbs' });
  const input = h('input', { type: 'file', name: 'attach', accept: 'image/png,image/jpeg,image/webp,video/*', multiple: true, onchange: () => { add([...input.files]); input.value = ''; } });
  const w = { el: null, urls: () => items.map((i) => i.url), reset: () => { items = []; draw(); }, onerror: () => {}, add };
  w.el = h('div', { class: 'attach' }, h('label', { class: 'button ghost' }, 'Attach image or video', input), h('small', { class: 'muted' }, ' or paste / drop an image'), list);

  async function add(files) {
    for (const f of files) {
      try {
        if (f.type.startsWith('video/')) {
          (await videoFrames(f, frames)).forEach((url, i) => items.push({ url, label: `${f.name} · frame ${i + 1}/${frames}` }));
        } else if (f.type.startsWith('image/')) items.push({ url: await fileToDataURL(f), label: f.name || 'pasted image' });
      } catch (e) { w.onerror(e); }
    }
    draw();
  }
  function draw() {
    clear(list, items.map((it, i) => h('figure', { class: 'thumb' }, h('img', { src: it.url, alt: it.label, title: it.label }),
      h('button', { type: 'button', class: 'x', title: 'Remove', 'aria-label': `Remove ${it.label}`, onclick: () => { items.splice(i, 1); draw(); } }, '×'))));
  }
  target.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData?.files || [])].filter((f) => f.type.startsWith('image/'));
    if (files.length) { e.preventDefault(); add(files); }
  });
  w.el.addEventListener('dragover', (e) => e.preventDefault());
  w.el.addEventListener('drop', (e) => { e.preventDefault(); add([...e.dataTransfer.files]); });
  return w;
}

// A chat user message: plain text, or text and image parts.
export function userContent(text, urls) {
  return urls.length ? [{ type: 'text', text }, ...urls.map((url) => ({ type: 'image_url', image_url: { url } }))] : text;
}
