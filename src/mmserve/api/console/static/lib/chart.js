// A stacked bar chart in inline SVG: labels on x, one colour per series, a <title> per bar.
const NS = 'http://www.w3.org/2000/svg';
const COLORS = ['#3b6fd8', '#e07b39', '#3aa675', '#b94fb0', '#d0a126', '#4bb3c4', '#c8485a', '#7a7f8c'];
export const color = (i) => COLORS[i % COLORS.length];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
}

// labels: [string], series: [{name, values: [number]}], format: number -> string (ticks and tooltips)
export function barChart({ labels, series, format = String, title = '', integer = false, width = 720, height = 220 }) {
  const m = { l: 64, r: 8, t: 8, b: 28 };
  const W = width - m.l - m.r, H = height - m.t - m.b;
  const totals = labels.map((_, i) => series.reduce((a, sr) => a + (sr.values[i] || 0), 0));
  const top = niceMax(Math.max(0, ...totals));
  const max = integer ? Math.max(4, Math.ceil(top / 4) * 4) : top; // whole-number ticks for counts
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': title });
  for (let k = 0; k <= 4; k++) {
    const y = m.t + H - (H * k) / 4;
    svg.append(s('line', { x1: m.l, x2: m.l + W, y1: y, y2: y, class: 'grid' }), s('text', { x: m.l - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, format((max * k) / 4)));
  }
  const bw = W / Math.max(1, labels.length);
  const every = Math.ceil(labels.length / 12);
  labels.forEach((label, i) => {
    let y = m.t + H;
    series.forEach((sr, j) => {
      const v = sr.values[i] || 0;
      if (!v) return;
      const bh = (H * v) / max;
      y -= bh;
      const r = s('rect', { x: m.l + i * bw + bw * 0.15, y, width: bw * 0.7, height: Math.max(bh, 0.5), fill: color(j) });
      r.append(s('title', {}, `${label} · ${sr.name}: ${format(v)}`));
      svg.append(r);
    });
    if (i % every === 0) svg.append(s('text', { x: m.l + i * bw + bw / 2, y: height - 8, 'text-anchor': 'middle', class: 'tick' }, label));
  });
  return svg;
}

export function legend(names) {
  const el = document.createElement('div');
  el.className = 'legend';
  names.forEach((n, i) => {
    const sw = document.createElement('i');
    sw.className = `sw c${i % COLORS.length}`;
    el.append(sw, n);
  });
  return el;
}
