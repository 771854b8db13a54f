// The page: checks for WebGPU, loads the WASM package, and drives a training session (src/web.rs)
// from the controls. Training is an async loop that submits a few steps, awaits their losses and
// yields to the event loop, so the page never freezes; samples refresh every few seconds. Datasets are
// decoded the same way, a chunk of images at a time.
import init, { DatasetLoader, Files, Session, selftest } from "../pkg/pggan.js";
import { Chart } from "./plot.js";

const $ = (id) => document.getElementById(id);
const SERIES = { d_loss: "D loss", g_loss: "G loss", penalty: "Gradient penalty", wasserstein: "Wasserstein estimate" };
const SAMPLE_EVERY_MS = 3000;
const WALK_FRAMES = 24;
// Sample grids kept for the history slider (at most 1 MiB each at 64x64).
const GRIDS_KEPT = 32;
const IMAGE_FILE = /\.(png|jpe?g|webp|bmp|gif)$/i;

let session = null;
let running = false;
let loop = Promise.resolve();
// The run's curves: {kimg, d_loss, g_loss, penalty, wasserstein, swd?, resolution, alpha}, as the
// session keeps (and thins) them (`Session.history`).
let history = [];
// Where the schedule's phases start, from the session's status: {kimg, label}.
let phaseMarks = [];
// Recent sample grids, oldest first: {kimg, res, side, image (a canvas at the grid's own size)}.
let grids = [];
// The grid the slider shows (an index into `grids`), or null to follow the newest.
let shownGrid = null;
// Steps taken since the last saved checkpoint (or since the run was loaded).
let unsaved = false;
let charts = null;
let chosen = { name: "", files: [] };
let walkTimer = null;

// wasm-bindgen refuses a call into the session while another one is awaiting: chain them.
let calls = Promise.resolve();
function serial(fn) {
  const p = calls.then(fn);
  calls = p.catch(() => {});
  return p;
}

// A macrotask boundary that background tabs do not throttle (unlike setTimeout).
function yieldToPage() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

const message = (e) => (e && e.message) || String(e);

// idle (no session), busy, running, paused, finished, sampling (a checkpoint loaded to sample), no-webgpu.
function setState(state) {
  document.body.dataset.state = state;
  const is = (...states) => states.includes(state);
  const has = session !== null;
  $("start").disabled = !is("idle");
  $("pause").disabled = !is("running");
  $("resume").disabled = !is("paused");
  $("reset").disabled = !has || is("busy");
  $("save").disabled = !has || is("busy");
  $("export").disabled = !has || is("busy");
  $("walk-button").disabled = !has || is("busy");
  $("load-file").disabled = !is("idle", "paused", "finished", "sampling");
  $("load-label").classList.toggle("disabled", $("load-file").disabled);
  $("selftest").disabled = !is("idle", "paused", "finished", "sampling");
  $("download-png").disabled = grids.length === 0;
}

// ---- configuration and data ----

function merge(base, given) {
  for (const [k, v] of Object.entries(given)) {
    if (v && typeof v === "object" && !Array.isArray(v) && base[k] && typeof base[k] === "object") merge(base[k], v);
    else base[k] = v;
  }
  return base;
}

// The page's settings: every control marked with the configuration field it sets (index.html's
// `data-setting`, checked against the configuration by tests/settings.rs).
const settingControls = () => [...document.querySelectorAll("[data-setting]")];

// A control's value at `cfg`'s dotted path `path`, creating the objects on the way.
function setPath(cfg, path, value) {
  const keys = path.split(".");
  const last = keys.pop();
  let at = cfg;
  for (const k of keys) at = at[k] ??= {};
  at[last] = value;
}

