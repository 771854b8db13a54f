// The training step in the browser against native wgpu on the same GPU: SwiftShader, the software
// Vulkan driver Debian's chromium ships, which Chromium's WebGPU uses here and native wgpu can load
// too (VK_ICD_FILENAMES pointing at its manifest). Runs `pggan bench train --json` natively and the
// page's `bench_train` (src/web.rs: the same code, awaiting its read-backs) in headless Chromium with
// the same settings, and prints images/s of both and their ratio per resolution. Then counts the
// WebGPU calls of one step in the page (every call is a crossing from WASM to JS), by method, in the
// benchmark and in the page's training loop.
//
// After `wasm-pack build --target web --release --no-opt` and `cargo build --release`, with
// playwright-core in tests/e2e/node_modules (tests/run.sh installs it):
//   node bench/browser_vs_native.mjs [--resolution 16] [--fmap-base 64] [--fmap-max 32] [--latent 32]
//                                    [--minibatch 8] [--steps 5] [--warmup 2]
// A benchmark, not a test: on a software GPU the figures say how the two hosts compare, not what a
// real GPU does (bench/README.md, "The browser against native on SwiftShader").
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "../tests/e2e/serve.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { chromium } = createRequire(join(root, "tests/e2e/package.json"))("playwright-core");
const pggan = join(root, "target/release/pggan");

// The flags of `pggan bench train`, with defaults small enough for a software GPU.
const settings = { resolution: 16, fmap_base: 64, fmap_max: 32, latent: 32, minibatch: 8, steps: 5, warmup: 2 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "").replaceAll("-", "_");
  if (!(key in settings) || argv[i + 1] === undefined) throw new Error(`unknown flag or missing value: ${argv[i]}`);
  settings[key] = Number(argv[i + 1]);
}
const flags = Object.entries(settings).flatMap(([k, v]) => [`--${k.replaceAll("_", "-")}`, String(v)]);

// SwiftShader's Vulkan manifest, from the package that ships it.
function swiftshaderIcd() {
  const owner = execFileSync("dpkg", ["-S", "vk_swiftshader_icd.json"], { encoding: "utf8" });
  const path = owner.split("\n").map((l) => l.split(": ")[1]).find((p) => p && p.endsWith(".json"));
  if (!path) throw new Error(`no vk_swiftshader_icd.json in ${owner}`);
  return path;
}

