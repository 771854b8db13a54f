//! gp: the WGAN-GP pieces (`shaders/gp.wgsl`, DESIGN.md "The exact gradient penalty"). g is
//! d(sum_b D(xhat))/d(xhat) with shape [B, ...]; sumsq [B] is the per-sample sum of squares of g
//! (`reduce::sum` with `View::per_sample` and `square`).

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::ops::reduce::{self, View};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "gp",
    source: include_str!("../../shaders/gp.wgsl"),
};

/// `Params` of gp.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    batch: u32,
    /// tangent only.
    lambda: f32,
    gamma: f32,
}

/// xhat_b = real_b + u_b (fake_b - real_b), u [B] (overwritten).
pub fn mix(gpu: &Gpu, real: &Tensor, fake: &Tensor, u: &Tensor, xhat: &Tensor) -> Result<()> {
    ensure!(
        fake.shape == real.shape && xhat.shape == real.shape,
        "gp mix: real {:?}, fake {:?} and xhat {:?} must have one shape",
        real.shape,
        fake.shape,
        xhat.shape
    );
    ensure!(
        real.shape.len() >= 2,
        "gp mix: real must be [B, ...], got {:?}",
        real.shape
    );
    let batch = real.shape[0];
    ensure!(
        u.len() == batch,
        "gp mix: {} mixing weights for a batch of {batch}",
        u.len()
    );
    let params = Params {
        len: real.len() as u32,
        batch: batch as u32,
        lambda: 0.0,
        gamma: 0.0,
    };
    gpu.launch(
        &SHADER,
        "mix",
        &params,
        &[real, fake, u, xhat],
        Dispatch::Items(real.len()),
    )
}

/// The tangent for the exact penalty gradient: t_b = c_b g_b / ||g_b||, c_b = 2 lambda (||g_b|| - gamma) / (B gamma^2).
/// t_b = 0 where ||g_b|| = 0 (see the shader). t is overwritten.
pub fn tangent(gpu: &Gpu, g: &Tensor, sumsq: &Tensor, t: &Tensor, lambda: f32, gamma: f32) -> Result<()> {
    ensure!(g.shape.len() >= 2, "gp tangent: g must be [B, ...], got {:?}", g.shape);
    let batch = g.shape[0];
    ensure!(
        sumsq.len() == batch,
        "gp tangent: {} sums of squares for a batch of {batch}",
        sumsq.len()
    );
    ensure!(t.shape == g.shape, "gp tangent: t {:?} for g {:?}", t.shape, g.shape);
    ensure!(gamma != 0.0, "gp tangent: gamma must be nonzero");
    let params = Params {
        len: g.len() as u32,
        batch: batch as u32,
        lambda,
        gamma,
    };
    gpu.launch(&SHADER, "tangent", &params, &[g, sumsq, t], Dispatch::Items(g.len()))
}

/// CPU reference of `mix`, for tensors of `b` samples.
pub fn mix_ref(real: &[f64], fake: &[f64], u: &[f64], b: usize) -> Vec<f64> {
    let per = real.len() / b;
    (0..real.len())
        .map(|i| real[i] + u[i / per] * (fake[i] - real[i]))
        .collect()
}

/// The per-sample norms ||g_b|| of g with `b` samples.
fn norms(g: &[f64], b: usize) -> Vec<f64> {
    let per = g.len() / b;
    (0..b)
        .map(|s| g[s * per..(s + 1) * per].iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect()
}

/// CPU reference of `tangent` (from g itself rather than a precomputed sumsq): the gradient of
/// `penalty_ref` with respect to g.
pub fn tangent_ref(g: &[f64], b: usize, lambda: f64, gamma: f64) -> Vec<f64> {
    let per = g.len() / b;
    let norms = norms(g, b);
    (0..g.len())
        .map(|i| {
            let norm = norms[i / per];
            if norm > 0.0 {
                2.0 * lambda * (norm - gamma) / (b as f64 * gamma * gamma) * g[i] / norm
            } else {
                0.0
            }
        })
        .collect()
}

/// The penalty (lambda/B) sum_b (||g_b|| - gamma)^2 / gamma^2.
pub fn penalty_ref(g: &[f64], b: usize, lambda: f64, gamma: f64) -> f64 {
    norms(g, b)
        .iter()
        .map(|n| (n - gamma).powi(2) / (gamma * gamma))
        .sum::<f64>()
        * lambda
        / b as f64
}

/// mix, and tangent with sumsq from `reduce::sum`, on awkward shapes; the last sample of g is zero
/// to exercise the ||g_b|| = 0 guard. Tolerances: 1e-6 for mix (elementwise), 1e-5 for tangent
/// (its norm is an f32 sum).
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(4);
        let (lambda, gamma) = (10.0f32, 1.0f32);
        for shape in [[3usize, 3, 16, 16], [5, 13, 4, 4], [4, 17, 8, 8]] {
            let (b, len) = (shape[0], shape.iter().product::<usize>());
            let (rs, fs) = (rng.normals(len), rng.normals(len));
            let us: Vec<f32> = (0..b).map(|_| rng.uniform() as f32).collect();
            let real = gpu.upload(&rs, &shape)?;
            let fake = gpu.upload(&fs, &shape)?;
            let u = gpu.upload(&us, &[b])?;
            let xhat = gpu.zeros(&shape)?;
            mix(gpu, &real, &fake, &u, &xhat)?;
            let r = mix_ref(&f64s(&rs), &f64s(&fs), &f64s(&us), b);
            rows.push(compare("gp mix", &shape, &gpu.download(&xhat).await?, &r, 1e-6));

            // Norms spread around gamma (some below, some above), and one zero sample.
            let per = len / b;
            let mut gs: Vec<f32> = rng
                .normals(len)
                .iter()
                .enumerate()
                .map(|(i, v)| v * (0.4 + 0.5 * (i / per) as f32) / (per as f32).sqrt())
                .collect();
            gs[len - per..].fill(0.0);
            let g = gpu.upload(&gs, &shape)?;
            let sumsq = gpu.zeros(&[b])?;
            reduce::sum(gpu, &g, View::per_sample(&shape), reduce::Term::Square, false, &sumsq)?;
            let t = gpu.zeros(&shape)?;
            tangent(gpu, &g, &sumsq, &t, lambda, gamma)?;
            let r = tangent_ref(&f64s(&gs), b, lambda as f64, gamma as f64);
            rows.push(compare("gp tangent", &shape, &gpu.download(&t).await?, &r, 1e-5));
        }
        Ok(rows)
    })
}
