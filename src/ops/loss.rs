//! loss: WGAN loss pieces (`shaders/loss.wgsl`) over the D step's scores [2B]: D's outputs for the B
//! real images, then for the B fake ones (D runs them as one batch; any shape with 2B elements is
//! accepted), and the G step's fake scores.
//! L_D = mean(fake) - mean(real) + P + drift * mean(real^2),  L_G = -mean(fake'), P the penalty
//! (lambda/B) sum_b (||g_b|| - gamma)^2 / gamma^2 (see `gp`).

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
};

/// Uniform words: [B, B of the G step, lambda, gamma, drift].
fn params(batch: usize, g_batch: usize, lambda: f32, gamma: f32, drift: f32) -> Params {
    Params {
        batch: batch as u32,
        g_batch: g_batch as u32,
        lambda,
        gamma,
        drift,
    }
}

/// `Params` of loss.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    g_batch: u32,
    lambda: f32,
    gamma: f32,
    drift: f32,
}

/// B of the D step's scores [2B] (real, then fake).
fn d_batch(what: &str, scores: &Tensor) -> Result<usize> {
    ensure!(
        scores.len().is_multiple_of(2),
        "loss {what}: the D step's scores must be B real then B fake, got {:?}",
        scores.shape
    );
    Ok(scores.len() / 2)
}

/// d_scores = the gradients of L_D's score terms (overwritten): (-1 + 2 drift real) / B for the real
/// scores, 1 / B for the fake ones.
pub fn d_score_grads(gpu: &Gpu, scores: &Tensor, d_scores: &Tensor, drift: f32) -> Result<()> {
    let b = d_batch("d_score_grads", scores)?;
    ensure!(
        d_scores.len() == 2 * b,
        "loss d_score_grads: d_scores {:?} for scores {:?}",
        d_scores.shape,
        scores.shape
    );
    let p = params(b, b, 0.0, 1.0, drift);
    gpu.launch(
        &SHADER,
        "d_score_grads",
        &p,
        &[scores, d_scores],
        Dispatch::Items(2 * b),
    )
}

/// d_fake = -1 / B: the gradient of L_G with respect to the G step's fake scores (overwritten).
pub fn g_score_grad(gpu: &Gpu, d_fake: &Tensor) -> Result<()> {
    let b = d_fake.len();
    let p = params(b, b, 0.0, 1.0, 0.0);
    gpu.launch(&SHADER, "g_score_grad", &p, &[d_fake], Dispatch::Items(b))
}

/// The values [`stats`] writes, in this order: [L_D, L_G, penalty, drift term, Wasserstein
/// estimate].
pub const STATS: usize = 5;

/// stats [STATS] = [L_D, L_G, penalty, drift term (drift * mean(real^2)), Wasserstein estimate mean(real) - mean(fake)]
/// from the D step's scores (real, then fake), sumsq of the penalty gradient (for P) and the G step's
/// fake scores (for L_G).
#[allow(clippy::too_many_arguments)]
pub fn stats(
    gpu: &Gpu,
    scores: &Tensor,
    sumsq: &Tensor,
    g_fake: &Tensor,
    stats: &Tensor,
    lambda: f32,
    gamma: f32,
    drift: f32,
) -> Result<()> {
    let b = d_batch("stats", scores)?;
    ensure!(
        sumsq.len() == b,
        "loss stats: sumsq {:?} for {b} real and {b} fake scores",
        sumsq.shape
    );
    ensure!(
        stats.len() == STATS,
        "loss stats: the output must hold {STATS} values, got {:?}",
        stats.shape
    );
    ensure!(gamma != 0.0, "loss stats: gamma must be nonzero");
    let p = params(b, g_fake.len(), lambda, gamma, drift);
    gpu.launch(
        &SHADER,
        "stats",
        &p,
        &[scores, sumsq, g_fake, stats],
        Dispatch::Groups([1, 1, 1]),
    )
}

/// CPU reference of `d_score_grads`.
pub fn d_score_grads_ref(scores: &[f64], drift: f64) -> Vec<f64> {
    let (real, fake) = scores.split_at(scores.len() / 2);
    let b = real.len() as f64;
    let d_real = real.iter().map(|r| (-1.0 + 2.0 * drift * r) / b);
    d_real.chain(fake.iter().map(|_| 1.0 / b)).collect()
}

/// CPU reference of `g_score_grad` for a batch of `b`.
pub fn g_score_grad_ref(b: usize) -> Vec<f64> {
    vec![-1.0 / b as f64; b]
}

/// CPU reference of `stats`.
pub fn stats_ref(scores: &[f64], sumsq: &[f64], g_fake: &[f64], lambda: f64, gamma: f64, drift: f64) -> [f64; STATS] {
    let (real, fake) = scores.split_at(scores.len() / 2);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mr, mf) = (mean(real), mean(fake));
    let penalty = lambda * sumsq.iter().map(|s| ((s.sqrt() - gamma) / gamma).powi(2)).sum::<f64>() / real.len() as f64;
    let drift_term = drift * real.iter().map(|r| r * r).sum::<f64>() / real.len() as f64;
    [
        mf - mr + penalty + drift_term,
        -mean(g_fake),
        penalty,
        drift_term,
        mr - mf,
    ]
}

/// Every launcher at B = 3, 16, 64 and 100 (past one workgroup's 64 invocations), with a G-step batch
/// that differs once (the rows' shape is [B, B of the G step]). Tolerances: 1e-6 for the elementwise
/// gradients, 1e-5 for the stats (f32 sums).
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(5);
        let (lambda, gamma, drift) = (10.0f32, 1.0f32, 0.001f32);
        for (b, gb) in [(3usize, 3usize), (16, 16), (64, 64), (100, 7)] {
            let (ds, gfs) = (rng.normals(2 * b), rng.normals(gb));
            let ss: Vec<f32> = rng.normals(b).iter().map(|v| (1.0 + 0.5 * v).powi(2)).collect();
            let scores = gpu.upload(&ds, &[2 * b, 1])?;
            let sumsq = gpu.upload(&ss, &[b])?;
            let g_fake = gpu.upload(&gfs, &[gb, 1])?;
            let (d_scores, gd_fake) = (gpu.zeros(&[2 * b, 1])?, gpu.zeros(&[gb, 1])?);
            let out = gpu.zeros(&[STATS])?;
            d_score_grads(gpu, &scores, &d_scores, drift)?;
            g_score_grad(gpu, &gd_fake)?;
            stats(gpu, &scores, &sumsq, &g_fake, &out, lambda, gamma, drift)?;
            let st = stats_ref(
                &f64s(&ds),
                &f64s(&ss),
                &f64s(&gfs),
                lambda as f64,
                gamma as f64,
                drift as f64,
            );
            let shape = [b, gb];
            rows.push(compare(
                "loss d_score_grads",
                &shape,
                &gpu.download(&d_scores).await?,
                &d_score_grads_ref(&f64s(&ds), drift as f64),
                1e-6,
            ));
            rows.push(compare(
                "loss g_score_grad",
                &shape,
                &gpu.download(&gd_fake).await?,
                &g_score_grad_ref(gb),
                1e-6,
            ));
            rows.push(compare("loss stats", &shape, &gpu.download(&out).await?, &st, 1e-5));
        }
        Ok(rows)
    })
}
