// The page end to end in headless Chromium (playwright-core, the system's /usr/bin/chromium):
//
// 1. With WebGPU (SwiftShader, the flags of webdriver.json) at 1280x800: the adapter is named and
//    warned about as a software one; the sample grid and Start are inside the first screen. Start a
//    tiny run on the emoji set through the page's controls (the page must keep drawing animation
//    frames while it decodes the set: no gap over 400 ms), wait until the sample canvas differs from
//    its first frame, pause; step back through the sample grids with the slider, enlarge a sample,
//    download the grid as PNG; leaving is guarded until a checkpoint is saved; save a checkpoint and
//    export the generator (downloads into target/e2e/), reload, load the checkpoint to resume and see
//    the very same samples and the saved history in the plots, resume for a few steps; then load a
//    checkpoint made by native `pggan train` (PGGAN_NATIVE_CHECKPOINT) to resume and to sample, its
//    history in the plots with the phase change marked. Then the same page on a 375-px phone screen
//    (at twice the pixel density): no horizontal overflow, before and after loading a checkpoint.
//    Any console error or page error fails the test. Screenshots in target/e2e/: desktop.png (the
//    first screen), screenshot.png (the whole page), screenshot-native.png and phone.png.
// 2. Without WebGPU (no flags: no adapter; and with navigator.gpu removed): the page says so and
//    what to enable.
//
// Run by tests/run.sh after `wasm-pack build --target web` and `cargo build --release`:
//   node tests/e2e/page.mjs
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "./serve.mjs";
import { chromium } from "playwright-core";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const out = join(root, "target/e2e");
mkdirSync(out, { recursive: true });
const nativeCheckpoint = process.env.PGGAN_NATIVE_CHECKPOINT;
const started = Date.now();
const log = (text) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);

function fail(text) {
  throw new Error(text);
}

// The whole test must end; SwiftShader is slow but the run is tiny.
const deadline = setTimeout(() => {
  console.error("e2e: over 600 s, giving up");
  process.exit(1);
}, 600_000);


const webgpuFlags = JSON.parse(readFileSync(join(root, "webdriver.json"), "utf8"))["goog:chromeOptions"].args;
const sandbox = ["--no-sandbox", "--disable-gpu-sandbox"];

const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

// A page in a new context of `browser` (`screen`: DESKTOP or PHONE); console and page errors go to `errors`.
async function openPage(browser, screen, errors) {
  const context = await browser.newContext({ acceptDownloads: true, ...screen });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console error: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
  return page;
}

async function launch(args) {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: [...new Set([...args, ...sandbox])] });
  const errors = [];
  const page = await openPage(browser, DESKTOP, errors);
  return { browser, page, errors };
}

// The `history` entry of a checkpoint's safetensors header (an 8-byte length, then JSON).
function checkpointHistory(file) {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8"));
  return JSON.parse(header.__metadata__.history);
}

// What the plot of the D loss shows: its number of points, the last one's kimg, phase marks.
const plotted = (page) =>
  page.evaluate(() => {
    const d = document.getElementById("plot-d_loss").dataset;
    return { points: Number(d.points), lastKimg: Number(d.lastKimg), markers: Number(d.markers) };
  });

async function checkPlotted(page, file, what) {
  const want = checkpointHistory(file);
  const got = await plotted(page);
  if (!want.length) fail(`${what}: the checkpoint has no history`);
  if (got.points !== want.length || Math.abs(got.lastKimg - want[want.length - 1].kimg) > 1e-9) {
    fail(`${what}: the plots show ${JSON.stringify(got)}, the checkpoint's history has ${want.length} points to ${want[want.length - 1].kimg} kimg`);
  }
  return got;
}

// Whether leaving the page now would ask first (the page's beforeunload handler cancels the event).
const guardsLeaving = (page) =>
  page.evaluate(() => {
    const e = new Event("beforeunload", { cancelable: true });
    window.dispatchEvent(e);
    return e.defaultPrevented;
  });

// The element's box lies inside the viewport as the page opens (scrolled to the top).
async function inFirstScreen(page, selector) {
  const box = await page.evaluate((sel) => {
    window.scrollTo(0, 0);
    const r = document.querySelector(sel).getBoundingClientRect();
    return { top: r.top, left: r.left, bottom: r.bottom, right: r.right, w: innerWidth, h: innerHeight };
  }, selector);
  if (box.top < 0 || box.left < 0 || box.bottom > box.h || box.right > box.w) {
    fail(`${selector} is not inside the first screen (${box.w}x${box.h}): ${JSON.stringify(box)}`);
  }
}

