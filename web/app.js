// The page: checks for WebGPU, loads the WASM package, and drives a training session (src/web.rs)
// from the controls. Training is an async loop that submits a few steps, awaits their losses and
// yields to the event loop, so the page never freezes; samples refresh every few seconds. Datasets are
// decoded the same way, a chunk of images at a time.
import init, { DatasetLoader, Files, Session, selftest } from "../pkg/pggan.js";
import { plot } from "./plot.js";

const $ = (id) => document.getElementById(id);
const SERIES = { d_loss: "D loss", g_loss: "G loss", penalty: "gradient penalty", wasserstein: "Wasserstein estimate" };
const SAMPLE_EVERY_MS = 3000;
const WALK_FRAMES = 24;
const MAX_POINTS = 2000;
const IMAGE_FILE = /\.(png|jpe?g|webp|bmp|gif)$/i;

let session = null;
// The session's configuration, parsed once when the session is adopted.
let runConfig = null;
let running = false;
let loop = Promise.resolve();
let history = [];
// Sliced Wasserstein distances measured so far ({kimg, swd}).
let swdHistory = [];
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
}

// ---- configuration and data ----

function merge(base, given) {
  for (const [k, v] of Object.entries(given)) {
    if (v && typeof v === "object" && !Array.isArray(v) && base[k] && typeof base[k] === "object") merge(base[k], v);
    else base[k] = v;
  }
  return base;
}

