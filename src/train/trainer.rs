//! The trainer: the progressive schedule driving the training step, shared by the native CLI and the
//! browser. It only records GPU work and reads back when asked (statistics, samples, checkpoints),
//! so the caller decides when to wait: the CLI blocks, the page awaits.

use anyhow::{bail, ensure, Result};
use serde::Serialize;

use super::checkpoint::{groups, load_params, named, nonfinite_counts, Checkpoint};
use super::config::{kimg, Position, TrainConfig, MINIBATCH_REPEATS};
use super::dist::{check_share, share_rows, Replicas};
use super::sample::generate;
pub use super::state::{AdamSteps, HistoryPoint, TrainState};
use super::step::{self, Grad, Model, StepInputs};
use crate::data::{Dataset, Fetch, Images};
use crate::gpu::{Gpu, Tensor};
use crate::metrics::{self, Swd, SwdConfig};
use crate::nn::backend::GpuBackend;
use crate::ops::precision::LayerPrecision;
use crate::ops::{loss, reals};
use crate::rng::Rng;

/// The last step's losses (`step::step`'s statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub d_loss: f32,
    pub g_loss: f32,
    pub penalty: f32,
    pub drift: f32,
    pub wasserstein: f32,
}

impl Stats {
    /// The first loss term that is NaN or infinite, by name.
    pub fn nonfinite(&self) -> Option<&'static str> {
        [
            ("the D loss", self.d_loss),
            ("the G loss", self.g_loss),
            ("the gradient penalty", self.penalty),
            ("the drift term", self.drift),
            ("the Wasserstein estimate", self.wasserstein),
        ]
        .into_iter()
        .find(|(_, v)| !v.is_finite())
        .map(|(name, _)| name)
    }
}

/// What the run's tick clock says is due after a step: the one policy of the CLI and the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Due {
    /// The tick this step ended (a log line and a sample grid), numbered from 1: every `tick_kimg`
    /// thousand images, and the run's last step.
    pub tick: Option<u64>,
    /// The sliced Wasserstein distance, every `swd_ticks` ticks and at the end (from 16x16 on).
    pub swd: bool,
    /// A checkpoint, every `checkpoint_ticks` ticks.
    pub checkpoint: bool,
    /// A snapshot, every `snapshot_ticks` ticks.
    pub snapshot: bool,
}

impl Due {
    /// Both steps' dues, for callers that run several steps between looks.
    pub fn and(self, later: Due) -> Due {
        Due {
            tick: later.tick.or(self.tick),
            swd: self.swd || later.swd,
            checkpoint: self.checkpoint || later.checkpoint,
            snapshot: self.snapshot || later.snapshot,
        }
    }
}

/// A step's minibatch, this process's share of it: its images being read.
struct Minibatch {
    /// The whole minibatch's size, every process's share together.
    n: usize,
    images: Fetch,
    mirror: Vec<bool>,
    z_d: Vec<f32>,
    z_g: Vec<f32>,
    mix: Vec<f32>,
}

pub struct Trainer {
    gpu: Gpu,
    /// The layers' precision for the whole run.
    layers: LayerPrecision,
    cfg: TrainConfig,
    model: Model<Tensor>,
    state: TrainState,
    data: Dataset,
    rng: Rng,
    /// The next step's minibatch, drawn ahead.
    ahead: Option<Minibatch>,
    stats: Tensor,
    /// The last tick ended (0 before the first).
    tick: u64,
    /// The other processes of a data-parallel run (`train::dist`); none in a single-process run.
    replicas: Option<Box<dyn Replicas>>,
    /// Why the layers' precision is not what the device offered (its cooperative convolution failed
    /// its check), for the caller to show.
    precision_warning: Option<String>,
}