async function noHorizontalOverflow(page, what) {
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > 375) fail(`${what}: the page is ${width} px wide on a 375-px screen`);
}

// Width and height from a PNG's IHDR chunk.
function pngSize(file) {
  const b = readFileSync(file);
  if (b.toString("latin1", 1, 4) !== "PNG") fail(`${file} is not a PNG`);
  return `${b.readUInt32BE(16)}x${b.readUInt32BE(20)}`;
}

async function waitState(page, state, timeout = 120_000) {
  const states = [state].flat();
  try {
    await page.waitForSelector(states.map((s) => `body[data-state="${s}"]`).join(", "), { timeout });
  } catch {
    const now = await page.evaluate(() => [document.body.dataset.state, document.getElementById("status").textContent]);
    fail(`waited ${timeout / 1000}s for state ${state}; the page is ${now[0]}: ${now[1]}`);
  }
}

const canvas = (page) => page.evaluate(() => document.getElementById("samples").toDataURL());
const frames = (page) => page.evaluate(() => Number(document.getElementById("samples").dataset.frames || 0));
const text = (page, id) => page.evaluate((i) => document.getElementById(i).textContent, id);

async function waitFor(what, check, timeout) {
  const end = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > end) fail(`waited ${timeout / 1000}s for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function download(page, button, file) {
  const [d] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
  await d.saveAs(file);
  log(`${button}: ${d.suggestedFilename()} -> ${file} (${statSync(file).size} bytes)`);
}

async function load(page, file, mode) {
  await page.selectOption("#load-mode", mode);
  await page.setInputFiles("#load-file", file);
}

async function withWebGpu(url) {
  const { browser, page, errors } = await launch(webgpuFlags);
  try {
    await page.goto(url);
    await waitState(page, "idle", 60_000);
    const adapter = await page.evaluate(() => ({ ...document.getElementById("adapter").dataset, text: document.getElementById("adapter").textContent }));
    log(`page ready; ${adapter.text}`);
    if (!/swiftshader/i.test(adapter.text) || adapter.software !== "true" || !adapter.text.includes("software adapter")) {
      fail(`the SwiftShader adapter is not named and warned about: ${JSON.stringify(adapter)}`);
    }
    await inFirstScreen(page, "#start");
    await inFirstScreen(page, "#samples");
    // A tiny run set through the controls: 8x8, 8 feature maps, latent 8, minibatch 4, long phases.
    await page.selectOption("#max-res", "8");
    await page.selectOption("#channels", "3");
    await page.fill("#minibatch", "4");
    await page.fill("#phase-kimg", "1");
    await page.fill("#seed", "7");
    await page.click("#config-box summary");
    await page.fill("#fmap-base", "16");
    await page.fill("#fmap-max", "8");
    await page.fill("#latent", "8");
    // The page keeps painting while it decodes the emoji set: an animation-frame loop measures the
    // longest gap between frames from the first that shows "Decoding" to the first one after.
    await page.evaluate(() => {
      const seen = (window.decodingFrames = { frames: 0, longest: 0 });
      let last = null;
      const tick = (t) => {
        const decoding = document.getElementById("status").textContent.startsWith("Decoding");
        if (last !== null) seen.longest = Math.max(seen.longest, t - last);
        if (decoding) seen.frames++;
        last = decoding ? t : null;
        if (document.body.dataset.state !== "running") requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    await page.click("#start");
    await waitState(page, "running");
    log(`training: ${await text(page, "status")}`);
    const decoding = await page.evaluate(() => window.decodingFrames);
    log(`decoding the emoji set: ${decoding.frames} frames, longest gap between frames ${decoding.longest.toFixed(0)} ms`);
    // Chunks of about 50 ms leave gaps near 50-80 ms (400 allows a loaded machine); decoding in one call froze it for ~500 ms.
    if (decoding.frames < 3) fail(`only ${decoding.frames} animation frames showed the decoding`);
    if (decoding.longest > 400) fail(`the page froze for ${decoding.longest.toFixed(0)} ms while decoding`);
    await waitFor("the first sample frame", async () => (await frames(page)) >= 1, 30_000);
    const first = await canvas(page);
    await waitFor("samples that differ from the first frame", async () => (await canvas(page)) !== first, 120_000);
    log(`samples changed at ${await text(page, "p-kimg")} kimg, ${await text(page, "p-rate")} img/s`);
    // A few more steps, so that the plots in the screenshot have a shape.
    await waitFor("8 steps", async () => Number(await text(page, "p-steps")) >= 8, 60_000);

    await page.click("#pause");
    await waitState(page, "paused");
    const paused = await canvas(page);
    const pausedKimg = await text(page, "p-kimg");
    const pausedSteps = Number(await text(page, "p-steps"));
    log(`paused at ${pausedKimg} kimg, ${pausedSteps} steps; ${await text(page, "progress-text")}`);
    if (!(pausedSteps > 0)) fail("no steps were taken");
    const rate = Number(await text(page, "p-rate"));
    if (!(rate > 0)) fail(`img/s is ${rate}`);
    if (!(await text(page, "progress-text")).includes("left")) fail(`no ETA: ${await text(page, "progress-text")}`);
    await page.screenshot({ path: join(out, "desktop.png") });
    await page.screenshot({ path: join(out, "screenshot.png"), fullPage: true });
    await inFirstScreen(page, "#samples");

    // The slider steps back through the grids drawn so far: the first is the first frame seen.
    const grids = Number(await page.getAttribute("#tick-slider", "max")) + 1;
    if (grids < 2) fail(`only ${grids} sample grids were kept`);
    const slide = (i) =>
      page.$eval("#tick-slider", (el, v) => {
        el.value = String(v);
        el.dispatchEvent(new Event("input"));
      }, i);
    await slide(0);
    if ((await canvas(page)) !== first) fail("the slider's first grid is not the first frame");
    if (!(await text(page, "tick-label")).includes(`(1 of ${grids})`)) fail(`slider label: ${await text(page, "tick-label")}`);
    await slide(grids - 1);
    if ((await canvas(page)) !== paused) fail("the slider's last grid is not the newest");
    log(`slider: ${grids} grids, back to the newest: ${await text(page, "tick-label")}`);

    // A click on the first sample enlarges it; the grid downloads as a PNG at its own size.
    const box = await page.locator("#samples").boundingBox();
    await page.mouse.click(box.x + box.width / 16, box.y + box.height / 16);
    await page.waitForSelector("#zoom[open]", { timeout: 5_000 });
    const zoom = await page.evaluate(() => {
      const c = document.getElementById("zoom-canvas");
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      return { w: c.width, sample: c.dataset.sample, alpha: px[3], caption: document.getElementById("zoom-caption").textContent };
    });
    if (zoom.w !== 8 || zoom.sample !== "0" || zoom.alpha !== 255) fail(`the enlarged sample: ${JSON.stringify(zoom)}`);
    log(`enlarged: ${zoom.caption}`);
    await page.click("#zoom-close");
    await page.waitForSelector("#zoom[open]", { state: "detached", timeout: 5_000 });
    await download(page, "#download-png", join(out, "samples.png"));
    const grid = await page.getAttribute("#samples", "data-grid");
    if (pngSize(join(out, "samples.png")) !== grid || grid !== "64x64") fail(`the PNG is ${pngSize(join(out, "samples.png"))}, the grid ${grid}`);

    // Leaving asks first while the run has unsaved steps, and not once it is saved.
    if (!(await guardsLeaving(page))) fail("leaving a run with unsaved steps does not ask first");
    await download(page, "#save", join(out, "page.safetensors"));
    // For tests/run.sh, which trains the page's checkpoint on natively from there.
    writeFileSync(join(out, "page-kimg.txt"), pausedKimg.split(" ")[0]);
    if (await guardsLeaving(page)) fail("leaving asks first although the run was just saved");
    await download(page, "#export", join(out, "page-generator.safetensors"));

    await page.reload();
    await waitState(page, "idle", 60_000);
    await load(page, join(out, "page.safetensors"), "resume");
    await waitState(page, "paused");
    log(`reloaded and resumed: ${await text(page, "status")}`);
    if ((await text(page, "p-kimg")) !== pausedKimg) fail(`resumed at ${await text(page, "p-kimg")}, saved at ${pausedKimg}`);
    if ((await canvas(page)) !== paused) fail("the resumed checkpoint samples differently from the saved run");
    const history = await checkPlotted(page, join(out, "page.safetensors"), "the page's checkpoint");
    log(`the page's checkpoint shows its history: ${history.points} points`);
    await page.click("#resume");
    await waitState(page, "running");
    await waitFor("more steps after resuming", async () => Number(await text(page, "p-steps")) > pausedSteps + 2, 60_000);
    await page.click("#pause");
    await waitState(page, "paused");
    log(`trained on to ${await text(page, "p-kimg")} kimg`);

    if (nativeCheckpoint) {
      await load(page, nativeCheckpoint, "resume");
      await waitState(page, ["finished", "paused"], 60_000);
      const resumed = await canvas(page);
      log(`native checkpoint resumed: ${await text(page, "status")}`);
      await load(page, nativeCheckpoint, "sample");
      await waitState(page, "sampling");
      if ((await canvas(page)) !== resumed) fail("the native checkpoint samples differently when loaded to sample");
      const drawn = await page.evaluate(() => {
        const c = document.getElementById("samples");
        const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        return { grid: c.dataset.grid, distinct: new Set(px).size };
      });
      if (drawn.grid !== "64x64" || drawn.distinct < 10) fail(`native samples look wrong: ${JSON.stringify(drawn)}`);
      const curves = await checkPlotted(page, nativeCheckpoint, "the native checkpoint");
      // The tiny native run fades 8x8 in at 0.02 kimg, within its ticks (0.008 to 0.024 kimg).
      if (curves.markers !== 1) fail(`the native run's phase change is not marked: ${JSON.stringify(curves)}`);
      log(`the native checkpoint shows its history: ${JSON.stringify(curves)}`);
      const walk = await page.evaluate(() => {
        const c = document.getElementById("walk");
        const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        return { w: c.width, frames: c.dataset.frames, distinct: new Set(px).size };
      });
      if (walk.w !== 8 || walk.frames !== "24" || walk.distinct < 10) fail(`the latent walk looks wrong: ${JSON.stringify(walk)}`);
      if ((await page.inputValue("#max-res")) !== "8") fail("the controls do not show the loaded configuration");
      log(`native checkpoint sampled: ${await text(page, "status")}`);
      await page.screenshot({ path: join(out, "screenshot-native.png"), fullPage: true });
    } else {
      fail("PGGAN_NATIVE_CHECKPOINT is not set: the native checkpoint cannot be checked (tests/run.sh sets it)");
    }

    // A phone: one column, nothing wider than the screen, with and without a run loaded.
    const phone = await openPage(browser, PHONE, errors);
    await phone.goto(url);
    await waitState(phone, "idle", 60_000);
    await noHorizontalOverflow(phone, "the page on a phone");
    await load(phone, nativeCheckpoint, "sample");
    await waitState(phone, "sampling");
    await noHorizontalOverflow(phone, "a loaded checkpoint on a phone");
    await inFirstScreen(phone, "#start");
    await checkPlotted(phone, nativeCheckpoint, "the native checkpoint on a phone");
    await phone.screenshot({ path: join(out, "phone.png"), fullPage: true });
    log("phone: no horizontal overflow at 375 px");
    await phone.close();

    await page.click("#developer summary");
    await page.click("#selftest");
    await waitState(page, "busy", 5_000).catch(() => {});
    await waitState(page, ["sampling", "paused", "finished"], 180_000);
    const table = await text(page, "selftest-output");
    if (!table.includes(" 0 failed")) fail(`the page's self-test failed:\n${table}\n${await text(page, "status")}`);
    log(`self-test in the page: ${table.trim().split("\n").slice(-2).join(" | ")}`);
    if (errors.length) fail(`errors in the page:\n${errors.join("\n")}`);
  } finally {
    await browser.close();
  }
}

