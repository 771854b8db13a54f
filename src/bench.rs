//! Benchmarks. `pggan bench kernels`: GFLOP/s of the convolution passes and the dense layer at PG-GAN
//! shapes, each beside a plain tiled matrix product (`dense::matmul`) of the same GEMM size on the same
//! device. `pggan bench train`: images per second of the whole training step at each resolution.
//! `pggan bench quality`: a fixed small run on the emoji set for a fixed budget, then its SWD.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::gpu::Tensor;
use crate::gpu::{Gpu, Profile, RecordStats};
use crate::metrics::Swd;
use crate::nn::config::res_of;
use crate::nn::NetConfig;
use crate::ops::conv::{self, Pass, Tile};
use crate::ops::{act, blas, dense};
use crate::rng::Rng;
use crate::train::config::TrainConfig;
use crate::train::dist::{local_minibatch, Replicas, StepTimes};
use crate::train::step::{self, check_batch, Model, StepConfig, StepInputs};
use crate::train::trainer::{nonfinite_counts, Trainer};

/// One benchmarked layer shape.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Shape {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    /// Spatial size; 1 with `k == 0` marks a dense layer.
    pub res: usize,
    /// Kernel size; 0 for a dense layer.
    pub k: usize,
}

/// The shapes of issue "Speed": batch 16, 512->512 at 8, 16, 32; 128->128 at 64; fromRGB and toRGB
/// 1x1 at 64; D's 4x4 dense.
/// `max_channels` caps every channel count, to keep a run short on a slow device.
pub fn pggan_shapes(batch: usize, max_channels: usize) -> Vec<Shape> {
    let c = |n: usize| n.min(max_channels);
    let conv = |cin, cout, res, k| Shape {
        batch,
        cin: c(cin),
        cout: c(cout),
        res,
        k,
    };
    vec![
        conv(512, 512, 8, 3),
        conv(512, 512, 16, 3),
        conv(512, 512, 32, 3),
        conv(128, 128, 64, 3),
        conv(3, 128, 64, 1),
        conv(128, 3, 64, 1),
        Shape {
            batch,
            cin: c(512) * 16,
            cout: c(512),
            res: 1,
            k: 0,
        },
    ]
}