impl Trainer {
    /// A fresh run: weights N(0, 1) from the run's seed (equalized learning rate scales them).
    pub fn new(gpu: Gpu, cfg: TrainConfig, data: Dataset) -> Result<Trainer> {
        cfg.validate()?;
        check_data(&cfg, &data)?;
        let mut rng = Rng::new(cfg.seed);
        let bk = GpuBackend::f32(&gpu);
        let model = Model::new(&bk, &cfg.net, |s| gpu.upload(&rng.normals(s.iter().product()), s))?;
        let state = TrainState {
            rng: rng.state(),
            ..TrainState::default()
        };
        Trainer::assemble(gpu, cfg, data, model, state)
    }

    /// Continues a checkpoint exactly where it stopped: parameters, Adam moments and counts,
    /// schedule position and RNG.
    pub fn resume(gpu: Gpu, ck: &Checkpoint, data: Dataset) -> Result<Trainer> {
        ck.check_discriminator()?;
        ck.config.validate()?;
        check_data(&ck.config, &data)?;
        let mut model = Model::zeros(&GpuBackend::f32(&gpu), &ck.config.net)?;
        for (group, params, layers) in groups(&model) {
            load_params(&gpu, ck, group, layers, params)?;
        }
        model.g.adam.t = ck.adam.g_t;
        model.d.adam.t = ck.adam.d_t;
        Trainer::assemble(gpu, ck.config.clone(), data, model, ck.state.clone())
    }

    /// The trainer, with the layers at the configuration's precision, chosen here once for the run
    /// (`auto` resolved against the device; `mixed` refused without f16 arithmetic; natively, a
    /// cooperative convolution is checked first, `LayerPrecision::choose`, and replaced if wrong,
    /// with a warning: [`Trainer::precision_warning`]).
    fn assemble(gpu: Gpu, cfg: TrainConfig, data: Dataset, model: Model<Tensor>, state: TrainState) -> Result<Trainer> {
        #[cfg(not(target_arch = "wasm32"))]
        let (layers, precision_warning) = pollster::block_on(LayerPrecision::choose(&gpu, cfg.precision))?;
        #[cfg(target_arch = "wasm32")]
        let (layers, precision_warning) = (LayerPrecision::of(&gpu, cfg.precision.resolve(&gpu.precision)?)?, None);
        Ok(Trainer {
            layers,
            precision_warning,
            stats: gpu.zeros(&[loss::STATS])?,
            rng: Rng::new(state.rng),
            ahead: None,
            tick: state.images / cfg.tick_images(),
            replicas: None,
            gpu,
            cfg,
            model,
            state,
            data,
        })
    }

    /// Makes this trainer one of the processes of a data-parallel run: refuses a configuration
    /// whose minibatch they cannot share, and processes whose configurations or datasets differ
    /// (each reads its own; a file missing on one host would make it train on other images
    /// unnoticed), then gives every process rank 0's model (parameters, Adam moments and step
    /// counts, EMA generator). Every process calls it. One process is a single-process run.
    pub async fn distribute(&mut self, mut replicas: Box<dyn Replicas>) -> Result<()> {
        let ranks = replicas.size();
        if ranks == 1 {
            return Ok(());
        }
        check_share(&self.cfg, ranks)?;
        // The configuration and the images, at 4x4 (every image, and cheap to hash).
        let mut crc = crc32fast::Hasher::new();
        crc.update(serde_json::to_string(&self.cfg)?.as_bytes());
        let count = self.data.count();
        crc.update(&(count as u64).to_le_bytes());
        // A few thousand images at a time, so that a prepared file is never read whole.
        for first in (0..count).step_by(4096) {
            let indices: Vec<usize> = (first..(first + 4096).min(count)).collect();
            crc.update(&self.data.images(4, &indices)?.pixels);
        }
        if let Some(listed) = differing(replicas.as_mut(), crc.finalize())? {
            bail!(
                "the processes' configurations or datasets differ (CRC-32 of the configuration and \
                 the images at 4x4: {listed}): every process must read the same configuration and \
                 the same images (the same files at the same path on every host)"
            );
        }
        let tensors: Vec<&Tensor> = groups(&self.model).iter().map(|(_, p, _)| &p.all).collect();
        let values = self.gpu.download_many(&tensors).await?;
        for (t, mut v) in tensors.into_iter().zip(values) {
            let mut bytes = bytemuck::cast_slice::<f32, u8>(&v).to_vec();
            replicas.broadcast(&mut bytes)?;
            v.copy_from_slice(bytemuck::cast_slice(&bytes));
            self.gpu.write(t, &v)?;
        }
        let mut steps = [self.model.g.adam.t, self.model.d.adam.t]
            .map(u32::to_le_bytes)
            .concat();
        replicas.broadcast(&mut steps)?;
        self.model.g.adam.t = u32::from_le_bytes(steps[..4].try_into()?);
        self.model.d.adam.t = u32::from_le_bytes(steps[4..].try_into()?);
        self.replicas = Some(replicas);
        Ok(())
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The GPU with the run's layer precision: what the networks and the step run on.
    pub fn backend(&self) -> GpuBackend<'_> {
        GpuBackend::new(&self.gpu, &self.layers)
    }

