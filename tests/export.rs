//! A trained generator taken elsewhere, as a user does it: `pggan export --onnx` run in onnxruntime
//! against `pggan generate --format npy` and `--onnx-d` against D's forward pass (RGB and grayscale,
//! at 4x4, in a fade-in and at alpha 1), the
//! Python snippet of docs/export.md, TensorBoard event files read back by TensorBoard's own readers, and
//! `generate --seeds` / `--trunc` / `--latents` reproducing images.
//!
//! Two tiny runs to 16x16 (one RGB, one grayscale) are trained once and shared by the tests. The
//! Python side (tests/onnx_check.py, tests/tb_check.py) needs the virtual environment that
//! tests/run.sh installs; without it these tests fail, naming it.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{python, python_json, run_pggan as run, temp_dir};
use pggan::gpu::Gpu;
use pggan::nn::arch;
use pggan::nn::backend::GpuBackend;
use pggan::nn::net::{Net, Params};
use pggan::rng::Rng;
use pggan::samples;
use pggan::train::checkpoint::{load_params, Checkpoint};
use pollster::block_on;
use serde_json::{json, Value};

/// Largest difference between onnxruntime's images and pggan's, relative to the largest |value| of
/// pggan's. Both compute in f32 but sum in different orders (tiled GPU products against
/// onnxruntime's kernels), and the export multiplies the weights by the equalized-LR scale before
/// summing where the GPU scales the sums: a few ulps per layer, about 1e-6 relative, through 6
/// layers whose pixel norms rescale the errors with the values. A wrong layout, scale, bias or
/// blend moves the images by O(1), four orders of magnitude above this bound.
const ONNX_TOL: f64 = 1e-4;

/// The operators the export may use: standard ONNX, nothing custom.
const STANDARD_OPS: [&str; 19] = [
    "Add",
    "AveragePool",
    "Concat",
    "Conv",
    "Div",
    "Expand",
    "Flatten",
    "Gemm",
    "Identity",
    "LeakyRelu",
    "Min",
    "Mul",
    "ReduceMean",
    "Reshape",
    "Resize",
    "Shape",
    "Slice",
    "Sqrt",
    "Sub",
];

/// A trained run: its folder, its first snapshot (4x4), a snapshot taken while 16x16 fades in, and
/// its final checkpoint (16x16 at alpha 1).
struct Run {
    dir: PathBuf,
    first: PathBuf,
    fading: PathBuf,
    stable: PathBuf,
    channels: usize,
}

/// 24 small images: enough for a minibatch of 4 and an 8-image SWD.
fn image_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..24u32 {
        let img = image::RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb([(i * 10) as u8, (x * 16) as u8, ((x + y) * 8 + i) as u8])
        });
        img.save(dir.join(format!("{i}.png"))).unwrap();
    }
}

/// Trains 16x16 in 160 images (32 per phase, 40 steps) with a tick, checkpoint and snapshot every
/// 8 images; the RGB run measures the SWD at its last tick and writes TensorBoard events (the
/// default), the grayscale one passes `--no-tensorboard`.
fn train(channels: usize) -> Run {
    let root = temp_dir(&format!("export-{channels}"));
    let (data, out, cache) = (root.join("data"), root.join("runs"), root.join("cache"));
    image_folder(&data);
    let c = channels.to_string();
    let mut args = vec![
        "train",
        "--max-res",
        "16",
        "--fmap-base",
        "32",
        "--fmap-max",
        "8",
        "--latent",
        "8",
        "--minibatch",
        "4",
        "--phase-kimg",
        "0.032",
        "--tick-kimg",
        "0.008",
        "--checkpoint-ticks",
        "1",
        "--snapshot-ticks",
        "1",
        "--snapshots",
        "0",
        "--grid",
        "2",
        "--seed",
        "3",
        "--quiet",
        "--channels",
        &c,
    ];
    for (flag, path) in [("--data", &data), ("--out", &out), ("--cache", &cache)] {
        args.extend([flag, path.to_str().unwrap()]);
    }
    match channels {
        // The SWD needs 16x16, which the run reaches only at its end: measured once, at the last tick.
        3 => args.extend(["--swd-ticks", "1000", "--swd-images", "8"]),
        _ => args.extend(["--swd-ticks", "0", "--no-tensorboard"]),
    }
    let started = std::time::Instant::now();
    assert!(run(&args).status.success(), "training failed");
    eprintln!(
        "trained {channels} channels in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let dir = out.join("000-data-16");
    let stable = dir.join("checkpoint.safetensors");
    assert_eq!(position(&stable), (16, 1.0));
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("snapshot-"))
        .collect();
    snapshots.sort();
    let first = snapshots[0].clone();
    assert_eq!(position(&first), (4, 1.0));
    let fading = snapshots
        .into_iter()
        .find(|s| matches!(position(s), (16, a) if a > 0.0 && a < 1.0))
        .expect("a snapshot while 16x16 fades in");
    Run {
        dir,
        first,
        fading,
        stable,
        channels,
    }
}

