//! adam: one Adam step over a parameter tensor (`shaders/adam.wgsl`), exactly as TensorFlow's
//! AdamOptimizer (the official PG-GAN code):
//! lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//! p -= lr_t * m / (sqrt(v) + eps). t is the 1-based step count since the last reset.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "adam",
    source: include_str!("../../shaders/adam.wgsl"),
};

/// Adam's hyperparameters.
#[derive(Clone, Copy, Debug)]
pub struct AdamParams {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamParams {
    /// PG-GAN's: lr 0.001, beta1 0, beta2 0.99, eps 1e-8.
    fn default() -> Self {
        AdamParams {
            lr: 0.001,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
        }
    }
}

/// The bias-corrected learning rate of step t.
fn corrected_lr(hp: AdamParams, t: u32) -> f64 {
    let t = t as f64;
    hp.lr as f64 * (1.0 - (hp.beta2 as f64).powf(t)).sqrt() / (1.0 - (hp.beta1 as f64).powf(t))
}

/// `Params` of adam.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    /// The bias-corrected learning rate of step t.
    lr_t: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
}

/// Step t (1-based) of Adam on `param` with gradient `grad` and moments `m`, `v`, all in place.
pub fn step(gpu: &Gpu, param: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, hp: AdamParams, t: u32) -> Result<()> {
    ensure!(t >= 1, "adam: the step count t is 1-based, got 0");
    ensure!(
        [grad, m, v].iter().all(|x| x.len() == param.len()),
        "adam: param {:?}, grad {:?}, m {:?} and v {:?} differ in size",
        param.shape,
        grad.shape,
        m.shape,
        v.shape
    );
    let params = Params {
        len: param.len() as u32,
        lr_t: corrected_lr(hp, t) as f32,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
    };
    gpu.launch(
        &SHADER,
        "step",
        &params,
        &[param, grad, m, v],
        Dispatch::Items(param.len()),
    )
}

/// CPU reference of `step`.
pub fn step_ref(param: &mut [f64], grad: &[f64], m: &mut [f64], v: &mut [f64], hp: AdamParams, t: u32) {
    let lr_t = corrected_lr(hp, t);
    let (b1, b2, eps) = (hp.beta1 as f64, hp.beta2 as f64, hp.eps as f64);
    for i in 0..param.len() {
        m[i] = b1 * m[i] + (1.0 - b1) * grad[i];
        v[i] = b2 * v[i] + (1.0 - b2) * grad[i] * grad[i];
        param[i] -= lr_t * m[i] / (v[i].sqrt() + eps);
    }
}

/// Three consecutive steps (t = 1, 2, 3) from zero moments, with beta1 0 (PG-GAN) and 0.5 (so the
/// first moment's bias correction counts). The rate is 0.1, not 0.001, so that the updates are a
/// sizeable part of the parameters and a 1e-6 bound relative to them tests the updates themselves.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(4);
        for (shape, beta1) in [(vec![17, 13, 3, 3], 0.0), (vec![5, 48], 0.5)] {
            let hp = AdamParams {
                lr: 0.1,
                beta1,
                ..AdamParams::default()
            };
            let len: usize = shape.iter().product();
            let p0 = rng.normals(len);
            let param = gpu.upload(&p0, &shape)?;
            let (m, v) = (gpu.zeros(&shape)?, gpu.zeros(&shape)?);
            let (mut p_ref, mut m_ref, mut v_ref) = (f64s(&p0), vec![0.0; len], vec![0.0; len]);
            for t in 1..=3 {
                let g = rng.normals(len);
                let grad = gpu.upload(&g, &shape)?;
                step(gpu, &param, &grad, &m, &v, hp, t)?;
                step_ref(&mut p_ref, &f64s(&g), &mut m_ref, &mut v_ref, hp, t);
            }
            for (name, out, reference) in [
                ("adam param, 3 steps", &param, &p_ref),
                ("adam m, 3 steps", &m, &m_ref),
                ("adam v, 3 steps", &v, &v_ref),
            ] {
                let name = format!("{name}, beta1 {beta1}");
                rows.push(compare(&name, &shape, &gpu.download(out).await?, reference, 1e-6));
            }
        }
        Ok(rows)
    })
}
