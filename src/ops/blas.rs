//! blas: in-place vector updates over whole tensors (`shaders/blas.wgsl`): fill, scale, axpy.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "blas",
    source: include_str!("../../shaders/blas.wgsl"),
};

/// `Params` of blas.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    /// fill: the value; scale, axpy: the factor.
    a: f32,
}

/// x = value everywhere. Zero (the gradients cleared before every step) is a buffer clear instead of
/// a launch: cheaper to record.
pub fn fill(gpu: &Gpu, x: &Tensor, value: f32) -> Result<()> {
    if value.to_bits() == 0 {
        gpu.clear(x);
        return Ok(());
    }
    gpu.launch(
        &SHADER,
        "fill",
        &Params {
            len: x.len() as u32,
            a: value,
        },
        &[x],
        Dispatch::Items(x.len()),
    )
}

/// x *= a.
pub fn scale(gpu: &Gpu, x: &Tensor, a: f32) -> Result<()> {
    gpu.launch(
        &SHADER,
        "scale",
        &Params { len: x.len() as u32, a },
        &[x],
        Dispatch::Items(x.len()),
    )
}

/// y += a x.
pub fn axpy(gpu: &Gpu, a: f32, x: &Tensor, y: &Tensor) -> Result<()> {
    ensure!(
        x.len() == y.len(),
        "blas axpy: x {:?} and y {:?} differ in size",
        x.shape,
        y.shape
    );
    gpu.launch(
        &SHADER,
        "axpy",
        &Params { len: y.len() as u32, a },
        &[x, y],
        Dispatch::Items(y.len()),
    )
}

/// CPU reference of `fill`.
pub fn fill_ref(len: usize, value: f64) -> Vec<f64> {
    vec![value; len]
}

/// CPU reference of `scale`.
pub fn scale_ref(x: &[f64], a: f64) -> Vec<f64> {
    x.iter().map(|v| a * v).collect()
}

/// CPU reference of `axpy`: the new y.
pub fn axpy_ref(a: f64, x: &[f64], y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(x, y)| y + a * x).collect()
}

/// Fill (with a value, and with 0: a clear), scale and axpy on awkward shapes and on slices of one
/// buffer, against the references.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(6);
        for shape in [vec![3, 13, 4, 4], vec![5, 17]] {
            let len: usize = shape.iter().product();
            let (xs, ys) = (rng.normals(len), rng.normals(len));
            let (x, y) = (gpu.upload(&xs, &shape)?, gpu.upload(&ys, &shape)?);
            let filled = gpu.upload(&ys, &shape)?;
            let zeroed = gpu.upload(&ys, &shape)?;
            let (value, a) = (-0.375f32, 0.7f32);
            fill(gpu, &filled, value)?;
            fill(gpu, &zeroed, 0.0)?;
            let scaled = gpu.upload(&xs, &shape)?;
            scale(gpu, &scaled, a)?;
            axpy(gpu, a, &x, &y)?;
            let (x64, y64) = (f64s(&xs), f64s(&ys));
            for (name, out, reference) in [
                ("blas fill", &filled, fill_ref(len, value as f64)),
                ("blas fill 0", &zeroed, fill_ref(len, 0.0)),
                ("blas scale", &scaled, scale_ref(&x64, a as f64)),
                ("blas axpy", &y, axpy_ref(a as f64, &x64, &y64)),
            ] {
                rows.push(compare(name, &shape, &gpu.download(out).await?, &reference, 1e-6));
            }
        }
        // On slices of one buffer (how a network's parameters are kept): axpy into [64, 124), a clear
        // of [128, 200); the rest, its gaps included, must keep its values.
        let (a, len) = (0.7f32, 200);
        let (ws, xs) = (rng.normals(len), rng.normals(60));
        let whole = gpu.upload(&ws, &[len])?;
        let (y, cleared) = (gpu.slice(&whole, 64, &[6, 10])?, gpu.slice(&whole, 128, &[72])?);
        axpy(gpu, a, &gpu.upload(&xs, &[60])?, &y)?;
        fill(gpu, &cleared, 0.0)?;
        let mut reference = f64s(&ws);
        let updated = axpy_ref(a as f64, &f64s(&xs), &reference[64..124]);
        reference[64..124].copy_from_slice(&updated);
        reference[128..].fill(0.0);
        rows.push(compare(
            "blas on slices: axpy, fill 0, the rest kept",
            &[len],
            &gpu.download(&whole).await?,
            &reference,
            1e-6,
        ));
        rows.push(compare(
            "blas on slices: a slice downloaded",
            &[6, 10],
            &gpu.download(&y).await?,
            &reference[64..124],
            1e-6,
        ));
        Ok(rows)
    })
}