/// A checkpoint's resolution and fade-in alpha.
fn position(file: &Path) -> (usize, f32) {
    let ck = pggan::train::checkpoint::load(file).unwrap();
    let pos = ck.state.position(&ck.config);
    (pos.res(), pos.alpha)
}

fn rgb() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| train(3))
}

fn gray() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| train(1))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exports `checkpoint` (a file or a run folder) to `dir/generator.onnx` and, with `d`, its
/// discriminator to `dir/discriminator.onnx`.
fn export(checkpoint: &Path, dir: &Path, d: bool) -> PathBuf {
    let (model, disc) = (dir.join("generator.onnx"), dir.join("discriminator.onnx"));
    let mut args = vec!["export", "--onnx", s(&model), "--checkpoint", s(checkpoint)];
    if d {
        args.extend(["--onnx-d", s(&disc)]);
    }
    assert!(run(&args).status.success(), "export failed");
    model
}

/// `pggan generate` with `args` into `dir`; fails the test when it fails.
fn generate(checkpoint: &Path, dir: &Path, args: &[&str]) {
    let mut all = vec!["generate", "--checkpoint", s(checkpoint), "--out", s(dir)];
    all.extend(args);
    assert!(run(&all).status.success(), "generate {args:?} failed");
}

/// A float32 .npy file's shape and values.
fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "{}", path.display());
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| d.trim().parse().unwrap())
        .collect();
    let values = bytes[10 + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (shape, values)
}

/// Runs `model` in onnxruntime (tests/onnx_check.py) on each (input, pggan's output) pair and
/// requires standard operators, opset 13 and every output within [`ONNX_TOL`]; returns the report.
fn check_onnx(model: &Path, pairs: &[(PathBuf, PathBuf)], what: &str) -> Value {
    let mut args = vec![model];
    for (input, expected) in pairs {
        args.extend([input.as_path(), expected.as_path()]);
    }
    let r = python_json("onnx_check.py", &args);
    eprintln!("{what}: {r}");
    assert_eq!(r["opset"], json!([13]));
    for op in r["ops"].as_object().unwrap().keys() {
        assert!(STANDARD_OPS.contains(&op.as_str()), "unexpected op {op}");
    }
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), pairs.len());
    for run in runs {
        assert_eq!(run["shape"], run["expected_shape"], "{what}");
        assert!(
            run["max_abs"].as_f64().unwrap() > 1e-3,
            "{what}: the outputs are not all zero"
        );
        let e = run["error"].as_f64().unwrap();
        assert!(
            e <= ONNX_TOL,
            "{what}: error {e:.2e} relative to the largest value, over {ONNX_TOL:.0e}"
        );
    }
    r
}

