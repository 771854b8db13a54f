//! lerp: the fade-in blend out = a + alpha (b - a), alpha a scalar (`shaders/lerp.wgsl`), and its
//! backward pass.
//!
//! Linear in (a, b) for a fixed alpha, so its JVP is the forward applied to the tangents.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "lerp",
    source: include_str!("../../shaders/lerp.wgsl"),
};

/// `Params` of lerp.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    alpha: f32,
}

/// out = a + alpha (b - a), for a, b and out of one shape.
pub fn forward(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor, alpha: f32) -> Result<()> {
    ensure!(
        b.shape == a.shape && out.shape == a.shape,
        "lerp forward: shapes a {:?}, b {:?}, out {:?}",
        a.shape,
        b.shape,
        out.shape
    );
    let params = Params {
        len: a.len() as u32,
        alpha,
    };
    gpu.launch(&SHADER, "forward", &params, &[a, b, out], Dispatch::Items(a.len()))
}

/// da = (1 - alpha) dout and db = alpha dout, both overwritten.
pub fn backward(gpu: &Gpu, dout: &Tensor, da: &Tensor, db: &Tensor, alpha: f32) -> Result<()> {
    ensure!(
        da.shape == dout.shape && db.shape == dout.shape,
        "lerp backward: shapes dout {:?}, da {:?}, db {:?}",
        dout.shape,
        da.shape,
        db.shape
    );
    let params = Params {
        len: dout.len() as u32,
        alpha,
    };
    gpu.launch(
        &SHADER,
        "backward",
        &params,
        &[dout, da, db],
        Dispatch::Items(dout.len()),
    )
}

/// CPU reference of `forward`.
pub fn forward_ref(a: &[f64], b: &[f64], alpha: f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&a, &b)| a + alpha * (b - a)).collect()
}

/// CPU reference of `backward`: (da, db).
pub fn backward_ref(dout: &[f64], alpha: f64) -> (Vec<f64>, Vec<f64>) {
    (
        dout.iter().map(|&g| (1.0 - alpha) * g).collect(),
        dout.iter().map(|&g| alpha * g).collect(),
    )
}

/// Forward and backward on [3, 5, 8, 8] and [4, 3, 16, 16] at alphas inside and at the ends of [0, 1].
/// Tolerance 1e-6: one rounding or two per element.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(5);
        for (shape, alpha) in [([3usize, 5, 8, 8], 0.3f32), ([4, 3, 16, 16], 0.0), ([3, 13, 4, 4], 1.0)] {
            let len = shape.iter().product();
            let (a_data, b_data, g_data) = (rng.normals(len), rng.normals(len), rng.normals(len));
            let a = gpu.upload(&a_data, &shape)?;
            let b = gpu.upload(&b_data, &shape)?;
            let g = gpu.upload(&g_data, &shape)?;
            let (out, da, db) = (gpu.zeros(&shape)?, gpu.zeros(&shape)?, gpu.zeros(&shape)?);
            forward(gpu, &a, &b, &out, alpha)?;
            backward(gpu, &g, &da, &db, alpha)?;
            let name = |pass: &str| format!("lerp {pass} alpha={alpha}");
            let r = forward_ref(&f64s(&a_data), &f64s(&b_data), alpha as f64);
            rows.push(compare(&name("forward"), &shape, &gpu.download(&out).await?, &r, 1e-6));
            let (da_ref, db_ref) = backward_ref(&f64s(&g_data), alpha as f64);
            rows.push(compare(
                &name("backward da"),
                &shape,
                &gpu.download(&da).await?,
                &da_ref,
                1e-6,
            ));
            rows.push(compare(
                &name("backward db"),
                &shape,
                &gpu.download(&db).await?,
                &db_ref,
                1e-6,
            ));
        }
        Ok(rows)
    })
}
