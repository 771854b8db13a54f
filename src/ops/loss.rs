//! loss: WGAN loss pieces over D's scores real [B] and fake [B] (D outputs [B, 1]; any shape with B
//! elements is accepted) (`shaders/loss.wgsl`).
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
fn params(batch: usize, g_batch: usize, lambda: f32, gamma: f32, drift: f32) -> [u32; 5] {
    [
        batch as u32,
        g_batch as u32,
        lambda.to_bits(),
        gamma.to_bits(),
        drift.to_bits(),
    ]
}

/// d_real = (-1 + 2 drift real) / B, d_fake = 1 / B: the gradients of L_D's score terms (overwritten).
pub fn d_score_grads(gpu: &Gpu, real: &Tensor, d_real: &Tensor, d_fake: &Tensor, drift: f32) -> Result<()> {
    let b = real.len();
    ensure!(
        d_real.len() == b && d_fake.len() == b,
        "loss d_score_grads: d_real {:?} and d_fake {:?} for {b} real scores",
        d_real.shape,
        d_fake.shape
    );
    let p = params(b, b, 0.0, 1.0, drift);
    gpu.launch(
        &SHADER,
        "d_score_grads",
        &p,
        &[real, d_real, d_fake],
        Dispatch::Items(b),
    )
}

/// d_fake = -1 / B: the gradient of L_G with respect to the G step's fake scores (overwritten).
pub fn g_score_grad(gpu: &Gpu, d_fake: &Tensor) -> Result<()> {
    let b = d_fake.len();
    let p = params(b, b, 0.0, 1.0, 0.0);
    gpu.launch(&SHADER, "g_score_grad", &p, &[d_fake], Dispatch::Items(b))
}

/// stats [5] = [L_D, L_G, penalty, drift term (drift * mean(real^2)), Wasserstein estimate mean(real) - mean(fake)]
/// from the D step's real and fake scores, sumsq of the penalty gradient (for P) and the G step's fake
/// scores (for L_G).
#[allow(clippy::too_many_arguments)]
pub fn stats(
    gpu: &Gpu,
    real: &Tensor,
    fake: &Tensor,
    sumsq: &Tensor,
    g_fake: &Tensor,
    stats: &Tensor,
    lambda: f32,
    gamma: f32,
    drift: f32,
) -> Result<()> {
    let b = real.len();
    ensure!(
        fake.len() == b && sumsq.len() == b,
        "loss stats: fake {:?} and sumsq {:?} for {b} real scores",
        fake.shape,
        sumsq.shape
    );
    ensure!(
        stats.len() == 5,
        "loss stats: the output must hold 5 values, got {:?}",
        stats.shape
    );
    ensure!(gamma != 0.0, "loss stats: gamma must be nonzero");
    let p = params(b, g_fake.len(), lambda, gamma, drift);
    gpu.launch(
        &SHADER,
        "stats",
        &p,
        &[real, fake, sumsq, g_fake, stats],
        Dispatch::Groups([1, 1, 1]),
    )
}

/// CPU reference of `d_score_grads`: (d_real, d_fake).
pub fn d_score_grads_ref(real: &[f64], drift: f64) -> (Vec<f64>, Vec<f64>) {
    let b = real.len() as f64;
    (
        real.iter().map(|r| (-1.0 + 2.0 * drift * r) / b).collect(),
        vec![1.0 / b; real.len()],
    )
}

/// CPU reference of `g_score_grad` for a batch of `b`.
pub fn g_score_grad_ref(b: usize) -> Vec<f64> {
    vec![-1.0 / b as f64; b]
}

/// CPU reference of `stats`.
pub fn stats_ref(
    real: &[f64],
    fake: &[f64],
    sumsq: &[f64],
    g_fake: &[f64],
    lambda: f64,
    gamma: f64,
    drift: f64,
) -> [f64; 5] {
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
            let (rs, fs, gfs) = (rng.normals(b), rng.normals(b), rng.normals(gb));
            let ss: Vec<f32> = rng.normals(b).iter().map(|v| (1.0 + 0.5 * v).powi(2)).collect();
            let real = gpu.upload(&rs, &[b, 1])?;
            let fake = gpu.upload(&fs, &[b, 1])?;
            let sumsq = gpu.upload(&ss, &[b])?;
            let g_fake = gpu.upload(&gfs, &[gb, 1])?;
            let (d_real, d_fake, gd_fake) = (gpu.zeros(&[b, 1])?, gpu.zeros(&[b, 1])?, gpu.zeros(&[gb, 1])?);
            let out = gpu.zeros(&[5])?;
            d_score_grads(gpu, &real, &d_real, &d_fake, drift)?;
            g_score_grad(gpu, &gd_fake)?;
            stats(gpu, &real, &fake, &sumsq, &g_fake, &out, lambda, gamma, drift)?;
            let (dr, df) = d_score_grads_ref(&f64s(&rs), drift as f64);
            let st = stats_ref(
                &f64s(&rs),
                &f64s(&fs),
                &f64s(&ss),
                &f64s(&gfs),
                lambda as f64,
                gamma as f64,
                drift as f64,
            );
            let shape = [b, gb];
            rows.push(compare(
                "loss d_score_grads real",
                &shape,
                &gpu.download(&d_real).await?,
                &dr,
                1e-6,
            ));
            rows.push(compare(
                "loss d_score_grads fake",
                &shape,
                &gpu.download(&d_fake).await?,
                &df,
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
