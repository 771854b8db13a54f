// Line plots drawn by hand on a canvas: one series over kimg, with its range and the latest value.

/** Draws `points` ([x, y] pairs) on `canvas` under `title`. */
export function plot(canvas, title, points) {
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  const pad = { left: 48, right: 8, top: 18, bottom: 18 };
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#222";
  const finite = points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const last = finite.length ? finite[finite.length - 1][1] : null;
  ctx.fillText(last === null ? title : `${title}: ${format(last)}`, pad.left, 12);
  if (finite.length < 2) return;

  let [x0, x1] = range(finite.map((p) => p[0]));
  let [y0, y1] = range(finite.map((p) => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const px = (x) => pad.left + ((x - x0) / (x1 - x0)) * (w - pad.left - pad.right);
  const py = (y) => h - pad.bottom - ((y - y0) / (y1 - y0)) * (h - pad.top - pad.bottom);

  ctx.strokeStyle = "#ccc";
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, h - pad.bottom);
  ctx.lineTo(w - pad.right, h - pad.bottom);
  if (y0 < 0 && y1 > 0) {
    ctx.moveTo(pad.left, py(0));
    ctx.lineTo(w - pad.right, py(0));
  }
  ctx.stroke();

  ctx.fillStyle = "#666";
  ctx.textAlign = "right";
  ctx.fillText(format(y1), pad.left - 4, pad.top + 8);
  ctx.fillText(format(y0), pad.left - 4, h - pad.bottom);
  ctx.textAlign = "left";
  ctx.fillText(`${format(x0)} kimg`, pad.left, h - 4);
  ctx.textAlign = "right";
  ctx.fillText(`${format(x1)} kimg`, w - pad.right, h - 4);
  ctx.textAlign = "left";

  ctx.strokeStyle = "#1565c0";
  ctx.lineWidth = 1.25;
  ctx.beginPath();
  finite.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
  ctx.stroke();
}

function range(values) {
  return values.reduce(([lo, hi], v) => [Math.min(lo, v), Math.max(hi, v)], [Infinity, -Infinity]);
}

function format(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e4)) return v.toExponential(1);
  return v.toFixed(a < 1 ? 3 : a < 100 ? 2 : 0);
}
