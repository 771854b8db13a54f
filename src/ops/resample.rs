//! resample: nearest-neighbour upsampling and box (average) downsampling by a power-of-two factor f
//! (`shaders/resample.wgsl`). The factor is read off the shapes: x [N, C, H, W] and y
//! [N, C, H*f, W*f] (upsample) or [N, C, H/f, W/f] (downsample), f = 2, 4, 8, ..., equal in both
//! axes; any other pair of shapes is an error.
//!
//! Both ops are linear, so their JVP is the forward applied to the tangent.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "resample",
    source: include_str!("../../shaders/resample.wgsl"),
};

/// The factor f by which `big` [N, C, h*f, w*f] is larger than `small` [N, C, h, w].
fn factor(op: &str, small: &Tensor, big: &Tensor) -> Result<usize> {
    let (s, b) = (&small.shape, &big.shape);
    ensure!(
        s.len() == 4 && b.len() == 4,
        "{op}: shapes {s:?} and {b:?} are not both [N, C, H, W]"
    );
    ensure!(s[..2] == b[..2], "{op}: N, C differ between {s:?} and {b:?}");
    let f = b[2] / s[2];
    ensure!(
        b[2] == s[2] * f && b[3] == s[3] * f && f >= 2 && f.is_power_of_two(),
        "{op}: {:?} and {:?} do not differ by a power-of-two factor (2, 4, ...) equal in both axes",
        &s[2..],
        &b[2..]
    );
    Ok(f)
}

/// `Params` of resample.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    /// Elements of the output.
    len: u32,
    out_h: u32,
    out_w: u32,
    /// The factor between the two sizes.
    f: u32,
    scale: f32,
}

/// Launches `entry` (spread or gather, see the shader) from `x` into `out`, one item per output.
fn launch(gpu: &Gpu, entry: &'static str, x: &Tensor, out: &Tensor, f: usize, scale: f32) -> Result<()> {
    let params = Params {
        len: out.len() as u32,
        out_h: out.shape[2] as u32,
        out_w: out.shape[3] as u32,
        f: f as u32,
        scale,
    };
    gpu.launch(&SHADER, entry, &params, &[x, out], Dispatch::Items(out.len()))
}

/// y[.., i, j] = x[.., i/f, j/f] for x [N, C, H, W] and y [N, C, H*f, W*f].
pub fn upsample(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<()> {
    let f = factor("resample upsample", x, y)?;
    launch(gpu, "spread", x, y, f, 1.0)
}

/// dx = the sum of dy over each f x f block, for dy [N, C, H*f, W*f] and dx [N, C, H, W].
pub fn upsample_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor) -> Result<()> {
    let f = factor("resample upsample_backward", dx, dy)?;
    launch(gpu, "gather", dy, dx, f, 1.0)
}

/// y = the mean of x over each f x f block, for x [N, C, H, W] and y [N, C, H/f, W/f].
pub fn downsample(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<()> {
    let f = factor("resample downsample", y, x)?;
    launch(gpu, "gather", x, y, f, 1.0 / (f * f) as f32)
}

/// dx = dy / f^2 spread over each f x f block, for dy [N, C, H/f, W/f] and dx [N, C, H, W].
pub fn downsample_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor) -> Result<()> {
    let f = factor("resample downsample_backward", dy, dx)?;
    launch(gpu, "spread", dy, dx, f, 1.0 / (f * f) as f32)
}

/// CPU reference of `upsample`; `nc` = N*C and `h`, `w` are those of x.
pub fn upsample_ref(x: &[f64], nc: usize, h: usize, w: usize, f: usize) -> Vec<f64> {
    let mut y = vec![0.0; nc * h * f * w * f];
    for p in 0..nc {
        for i in 0..h * f {
            for j in 0..w * f {
                y[(p * h * f + i) * w * f + j] = x[(p * h + i / f) * w + j / f];
            }
        }
    }
    y
}