function readConfig() {
  const cfg = {};
  for (const el of settingControls()) {
    const v = Number(el.value);
    const name = el.closest("label").firstChild.textContent.trim();
    if (el.step === "any") {
      if (!(v > 0)) throw new Error(`${name} must be a positive number`);
    } else if (!Number.isInteger(v) || v < 0) {
      throw new Error(`${name} must be a whole number`);
    }
    setPath(cfg, el.dataset.setting, v);
  }
  const extra = $("extra-json").value.trim();
  if (extra) {
    let given;
    try {
      given = JSON.parse(extra);
    } catch (e) {
      throw new Error(`the other settings are not valid JSON: ${e.message}`);
    }
    merge(cfg, given);
  }
  return cfg;
}

const useFiles = () => $("data-files").checked;

function choose(name, files) {
  chosen = { name, files };
  $("data-files").checked = true;
  $("files-info").textContent = files.length
    ? `${files.length} files from ${name}; they are decoded when the run starts.`
    : "No images found there.";
}

// The person's images as a `Files` for WASM, or undefined for the emoji set.
async function datasetFiles() {
  if (!useFiles()) return undefined;
  if (!chosen.files.length) throw new Error("pick or drop some images first, or choose the emoji");
  const files = new Files(chosen.name);
  for (const f of chosen.files) files.add(f.webkitRelativePath || f.name, new Uint8Array(await f.arrayBuffer()));
  return files;
}

// Decodes every image of a `DatasetLoader` in chunks of about 50 ms, yielding between them so the page
// keeps painting; resolves with the loader, ready for `Session.create` or `Session.resume`.
async function decode(loader) {
  let k = 1;
  while (loader.done < loader.total) {
    say(`Decoding images: ${loader.done} / ${loader.total}`);
    await yieldToPage();
    const t0 = performance.now();
    loader.prepare(k);
    const dt = performance.now() - t0;
    k = Math.max(1, Math.min(4 * k, Math.round((k * 50) / Math.max(dt, 1))));
  }
  say(`Setting up the run on ${loader.total} images…`);
  await yieldToPage();
  return loader;
}

// Every file under a dropped folder (entries are read in batches until one comes back empty).
async function entryFiles(entry) {
  if (entry.isFile) return [await new Promise((ok, fail) => entry.file(ok, fail))];
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (!batch.length) return out;
    for (const e of batch) out.push(...(await entryFiles(e)));
  }
}

// ---- the session ----

function adopt(next) {
  if (session) session.free();
  session = next;
  history = session.history();
  phaseMarks = session.status().phase_marks;
  grids = [];
  shownGrid = null;
  unsaved = false;
  const cfg = session.config();
  $("config-json").textContent = cfg;
  showConfig(JSON.parse(cfg));
  drawPlots();
}

// The controls show the configuration of the run in use (a loaded checkpoint's included).
function showConfig(cfg) {
  for (const el of settingControls()) {
    const value = el.dataset.setting.split(".").reduce((at, k) => at[k], cfg);
    if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === String(value))) el.add(new Option(value));
    el.value = String(value);
  }
}

// The figures as the session computes them (src/train/driver.rs, `Progress`).
function showProgress(st) {
  $("p-res").textContent = `${st.resolution}x${st.resolution} of ${st.max_resolution}`;
  $("p-phase").textContent = st.phase;
  $("p-alpha").textContent = st.alpha.toFixed(3);
  $("p-kimg").textContent = `${st.kimg.toFixed(3)} / ${st.total_kimg}`;
  $("p-rate").textContent = st.images_per_second === null ? "–" : st.images_per_second.toFixed(1);
  $("p-steps").textContent = String(st.steps);
  $("progress-bar").value = st.done;
  let text = `${(100 * st.done).toFixed(1)}% of the schedule (${st.kimg.toFixed(3)} of ${st.total_kimg} kimg)`;
  if (st.finished) text = `Schedule complete (${st.total_kimg} kimg)`;
  else if (st.eta !== null) text += `, about ${st.eta} left`;
  $("progress-text").textContent = text;
}