    pub fn layers(&self) -> &LayerPrecision {
        &self.layers
    }

    pub fn cfg(&self) -> &TrainConfig {
        &self.cfg
    }

    pub fn model(&self) -> &Model<Tensor> {
        &self.model
    }

    pub fn state(&self) -> &TrainState {
        &self.state
    }

    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// Adds to the run's training time (the driver measures it; the model does not depend on it).
    pub fn add_seconds(&mut self, seconds: f64) {
        self.state.seconds += seconds;
    }

    /// Appends a point to the run's history ([`TrainState::record`] thins it).
    pub fn record(&mut self, point: HistoryPoint) {
        self.state.record(point);
    }

    /// Sets the SWD of the history's last point (measured after the point was recorded).
    pub fn set_last_swd(&mut self, swd: Option<f64>) {
        if let (Some(swd), Some(last)) = (swd, self.state.history.last_mut()) {
            last.swd = Some(swd);
        }
    }

    /// Why the layers do not run the kernel the device offered, where its check failed.
    pub fn precision_warning(&self) -> Option<&str> {
        self.precision_warning.as_deref()
    }

    /// This process's rank and the number of processes (0 and 1 in a single-process run).
    pub fn rank(&self) -> (usize, usize) {
        self.replicas.as_ref().map_or((0, 1), |r| (r.rank(), r.size()))
    }

    /// In a data-parallel run, whether some process asked to stop (every process learns it at the
    /// same step); `None` in a single-process run, where the caller's own stop flag decides.
    pub fn stop_agreed(&self) -> Option<bool> {
        self.replicas.as_ref().map(|r| r.stop_agreed())
    }

    /// Seconds this process has spent averaging gradients (0 in a single-process run).
    pub fn reduce_seconds(&self) -> f64 {
        self.replicas.as_ref().map_or(0.0, |r| r.reduce_seconds())
    }

    /// In a data-parallel run, compares an exact checksum (CRC-32 of the bytes) of every tensor of
    /// the model across the processes, and fails on every process, naming each one's checksum,
    /// when they differ: a process whose update differed (a faulty GPU, a bug) would otherwise
    /// train a model of its own unnoticed. Nothing in a single-process run.
    pub async fn check_replicas(&mut self) -> Result<()> {
        let Some(replicas) = &mut self.replicas else {
            return Ok(());
        };
        let tensors: Vec<&Tensor> = groups(&self.model).iter().map(|(_, p, _)| &p.all).collect();
        let mut crc = crc32fast::Hasher::new();
        for v in self.gpu.download_many(&tensors).await? {
            crc.update(bytemuck::cast_slice(&v));
        }
        crc.update(&self.model.g.adam.t.to_le_bytes());
        crc.update(&self.model.d.adam.t.to_le_bytes());
        let Some(listed) = differing(replicas.as_mut(), crc.finalize())? else {
            return Ok(());
        };
        bail!(
            "the processes' models differ at kimg {:.3} (step {}): CRC-32 of the parameters, Adam \
             moments and EMA generator: {listed}. A process computed a different update (a faulty \
             GPU or a bug); stopping. Resume from the last checkpoint",
            kimg(self.state.images),
            self.state.steps,
        )
    }

