//! pixelnorm: y = x / sqrt(mean over channels of x^2 + 1e-8), per sample and pixel
//! (`shaders/pixelnorm.wgsl`), for x [N, C, ...] (a latent [N, C] has one pixel).
//!
//! Not linear, and it has no JVP: it is used only in the generator, which never runs in forward mode.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "pixelnorm",
    source: include_str!("../../shaders/pixelnorm.wgsl"),
};

/// The epsilon inside the square root.
pub const EPS: f64 = 1e-8;

/// `Params` of pixelnorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// N * HW.
    pixels: u32,
    channels: u32,
    hw: u32,
}

/// The parameters of x.
fn dims(op: &str, x: &Tensor) -> Result<Params> {
    ensure!(x.shape.len() >= 2, "{op}: input {:?} is not [N, C, ...]", x.shape);
    let (n, c) = (x.shape[0], x.shape[1]);
    let hw = x.len() / (n * c);
    Ok(Params {
        pixels: (n * hw) as u32,
        channels: c as u32,
        hw: hw as u32,
    })
}

/// y = x / sqrt(mean over channels of x^2 + 1e-8).
pub fn forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<()> {
    let params = dims("pixelnorm forward", x)?;
    ensure!(
        y.shape == x.shape,
        "pixelnorm forward: output {:?} for input {:?}",
        y.shape,
        x.shape
    );
    gpu.launch(
        &SHADER,
        "forward",
        &params,
        &[x, y],
        Dispatch::Items(params.pixels as usize),
    )
}

/// dx, the gradient of x given dy, the gradient of y; x is the forward's input.
pub fn backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
    let params = dims("pixelnorm backward", x)?;
    ensure!(
        dy.shape == x.shape && dx.shape == x.shape,
        "pixelnorm backward: shapes x {:?}, dy {:?}, dx {:?}",
        x.shape,
        dy.shape,
        dx.shape
    );
    gpu.launch(
        &SHADER,
        "backward",
        &params,
        &[x, dy, dx],
        Dispatch::Items(params.pixels as usize),
    )
}

/// 1 / sqrt(mean over channels of x^2 + eps) at sample s, pixel k of x [n, c, hw].
fn inv_norm(x: &[f64], c: usize, hw: usize, s: usize, k: usize) -> f64 {
    let mut ss = 0.0;
    for ch in 0..c {
        ss += x[(s * c + ch) * hw + k].powi(2);
    }
    1.0 / (ss / c as f64 + EPS).sqrt()
}

/// CPU reference of `forward` for x [n, c, hw].
pub fn forward_ref(x: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for s in 0..n {
        for k in 0..hw {
            let r = inv_norm(x, c, hw, s, k);
            for ch in 0..c {
                let i = (s * c + ch) * hw + k;
                y[i] = x[i] * r;
            }
        }
    }
    y
}

/// CPU reference of `backward`: dx_c = r dy_c - r^3 x_c (sum over k of dy_k x_k) / C.
pub fn backward_ref(x: &[f64], dy: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut dx = vec![0.0; x.len()];
    for s in 0..n {
        for k in 0..hw {
            let r = inv_norm(x, c, hw, s, k);
            let mut dot = 0.0;
            for ch in 0..c {
                let i = (s * c + ch) * hw + k;
                dot += dy[i] * x[i];
            }
            for ch in 0..c {
                let i = (s * c + ch) * hw + k;
                dx[i] = r * dy[i] - r.powi(3) * x[i] * dot / c as f64;
            }
        }
    }
    dx
}

/// Forward and backward on [3, 13, 4, 4], [4, 17, 8, 8] and a [5, 48] latent. Tolerance 1e-5: sums of
/// up to 48 squares and a square root in f32.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(4);
        for shape in [vec![3usize, 13, 4, 4], vec![4, 17, 8, 8], vec![5, 48]] {
            let len: usize = shape.iter().product();
            let (n, c) = (shape[0], shape[1]);
            let hw = len / (n * c);
            let (xs, dys) = (rng.normals(len), rng.normals(len));
            let x = gpu.upload(&xs, &shape)?;
            let dy = gpu.upload(&dys, &shape)?;
            let (y, dx) = (gpu.zeros(&shape)?, gpu.zeros(&shape)?);
            forward(gpu, &x, &y)?;
            backward(gpu, &x, &dy, &dx)?;
            let y_ref = forward_ref(&f64s(&xs), n, c, hw);
            rows.push(compare(
                "pixelnorm forward",
                &shape,
                &gpu.download(&y).await?,
                &y_ref,
                1e-5,
            ));
            let dx_ref = backward_ref(&f64s(&xs), &f64s(&dys), n, c, hw);
            rows.push(compare(
                "pixelnorm backward",
                &shape,
                &gpu.download(&dx).await?,
                &dx_ref,
                1e-5,
            ));
        }
        Ok(rows)
    })
}