function native() {
  const icd = swiftshaderIcd();
  const out = execFileSync(pggan, ["bench", "train", "--json", ...flags], {
    env: { ...process.env, VK_ICD_FILENAMES: icd },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const report = JSON.parse(out);
  if (!/swiftshader/i.test(report.adapter.name)) throw new Error(`native wgpu ran on ${report.adapter.name}, not SwiftShader (${icd})`);
  return report;
}


// Wraps every method of the WebGPU objects a step touches so that each call is counted by name.
function countWebGpuCalls() {
  const counts = (window.webgpuCalls = {});
  for (const type of ["GPUDevice", "GPUQueue", "GPUCommandEncoder", "GPUComputePassEncoder", "GPUBuffer"]) {
    const proto = window[type].prototype;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const d = Object.getOwnPropertyDescriptor(proto, name);
      if (typeof d.value !== "function" || name === "constructor") continue;
      const f = d.value;
      const key = `${type.slice(3)}.${name}`;
      proto[name] = function (...args) {
        counts[key] = (counts[key] || 0) + 1;
        return f.apply(this, args);
      };
    }
  }
}

async function browser(url) {
  const args = JSON.parse(readFileSync(join(root, "webdriver.json"), "utf8"))["goog:chromeOptions"].args;
  const b = await chromium.launch({ executablePath: "/usr/bin/chromium", args });
  try {
    const open = async (counting) => {
      const page = await b.newPage();
      if (counting) await page.addInitScript(countWebGpuCalls);
      await page.goto(url);
      await page.waitForSelector('body[data-state="idle"]', { timeout: 60_000 });
      return page;
    };
    const bench = (page, s) =>
      page.evaluate(async (json) => {
        const m = await import("/pkg/pggan.js");
        await m.default();
        const before = { ...(window.webgpuCalls || {}) };
        const report = await m.bench_train(json);
        const calls = {};
        for (const [k, v] of Object.entries(window.webgpuCalls || {})) calls[k] = v - (before[k] || 0);
        return { report, calls };
      }, JSON.stringify(s));
    const timed = (await bench(await open(false), settings)).report;
    // One step's calls: those of 1 warm-up and 2 steps less those of 1 warm-up and 1 step.
    const counting = await open(true);
    const perStep = [];
    for (const row of timed.rows) {
      const one = { ...settings, levels: [row.resolution], warmup: 1, steps: 1 };
      const a = (await bench(counting, one)).calls;
      const b2 = (await bench(counting, { ...one, steps: 2 })).calls;
      const diff = {};
      for (const k of new Set([...Object.keys(a), ...Object.keys(b2)])) {
        const d = (b2[k] || 0) - (a[k] || 0);
        if (d) diff[k] = d;
      }
      perStep.push({ resolution: row.resolution, calls: diff });
    }
    // The page's training loop (`Session.step(n)`: a minibatch drawn and uploaded per step, one
    // awaited read-back of the losses per call) at 4x4 on 16 flat images: one step's calls, and
    // those of the call itself.
    const loop = await counting.evaluate(async (s) => {
      const m = await import("/pkg/pggan.js");
      const files = new m.Files("flat");
      for (let i = 0; i < 16; i++) {
        const c = new OffscreenCanvas(s.resolution, s.resolution);
        const ctx = c.getContext("2d");
        ctx.fillStyle = `hsl(${i * 22}, 80%, 50%)`;
        ctx.fillRect(0, 0, c.width, c.height);
        files.add(`${i}.png`, new Uint8Array(await (await c.convertToBlob()).arrayBuffer()));
      }
      const net = { max_res: s.resolution, fmap_base: s.fmap_base, fmap_max: s.fmap_max, latent: s.latent };
      const cfg = JSON.stringify({ net, schedule: { minibatch: s.minibatch } });
      const loader = m.DatasetLoader.for_run(cfg, files);
      while (loader.done < loader.total) loader.prepare(16);
      const session = await m.Session.create(cfg, loader);
      await session.step(2);
      const calls = async (n) => {
        const before = { ...window.webgpuCalls };
        await session.step(n);
        const d = {};
        for (const [k, v] of Object.entries(window.webgpuCalls)) if (v - (before[k] || 0)) d[k] = v - (before[k] || 0);
        return d;
      };
      return { one: await calls(1), two: await calls(2) };
    }, settings);
    const sub = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, a[k] - (b[k] || 0)]).filter(([, v]) => v));
    const loopStep = sub(loop.two, loop.one);
    return { report: timed, perStep, loop: { step: loopStep, call: sub(loop.one, loopStep) } };
  } finally {
    await b.close();
  }
}

const { server, url } = await serve(root);
try {
  console.log(`settings: ${flags.join(" ")}`);
  const n = native();
  console.log(`native: ${n.adapter.name} (${n.adapter.backend})`);
  const w = await browser(url);
  console.log(`browser: ${w.report.adapter.name || "(no name)"} (${w.report.adapter.backend}, ${w.report.adapter.device_type})`);
  const pad = (s, k) => String(s).padStart(k);
  console.log(["resolution", "native img/s", "browser img/s", "browser/native", "native host ms", "browser host ms", "launches"].map((h) => pad(h, 15)).join(""));
  for (const nr of n.rows) {
    const br = w.report.rows.find((r) => r.resolution === nr.resolution);
    console.log(
      [nr.resolution, nr.images_per_s.toFixed(2), br.images_per_s.toFixed(2), `${(br.images_per_s / nr.images_per_s).toFixed(2)}x`,
        nr.host_ms_per_step.toFixed(2), br.host_ms_per_step.toFixed(2), nr.launches_per_step.toFixed(0)].map((v) => pad(v, 15)).join(""),
    );
  }
  console.log("\nWebGPU calls from WASM per step in the page (each a WASM -> JS crossing), by method:");
  const sum = (calls) => Object.values(calls).reduce((a, b) => a + b, 0);
  const list = (calls) => Object.entries(calls).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  for (const { resolution, calls } of w.perStep) console.log(`${pad(resolution, 4)}x${resolution}: ${sum(calls)} calls: ${list(calls)}`);
  console.log(`the page's training loop at 4x4: ${sum(w.loop.step)} calls per step (${list(w.loop.step)}),`);
  console.log(`  and ${sum(w.loop.call)} per call of step(n) (${list(w.loop.call)})`);
  console.log(JSON.stringify({ settings, native: n, browser: w }));
} finally {
  server.kill();
}