    pub fn position(&self) -> Position {
        self.state.position(&self.cfg)
    }

    pub fn finished(&self) -> bool {
        self.state.images >= self.cfg.total_images()
    }

    /// Records and submits one D + G step on a fresh minibatch; reads nothing back. Returns what the
    /// tick clock says is due after it.
    pub fn step(&mut self) -> Result<Due> {
        let before = self.state.images;
        self.state.schedule_images = self.schedule_images();
        let pos = self.position();
        let batch = match self.ahead.take() {
            Some(batch) => batch,
            None => self.draw(pos),
        };
        // Read before anything of the model changes: a damaged dataset file stops the run with
        // the model as the last step left it, to be saved (the RNG's saved state is the step's).
        let images = batch.images.wait()?;
        // Not `self.backend()`: the step borrows the model mutably.
        let bk = GpuBackend::new(&self.gpu, &self.layers);
        if pos.phase != self.state.phase {
            // A new fade-in or stabilisation phase: Adam starts over (official train.py, `reset_opt_for_new_lod`).
            self.model.reset_adam(&bk)?;
            self.state.phase = pos.phase;
        }
        let (res, latent, local) = (pos.res(), self.cfg.net.latent, batch.mirror.len());
        let gpu = bk.gpu;
        // The images go up as bytes; the GPU scales, mirrors and fades them.
        let reals = gpu.scratch(&[local, self.cfg.net.channels, res, res])?;
        let mirror = reals::flags(&batch.mirror);
        reals::forward(
            gpu,
            &gpu.upload_bytes(&images.pixels)?,
            &gpu.upload_bytes(&mirror)?,
            &reals,
            pos.alpha,
        )?;
        let inputs = StepInputs {
            reals,
            z_d: gpu.upload(&batch.z_d, &[local, latent])?,
            z_g: gpu.upload(&batch.z_g, &[local, latent])?,
            mix: gpu.upload(&batch.mix, &[local])?,
        };
        let replicas = &mut self.replicas;
        let mut sync = |bk: &GpuBackend, grad: &Tensor, which: Grad| match replicas {
            Some(r) => r.average(bk.gpu, grad, which),
            None => Ok(()),
        };
        step::step_synced(
            &bk,
            &mut self.model,
            &inputs,
            pos.level,
            pos.alpha,
            &self.cfg.step_config(res),
            &self.stats,
            &mut sync,
        )?;
        gpu.flush();
        self.state.images += batch.n as u64;
        self.state.steps += 1;
        self.state.rng = self.rng.state();
        // The next step's minibatch is drawn now (the stream's saved state stays this step's, so a
        // resumed run draws the same) and its images read while the GPU runs this step.
        if !self.finished() {
            let next = self.cfg.position(self.schedule_images());
            self.ahead = Some(self.draw(next));
        }
        Ok(self.due(before))
    }

    /// The image count the next step's schedule is evaluated at: it is evaluated once every
    /// `MINIBATCH_REPEATS` steps.
    fn schedule_images(&self) -> u64 {
        match self.state.steps.is_multiple_of(MINIBATCH_REPEATS) {
            true => self.state.images,
            false => self.state.schedule_images,
        }
    }

    /// The minibatch of a step at `pos`, drawn from the run's one stream: image indices, mirror
    /// flags, the latents of D's and G's steps, the penalty's mixing factors. Every process draws the
    /// whole minibatch and keeps its share (`dist::share`): the draws are those of a
    /// single-process run, whatever the process count. Its images are read from then on.
    fn draw(&mut self, pos: Position) -> Minibatch {
        let (res, latent) = (pos.res(), self.cfg.net.latent);
        let n = self.cfg.minibatch(res);
        let count = self.data.count() as u64;
        let rng = &mut self.rng;
        let indices: Vec<usize> = (0..n).map(|_| (rng.next_u64() % count) as usize).collect();
        let mirror: Vec<bool> = (0..n).map(|_| self.cfg.mirror && rng.next_u64() & 1 == 1).collect();
        let (z_d, z_g) = (rng.normals(n * latent), rng.normals(n * latent));
        let mix: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let (rank, ranks) = self.rank();
        Minibatch {
            n,
            images: self.data.fetch(res, share_rows(&indices, 1, rank, ranks)),
            mirror: share_rows(&mirror, 1, rank, ranks),
            z_d: share_rows(&z_d, latent, rank, ranks),
            z_g: share_rows(&z_g, latent, rank, ranks),
            mix: share_rows(&mix, 1, rank, ranks),
        }
    }