/// The checkpoints of both runs compared: 4x4, 16x16 fading in, and 16x16 at alpha 1 (given as its
/// run folder, as `export` and `generate` accept).
fn checkpoints() -> Vec<(String, &'static Path, usize, usize)> {
    let mut all = Vec::new();
    for run in [rgb(), gray()] {
        let c = run.channels;
        all.push((format!("{c} channels at 4x4"), run.first.as_path(), c, 4));
        all.push((format!("{c} channels fading in"), run.fading.as_path(), c, 16));
        all.push((format!("{c} channels at alpha 1"), run.dir.as_path(), c, 16));
    }
    all
}

/// The exported generator against pggan's own images, on 5 latents and on the first one alone
/// (the batch is free).
#[test]
fn onnx_export_matches_generate_in_onnxruntime() {
    python();
    for (what, checkpoint, c, res) in checkpoints() {
        let dir = temp_dir("onnx");
        let model = export(checkpoint, &dir, false);
        generate(checkpoint, &dir, &["--seeds", "0-4", "--format", "npy"]);
        let (latents, images) = (dir.join("latents.npy"), dir.join("images.npy"));
        let (z, x) = (npy(&latents).1, npy(&images).1);
        let (z1, x1) = (dir.join("latent0.npy"), dir.join("image0.npy"));
        std::fs::write(&z1, samples::npy(&[1, 8], &z[..8])).unwrap();
        std::fs::write(&x1, samples::npy(&[1, c, res, res], &x[..c * res * res])).unwrap();
        let r = check_onnx(&model, &[(latents, images), (z1, x1)], &what);
        assert_eq!(r["runs"][0]["shape"], json!([5, c, res, res]));
        assert_eq!(r["input"], json!(["latents", ["batch", 8]]));
        assert_eq!(r["output"], json!(["images", ["batch", c, res, res]]));
        let blends = r["ops"]["Sub"].as_u64().unwrap_or(0);
        assert_eq!(
            blends,
            what.contains("fading") as u64,
            "{what}: a blend exactly while fading"
        );
    }
}

/// pggan's D scores [n] for `images` [n, C, R, R] as one minibatch, on the GPU.
fn d_scores(gpu: &Gpu, ck: &Checkpoint, images: &[f32], n: usize) -> Vec<f32> {
    let layers = arch::discriminator(&ck.config.net);
    let bk = GpuBackend::f32(gpu);
    let params = Params::zeros(&bk, &layers).unwrap();
    load_params(gpu, ck, "d", &layers, &params).unwrap();
    let pos = ck.state.position(&ck.config);
    let d = Net {
        bk: &bk,
        cfg: &ck.config.net,
        layers: &layers,
        params: &params,
    };
    let (c, r) = (ck.config.net.channels, pos.res());
    let x = gpu.upload(images, &[n, c, r, r]).unwrap();
    let run = d.d_forward(&x, pos.level, pos.alpha, 1).unwrap();
    block_on(gpu.download(&run.score.p)).unwrap()
}