/// Mean seconds of `reps` runs of `f` after one warm-up, waiting for the GPU each time.
fn time(gpu: &Gpu, reps: usize, f: &dyn Fn() -> Result<()>) -> Result<f64> {
    f()?;
    gpu.wait()?;
    let start = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

/// One row: pass, shape, tile (for convolutions), GFLOP/s, and the ratio to a plain matmul of the
/// same (M, K, N).
#[derive(serde::Serialize)]
pub struct Row {
    pub pass: &'static str,
    pub shape: Shape,
    pub tile: Option<String>,
    pub gflops: f64,
    pub ratio: f64,
}

/// Benchmarks every pass of `s` (a convolution's also with its bias + leaky ReLU epilogue); each GEMM
/// is (M, K, N) with 2 M K N flops. A convolution runs with the planned tile, or with each of `tiles`.
pub fn run(gpu: &Gpu, s: Shape, reps: usize, tiles: &[Tile]) -> Result<Vec<Row>> {
    let hw = s.res * s.res;
    let taps = s.k.max(1) * s.k.max(1);
    let (x, y, w) = if s.k == 0 {
        (
            gpu.zeros(&[s.batch, s.cin])?,
            gpu.zeros(&[s.batch, s.cout])?,
            gpu.zeros(&[s.cout, s.cin])?,
        )
    } else {
        (
            gpu.zeros(&[s.batch, s.cin, s.res, s.res])?,
            gpu.zeros(&[s.batch, s.cout, s.res, s.res])?,
            gpu.zeros(&[s.cout, s.cin, s.k, s.k])?,
        )
    };
    let (m_out, red, cols) = (s.cout, s.cin * taps, s.batch * hw);
    // The biases of a convolution's forward_act.
    let bias = gpu.zeros(&[s.cout])?;
    // (pass, GEMM dims (M, K, N), tile, the launch)
    type Launch<'a> = Box<dyn Fn() -> Result<()> + 'a>;
    let mut passes: Vec<(&'static str, [usize; 3], Option<Tile>, Launch)> = Vec::new();
    if s.k == 0 {
        passes.push((
            "forward",
            [m_out, red, cols],
            None,
            Box::new(|| dense::forward(gpu, &x, &w, &y, 1.0)),
        ));
        passes.push((
            "backward-data",
            [s.cin, s.cout, cols],
            None,
            Box::new(|| dense::backward_data(gpu, &y, &w, &x, 1.0)),
        ));
        passes.push((
            "backward-weight",
            [m_out, cols, red],
            None,
            Box::new(|| dense::backward_weight(gpu, &x, &y, &w, 1.0, false)),
        ));
    } else {
        let conv_passes = [
            ("forward", Pass::Forward { act: None }, [m_out, red, cols]),
            (
                "forward_act",
                Pass::Forward {
                    act: Some((&bias, act::SLOPE)),
                },
                [m_out, red, cols],
            ),
            ("backward-data", Pass::BackwardData, [s.cin, s.cout * taps, cols]),
            (
                "backward-weight",
                Pass::BackwardWeight { accumulate: false },
                [m_out, cols, red],
            ),
        ];
        // None: the planned tile.
        let tiles: Vec<Option<Tile>> = match tiles {
            [] => vec![None],
            forced => forced.iter().copied().map(Some).collect(),
        };
        for (name, pass, dims) in conv_passes {
            for &tile in &tiles {
                let tensors = [&x, &w, &y];
                passes.push((
                    name,
                    dims,
                    tile,
                    Box::new(move || conv::run(gpu, pass, tensors, 1.0, tile)),
                ));
            }
        }
    }
    let mut rows = Vec::new();
    for (pass, [m, k, n], tile, launch) in passes {
        let flops = 2.0 * (m * k * n) as f64;
        let secs = time(gpu, reps, &launch)?;
        let (a, b, c) = (gpu.zeros(&[m, k])?, gpu.zeros(&[k, n])?, gpu.zeros(&[m, n])?);
        let base = time(gpu, reps, &|| dense::matmul(gpu, &a, &b, &c))?;
        let tile = (s.k > 0).then(|| tile.unwrap_or(conv::plan(m, n, k, None).tile).to_string());
        rows.push(Row {
            pass,
            shape: s,
            tile,
            gflops: flops / secs / 1e9,
            ratio: base / secs,
        });
    }
    Ok(rows)
}

/// The printed table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<16} {:<30} {:<12} {:>10} {:>14}\n",
        "pass", "shape", "tile", "GFLOP/s", "vs matmul"
    );
    for r in rows {
        let s = r.shape;
        let shape = if s.k == 0 {
            format!("dense {}x{} -> {}", s.batch, s.cin, s.cout)
        } else {
            format!("conv{}x{} {}x{}->{} @{}", s.k, s.k, s.batch, s.cin, s.cout, s.res)
        };
        let tile = r.tile.as_deref().unwrap_or("-");
        out += &format!(
            "{:<16} {:<30} {:<12} {:>10.2} {:>13.2}x\n",
            r.pass, shape, tile, r.gflops, r.ratio
        );
    }
    out
}

/// What `pggan bench train` times.
#[derive(Clone, Debug)]
pub struct TrainBench {
    pub net: NetConfig,
    pub minibatch: usize,
    /// Timed steps per resolution, after `warmup` untimed ones.
    pub steps: usize,
    pub warmup: usize,
    /// The resolutions to time, each a level of `net` (4 up to `net.max_res`).
    pub resolutions: Vec<usize>,
    /// Also time each kernel over one more step (timestamp queries).
    pub profile: bool,
}