function readConfig() {
  const int = (id) => {
    const v = Number($(id).value);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${$(id).closest("label").firstChild.textContent.trim()} must be a whole number`);
    return v;
  };
  const phaseKimg = Number($("phase-kimg").value);
  if (!(phaseKimg > 0)) throw new Error("kimg per phase must be a positive number");
  const cfg = {
    net: {
      max_res: int("max-res"),
      channels: int("channels"),
      fmap_base: int("fmap-base"),
      fmap_max: int("fmap-max"),
      latent: int("latent"),
    },
    schedule: { minibatch: int("minibatch"), phase_kimg: phaseKimg },
    seed: int("seed"),
  };
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
  history = [];
  swdHistory = [];
  rate.reset();
  const cfg = session.config();
  $("config-json").textContent = cfg;
  runConfig = JSON.parse(cfg);
  showConfig(runConfig);
  drawPlots();
}

// The controls show the configuration of the run in use (a loaded checkpoint's included).
function showConfig(cfg) {
  const set = { "max-res": cfg.net.max_res, channels: cfg.net.channels, "fmap-base": cfg.net.fmap_base,
    "fmap-max": cfg.net.fmap_max, latent: cfg.net.latent, minibatch: cfg.schedule.minibatch,
    "phase-kimg": cfg.schedule.phase_kimg, seed: cfg.seed };
  for (const [id, value] of Object.entries(set)) {
    const el = $(id);
    if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === String(value))) el.add(new Option(value));
    el.value = String(value);
  }
}

const rate = {
  reset() {
    this.last = null;
    this.value = null;
  },
  update(images) {
    const now = performance.now();
    if (this.last && now > this.last.t) {
      const r = ((images - this.last.images) * 1000) / (now - this.last.t);
      this.value = this.value === null ? r : 0.8 * this.value + 0.2 * r;
    }
    this.last = { t: now, images };
  },
};

function showProgress(st) {
  $("p-res").textContent = `${st.resolution}x${st.resolution} of ${st.max_resolution}`;
  $("p-phase").textContent = st.phase;
  $("p-alpha").textContent = st.alpha.toFixed(3);
  $("p-kimg").textContent = `${st.kimg.toFixed(3)} / ${st.total_kimg}`;
  $("p-rate").textContent = rate.value === null ? "–" : rate.value.toFixed(1);
  $("p-steps").textContent = String(st.steps);
}

function drawPlots() {
  for (const [key, title] of Object.entries(SERIES)) {
    plot($(`plot-${key}`), title, history.map((h) => [h.kimg, h[key]]));
  }
  plot($("plot-swd"), "SWD x1e3 (average over levels)", swdHistory.map((h) => [h.kimg, h.swd]));
}

// Every swd_ticks ticks of the run's configuration (as the CLI logs it), from 16x16 on.
// When to measure is the trainer's tick clock (`due.swd` of a step), the CLI's rule.
async function measureSwd(st, due) {
  if (!due.swd) return;
  const cfg = runConfig;
  say(`Measuring the sliced Wasserstein distance (${cfg.swd_images} images)…`);
  const swd = await serial(() => session.swd());
  say("Training…");
  if (swd === null) return;
  swdHistory.push({ kimg: st.kimg, swd: swd.average });
  $("p-swd").textContent = `${swd.average.toFixed(1)} at ${st.kimg.toFixed(1)} kimg`;
}

function drawFrame(frame, canvas) {
  canvas.width = frame.width;
  canvas.height = frame.height;
  const pixels = new Uint8ClampedArray(frame.rgba.buffer);
  canvas.getContext("2d").putImageData(new ImageData(pixels, frame.width, frame.height), 0, 0);
  frame.free();
}

async function refreshSamples() {
  const canvas = $("samples");
  const side = Math.max(2, Math.min(8, Math.floor(512 / session.status().max_resolution)));
  drawFrame(await serial(() => session.samples(side)), canvas);
  canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + 1);
}

async function refreshWalk() {
  const frame = await serial(() => session.walk(WALK_FRAMES));
  const strip = document.createElement("canvas");
  drawFrame(frame, strip);
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
      const [stats, st] = await serial(async () => [await session.step(n), session.status()]);
      // Aim for batches of about 0.1-0.4 s: responsive page, few read-backs.
      const dt = performance.now() - t0;
      n = dt < 100 ? Math.min(2 * n, 32) : dt > 400 ? Math.max(1, n >> 1) : n;
      const { due, ...losses } = stats;
      history.push({ kimg: st.kimg, ...losses });
      if (history.length > MAX_POINTS) history = history.filter((_, i) => i % 2 === 0);
      rate.update(st.kimg * 1000);
      showProgress(st);
      drawPlots();
      await measureSwd(st, due);
      if (st.finished) running = false;
      else if (performance.now() - lastSamples > SAMPLE_EVERY_MS) {
        await refreshSamples();
        lastSamples = performance.now();
      }
      await yieldToPage();
    }
    await refreshSamples();
    const st = session.status();
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

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
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
  return name;
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
    session.free();
    session = null;
    runConfig = null;
    history = [];
    swdHistory = [];
      clearInterval(walkTimer);
    for (const id of ["samples", "walk"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
    drawPlots();
    $("config-json").textContent = "No run yet.";
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

// Why this browser cannot train, or null when it has a WebGPU adapter.
async function webGpuProblem() {
  const enable =
    "Use a current Chrome or Edge (113 or later) with hardware acceleration on; if WebGPU is still off, " +
    "enable chrome://flags/#enable-unsafe-webgpu (on Linux also chrome://flags/#enable-vulkan) and restart " +
    "the browser. Safari and Firefox have WebGPU in their newest versions on supported systems.";
  if (!window.isSecureContext) {
    return "WebGPU needs a secure page: open this page at http://localhost (pggan serve) or over https.";
  }
  if (!navigator.gpu) return `This browser has no WebGPU (navigator.gpu is missing). ${enable}`;
  const timeout = new Promise((resolve) => setTimeout(() => resolve("timeout"), 15000));
  const adapter = await Promise.race([navigator.gpu.requestAdapter(), timeout]).catch(() => null);
  if (adapter === "timeout") return `WebGPU did not answer the request for a GPU adapter. ${enable}`;
  if (!adapter) {
    return `WebGPU is present but offers no GPU adapter (the GPU or its driver may be blocklisted). ${enable}`;
  }
  return null;
}

async function main() {
  setState("loading");
  drawPlots();
  const problem = await webGpuProblem();
  if (problem) {
    $("gpu-message").textContent = problem;
    $("gpu-message").hidden = false;
    say("Training needs WebGPU, which this browser does not offer.", true);
    setState("no-webgpu");
    return;
  }
  await init();
  wire();
  setState("idle");
  say("Ready: choose data and settings, then Start.");
}

main().catch((e) => {
  console.error(e);
  say(`The page could not start: ${message(e)}`, true);
});