    /// The tick clock after a step from `before` images to the current count.
    fn due(&mut self, before: u64) -> Due {
        let (per, now) = (self.cfg.tick_images(), self.state.images);
        if now / per == before / per && !self.finished() {
            return Due::default();
        }
        self.tick += 1;
        let every = |n: usize| n > 0 && self.tick.is_multiple_of(n as u64);
        Due {
            tick: Some(self.tick),
            swd: every(self.cfg.swd_ticks) || (self.cfg.swd_ticks > 0 && self.finished()),
            checkpoint: every(self.cfg.checkpoint_ticks),
            snapshot: every(self.cfg.snapshot_ticks),
        }
    }

    /// The last step's losses; waits for the GPU to finish the submitted steps.
    pub async fn stats(&self) -> Result<Stats> {
        let values = self.gpu.download(&self.stats).await?;
        let [d_loss, g_loss, penalty, drift, wasserstein] = <[f32; loss::STATS]>::try_from(values)
            .map_err(|v| anyhow::anyhow!("the step's statistics hold {} values, not {}", v.len(), loss::STATS))?;
        Ok(Stats {
            d_loss,
            g_loss,
            penalty,
            drift,
            wasserstein,
        })
    }

    /// The last step's losses averaged over the processes of a data-parallel run (in rank order, so
    /// every process gets the same values): the whole minibatch's, as one process would log them.
    /// Collective: every process calls it at each tick. [`Trainer::stats`] in a single-process run.
    pub async fn mean_stats(&mut self) -> Result<Stats> {
        let s = self.stats().await?;
        let Some(replicas) = &mut self.replicas else {
            return Ok(s);
        };
        let mut mean = |x: f32| -> Result<f32> {
            let all = replicas.all_gather(u64::from(x.to_bits()))?;
            let sum: f64 = all.iter().map(|&b| f64::from(f32::from_bits(b as u32))).sum();
            Ok((sum / all.len() as f64) as f32)
        };
        Ok(Stats {
            d_loss: mean(s.d_loss)?,
            g_loss: mean(s.g_loss)?,
            penalty: mean(s.penalty)?,
            drift: mean(s.drift)?,
            wasserstein: mean(s.wasserstein)?,
        })
    }

    /// Images of the EMA generator at the current resolution and fade-in for `latents` [N, latent].
    pub async fn samples(&self, latents: &[f32]) -> Result<Images> {
        let pos = self.position();
        generate(
            &self.backend(),
            &self.cfg.net,
            &self.model.g.layers,
            &self.model.g_ema,
            latents,
            pos.level,
            pos.alpha,
        )
        .await
    }

    /// The sliced Wasserstein distance the run logs: `swd_images` per side, seeded by the run's seed
    /// and the last tick, so that the CLI and the page measure alike.
    pub async fn logged_swd(&self) -> Result<Option<Swd>> {
        self.swd(self.cfg.swd_images, self.cfg.seed ^ self.tick).await
    }