// The newest sliced Wasserstein distance of the history, where one was measured.
function showSwd() {
  const last = history.findLast((h) => h.swd !== undefined && h.swd !== null);
  if (last) $("p-swd").textContent = `${last.swd.toFixed(1)} at ${last.kimg.toFixed(1)} kimg`;
}

function drawPlots() {
  if (!charts) {
    charts = {};
    for (const [key, title] of Object.entries(SERIES)) charts[key] = new Chart($(`plot-${key}`), title);
    charts.swd = new Chart($("plot-swd"), "SWD x1e3 (average over levels)", { smoothed: false });
  }
  const weight = Number($("smoothing").value);
  const markers = phaseMarks;
  for (const key of Object.keys(SERIES)) charts[key].update(history.map((h) => [h.kimg, h[key]]), weight, markers);
  const swd = history.filter((h) => h.swd !== undefined && h.swd !== null);
  charts.swd.update(swd.map((h) => [h.kimg, h.swd]), weight, markers);
}

// A WASM `Frame` on a canvas of its own size.
function frameCanvas(frame, canvas = document.createElement("canvas")) {
  canvas.width = frame.width;
  canvas.height = frame.height;
  const pixels = new Uint8ClampedArray(frame.rgba.buffer);
  canvas.getContext("2d").putImageData(new ImageData(pixels, frame.width, frame.height), 0, 0);
  frame.free();
  return canvas;
}

// Where the cells of a side x side grid go on the sample canvas, in its device pixels: the canvas is
// drawn at the screen's density with gaps of about 3 CSS pixels, so low resolutions stay sharp
// and each sample reads as one image.
function gridLayout(canvas, side) {
  const ratio = window.devicePixelRatio || 1;
  const size = Math.max(side, Math.round(canvas.getBoundingClientRect().width * ratio));
  const gap = side > 1 ? Math.max(1, Math.round(3 * ratio)) : 0;
  const cell = Math.max(1, Math.floor((size - gap * (side - 1)) / side));
  const start = Math.floor((size - cell * side - gap * (side - 1)) / 2);
  return { size, gap, cell, start };
}

const currentGrid = () => grids[shownGrid ?? grids.length - 1];

function drawGrid() {
  const canvas = $("samples");
  const g = currentGrid();
  if (!g) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    $("tick-label").textContent = "–";
    return;
  }
  const { size, gap, cell, start } = gridLayout(canvas, g.side);
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, size, size);
  ctx.imageSmoothingEnabled = false;
  const src = g.image.width / g.side;
  for (let r = 0; r < g.side; r++) {
    for (let c = 0; c < g.side; c++) {
      ctx.drawImage(g.image, c * src, r * src, src, src, start + c * (cell + gap), start + r * (cell + gap), cell, cell);
    }
  }
  canvas.dataset.grid = `${g.image.width}x${g.image.height}`;
  const which = shownGrid === null ? "newest" : `${shownGrid + 1} of ${grids.length}`;
  $("tick-label").textContent = `${g.kimg.toFixed(3)} kimg, ${g.res}x${g.res} (${which})`;
}

function updateSlider() {
  const slider = $("tick-slider");
  slider.max = String(Math.max(0, grids.length - 1));
  slider.value = String(shownGrid ?? grids.length - 1);
  slider.disabled = grids.length < 2;
  $("download-png").disabled = grids.length === 0;
}

async function refreshSamples() {
  const canvas = $("samples");
  const [frame, st] = await serial(async () => {
    const side = Math.max(2, Math.min(8, Math.floor(512 / session.status().max_resolution)));
    return [await session.samples(side), session.status()];
  });
  const side = Math.round(frame.width / st.max_resolution);
  grids.push({ kimg: st.kimg, res: st.resolution, side, image: frameCanvas(frame) });
  if (grids.length > GRIDS_KEPT) {
    grids.shift();
    if (shownGrid !== null) shownGrid = Math.max(0, shownGrid - 1);
  }
  updateSlider();
  drawGrid();
  canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + 1);
}

