// History charts over the vendored uPlot (global `uPlot`, loaded before the
// modules). A chart holds named series of [unix seconds, value] points for
// the last hour: filled from /api/history, then extended by live samples.

const WINDOW_S = 3600;
const HEIGHT = 190;

function css(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function palette() {
  return [1, 2, 3, 4, 5, 6].map((i) => css(`--chart-${i}`, "#4f7cff"));
}

/** Every x of every series, sorted, and each series' y at them (null where absent). */
function align(series) {
  const xs = new Set();
  for (const s of series) for (const [x] of s.points) xs.add(x);
  const x = [...xs].sort((a, b) => a - b);
  const index = new Map(x.map((v, i) => [v, i]));
  const ys = series.map((s) => {
    const y = new Array(x.length).fill(null);
    for (const [px, py] of s.points) y[index.get(px)] = py;
    return y;
  });
  return [x, ...ys];
}

export class Chart {
  /**
   * @param {HTMLElement} el where the chart goes
   * @param {{format: (v: number) => string, min?: number, max?: number}} opts
   */
  constructor(el, opts) {
    this.el = el;
    this.opts = opts;
    this.series = new Map(); // label -> {label, points}
    this.plot = null;
    this.shape = "";
    new ResizeObserver(() => this.resize()).observe(el);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.rebuild());
  }

  /** Replaces every series: [{label, points: [[unix_ms, value], ...]}]. */
  set(list) {
    this.series = new Map();
    for (const s of list) {
      this.series.set(s.label, { label: s.label, points: s.points.map(([ms, v]) => [Math.floor(ms / 1000), v]) });
    }
    this.render();
  }

  /** Adds one live sample to a series (new series are created). */
  push(label, ms, value) {
    let s = this.series.get(label);
    if (!s) {
      s = { label, points: [] };
      this.series.set(label, s);
    }
    const x = Math.floor(ms / 1000);
    const last = s.points[s.points.length - 1];
    if (last && x <= last[0]) return;
    s.points.push([x, value]);
    const oldest = x - WINDOW_S;
    while (s.points.length && s.points[0][0] < oldest) s.points.shift();
    this.render();
  }

  /** How many points the chart draws. */
  points() {
    let n = 0;
    for (const s of this.series.values()) n += s.points.length;
    return n;
  }

  render() {
    const list = [...this.series.values()].slice(0, 6);
    this.el.dataset.points = String(this.points());
    this.el.dataset.series = String(list.length);
    const shape = list.map((s) => s.label).join("\u0000");
    const data = align(list);
    if (!this.plot || shape !== this.shape) {
      this.shape = shape;
      this.build(list, data);
    } else {
      this.plot.setData(data);
    }
  }

  rebuild() {
    this.shape = "";
    this.render();
  }

  build(list, data) {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    if (typeof uPlot === "undefined") return;
    const colors = palette();
    const axis = { stroke: css("--muted", "#888"), grid: { stroke: css("--grid", "#8883"), width: 1 }, ticks: { show: false }, font: "11px system-ui, sans-serif" };
    const fmt = this.opts.format;
    const range = this.opts.max === undefined ? undefined : (u, lo, hi) => [this.opts.min ?? 0, Math.max(this.opts.max, hi)];
    this.plot = new uPlot(
      {
        width: Math.max(this.el.clientWidth, 200),
        height: HEIGHT,
        legend: { show: list.length > 1 },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: range ? { range } : {} },
        axes: [
          {
            ...axis,
            space: 70,
            incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
            values: (u, ticks) => {
              const span = (u.scales.x.max ?? 0) - (u.scales.x.min ?? 0);
              const opts = span < 600 ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false } : { hour: "2-digit", minute: "2-digit", hour12: false };
              return ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], opts));
            },
          },
          { ...axis, size: 56, values: (u, ticks) => ticks.map((v) => fmt(v)) },
        ],
        series: [
          {},
          ...list.map((s, i) => ({
            label: s.label,
            stroke: colors[i % colors.length],
            fill: list.length === 1 ? colors[0] + "22" : undefined,
            width: 1.75,
            points: { show: false },
            spanGaps: false,
            value: (u, v) => (v == null ? "–" : fmt(v)),
          })),
        ],
      },
      data,
      this.el,
    );
  }

  resize() {
    if (this.plot && this.el.clientWidth > 0) this.plot.setSize({ width: this.el.clientWidth, height: HEIGHT });
  }
}

export const percent = (v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;

export function number(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

export function bytes(v) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}
