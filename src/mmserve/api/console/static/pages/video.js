// Video playground: submit a job, follow its progress, play the MP4 and show its thumbnail; recent jobs.
import { api, costOf, send } from '../lib/api.js';
import { SDK } from '../lib/snippets.js';
import { clear, errorBox, field, fileToDataURL, fmt, h, modelSelect, requestPanel, select, usageStats } from '../lib/ui.js';

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export async function render(root, ctx) {
  const model = modelSelect(ctx, 'video-generation');
  const prompt = h('textarea', { name: 'prompt', rows: 2, required: true, value: 'A lighthouse on a cliff at dusk' });
  const seconds = h('select', { name: 'seconds' });
  const size = h('select', { name: 'size' });
  const fps = h('select', { name: 'fps' });
  const seed = h('input', { type: 'number', name: 'seed', min: 0, placeholder: 'random' });
  const ref = h('input', { type: 'file', name: 'input_reference', accept: 'image/png,image/jpeg,image/webp' });
  const refField = field('Reference image (image-to-video)', ref);
  const bar = h('progress', { max: 100, value: 0, class: 'bar' });
  const status = h('span', { class: 'status' }, 'no job yet');
  const thumb = h('img', { class: 'thumb-lg', alt: 'thumbnail', hidden: true });
  const player = h('video', { controls: true, loop: true, muted: true, playsInline: true, class: 'player', hidden: true });
  const jobs = h('div');
  const errors = h('div');
  const panel = requestPanel();
  const go = h('button', { type: 'submit' }, 'Generate');
  let alive = true;
  const opts = (sel, list, pref) => { clear(sel, list.map((v) => h('option', { value: v }, String(v)))); if (list.includes(pref)) sel.value = pref; };
  const sync = () => {
    const c = model.card()?.capabilities || {};
    opts(seconds, c.durations?.length ? c.durations.map(String) : ['4', '8', '12'], '4');
    opts(size, c.sizes?.length ? c.sizes : ['256x256', '512x512'], '256x256');
    opts(fps, ['', ...(c.fps || [])].map(String), '8');
    fps.firstChild.textContent = '(model default)';
    refField.hidden = !c.image_to_video;
  };
  model.addEventListener('change', sync); sync();

  root.append(h('h1', {}, 'Video'), h('div', { class: 'split' },
    h('div', {}, h('form', { class: 'card', onsubmit: (e) => { e.preventDefault(); submit(); } },
      h('div', { class: 'row' }, field('Model', model), field('seconds', seconds), field('size', size), field('fps', fps), field('seed', seed)),
      field('Prompt', prompt), refField, h('div', { class: 'actions' }, go)), errors, panel.el),
    h('div', {}, h('div', { class: 'card' }, h('h2', {}, 'Job'), h('div', { class: 'progress' }, bar, status), h('div', { class: 'media' }, thumb, player)),
      h('div', { class: 'card' }, h('h2', {}, 'Recent jobs'), jobs))));

  async function submit() {
    clear(errors);
    const body = { model: model.value, prompt: prompt.value, seconds: seconds.value, size: size.value };
    if (fps.value) body.fps = +fps.value;
    if (seed.value) body.seed = +seed.value;
    if (!refField.hidden && ref.files[0]) body.input_reference = { image_url: await fileToDataURL(ref.files[0]) };
    const spec = { path: 'v1/videos', json: body, sdk: { fn: 'client.videos.create_and_poll', known: SDK.videos, result: 'video', tail: ['print(video.status, video.seconds, video.size)', 'client.videos.download_content(video.id).write_to_file("video.mp4")'] } };
    panel.request(spec);
    go.disabled = true;
    try {
      const t0 = performance.now();
      const job = await (await send(spec)).json();
      await follow(job, t0);
    } catch (e) {
      panel.stats({ status: `error ${e.status || ''}` });
      errors.append(errorBox(e));
    } finally { go.disabled = false; listJobs(); }
  }

  // Polls GET /v1/videos/{id} as the server's openai-poll-after-ms asks (within 250 ms..2 s).
  async function follow(job, t0 = performance.now()) {
    const seen = [];
    thumb.hidden = player.hidden = true;
    while (alive) {
      bar.value = job.progress || 0;
      seen.push(job.progress || 0);
      bar.dataset.seen = seen.join(',');
      status.textContent = `${job.id} · ${job.status} · ${job.progress || 0}%`;
      if (job.status === 'completed' || job.status === 'failed') break;
      const res = await send({ path: `v1/videos/${job.id}` });
      const wait = Math.min(2000, Math.max(250, +res.headers.get('openai-poll-after-ms') || 1000));
      job = await res.json();
      if (job.status !== 'completed' && job.status !== 'failed') await sleep(wait);
    }
    if (job.status === 'failed') throw Object.assign(new Error(job.error?.message || 'The job failed.'), { code: job.error?.code });
    if (job.status !== 'completed') return;
    if (!job.content_url) job = await api.get(`v1/videos/${job.id}`); // a listed job: the links come with GET
    // signed, short-lived links (no key in them): the player streams and seeks with Range requests
    thumb.src = job.thumbnail_url;
    thumb.hidden = false;
    player.src = job.content_url;
    player.hidden = false;
    player.play().catch(() => {});
    panel.stats({ latency: fmt.ms(performance.now() - t0), 'server time': job.completed_at ? `${job.completed_at - job.created_at} s` : null, ...usageStats(job.usage, costOf(null, job.usage)) });
    panel.response(job);
  }

  async function listJobs() {
    try {
      const list = await api.get('v1/videos?limit=10');
      clear(jobs, list.data.length ? h('table', { class: 'grid' },
        h('thead', {}, h('tr', {}, ['job', 'status', 'prompt', 'created', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, list.data.map((j) => h('tr', {},
          h('td', { class: 'mono' }, j.id.slice(0, 14) + '…'), h('td', {}, `${j.status} ${j.status === 'in_progress' ? `${j.progress}%` : ''}`),
          h('td', {}, j.prompt.slice(0, 40)), h('td', {}, fmt.time(j.created_at)),
          h('td', {}, j.status === 'completed' && h('button', { type: 'button', class: 'link', onclick: () => follow(j).catch((e) => errors.append(errorBox(e))) }, 'open'), ' ',
            h('button', { type: 'button', class: 'link', onclick: async () => { await api.del(`v1/videos/${j.id}`); listJobs(); } }, 'delete')))))) : h('p', { class: 'muted' }, 'No jobs yet.'));
    } catch (e) { clear(jobs, errorBox(e)); }
  }
  listJobs();
  return () => { alive = false; };
}