/// The exported discriminator against D's forward pass on the GPU, on batches of 8 (minibatch-stddev
/// groups of 4, sample n in group n mod 2) and 3 (one group of 3); a checkpoint without D (an
/// exported generator) still exports G and refuses --onnx-d.
#[test]
fn onnx_discriminator_matches_d_forward() {
    python();
    let gpu = common::gpu();
    for (what, checkpoint, c, res) in checkpoints() {
        let dir = temp_dir("onnx-d");
        export(checkpoint, &dir, true);
        let ck = pggan::train::checkpoint::load(&match checkpoint.is_dir() {
            true => checkpoint.join("checkpoint.safetensors"),
            false => checkpoint.to_path_buf(),
        })
        .unwrap();
        let mut pairs = Vec::new();
        for n in [8, 3] {
            let images = Rng::new(n as u64).normals(n * c * res * res);
            let scores = d_scores(&gpu, &ck, &images, n);
            let (x, y) = (dir.join(format!("images{n}.npy")), dir.join(format!("scores{n}.npy")));
            std::fs::write(&x, samples::npy(&[n, c, res, res], &images)).unwrap();
            std::fs::write(&y, samples::npy(&[n, 1], &scores)).unwrap();
            pairs.push((x, y));
        }
        let r = check_onnx(&dir.join("discriminator.onnx"), &pairs, &format!("D, {what}"));
        assert_eq!(r["input"], json!(["images", ["batch", c, res, res]]));
        assert_eq!(r["output"], json!(["scores", ["batch", 1]]));
        // One in the minibatch stddev, one more for the blend.
        let subs = r["ops"]["Sub"].as_u64().unwrap();
        assert_eq!(
            subs,
            1 + what.contains("fading") as u64,
            "{what}: a blend exactly while fading"
        );
    }

    let mut g_only = pggan::train::checkpoint::load(&rgb().stable).unwrap();
    g_only.tensors.retain(|name, _| name.starts_with("g_ema/"));
    let dir = temp_dir("g-only");
    let file = dir.join("generator.safetensors");
    std::fs::write(&file, g_only.to_bytes().unwrap()).unwrap();
    let (model, disc) = (dir.join("g.onnx"), dir.join("d.onnx"));
    let refused = run(&[
        "export",
        "--onnx",
        s(&model),
        "--onnx-d",
        s(&disc),
        "--checkpoint",
        s(&file),
    ]);
    assert!(!refused.status.success() && !model.exists() && !disc.exists());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("holds no discriminator"));
    assert!(run(&["export", "--onnx", s(&model), "--checkpoint", s(&file)])
        .status
        .success());
}

