//! act: bias + leaky ReLU (`shaders/act.wgsl`): forward, and the slope mask that serves as both the
//! backward pass and the JVP.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "act",
    source: include_str!("../../shaders/act.wgsl"),
};

/// PG-GAN's leaky ReLU slope.
pub const SLOPE: f32 = 0.2;

/// out = lrelu(x + bias[c], slope) for x of shape [N, C, ...] and bias of length C.
pub fn forward(gpu: &Gpu, x: &Tensor, bias: &Tensor, out: &Tensor, slope: f32) -> Result<()> {
    let channels = x.shape[1];
    ensure!(
        bias.len() == channels,
        "act: {} biases for {channels} channels",
        bias.len()
    );
    ensure!(
        out.len() == x.len(),
        "act: output {:?} for input {:?}",
        out.shape,
        x.shape
    );
    let hw = x.len() / (x.shape[0] * channels);
    let params = [x.len() as u32, channels as u32, hw as u32, slope.to_bits()];
    gpu.launch(&SHADER, "forward", &params, &[x, bias, out], Dispatch::Items(x.len()))
}

/// out = v * lrelu'(y): the backward pass (v = gradient of y) and the JVP (v = tangent of x),
/// with y the activated output of `forward`.
pub fn mask(gpu: &Gpu, y: &Tensor, v: &Tensor, out: &Tensor, slope: f32) -> Result<()> {
    ensure!(
        v.len() == y.len() && out.len() == y.len(),
        "act mask: shapes {:?}, {:?}, {:?}",
        y.shape,
        v.shape,
        out.shape
    );
    let params = [y.len() as u32, 1, 1, slope.to_bits()];
    gpu.launch(&SHADER, "mask", &params, &[y, v, out], Dispatch::Items(y.len()))
}

/// CPU reference of `forward`.
pub fn forward_ref(x: &[f64], bias: &[f64], hw: usize, slope: f64) -> Vec<f64> {
    let c = bias.len();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let z = v + bias[(i / hw) % c];
            if z > 0.0 {
                z
            } else {
                slope * z
            }
        })
        .collect()
}

/// CPU reference of `mask`.
pub fn mask_ref(y: &[f64], v: &[f64], slope: f64) -> Vec<f64> {
    y.iter()
        .zip(v)
        .map(|(&y, &v)| if y > 0.0 { v } else { slope * v })
        .collect()
}

/// Forward and mask on awkward shapes (channels 3, 13; spatial 4x4, 8x8), against the references.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(1);
        for shape in [[3usize, 13, 4, 4], [5, 3, 8, 8]] {
            let (n, hw) = (shape.iter().product::<usize>(), shape[2] * shape[3]);
            let (xs, bs, vs) = (rng.normals(n), rng.normals(shape[1]), rng.normals(n));
            let x = gpu.upload(&xs, &shape)?;
            let b = gpu.upload(&bs, &[shape[1]])?;
            let v = gpu.upload(&vs, &shape)?;
            let y = gpu.zeros(&shape)?;
            let dx = gpu.zeros(&shape)?;
            forward(gpu, &x, &b, &y, SLOPE)?;
            mask(gpu, &y, &v, &dx, SLOPE)?;
            let y_ref = forward_ref(&f64s(&xs), &f64s(&bs), hw, SLOPE as f64);
            rows.push(compare("act forward", &shape, &gpu.download(&y).await?, &y_ref, 1e-6));
            let y_gpu = gpu.download(&y).await?;
            let dx_ref = mask_ref(&f64s(&y_gpu), &f64s(&vs), SLOPE as f64);
            rows.push(compare(
                "act mask (backward, jvp)",
                &shape,
                &gpu.download(&dx).await?,
                &dx_ref,
                1e-6,
            ));
        }
        Ok(rows)
    })
}
