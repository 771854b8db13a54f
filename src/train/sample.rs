//! Sampling: a checkpoint's EMA generator on the GPU ([`Sampler`]), G run in chunks on latents
//! ([`generate`], [`generate_values`]), and the fixed latents of a run's sample grids.

use anyhow::{ensure, Result};

use super::checkpoint::{load_params, Checkpoint, EMA_GROUP};
use super::config::{Position, TrainConfig};
use crate::data::Images;
use crate::gpu::{Gpu, Tensor};
use crate::nn::arch::Layer;
use crate::nn::backend::GpuBackend;
use crate::nn::net::{Net, Params};
use crate::nn::NetConfig;
use crate::rng::Rng;

/// Latents for sample grids: the same for the whole run (seeded by the run's seed).
pub fn sample_latents(cfg: &TrainConfig, count: usize) -> Vec<f32> {
    Rng::new(cfg.seed ^ 0x5A3D_1E5C_0FFE_E000).normals(count * cfg.net.latent)
}

/// A checkpoint's EMA generator on the GPU: all that sampling needs (no D, Adam state or data).
pub struct Sampler {
    pub gpu: Gpu,
    pub ck: Checkpoint,
    pub layers: Vec<Layer>,
    pub g_ema: Params<Tensor>,
}

impl Sampler {
    /// Works with a full checkpoint and with an exported generator (only `g_ema/...` tensors).
    pub fn new(gpu: Gpu, ck: Checkpoint) -> Result<Sampler> {
        ck.config.validate()?;
        let layers = crate::nn::arch::generator(&ck.config.net);
        let g_ema = Params::zeros(&GpuBackend::f32(&gpu), &layers)?;
        load_params(&gpu, &ck, EMA_GROUP, &layers, &g_ema)?;
        Ok(Sampler { gpu, ck, layers, g_ema })
    }

    /// The GPU for G: checkpoints are sampled with every layer in f32.
    fn backend(&self) -> GpuBackend<'_> {
        GpuBackend::f32(&self.gpu)
    }

    pub fn position(&self) -> Position {
        self.ck.state.position(&self.ck.config)
    }

    /// Images for `latents` [N, latent] at the checkpoint's resolution and fade-in.
    pub async fn run(&self, latents: &[f32]) -> Result<Images> {
        let pos = self.position();
        let net = &self.ck.config.net;
        let bk = self.backend();
        generate(&bk, net, &self.layers, &self.g_ema, latents, pos.level, pos.alpha).await
    }

    /// The same images as floats [N, C, R, R], unclipped.
    pub async fn run_values(&self, latents: &[f32]) -> Result<Vec<f32>> {
        let pos = self.position();
        let net = &self.ck.config.net;
        let bk = self.backend();
        generate_values(&bk, net, &self.layers, &self.g_ema, latents, pos.level, pos.alpha).await
    }
}

/// Runs G with `params` on `latents` [N, latent] in chunks and returns the images as bytes.
pub async fn generate(
    bk: &GpuBackend<'_>,
    net: &NetConfig,
    layers: &[Layer],
    params: &Params<Tensor>,
    latents: &[f32],
    level: usize,
    alpha: f32,
) -> Result<Images> {
    let values = generate_values(bk, net, layers, params, latents, level, alpha).await?;
    let res = crate::nn::config::res_of(level);
    Images::from_f32(latents.len() / net.latent, net.channels, res, &values)
}

/// [`generate`]'s images as G computes them: floats [N, C, R, R], unclipped.
pub async fn generate_values(
    bk: &GpuBackend<'_>,
    net: &NetConfig,
    layers: &[Layer],
    params: &Params<Tensor>,
    latents: &[f32],
    level: usize,
    alpha: f32,
) -> Result<Vec<f32>> {
    const CHUNK: usize = 64;
    let count = latents.len() / net.latent;
    ensure!(
        count > 0 && latents.len() == count * net.latent,
        "latents must be a whole number of vectors of {} values, got {} values",
        net.latent,
        latents.len()
    );
    let g = Net {
        bk,
        cfg: net,
        layers,
        params,
    };
    let mut values = Vec::new();
    for chunk in latents.chunks(CHUNK * net.latent) {
        let z = bk.gpu.upload(chunk, &[chunk.len() / net.latent, net.latent])?;
        values.extend(bk.gpu.download(&g.g_forward(&z, level, alpha)?.images).await?);
    }
    Ok(values)
}
