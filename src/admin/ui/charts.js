// Hand-written SVG charts: a time series with one or more lines, and a histogram.
// No library: a chart is at most a few hundred elements.

import { h, fmt } from './format.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 150;
const PAD = { l: 62, r: 8, t: 8, b: 20 };

function s(tag, attrs = {}, text = null) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== null) el.textContent = text;
  return el;
}

/** A round upper bound for the y axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function legend(series) {
  return h('div', { class: 'legend' }, series.map((x) =>
    h('span', {}, h('i', { style: `background:${x.color}` }), x.label)));
}

/**
 * Lines over time. `points` have `at` (RFC 3339) and the series' keys; `format`
 * prints a value. Returns an element holding a legend (when several lines) and the SVG.
 */
export function lineChart(points, series, format = (v) => fmt.num(v)) {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img' });
  const n = points.length;
  const max = niceMax(Math.max(0, ...points.flatMap((p) => series.map((x) => p[x.key] ?? 0))));
  const x = (i) => PAD.l + (n <= 1 ? (W - PAD.l - PAD.r) / 2 : (i * (W - PAD.l - PAD.r)) / (n - 1));
  const y = (v) => H - PAD.b - ((v ?? 0) / max) * (H - PAD.t - PAD.b);
  for (const f of [0, 0.5, 1]) {
    const yy = y(max * f);
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'axis' }));
    svg.append(s('text', { x: PAD.l - 4, y: yy + 3, 'text-anchor': 'end' }, format(max * f)));
  }
  if (n > 0) {
    svg.append(s('text', { x: PAD.l, y: H - 5 }, fmt.clock(points[0].at)));
    svg.append(s('text', { x: W - PAD.r, y: H - 5, 'text-anchor': 'end' }, fmt.clock(points[n - 1].at)));
  }
  svg.setAttribute('aria-label', series.map((x) => x.label).join(', ') + ` over ${n} minutes`);
  for (const line of series) {
    // A null value (a minute without calls has no latency) breaks the line.
    let d = '';
    let pen = 'M';
    points.forEach((p, i) => {
      if (p[line.key] === null || p[line.key] === undefined) {
        pen = 'M';
        return;
      }
      d += `${pen}${x(i).toFixed(1)},${y(p[line.key]).toFixed(1)}`;
      pen = 'L';
    });
    svg.append(s('path', { d, fill: 'none', stroke: line.color, 'stroke-width': 1.8, 'data-series': line.key }));
    points.forEach((p, i) => {
      if (p[line.key] === null || p[line.key] === undefined) return;
      const dot = s('circle', { cx: x(i), cy: y(p[line.key]), r: n > 30 ? 1.6 : 2.5, fill: line.color });
      dot.append(s('title', {}, `${fmt.clock(p.at)} ${line.label}: ${format(p[line.key] ?? 0)}`));
      svg.append(dot);
    });
  }
  return h('div', {}, series.length > 1 ? legend(series) : null, svg);
}

/** Bars for histogram buckets ({le_ms, count}); empty buckets at both ends are cut. */
export function histogram(buckets) {
  let first = buckets.findIndex((b) => b.count > 0);
  let last = buckets.length - 1 - [...buckets].reverse().findIndex((b) => b.count > 0);
  if (first < 0) return null;
  first = Math.max(0, first - 1);
  last = Math.min(buckets.length - 1, last + 1);
  const shown = buckets.slice(first, last + 1);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'latency histogram' });
  const max = niceMax(Math.max(...shown.map((b) => b.count)));
  const bw = (W - PAD.l - PAD.r) / shown.length;
  for (const f of [0, 0.5, 1]) {
    const yy = H - PAD.b - f * (H - PAD.t - PAD.b);
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'axis' }));
    svg.append(s('text', { x: PAD.l - 4, y: yy + 3, 'text-anchor': 'end' }, fmt.int(Math.round(max * f))));
  }
  let lower = first > 0 ? buckets[first - 1].le_ms : 0;
  shown.forEach((b, i) => {
    const hgt = (b.count / max) * (H - PAD.t - PAD.b);
    const rect = s('rect', { x: PAD.l + i * bw + 1, y: H - PAD.b - hgt, width: Math.max(1, bw - 2), height: hgt, class: 'bar' });
    const range = b.le_ms === '+Inf' ? `over ${fmt.ms(lower)}` : `${fmt.ms(lower)} – ${fmt.ms(b.le_ms)}`;
    rect.append(s('title', {}, `${range}: ${fmt.int(b.count)} calls`));
    svg.append(rect);
    if (i % 2 === 0) {
      const label = b.le_ms === '+Inf' ? '∞' : fmt.ms(b.le_ms);
      svg.append(s('text', { x: PAD.l + (i + 0.5) * bw, y: H - 5, 'text-anchor': 'middle' }, label));
    }
    lower = b.le_ms;
  });
  return svg;
}