// Clicking a sample shows it alone, large.
function enlarge(event) {
  const g = currentGrid();
  if (!g) return;
  const canvas = $("samples");
  const rect = canvas.getBoundingClientRect();
  const { gap, cell, start } = gridLayout(canvas, g.side);
  const scale = canvas.width / rect.width;
  const at = (v) => {
    const offset = v * scale - start;
    const i = Math.floor(offset / (cell + gap));
    return offset >= 0 && i < g.side && offset - i * (cell + gap) < cell ? i : null;
  };
  const col = at(event.clientX - rect.left);
  const row = at(event.clientY - rect.top);
  if (col === null || row === null) return;
  const src = g.image.width / g.side;
  const zoom = $("zoom-canvas");
  zoom.width = zoom.height = src;
  zoom.getContext("2d").drawImage(g.image, col * src, row * src, src, src, 0, 0, src, src);
  const index = row * g.side + col;
  zoom.dataset.sample = String(index);
  $("zoom-caption").textContent =
    `Sample ${index + 1} of ${g.side * g.side} at ${g.kimg.toFixed(3)} kimg: generated at ${g.res}x${g.res}` +
    (g.res < src ? `, shown at ${src}x${src}.` : ".");
  $("zoom").showModal();
}

function downloadPng() {
  const g = currentGrid();
  g.image.toBlob((blob) => download(blob, `pggan-samples-${g.kimg.toFixed(3)}kimg.png`), "image/png");
}

async function refreshWalk() {
  const strip = frameCanvas(await serial(() => session.walk(WALK_FRAMES)));
  const canvas = $("walk");
  const size = strip.height;
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  let i = 0;
  const draw = () => {
    ctx.drawImage(strip, i * size, 0, size, size, 0, 0, size, size);
    i = (i + 1) % WALK_FRAMES;
  };
  clearInterval(walkTimer);
  draw();
  walkTimer = setInterval(draw, 1000 / 12);
  canvas.dataset.frames = String(WALK_FRAMES);
}

async function trainLoop() {
  let n = 1;
  let lastSamples = performance.now();
  try {
    while (running) {
      const t0 = performance.now();
      const [st, h] = await serial(async () => {
        await session.step(n);
        return [session.status(), session.history()];
      });
      // Aim for batches of about 0.1-0.4 s: responsive page, few read-backs.
      const dt = performance.now() - t0;
      n = dt < 100 ? Math.min(2 * n, 32) : dt > 400 ? Math.max(1, n >> 1) : n;
      history = h;
      unsaved = true;
      showProgress(st);
      showSwd();
      drawPlots();
      if (st.finished) running = false;
      else if (performance.now() - lastSamples > SAMPLE_EVERY_MS) {
        await refreshSamples();
        lastSamples = performance.now();
      }
      await yieldToPage();
    }
    await refreshSamples();
    const st = session.status();
    showProgress(st);
    setState(st.finished ? "finished" : "paused");
    say(st.finished ? `Finished at ${st.kimg.toFixed(3)} kimg.` : `Paused at ${st.kimg.toFixed(3)} kimg.`);
  } catch (e) {
    running = false;
    console.error(e);
    setState("paused");
    say(`Training stopped: ${message(e)}`, true);
  }
}

function startLoop() {
  running = true;
  setState("running");
  say("Training…");
  loop = trainLoop();
}

async function pause() {
  running = false;
  setState("busy");
  say("Pausing after the current steps…");
  await loop;
}