/// One resolution's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainRow {
    pub resolution: usize,
    /// Fade-in alpha: 0.5 at every level above 4x4 (the fading phase, the costlier one), else 1.
    pub alpha: f32,
    /// Real images consumed per second: minibatch x steps / seconds (one D and one G step each).
    pub images_per_s: f64,
    pub ms_per_step: f64,
    /// Host time per step spent recording and submitting its commands: the per-step overhead. Near
    /// `ms_per_step`, the step is bound by the CPU, not the GPU.
    pub host_ms_per_step: f64,
    /// Storage buffers created per timed step (0 once the pool is warm).
    pub buffers_per_step: f64,
    /// Kernel launches per step, the compute passes they were recorded in (a buffer clear or copy
    /// between two launches ends a pass), and the bind groups created for them (0 once every launch
    /// finds the previous step's in the cache).
    pub launches_per_step: f64,
    pub passes_per_step: f64,
    pub bind_groups_per_step: f64,
    /// GPU time of each kernel over one step, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// With the profile: GPU milliseconds of the trainer's check that the model is finite (run
    /// before each checkpoint, not every step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_ms: Option<f64>,
    /// Under an MPI launcher ([`train_on`]): this rank's milliseconds per step in the gradient
    /// reductions (download, MPI, upload; `images_per_s` is this rank's share), and every rank's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist: Option<crate::train::dist::StepTimes>,
}

impl TrainBench {
    /// Refuses settings that cannot run, naming the setting.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        check_batch(self.minibatch)?;
        if self.steps == 0 {
            bail!("--steps must be at least 1");
        }
        if self.resolutions.is_empty() {
            bail!("--levels names no resolution");
        }
        for &r in &self.resolutions {
            if !r.is_power_of_two() || r < 4 || r > self.net.max_res {
                bail!(
                    "resolution {r} in --levels is not a power of two from 4 to --resolution {}",
                    self.net.max_res
                );
            }
        }
        Ok(())
    }
}

/// Times `pggan::train::step::step` on one model (weights N(0,1)) at each resolution of `b`. The
/// inputs (reals uniform in [-1, 1], latents N(0,1), penalty mix uniform) are uploaded once per
/// resolution, so the figure is the step alone. Each step is submitted as it is recorded, as a trainer
/// does; the clock stops after `Gpu::wait` on the last one.
pub fn train(gpu: &Gpu, b: &TrainBench) -> Result<Vec<TrainRow>> {
    train_on(gpu, b, None)
}

/// [`train`] as one rank of a data-parallel run when `replicas` holds the others: each rank steps
/// on its share of the minibatch and averages the gradients (`train::dist`).
pub fn train_on(gpu: &Gpu, b: &TrainBench, mut replicas: Option<&mut dyn Replicas>) -> Result<Vec<TrainRow>> {
    b.validate()?;
    let ranks = replicas.as_ref().map_or(1, |r| r.size());
    let n = local_minibatch(b.minibatch, ranks)?;
    let mut rng = Rng::new(1);
    let mut model = Model::new(gpu, &b.net, |s| gpu.upload(&rng.normals(s.iter().product()), s))?;
    let (sc, stats) = (StepConfig::default(), gpu.zeros(&[5])?);
    let mut rows = Vec::new();
    for &res in &b.resolutions {
        let level = res.trailing_zeros() as usize - 1;
        debug_assert_eq!(res_of(level), res);
        let alpha = if level > 1 { 0.5 } else { 1.0 };
        let reals: Vec<f32> = (0..n * b.net.channels * res * res)
            .map(|_| (2.0 * rng.uniform() - 1.0) as f32)
            .collect();
        let mix: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let z = [n, b.net.latent];
        let inputs = StepInputs {
            reals: gpu.upload(&reals, &[n, b.net.channels, res, res])?,
            z_d: gpu.upload(&rng.normals(n * b.net.latent), &z)?,
            z_g: gpu.upload(&rng.normals(n * b.net.latent), &z)?,
            mix: gpu.upload(&mix, &[n])?,
        };
        let reduce_seconds = |r: &Option<&mut dyn Replicas>| r.as_ref().map_or(0.0, |r| r.reduce_seconds());
        // (wall seconds, host seconds, buffers created, what was recorded, seconds in reductions)
        let mut run = |steps: usize| -> Result<(f64, f64, u64, RecordStats, f64)> {
            gpu.wait()?;
            let reduced = reduce_seconds(&replicas);
            let created = gpu.pool_stats().created;
            let recorded = gpu.record_stats();
            let (start, mut host) = (Instant::now(), 0.0);
            for _ in 0..steps {
                let t = Instant::now();
                let mut sync = |gpu: &Gpu, grad: &Tensor, which| match replicas.as_deref_mut() {
                    Some(r) => r.average(gpu, grad, which),
                    None => Ok(()),
                };
                step::step_synced(gpu, &mut model, &inputs, level, alpha, &sc, &stats, &mut sync)?;
                gpu.flush();
                host += t.elapsed().as_secs_f64();
            }
            gpu.wait()?;
            let recorded = gpu.record_stats().since(recorded);
            Ok((
                start.elapsed().as_secs_f64(),
                host,
                gpu.pool_stats().created - created,
                recorded,
                reduce_seconds(&replicas) - reduced,
            ))
        };
        run(b.warmup)?;
        let (secs, host, created, recorded, reduced) = run(b.steps)?;
        let dist = match replicas.as_deref_mut() {
            Some(r) => Some(StepTimes::gather(
                r,
                reduced / b.steps as f64,
                (n * b.steps) as f64 / secs,
            )?),
            None => None,
        };
        let (profile, check_ms) = if b.profile {
            gpu.profile_start()?;
            step::step(gpu, &mut model, &inputs, level, alpha, &sc, &stats)?;
            let step_profile = pollster::block_on(gpu.profile_finish())?;
            gpu.profile_start()?;
            nonfinite_counts(gpu, &model)?;
            let check = pollster::block_on(gpu.profile_finish())?;
            (Some(step_profile), Some(check.total_ms()))
        } else {
            (None, None)
        };
        rows.push(TrainRow {
            resolution: res,
            alpha,
            images_per_s: (n * b.steps) as f64 / secs,
            ms_per_step: 1e3 * secs / b.steps as f64,
            host_ms_per_step: 1e3 * host / b.steps as f64,
            buffers_per_step: created as f64 / b.steps as f64,
            launches_per_step: recorded.launches as f64 / b.steps as f64,
            passes_per_step: recorded.passes as f64 / b.steps as f64,
            bind_groups_per_step: recorded.bind_groups as f64 / b.steps as f64,
            profile,
            check_ms,
            dist,
        });
        // The next resolution's tensors have other sizes.
        drop(inputs);
        gpu.trim_pool();
    }
    Ok(rows)
}

