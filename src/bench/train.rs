//! `pggan bench train` and the page's `bench_train`: images per second of the whole training step at
//! each resolution. The same code runs natively and in the browser (it awaits read-backs and reads
//! the host's clock where it runs), so that the two can be compared on one GPU.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::clock::now;
use crate::gpu::{Gpu, PrecisionChoice, Profile, RecordStats, Tensor};
use crate::nn::backend::GpuBackend;
use crate::nn::config::res_of;
use crate::nn::NetConfig;
use crate::ops::loss::STATS;
use crate::ops::precision::LayerPrecision;
use crate::rng::Rng;
use crate::train::checkpoint::nonfinite_counts;
use crate::train::dist::{local_minibatch, Replicas, StepTimes};
use crate::train::step::{self, check_batch, Model, StepConfig, StepInputs};

/// The settings of `pggan bench train` (its flags) and of the page's `bench_train` (a JSON object
/// with any of these fields; those left out keep the CLI's defaults: the official channel counts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// The largest resolution; the networks are built for it.
    pub resolution: usize,
    pub fmap_base: usize,
    pub fmap_max: usize,
    pub latent: usize,
    pub minibatch: usize,
    pub steps: usize,
    pub warmup: usize,
    /// The resolutions to time (empty: every one up to `resolution`).
    pub levels: Vec<usize>,
    pub profile: bool,
    /// The layers' matrix products: `f32`, `mixed` or `auto`.
    pub precision: PrecisionChoice,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            resolution: 64,
            fmap_base: 8192,
            fmap_max: 512,
            latent: 512,
            minibatch: 16,
            steps: 10,
            warmup: 2,
            levels: Vec::new(),
            profile: false,
            precision: PrecisionChoice::F32,
        }
    }
}

impl TrainSettings {
    /// What to time, checked.
    pub fn bench(&self) -> Result<TrainBench> {
        let net = NetConfig {
            max_res: self.resolution,
            fmap_base: self.fmap_base,
            fmap_max: self.fmap_max,
            latent: self.latent,
            channels: 3,
        };
        net.validate()?;
        let resolutions = match self.levels.is_empty() {
            true => (1..=net.levels()).map(res_of).collect(),
            false => self.levels.clone(),
        };
        let b = TrainBench {
            net,
            minibatch: self.minibatch,
            steps: self.steps,
            warmup: self.warmup,
            resolutions,
            profile: self.profile,
            precision: self.precision,
        };
        b.validate()?;
        Ok(b)
    }
}

/// `pggan bench train --json`'s object, which the page's `bench_train` returns too: the adapter, the
/// settings, the layers' precision (`train`'s) and a row per resolution.
pub fn train_report(
    gpu: &Gpu,
    layers: &LayerPrecision,
    settings: &TrainSettings,
    rows: &[TrainRow],
) -> serde_json::Value {
    serde_json::json!({
        "bench": "train",
        "adapter": adapter(gpu),
        "config": settings,
        "precision": format!("{:?}", layers.precision),
        // With the convolutions' kernel: whether mixed ran on cooperative matrices.
        "layers": layers.describe(),
        "rows": rows,
    })
}

/// The adapter as every benchmark's JSON names it.
pub fn adapter(gpu: &Gpu) -> serde_json::Value {
    serde_json::json!({
        "name": gpu.info.name,
        "backend": format!("{:?}", gpu.info.backend),
        "device_type": format!("{:?}", gpu.info.device_type),
    })
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
    /// The layers' matrix products, resolved against the device when the timing starts.
    pub precision: PrecisionChoice,
}

/// One resolution's figures.
#[derive(Clone, Debug, Serialize)]
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
    /// Under an MPI launcher ([`train_on`]): every rank's images per second (`images_per_s` is this
    /// rank's share) and milliseconds per step in the gradient reductions (download, MPI, upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist: Option<StepTimes>,
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
/// does; the clock stops when the last step's statistics are read back. Natively and in the browser
/// alike: nothing blocks, the read-backs are awaited. With the rows, the layers' precision they ran at.
pub async fn train(gpu: &Gpu, b: &TrainBench) -> Result<(LayerPrecision, Vec<TrainRow>)> {
    train_on(gpu, b, None).await
}