function download(data, name) {
  const blob = data instanceof Blob ? data : new Blob([data], { type: "application/octet-stream" });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// Runs a control's action with the controls locked; a refusal (bad settings, wrong file) goes to
// the status line and the page returns to the state it was in.
async function act(busyText, action) {
  const before = document.body.dataset.state;
  setState("busy");
  say(busyText);
  try {
    await action();
  } catch (e) {
    say(message(e), true);
    setState(before);
  }
}

function datasetNote(st) {
  const d = st.dataset;
  if (!d) return "";
  const skipped = d.skipped ? `; skipped ${d.skipped} unreadable files, e.g. ${d.first_skipped}` : "";
  return ` Dataset ${d.name}: ${d.images} images${skipped}.`;
}

async function start() {
  const cfg = readConfig();
  const json = JSON.stringify(cfg);
  const loader = await decode(DatasetLoader.for_run(json, await datasetFiles()));
  adopt(await Session.create(json, loader));
  const st = session.status();
  showProgress(st);
  await refreshSamples();
  startLoop();
  say(`Training…${datasetNote(st)}`);
}

async function load(file, mode) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let next;
  if (mode === "sample") {
    next = await Session.load(bytes);
  } else {
    const loader = await decode(DatasetLoader.for_checkpoint(bytes, await datasetFiles()));
    next = await Session.resume(bytes, loader);
  }
  adopt(next);
  const st = session.status();
  showProgress(st);
  await refreshSamples();
  if (st.training) {
    setState(st.finished ? "finished" : "paused");
    const next = st.finished ? "its schedule is complete" : "press Resume to continue training";
    say(`Loaded ${file.name} at ${st.kimg.toFixed(3)} kimg (${st.resolution}x${st.resolution}, ${st.phase}): ` +
      `${next}.${datasetNote(st)}`);
  } else {
    await refreshWalk();
    setState("sampling");
    say(`Loaded ${file.name} to sample (${st.resolution}x${st.resolution} at ${st.kimg.toFixed(3)} kimg).`);
  }
}

async function save(exportOnly) {
  const st = session.status();
  const bytes = await serial(() => (exportOnly ? session.export_generator() : session.checkpoint()));
  const name = `pggan-${exportOnly ? "generator-" : ""}${st.max_resolution}-${st.kimg.toFixed(3)}kimg.safetensors`;
  download(bytes, name);
  // Steps taken after this checkpoint set it again.
  if (!exportOnly) unsaved = false;
  return name;
}

function reset() {
  session.free();
  session = null;
  history = [];
  phaseMarks = [];
  grids = [];
  shownGrid = null;
  unsaved = false;
  clearInterval(walkTimer);
  $("walk").getContext("2d").clearRect(0, 0, $("walk").width, $("walk").height);
  updateSlider();
  drawGrid();
  drawPlots();
  $("progress-bar").value = 0;
  $("progress-text").textContent = "No run yet.";
  $("config-json").textContent = "No run yet.";
}