/// What `pggan bench launches` measures: the host's time per kernel launch, recording it and
/// submitting it, each the median over rounds of `launches` launches of one small kernel
/// (`blas.axpy` on 64 values, so the GPU's time does not enter).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LaunchCost {
    pub launches: usize,
    pub rounds: usize,
    pub record_us: f64,
    pub submit_us: f64,
    /// Compute passes and bind groups created per round, after the first round.
    pub passes: f64,
    pub bind_groups: f64,
}

/// Times `rounds` rounds of `launches` launches (see [`LaunchCost`]); each round is recorded, then
/// submitted, then waited for.
pub fn launches(gpu: &Gpu, launches: usize, rounds: usize) -> Result<LaunchCost> {
    if launches == 0 || rounds < 2 {
        bail!("--launches must be at least 1 and --rounds at least 2");
    }
    let x: Vec<_> = (0..8).map(|_| gpu.upload(&[1.0; 64], &[64])).collect::<Result<_>>()?;
    let (mut record, mut submit, mut timed_from) = (Vec::new(), Vec::new(), RecordStats::default());
    for round in 0..rounds {
        gpu.wait()?;
        // The first round compiles the kernel and creates the bind groups: it is not counted.
        if round == 1 {
            timed_from = gpu.record_stats();
        }
        let start = Instant::now();
        for i in 0..launches {
            // Distinct tensors: an axpy may not read and write one buffer.
            blas::axpy(gpu, 0.5, &x[i % 8], &x[(i + 1) % 8])?;
        }
        let recorded_at = Instant::now();
        gpu.flush();
        let us = |d: std::time::Duration| 1e6 * d.as_secs_f64() / launches as f64;
        if round > 0 {
            record.push(us(recorded_at - start));
            submit.push(us(recorded_at.elapsed()));
        }
    }
    gpu.wait()?;
    let recorded = gpu.record_stats().since(timed_from);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let timed = (rounds - 1) as f64;
    Ok(LaunchCost {
        launches,
        rounds,
        record_us: median(&mut record),
        submit_us: median(&mut submit),
        passes: recorded.passes as f64 / timed,
        bind_groups: recorded.bind_groups as f64 / timed,
    })
}