    /// The sliced Wasserstein distance (Karras et al. 2018, section 5) between `count` distinct real
    /// images at the current resolution (all of them when the dataset has fewer) and as many of the
    /// EMA generator's; `None` below 16x16. Draws from its own RNG (seeded by `seed`) so that
    /// measuring never changes the training run.
    pub async fn swd(&self, count: usize, seed: u64) -> Result<Option<Swd>> {
        let cfg = SwdConfig::default();
        let res = self.position().res();
        if res < cfg.min_res {
            return Ok(None);
        }
        let mut rng = Rng::new(seed);
        // Distinct reals, as `pggan metrics swd` draws them.
        let indices = rng.sample(self.data.count(), count);
        let reals = self.data.images(res, &indices)?;
        let fakes = self.samples(&rng.normals(indices.len() * self.cfg.net.latent)).await?;
        Ok(Some(
            metrics::swd(&self.gpu, &reals, &fakes, &cfg, rng.next_u64()).await?,
        ))
    }

    /// The first tensor of the model (parameters, EMA generator, Adam moments) that holds a NaN or
    /// an infinity, by its checkpoint name. One count per group on the GPU, read back together;
    /// only a group with a count is read whole, to name the tensor.
    pub async fn first_nonfinite(&self) -> Result<Option<String>> {
        let gpu = &self.gpu;
        let counts = nonfinite_counts(gpu, &self.model)?;
        let counts = gpu.download_many(&counts.iter().collect::<Vec<_>>()).await?;
        for ((group, params, layers), count) in groups(&self.model).into_iter().zip(counts) {
            if count[0] == 0.0 {
                continue;
            }
            for (name, t) in named(group, params, layers) {
                if gpu.download(t).await?.iter().any(|v| !v.is_finite()) {
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// The message of a run whose `what` (a loss, a tensor) turned NaN or infinite.
    pub fn diverged(&self, what: &str) -> String {
        format!(
            "training diverged at kimg {:.3} (step {}): {what} is NaN or infinite",
            kimg(self.state.images),
            self.state.steps
        )
    }

    /// Everything needed to resume, read back from the GPU; refused when any tensor is NaN or
    /// infinite, so that a diverged model is never saved.
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        if let Some(name) = self.first_nonfinite().await? {
            bail!(self.diverged(&format!("tensor {name}")));
        }
        let named: Vec<(String, &Tensor)> = groups(&self.model)
            .into_iter()
            .flat_map(|(group, params, layers)| named(group, params, layers))
            .collect();
        let all: Vec<&Tensor> = named.iter().map(|(_, t)| *t).collect();
        let values = self.gpu.download_many(&all).await?;
        let tensors = named
            .into_iter()
            .zip(values)
            .map(|((name, t), v)| (name, (t.shape.clone(), v)))
            .collect();
        Ok(Checkpoint {
            version: super::checkpoint::VERSION,
            config: self.cfg.clone(),
            state: self.state.clone(),
            adam: AdamSteps {
                g_t: self.model.g.adam.t,
                d_t: self.model.d.adam.t,
            },
            tensors,
        })
    }
}

/// Every process's `crc` (collective): `None` when they are all equal, else each rank's, listed.
fn differing(replicas: &mut dyn Replicas, crc: u32) -> Result<Option<String>> {
    let sums = replicas.all_gather(u64::from(crc))?;
    if sums.iter().all(|&s| s == sums[0]) {
        return Ok(None);
    }
    let listed: Vec<String> = sums
        .iter()
        .enumerate()
        .map(|(r, s)| format!("rank {r} {s:08x}"))
        .collect();
    Ok(Some(listed.join(", ")))
}

/// The dataset must match the networks and fill a minibatch.
fn check_data(cfg: &TrainConfig, data: &Dataset) -> Result<()> {
    ensure!(
        data.channels() == cfg.net.channels && data.max_res() == cfg.net.max_res,
        "the dataset is {}x{} with {} channels; the networks need {}x{} with {}",
        data.max_res(),
        data.max_res(),
        data.channels(),
        cfg.net.max_res,
        cfg.net.max_res,
        cfg.net.channels
    );
    let largest = (1..=cfg.net.levels())
        .map(|l| cfg.minibatch(crate::nn::config::res_of(l)))
        .max()
        .unwrap_or(0);
    ensure!(
        data.count() >= largest,
        "the dataset {} has {} images, fewer than a minibatch of {largest}; add images or lower --minibatch",
        data.name,
        data.count()
    );
    Ok(())
}