function wire() {
  $("pick-files").addEventListener("change", (e) => choose("picked images", [...e.target.files]));
  $("pick-folder").addEventListener("change", (e) => {
    const files = [...e.target.files].filter((f) => IMAGE_FILE.test(f.name));
    choose(files.length ? files[0].webkitRelativePath.split("/")[0] : "the folder", files);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
    const files = [];
    for (const entry of entries) files.push(...(await entryFiles(entry)));
    const name = entries.length === 1 && entries[0].isDirectory ? entries[0].name : "dropped images";
    choose(name, files.filter((f) => IMAGE_FILE.test(f.name)));
  });

  $("start").addEventListener("click", () => act("Starting…", start));
  $("pause").addEventListener("click", () => pause());
  $("resume").addEventListener("click", () => startLoop());
  $("reset").addEventListener("click", async () => {
    if (running) await pause();
    await calls;
    reset();
    setState("idle");
    say("Reset: choose data and settings, then Start.");
  });
  for (const [id, exportOnly] of [["save", false], ["export", true]]) {
    $(id).addEventListener("click", async () => {
      const state = document.body.dataset.state;
      try {
        say(`Saved ${await save(exportOnly)}.${state === "running" ? " Training goes on." : ""}`);
      } catch (e) {
        say(message(e), true);
      }
    });
  }
  $("load-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) await act(`Loading ${file.name}…`, () => load(file, $("load-mode").value));
  });
  $("walk-button").addEventListener("click", () =>
    refreshWalk().catch((e) => say(message(e), true)),
  );
  $("samples").addEventListener("click", enlarge);
  // A click on the backdrop (outside the dialog's box) closes it.
  $("zoom").addEventListener("click", (e) => {
    if (e.target === $("zoom")) $("zoom").close();
  });
  $("tick-slider").addEventListener("input", (e) => {
    const i = Number(e.target.value);
    shownGrid = i >= grids.length - 1 ? null : i;
    drawGrid();
  });
  $("download-png").addEventListener("click", downloadPng);
  $("smoothing").addEventListener("input", (e) => {
    $("smoothing-value").textContent = Number(e.target.value).toFixed(2);
    drawPlots();
  });
  new ResizeObserver(() => drawGrid()).observe($("samples"));
  window.addEventListener("beforeunload", (e) => {
    if (!unsaved) return;
    e.preventDefault();
    // Older browsers show the dialog only when returnValue is set.
    e.returnValue = "";
  });
  $("selftest").addEventListener("click", () => {
    const state = document.body.dataset.state;
    act("Running the self-test (every kernel against its CPU reference)…", async () => {
      const table = await selftest();
      $("selftest-output").textContent = table;
      say(table.includes(" 0 failed") ? "Self-test passed." : "The self-test found differences: see the table.",
        !table.includes(" 0 failed"));
      setState(state);
    });
  });
}

// The adapter's name, and a warning when it is a software one (SwiftShader, llvmpipe: a GPU
// emulated on the CPU, or the browser's fallback adapter), where training is far slower.
function showAdapter(adapter) {
  const info = adapter.info || {};
  const name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") || "an unnamed adapter";
  const software = info.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe|software/i.test(name);
  const el = $("adapter");
  el.textContent = `GPU: ${name}.`;
  if (software) {
    el.textContent += " This is a software adapter (a GPU emulated on the CPU): training works but is many times " +
      "slower than on a GPU. Turn on hardware acceleration, or use a browser and system whose WebGPU reaches the GPU.";
  }
  el.classList.toggle("warning", Boolean(software));
  el.dataset.software = String(Boolean(software));
  el.hidden = false;
}

// The WebGPU adapter, or why this browser cannot train.
async function webGpuAdapter() {
  const enable =
    "Use a current Chrome or Edge (113 or later) with hardware acceleration on; if WebGPU is still off, " +
    "enable chrome://flags/#enable-unsafe-webgpu (on Linux also chrome://flags/#enable-vulkan) and restart " +
    "the browser. Safari and Firefox have WebGPU in their newest versions on supported systems.";
  if (!window.isSecureContext) {
    return { problem: "WebGPU needs a secure page: open this page at http://localhost (pggan serve) or over https." };
  }
  if (!navigator.gpu) return { problem: `This browser has no WebGPU (navigator.gpu is missing). ${enable}` };
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 15000));
  const adapter = await Promise.race([navigator.gpu.requestAdapter(), timeout]).catch(() => null);
  if (adapter === "timeout") return { problem: `WebGPU did not answer the request for a GPU adapter. ${enable}` };
  if (!adapter) {
    return { problem: `WebGPU is present but offers no GPU adapter (the GPU or its driver may be blocklisted). ${enable}` };
  }
  return { adapter };
}

async function main() {
  setState("loading");
  drawPlots();
  const { problem, adapter } = await webGpuAdapter();
  if (problem) {
    $("gpu-message").textContent = problem;
    $("gpu-message").hidden = false;
    say("Training needs WebGPU, which this browser does not offer.", true);
    setState("no-webgpu");
    return;
  }
  showAdapter(adapter);
  await init();
  wire();
  setState("idle");
  say("Ready: choose data and settings, then Start.");
}

main().catch((e) => {
  console.error(e);
  say(`The page could not start: ${message(e)}`, true);
});
