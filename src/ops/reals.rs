//! reals: a minibatch of real images from their bytes, as D sees them (`shaders/reals.wgsl`):
//! x / 127.5 - 1, mirrored left-right where asked, and faded during a fade-in as G's output is,
//! lerp(upsample2x_nearest(avgpool2x2(x)), x, alpha). The host uploads one byte per value
//! ([`Gpu::upload_bytes`]) instead of an f32, and does no arithmetic on them.
//!
//! No backward pass: the reals are D's input, never differentiated.

use anyhow::{ensure, Result};

use crate::check::{compare, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "reals",
    source: include_str!("../../shaders/reals.wgsl"),
};

/// `Params` of reals.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    res: u32,
    image: u32,
    alpha: f32,
    scale: f32,
}

/// The bytes of a minibatch ([`Gpu::upload_bytes`] of `out`'s images, NCHW) and one mirror flag per image
/// (a u32 each, 1: mirror; [`Gpu::upload_bytes`] of [`flags`]) into `out` [N, C, R, R], faded at
/// `alpha` (1: not faded; 4x4 images, which have no coarser level, take 1 whatever it is).
pub fn forward(gpu: &Gpu, bytes: &Tensor, mirror: &Tensor, out: &Tensor, alpha: f32) -> Result<()> {
    ensure!(
        out.shape.len() == 4 && out.shape[2] == out.shape[3] && out.shape[2].is_multiple_of(2),
        "reals forward: output {:?} is not [N, C, R, R] with R even",
        out.shape
    );
    let (n, res) = (out.shape[0], out.shape[2]);
    ensure!(
        bytes.len() == out.len().div_ceil(4) && mirror.len() == n,
        "reals forward: {} words of bytes and {} mirror flags for an output {:?} (which needs {} and {n})",
        bytes.len(),
        mirror.len(),
        out.shape,
        out.len().div_ceil(4)
    );
    ensure!(
        (0.0..=1.0).contains(&alpha),
        "the fade-in alpha must be within [0, 1], got {alpha}"
    );
    let params = Params {
        len: out.len() as u32,
        res: res as u32,
        image: (out.len() / n) as u32,
        alpha: if res == 4 { 1.0 } else { alpha },
        scale: 1.0 / 255.0,
    };
    gpu.launch(
        &SHADER,
        "forward",
        &params,
        &[bytes, mirror, out],
        Dispatch::Items(out.len()),
    )
}

/// The mirror flags as `forward` reads them: one little-endian u32 per image.
pub fn flags(mirror: &[bool]) -> Vec<u8> {
    mirror.iter().flat_map(|&m| (m as u32).to_le_bytes()).collect()
}

/// CPU reference of `forward`, in f64: `bytes` holds `mirror.len()` images of `channels` x `res` x
/// `res` (NCHW).
pub fn forward_ref(bytes: &[u8], mirror: &[bool], channels: usize, res: usize, alpha: f64) -> Vec<f64> {
    let r = res;
    let alpha = if r == 4 { 1.0 } else { alpha };
    let mut out = Vec::with_capacity(bytes.len());
    let mut x = vec![0f64; r * r];
    for (image, &flip) in bytes.chunks_exact(channels * r * r).zip(mirror) {
        for plane in image.chunks_exact(r * r) {
            for (row, src) in x.chunks_exact_mut(r).zip(plane.chunks_exact(r)) {
                for (col, v) in row.iter_mut().enumerate() {
                    let s = if flip { src[r - 1 - col] } else { src[col] };
                    *v = s as f64 / 127.5 - 1.0;
                }
            }
            for y in 0..r {
                for col in 0..r {
                    let v = x[y * r + col];
                    let (y0, x0) = (y & !1, col & !1);
                    let low = (x[y0 * r + x0] + x[y0 * r + x0 + 1] + x[(y0 + 1) * r + x0] + x[(y0 + 1) * r + x0 + 1]) / 4.0;
                    out.push(low + (v - low) * alpha);
                }
            }
        }
    }
    out
}

/// Random bytes (0 and 255 among them) at 4x4, 8x8 and 16x16, 1 and 3 channels, some images
/// mirrored, at alphas 0, 0.37 and 1. Tolerance 5e-7 relative to the largest value (1): the
/// shader's three roundings (the blend's product and sum, the scale) and the scale's own, each at
/// most 2^-24 of a value up to 2 (the blend's difference) or 1.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(31);
        for (n, c, r, alpha) in [(3, 3, 4, 0.37f32), (5, 1, 8, 0.37), (4, 3, 16, 0.0), (2, 3, 8, 1.0)] {
            let mut bytes: Vec<u8> = (0..n * c * r * r).map(|_| (rng.uniform() * 256.0) as u8).collect();
            (bytes[0], bytes[1]) = (0, 255);
            let mirror: Vec<bool> = (0..n).map(|i| i % 2 == 1).collect();
            let out = gpu.scratch(&[n, c, r, r])?;
            let (b, m) = (gpu.upload_bytes(&bytes)?, gpu.upload_bytes(&flags(&mirror))?);
            forward(gpu, &b, &m, &out, alpha)?;
            let reference = forward_ref(&bytes, &mirror, c, r, alpha as f64);
            rows.push(compare(
                &format!("reals forward {c}x{r}x{r} alpha={alpha}"),
                &[n, c, r, r],
                &gpu.download(&out).await?,
                &reference,
                5e-7,
            ));
        }
        Ok(rows)
    })
}