/// docs/export.md's Python snippet (its only ```python block), run as written next to an exported
/// model.
#[test]
fn docs_onnxruntime_snippet_runs() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/export.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```python\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 1, "docs/export.md has one Python snippet for onnxruntime");
    let dir = temp_dir("docs-snippet");
    export(&rgb().stable, &dir, false);
    std::fs::write(dir.join("snippet.py"), blocks[0]).unwrap();
    let out = Command::new(python())
        .arg("snippet.py")
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "(4, 3, 16, 16) uint8", "the snippet's output");
}

/// Every tick of the RGB run read back from its event files by TensorBoard's readers: each scalar of
/// each log.jsonl line at step = images shown, the SWD where measured, and the tick's sample grid
/// byte for byte; the grayscale run, trained with --no-tensorboard, has no event file.
#[test]
fn tensorboard_events_read_back() {
    python();
    let run = rgb();
    let r = python_json("tb_check.py", &[&run.dir]);
    assert_eq!(r["files"], 1);
    assert_eq!(r["file_versions"], json!(["brain.Event:2"]));
    let log = std::fs::read_to_string(run.dir.join("log.jsonl")).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 20, "a tick every 8 of 160 images");
    let steps: Vec<u64> = lines
        .iter()
        .map(|l| (l["kimg"].as_f64().unwrap() * 1000.0).round() as u64)
        .collect();
    assert_eq!(r["summary_steps"], json!(steps));
    assert_eq!(r["events"], 1 + lines.len(), "the version event, then one per tick");
    // The series of `tag` as (step, value as f32).
    let series = |tag: &str| -> Vec<(u64, f32)> {
        let s = r["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("no scalar {tag}"));
        s.iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap() as f32))
            .collect()
    };
    for (field, tag) in [
        ("d_loss", "loss/D"),
        ("g_loss", "loss/G"),
        ("penalty", "loss/gradient_penalty"),
        ("drift", "loss/drift"),
        ("wasserstein", "loss/wasserstein_estimate"),
        ("images_per_second", "progress/images_per_second"),
        ("resolution", "progress/resolution"),
        ("alpha", "progress/alpha"),
    ] {
        let want: Vec<(u64, f32)> = steps
            .iter()
            .zip(&lines)
            .map(|(&s, l)| (s, l[field].as_f64().unwrap() as f32))
            .collect();
        assert_eq!(series(tag), want, "{tag}");
    }
    let last = lines.last().unwrap();
    let swd = &last["swd"];
    assert_eq!(
        swd["levels"].as_array().map(Vec::len),
        Some(1),
        "one SWD level at 16x16: {swd}"
    );
    let at_end = vec![(*steps.last().unwrap(), swd["levels"][0][1].as_f64().unwrap() as f32)];
    assert_eq!(series("swd/16x16"), at_end);
    assert_eq!(
        series("swd/average"),
        vec![(at_end[0].0, swd["average"].as_f64().unwrap() as f32)]
    );
    let images = r["images"]["samples/fakes"].as_array().expect("the sample grids");
    assert_eq!(images.len(), steps.len());
    for (image, &step) in images.iter().zip(&steps) {
        assert_eq!(image[0], step);
        let png = std::fs::read(run.dir.join(format!("samples/fakes-{step:09}.png"))).unwrap();
        let (w, h) = image::load_from_memory(&png).unwrap().to_rgb8().dimensions();
        assert_eq!((image[1].as_u64(), image[2].as_u64()), (Some(w as u64), Some(h as u64)));
        let hex: String = png.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            image[3] == hex.as_str(),
            "the grid at step {step} differs from its PNG file"
        );
    }
    let gray_events = std::fs::read_dir(&gray().dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().contains("tfevents"))
        .count();
    assert_eq!(gray_events, 0, "--no-tensorboard writes no event file");
}

/// Seeds name images: a seed alone, within a range, as `--seed s --count 1`, and through the saved
/// latents give the same PNG; `--format npy` holds what the PNGs show; `interpolate --seeds` walks
/// through its seeds.
#[test]
fn seeds_reproduce_images() {
    let ck = &rgb().stable;
    let (range, alone, count, again) = (
        temp_dir("range"),
        temp_dir("alone"),
        temp_dir("count"),
        temp_dir("again"),
    );
    generate(ck, &range, &["--seeds", "3-5,9"]);
    generate(ck, &alone, &["--seeds", "9"]);
    generate(ck, &count, &["--seed", "4", "--count", "1"]);
    generate(ck, &again, &["--latents", s(&range.join("latents.npy"))]);
    let png = |dir: &Path, name: &str| std::fs::read(dir.join(name)).unwrap();
    assert_eq!(
        png(&alone, "seed0009.png"),
        png(&range, "seed0009.png"),
        "seed 9 alone and in a range"
    );
    assert_eq!(
        png(&count, "000000.png"),
        png(&range, "seed0004.png"),
        "--seed 4 --count 1 is seed 4"
    );
    for (i, seed) in [3, 4, 5, 9].into_iter().enumerate() {
        let name = format!("seed{seed:04}.png");
        assert_eq!(
            png(&again, &format!("{i:06}.png")),
            png(&range, &name),
            "latents.npy row {i} is seed {seed}"
        );
    }
    let (shape, z) = npy(&range.join("latents.npy"));
    assert_eq!(shape, [4, 8]);
    let (_, z9) = npy(&alone.join("latents.npy"));
    assert_eq!(z[24..], z9[..], "seed 9's latent");

    // The floats, clipped and scaled as PNGs are, give the PNG's pixels.
    let floats = temp_dir("floats");
    generate(ck, &floats, &["--seeds", "3-5,9", "--format", "npy"]);
    let (shape, values) = npy(&floats.join("images.npy"));
    assert_eq!(shape, [4, 3, 16, 16]);
    let pixels = image::load_from_memory(&png(&range, "seed0005.png")).unwrap().to_rgb8();
    for (i, v) in values[2 * 768..3 * 768].iter().enumerate() {
        let (c, y, x) = (i / 256, (i / 16) % 16, i % 16);
        let want = ((*v as f64 + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8;
        assert_eq!(pixels.get_pixel(x as u32, y as u32)[c], want, "pixel {i} of seed 5");
    }

    let walk = temp_dir("walk").join("walk.gif");
    let out = run(&[
        "interpolate",
        "--checkpoint",
        s(ck),
        "--seeds",
        "3,9",
        "--frames",
        "6",
        "--out",
        s(&walk),
    ]);
    assert!(out.status.success());
    let gif = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(std::fs::read(&walk).unwrap())).unwrap();
    assert_eq!(image::AnimationDecoder::into_frames(gif).count(), 6);
    let one = run(&["interpolate", "--checkpoint", s(ck), "--seeds", "3", "--out", s(&walk)]);
    assert!(!one.status.success(), "a walk through one seed is refused");
}

/// `--trunc T`: every latent component within [-T, T], the bound reached closely, the images
/// different from the untruncated ones; refused with --latents and for T <= 0.
#[test]
fn truncation_bounds_the_latents() {
    let ck = &rgb().stable;
    let (cut, full) = (temp_dir("trunc"), temp_dir("full"));
    generate(ck, &cut, &["--seeds", "0-63", "--trunc", "0.5", "--format", "npy"]);
    generate(ck, &full, &["--seeds", "0-63", "--format", "npy"]);
    let (shape, z) = npy(&cut.join("latents.npy"));
    assert_eq!(shape, [64, 8]);
    let largest = z.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(largest as f64 <= 0.5, "a component of {largest} beyond --trunc 0.5");
    assert!(
        largest > 0.49,
        "512 components from N(0, 1) within 0.5 reach near it, not only {largest}"
    );
    let (_, untruncated) = npy(&full.join("latents.npy"));
    assert!(
        untruncated.iter().any(|v| v.abs() > 2.0),
        "without --trunc, the tails are there"
    );
    // Truncation redraws only what is beyond the bound: seed 0's components before its first one
    // beyond 0.5 are those of the untruncated draw, and that one is drawn again.
    let k = untruncated.iter().position(|v| v.abs() > 0.5).unwrap();
    assert!(k < 8, "seed 0 has a component beyond 0.5");
    assert_eq!(z[..k], untruncated[..k]);
    assert_ne!(z[k], untruncated[k]);
    assert_ne!(npy(&cut.join("images.npy")).1, npy(&full.join("images.npy")).1);

    let npy_file = cut.join("latents.npy");
    for bad in [vec!["--latents", s(&npy_file), "--trunc", "0.5"], vec!["--trunc", "0"]] {
        let mut args = vec!["generate", "--checkpoint", s(ck), "--out", s(&cut)];
        args.extend(bad.iter());
        assert!(!run(&args).status.success(), "{bad:?} is refused");
    }
}

/// `--onnx-d` refuses a checkpoint of format version 1 (its D had the earlier block) with the
/// message `train --resume` gives, and writes neither model; a closed stdout does not fail an
/// export of a good checkpoint.
#[test]
fn a_format_1_discriminator_is_refused_and_stdout_may_be_closed() {
    let trained = rgb();
    let dir = temp_dir("format-1");
    let old = dir.join("old.safetensors");
    let bytes = common::as_version(&std::fs::read(&trained.stable).unwrap(), 1);
    std::fs::write(&old, &bytes).unwrap();
    let (g, d) = (dir.join("generator.onnx"), dir.join("discriminator.onnx"));
    let out = run(&["export", "--onnx", s(&g), "--onnx-d", s(&d), "--checkpoint", s(&old)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The message of `train --resume` (Trainer::resume), word for word.
    let resume = format!(
        "{:#}",
        Checkpoint::from_bytes(&bytes)
            .unwrap()
            .check_discriminator()
            .unwrap_err()
    );
    assert!(
        !out.status.success() && resume.contains("earlier discriminator block") && stderr.contains(&resume),
        "{stderr}"
    );
    assert!(!g.exists() && !d.exists());

    let out = common::pggan(&["export", "--onnx", s(&g), "--checkpoint", s(&trained.stable)])
        .stdout(common::closed_pipe())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(g.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