/// CPU reference of `upsample_backward`; `h`, `w` are those of dx.
pub fn upsample_backward_ref(dy: &[f64], nc: usize, h: usize, w: usize, f: usize) -> Vec<f64> {
    let mut dx = vec![0.0; nc * h * w];
    for p in 0..nc {
        for i in 0..h * f {
            for j in 0..w * f {
                dx[(p * h + i / f) * w + j / f] += dy[(p * h * f + i) * w * f + j];
            }
        }
    }
    dx
}

/// CPU reference of `downsample`; `h`, `w` are those of x.
pub fn downsample_ref(x: &[f64], nc: usize, h: usize, w: usize, f: usize) -> Vec<f64> {
    let (ho, wo) = (h / f, w / f);
    let mut y = vec![0.0; nc * ho * wo];
    for p in 0..nc {
        for i in 0..h {
            for j in 0..w {
                y[(p * ho + i / f) * wo + j / f] += x[(p * h + i) * w + j] / (f * f) as f64;
            }
        }
    }
    y
}

/// CPU reference of `downsample_backward`; `h`, `w` are those of dx.
pub fn downsample_backward_ref(dy: &[f64], nc: usize, h: usize, w: usize, f: usize) -> Vec<f64> {
    let (ho, wo) = (h / f, w / f);
    let mut dx = vec![0.0; nc * h * w];
    for p in 0..nc {
        for i in 0..h {
            for j in 0..w {
                dx[(p * h + i) * w + j] = dy[(p * ho + i / f) * wo + j / f] / (f * f) as f64;
            }
        }
    }
    dx
}

/// All four passes for factors 2, 4 and 8 on awkward N*C (3*5, 4*13) and spatial sizes 2..16,
/// one of them not square. Tolerance 1e-6: the spreads are exact, the block sums of up to 64 terms
/// round at about 1e-7 of the largest output.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(3);
        // [N, C, h, w] of the small side, and f.
        for (small, f) in [
            ([3usize, 5, 4, 4], 2usize),
            ([4, 13, 8, 4], 2),
            ([3, 5, 4, 4], 4),
            ([4, 13, 2, 2], 4),
            ([3, 5, 2, 2], 8),
        ] {
            let big = [small[0], small[1], small[2] * f, small[3] * f];
            let (nc, h, w) = (small[0] * small[1], small[2], small[3]);
            let (hb, wb) = (h * f, w * f);
            let small_data = rng.normals(small.iter().product());
            let big_data = rng.normals(big.iter().product());
            let s = gpu.upload(&small_data, &small)?;
            let b = gpu.upload(&big_data, &big)?;
            let (s_out, b_out) = (gpu.zeros(&small)?, gpu.zeros(&big)?);
            let (sd, bd) = (f64s(&small_data), f64s(&big_data));

            upsample(gpu, &s, &b_out)?;
            let r = upsample_ref(&sd, nc, h, w, f);
            rows.push(compare(
                &format!("resample upsample x{f}"),
                &small,
                &gpu.download(&b_out).await?,
                &r,
                1e-6,
            ));
            upsample_backward(gpu, &b, &s_out)?;
            let r = upsample_backward_ref(&bd, nc, h, w, f);
            rows.push(compare(
                &format!("resample upsample_backward x{f}"),
                &big,
                &gpu.download(&s_out).await?,
                &r,
                1e-6,
            ));
            downsample(gpu, &b, &s_out)?;
            let r = downsample_ref(&bd, nc, hb, wb, f);
            rows.push(compare(
                &format!("resample downsample /{f}"),
                &big,
                &gpu.download(&s_out).await?,
                &r,
                1e-6,
            ));
            downsample_backward(gpu, &s, &b_out)?;
            let r = downsample_backward_ref(&sd, nc, hb, wb, f);
            rows.push(compare(
                &format!("resample downsample_backward /{f}"),
                &small,
                &gpu.download(&b_out).await?,
                &r,
                1e-6,
            ));
        }
        Ok(rows)
    })
}
