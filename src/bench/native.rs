//! The native-only benchmarks: they block on the GPU. `pggan bench kernels`: GFLOP/s of the
//! convolution passes and the dense layer at PG-GAN shapes, each beside a plain tiled matrix product
//! (`dense::matmul_in`) of the same GEMM size and precision on the same device. `pggan bench
//! launches`: the host's time per launch. `pggan bench quality`: a fixed small run on the emoji set
//! for a fixed budget, then its SWD.

use std::time::Instant;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::errln;
use crate::gpu::{Gpu, RecordStats};
use crate::metrics::Swd;
use crate::ops::conv::{self, Pass, Tile};
use crate::ops::precision::LayerPrecision;
use crate::ops::{act, blas, dense};
use crate::train::config::{kimg, TrainConfig};
use crate::train::trainer::Trainer;

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

/// One row: pass, shape, kernel (its shader's name), tile (for convolutions), GFLOP/s, and the ratio
/// to a plain matmul of the same (M, K, N).
#[derive(serde::Serialize)]
pub struct Row {
    pub pass: &'static str,
    pub shape: Shape,
    pub kernel: &'static str,
    pub tile: Option<String>,
    pub gflops: f64,
    pub ratio: f64,
}

/// Benchmarks every pass of `s` (a convolution's also with its bias + leaky ReLU epilogue); each GEMM
/// is (M, K, N) with 2 M K N flops. A convolution runs with the planned tile, or with each of `tiles`.
/// Every pass, and the plain matmul beside it, runs at `layers` (`Mixed`: the f16-operand kernels,
/// `dense+f16` and the convolutions' kernel, on cooperative matrices where the device has them).
pub fn run(gpu: &Gpu, layers: &LayerPrecision, s: Shape, reps: usize, tiles: &[Tile]) -> Result<Vec<Row>> {
    let (precision, kernel) = (layers.precision, layers.conv);
    let dense_kernel = dense::shader(precision).name;
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
            Box::new(|| dense::forward(gpu, precision, &x, &w, &y, 1.0)),
        ));
        passes.push((
            "backward-data",
            [s.cin, s.cout, cols],
            None,
            Box::new(|| dense::backward_data(gpu, precision, &y, &w, &x, 1.0)),
        ));
        passes.push((
            "backward-weight",
            [m_out, cols, red],
            None,
            Box::new(|| dense::backward_weight(gpu, precision, &x, &y, &w, 1.0, false)),
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
                    Box::new(move || conv::run_on(gpu, kernel.fit(dims[0]), pass, tensors, 1.0, tile)),
                ));
            }
        }
    }
    let mut rows = Vec::new();
    for (pass, [m, k, n], tile, launch) in passes {
        let flops = 2.0 * (m * k * n) as f64;
        let secs = time(gpu, reps, &launch)?;
        let (a, b, c) = (gpu.zeros(&[m, k])?, gpu.zeros(&[k, n])?, gpu.zeros(&[m, n])?);
        let base = time(gpu, reps, &|| dense::matmul_in(gpu, precision, &a, &b, &c))?;
        let tile = (s.k > 0).then(|| tile.unwrap_or(kernel.fit(m).plan(m, n, k, None).tile).to_string());
        rows.push(Row {
            pass,
            shape: s,
            kernel: if s.k > 0 { kernel.fit(m).name() } else { dense_kernel },
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
        "{:<16} {:<30} {:<12} {:<12} {:>10} {:>14}\n",
        "pass", "shape", "kernel", "tile", "GFLOP/s", "vs matmul"
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
            "{:<16} {:<30} {:<12} {:<12} {:>10.2} {:>13.2}x\n",
            r.pass, shape, r.kernel, tile, r.gflops, r.ratio
        );
    }
    out
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
            errln!(
                "{:7.1} kimg  {r}x{r} {}  ({:.0} s)",
                kimg(trainer.state().images),
                pos.phase_name(),
                start.elapsed().as_secs_f64(),
                r = pos.res()
            );
        }
        trainer.step()?;
        if trainer.state().steps.is_multiple_of(8) {
            trainer.gpu().wait()?;
        }
    }
    trainer.gpu().wait()?;
    let seconds = start.elapsed().as_secs_f64();
    let swd = pollster::block_on(trainer.swd(swd_images, trainer.cfg().seed ^ 0x51ED))?;
    Ok(QualityReport {
        kimg: kimg(trainer.state().images),
        seconds,
        images_per_second: trainer.state().images as f64 / seconds,
        swd_images,
        swd,
    })
}