/// The printed table of `pggan bench train` (the PyTorch reference prints the same).
pub fn train_table(rows: &[TrainRow]) -> String {
    let mut out = format!(
        "{:>10} {:>6} {:>12} {:>12} {:>14} {:>14} {:>10} {:>10} {:>12}\n",
        "resolution",
        "alpha",
        "images/s",
        "ms/step",
        "host ms/step",
        "buffers/step",
        "launches",
        "passes",
        "bind groups"
    );
    for r in rows {
        out += &format!(
            "{:>10} {:>6.2} {:>12.2} {:>12.2} {:>14.2} {:>14.1} {:>10.0} {:>10.0} {:>12.1}\n",
            r.resolution,
            r.alpha,
            r.images_per_s,
            r.ms_per_step,
            r.host_ms_per_step,
            r.buffers_per_step,
            r.launches_per_step,
            r.passes_per_step,
            r.bind_groups_per_step
        );
    }
    for r in rows {
        if let Some(p) = &r.profile {
            out += &profile_table(r.resolution, p);
        }
        if let (Some(p), Some(check)) = (&r.profile, r.check_ms) {
            out += &format!(
                "the check that the model is finite (before each checkpoint): {check:.3} ms of GPU time, \
                 {:.1}% of one step\n",
                100.0 * check / p.total_ms()
            );
        }
    }
    out
}

/// The kernels of one profiled step, longest first, with their share of the step's GPU time.
fn profile_table(res: usize, p: &Profile) -> String {
    let total = p.total_ms();
    let mut out = format!("\nkernels of one step at {res}x{res}: {total:.3} ms of GPU time\n");
    out += &format!("{:>10} {:>7} {:>9}  kernel\n", "ms", "share", "launches");
    for k in &p.kernels {
        out += &format!(
            "{:>10.3} {:>6.1}% {:>9}  {}\n",
            k.ms,
            100.0 * k.ms / total,
            k.launches,
            k.kernel
        );
    }
    if p.untimed_passes > 0 {
        out += &format!("({} more passes were not timed)\n", p.untimed_passes);
    }
    out
}

/// The quality benchmark's fixed configuration: the emoji set to `max_res` with small networks,
/// `phase_kimg` thousand images per phase; only the budget and the resolution are settings, so
/// runs stay comparable.
pub fn quality_config(max_res: usize, phase_kimg: f64, seed: u64) -> TrainConfig {
    let mut cfg = TrainConfig::default();
    cfg.net.max_res = max_res;
    cfg.net.fmap_base = 1024;
    cfg.net.fmap_max = 128;
    cfg.net.latent = 128;
    cfg.schedule.minibatch = 16;
    cfg.schedule.phase_kimg = phase_kimg;
    cfg.seed = seed;
    cfg
}

#[derive(Debug, Serialize)]
pub struct QualityReport {
    pub kimg: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    pub swd_images: usize,
    pub swd: Option<Swd>,
}

/// Trains `trainer` through its whole schedule, then measures the SWD of `swd_images` images of
/// its EMA generator against as many real ones.
pub fn quality(trainer: &mut Trainer, swd_images: usize) -> Result<QualityReport> {
    let start = Instant::now();
    let mut phase = usize::MAX;
    while !trainer.finished() {
        let pos = trainer.position();
        if pos.phase != phase {
            phase = pos.phase;
            eprintln!(
                "{:7.1} kimg  {r}x{r} {}  ({:.0} s)",
                trainer.state.images as f64 / 1000.0,
                pos.phase_name(),
                start.elapsed().as_secs_f64(),
                r = pos.res()
            );
        }
        trainer.step()?;
        if trainer.state.steps.is_multiple_of(8) {
            trainer.gpu.wait()?;
        }
    }
    trainer.gpu.wait()?;
    let seconds = start.elapsed().as_secs_f64();
    let swd = pollster::block_on(trainer.swd(swd_images, trainer.cfg.seed ^ 0x51ED))?;
    Ok(QualityReport {
        kimg: trainer.state.images as f64 / 1000.0,
        seconds,
        images_per_second: trainer.state.images as f64 / seconds,
        swd_images,
        swd,
    })
}
