// The page's curves, drawn by uPlot (web/uplot.js, vendored unchanged from the npm package uplot
// 1.6.32, MIT): it sizes its canvas to the screen's pixel density, shows the values under the cursor
// in its legend (kept in step across all the plots) and redraws thousands of points cheaply. This
// file adds the smoothing and the marks where the schedule changes phase.
import uPlot from "./uplot.js";

const HEIGHT = 150;
const BLUE = "#1565c0";

/** `values` smoothed as TensorBoard does: an exponential moving average with weight `w` on the past,
 * debiased so that the first points are not pulled toward 0. */
export function smooth(values, w) {
  let last = 0;
  let n = 0;
  return values.map((v) => {
    last = last * w + (1 - w) * v;
    n++;
    return w === 0 ? v : last / (1 - w ** n);
  });
}

export function format(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e4)) return v.toExponential(2);
  return v.toFixed(a < 1 ? 4 : a < 100 ? 3 : 1);
}

// An axis label: at most 3 significant digits, so that it fits the axis.
function tick(v) {
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(1) : String(Number(v.toPrecision(3)));
}

/** One plot over kimg in `el`: a faint raw line and its smoothed line, or (`smoothed: false`) the
 * raw values alone with their points (the SWD, measured only every few ticks). */
export class Chart {
  constructor(el, title, { smoothed = true } = {}) {
    this.el = el;
    this.smoothed = smoothed;
    this.markers = [];
    const value = (u, v) => format(v);
    const series = [{ label: "kimg", value: (u, v) => (v === null || v === undefined ? "–" : v.toFixed(3)) }];
    if (smoothed) {
      series.push({ label: "raw", stroke: "rgba(21, 101, 192, 0.3)", width: 1, value });
      series.push({ label: "smoothed", stroke: BLUE, width: 1.5, value });
    } else {
      series.push({ label: "value", stroke: BLUE, width: 1.5, value, points: { show: true, size: 5 } });
    }
    this.plot = new uPlot(
      {
        title,
        width: this.width(),
        height: HEIGHT,
        cursor: { sync: { key: "pggan" } },
        scales: { x: { time: false } },
        series,
        axes: [{ size: 32 }, { size: 52, values: (u, splits) => splits.map(tick) }],
        hooks: { draw: [(u) => this.drawMarkers(u)] },
      },
      series.map(() => []),
      el,
    );
    new ResizeObserver(() => this.plot.setSize({ width: this.width(), height: HEIGHT })).observe(el);
  }

  width() {
    return Math.max(160, Math.floor(this.el.clientWidth));
  }

  /** Plots `points` ([kimg, value] pairs, kimg ascending), smoothed with `weight`, and marks each of
   * `markers` ({kimg, label}) that falls inside their span. */
  update(points, weight, markers) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    const data = this.smoothed ? [xs, ys, smooth(ys, weight)] : [xs, ys];
    const span = xs.length ? [xs[0], xs[xs.length - 1]] : [0, -1];
    this.markers = markers.filter((m) => m.kimg >= span[0] && m.kimg <= span[1]);
    this.plot.setData(data);
    // The legend shows the newest values unless the cursor is over a plot.
    if (xs.length && this.plot.cursor.left < 0) this.plot.setLegend({ idx: xs.length - 1 });
    this.el.dataset.points = String(xs.length);
    this.el.dataset.lastKimg = xs.length ? String(xs[xs.length - 1]) : "";
    this.el.dataset.markers = String(this.markers.length);
  }

  /** A dashed line at each phase change, labelled where a resolution starts to fade in (in the
   * plot's canvas pixels). */
  drawMarkers(u) {
    const ctx = u.ctx;
    const r = uPlot.pxRatio;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.strokeStyle = "#999";
    ctx.fillStyle = "#666";
    ctx.lineWidth = r;
    ctx.setLineDash([4 * r, 3 * r]);
    ctx.font = `${10 * r}px system-ui, sans-serif`;
    for (const m of this.markers) {
      const x = Math.round(u.valToPos(m.kimg, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.fillText(m.label, x + 3 * r, top + 10 * r);
    }
    ctx.restore();
  }
}