async function withoutWebGpu(url) {
  const cases = [
    { name: "no adapter (WebGPU flags off)", init: null, expect: "no GPU adapter" },
    {
      name: "no navigator.gpu",
      init: () => Object.defineProperty(Navigator.prototype, "gpu", { get: () => undefined }),
      expect: "navigator.gpu is missing",
    },
  ];
  for (const c of cases) {
    const { browser, page, errors } = await launch([]);
    try {
      if (c.init) await page.addInitScript(c.init);
      await page.goto(url);
      await waitState(page, "no-webgpu", 30_000);
      const message = await text(page, "gpu-message");
      if (!(await page.isVisible("#gpu-message"))) fail(`${c.name}: the message is hidden`);
      if (!message.includes(c.expect) || !message.includes("chrome://flags/#enable-unsafe-webgpu")) {
        fail(`${c.name}: unexpected message: ${message}`);
      }
      if (!(await page.isDisabled("#start"))) fail(`${c.name}: Start is enabled`);
      const pageErrors = errors.filter((e) => e.startsWith("page error"));
      if (pageErrors.length) fail(`${c.name}: ${pageErrors.join("\n")}`);
      log(`without WebGPU (${c.name}): "${message.slice(0, 90)}…"`);
    } finally {
      await browser.close();
    }
  }
}

const { server, url } = await serve(root);
log(`serving ${url}`);
try {
  await withWebGpu(url);
  await withoutWebGpu(url);
  log("e2e passed");
} finally {
  server.kill();
  clearTimeout(deadline);
}