/// [`train`] as one rank of a data-parallel run when `replicas` holds the others: each rank steps
/// on its share of the minibatch and averages the gradients (`train::dist`).
pub async fn train_on(
    gpu: &Gpu,
    b: &TrainBench,
    mut replicas: Option<&mut dyn Replicas>,
) -> Result<(LayerPrecision, Vec<TrainRow>)> {
    b.validate()?;
    let (layers, warning) = LayerPrecision::choose(gpu, b.precision).await?;
    if let Some(warning) = warning {
        crate::errln!("warning: {warning}");
    }
    let bk = GpuBackend::new(gpu, &layers);
    let n = local_minibatch(b.minibatch, replicas.as_ref().map_or(1, |r| r.size()))?;
    let mut rng = Rng::new(1);
    let mut model = Model::new(&bk, &b.net, |s| gpu.upload(&rng.normals(s.iter().product()), s))?;
    let (sc, stats) = (StepConfig::default(), gpu.zeros(&[STATS])?);
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
        let mut run = Steps {
            bk: &bk,
            model: &mut model,
            inputs: &inputs,
            level,
            alpha,
            sc: &sc,
            stats: &stats,
            replicas: replicas.as_deref_mut(),
        };
        run.time(b.warmup).await?;
        let timed = run.time(b.steps).await?;
        let dist = match replicas.as_deref_mut() {
            Some(r) => Some(StepTimes::gather(
                r,
                timed.reduce_seconds / b.steps as f64,
                (n * b.steps) as f64 / timed.seconds,
            )?),
            None => None,
        };
        let (profile, check_ms) = if b.profile {
            gpu.profile_start()?;
            step::step(&bk, &mut model, &inputs, level, alpha, &sc, &stats)?;
            let step_profile = gpu.profile_finish().await?;
            gpu.profile_start()?;
            nonfinite_counts(gpu, &model)?;
            let check = gpu.profile_finish().await?;
            (Some(step_profile), Some(check.total_ms()))
        } else {
            (None, None)
        };
        let per_step = |x: f64| x / b.steps as f64;
        rows.push(TrainRow {
            resolution: res,
            alpha,
            images_per_s: (n * b.steps) as f64 / timed.seconds,
            ms_per_step: 1e3 * per_step(timed.seconds),
            host_ms_per_step: 1e3 * per_step(timed.host_seconds),
            buffers_per_step: per_step(timed.buffers as f64),
            launches_per_step: per_step(timed.recorded.launches as f64),
            passes_per_step: per_step(timed.recorded.passes as f64),
            bind_groups_per_step: per_step(timed.recorded.bind_groups as f64),
            profile,
            check_ms,
            dist,
        });
        // The next resolution's tensors have other sizes.
        drop(inputs);
        gpu.trim_pool();
    }
    Ok((layers, rows))
}

/// One resolution's step, ready to be timed.
struct Steps<'a, 'r> {
    bk: &'a GpuBackend<'a>,
    model: &'a mut Model<Tensor>,
    inputs: &'a StepInputs<Tensor>,
    level: usize,
    alpha: f32,
    sc: &'a StepConfig,
    stats: &'a Tensor,
    /// The other processes of a data-parallel run, if any.
    replicas: Option<&'a mut (dyn Replicas + 'r)>,
}

/// What `steps` steps took: wall and host seconds, buffers created, what was recorded, seconds in
/// the gradient reductions of a data-parallel run.
struct Timed {
    seconds: f64,
    host_seconds: f64,
    reduce_seconds: f64,
    buffers: u64,
    recorded: RecordStats,
}

impl Steps<'_, '_> {
    /// Seconds spent in the gradient reductions so far (0 in a single-process run).
    fn reduce_seconds(&self) -> f64 {
        self.replicas.as_ref().map_or(0.0, |r| r.reduce_seconds())
    }

    /// Runs `steps` steps after the GPU has finished everything before them; the clock stops when
    /// the last one's statistics are read back.
    async fn time(&mut self, steps: usize) -> Result<Timed> {
        let gpu = self.bk.gpu;
        gpu.download(self.stats).await?;
        let created = gpu.pool_stats().created;
        let recorded = gpu.record_stats();
        let reduced = self.reduce_seconds();
        let (start, mut host_seconds) = (now(), 0.0);
        for _ in 0..steps {
            let t = now();
            let replicas = &mut self.replicas;
            let mut sync = |bk: &GpuBackend, grad: &Tensor, which| match replicas.as_deref_mut() {
                Some(r) => r.average(bk.gpu, grad, which),
                None => Ok(()),
            };
            step::step_synced(
                self.bk,
                self.model,
                self.inputs,
                self.level,
                self.alpha,
                self.sc,
                self.stats,
                &mut sync,
            )?;
            gpu.flush();
            host_seconds += now() - t;
        }
        gpu.download(self.stats).await?;
        Ok(Timed {
            seconds: now() - start,
            host_seconds,
            reduce_seconds: self.reduce_seconds() - reduced,
            buffers: gpu.pool_stats().created - created,
            recorded: gpu.record_stats().since(recorded),
        })
    }
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
