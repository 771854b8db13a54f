//! act: bias + leaky ReLU (`shaders/act.wgsl`): forward, the slope mask that serves as both the
//! backward pass and the JVP, and the mask with the bias gradient in one launch.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::ops::reduce;
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "act",
    source: include_str!("../../shaders/act.wgsl"),
};

/// `Params` of act.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    channels: u32,
    hw: u32,
    slope: f32,
}

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
    let params = Params {
        len: x.len() as u32,
        channels: channels as u32,
        hw: hw as u32,
        slope,
    };
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
    let params = Params {
        len: y.len() as u32,
        channels: 1,
        hw: 1,
        slope,
    };
    gpu.launch(&SHADER, "mask", &params, &[y, v, out], Dispatch::Items(y.len()))
}

/// `mask`, and db[c] += the sum of its output over channel c (every sample and pixel) for y of shape
/// [N, C, ...] and db [C]: a layer's backward pass through its activation and its bias gradient in one
/// launch, one workgroup per channel.
pub fn mask_bias_grad(gpu: &Gpu, y: &Tensor, v: &Tensor, out: &Tensor, db: &Tensor, slope: f32) -> Result<()> {
    ensure!(
        v.len() == y.len() && out.len() == y.len() && y.shape.len() >= 2 && db.len() == y.shape[1],
        "act mask_bias_grad: shapes {:?}, {:?}, {:?}, bias {:?}",
        y.shape,
        v.shape,
        out.shape,
        db.shape
    );
    let channels = y.shape[1];
    let hw = y.len() / (y.shape[0] * channels);
    let params = Params {
        len: y.len() as u32,
        channels: channels as u32,
        hw: hw as u32,
        slope,
    };
    gpu.launch(
        &SHADER,
        "mask_bias_grad",
        &params,
        &[y, v, out, db],
        Dispatch::Items(channels * 256),
    )
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

/// CPU reference of `mask_bias_grad`: the masked values and db + their per-channel sums.
pub fn mask_bias_grad_ref(y: &[f64], v: &[f64], db: &[f64], shape: &[usize], slope: f64) -> (Vec<f64>, Vec<f64>) {
    let out = mask_ref(y, v, slope);
    let sums = reduce::sum_ref(&out, reduce::View::per_channel(shape), reduce::Term::Value);
    let db = db.iter().zip(sums).map(|(a, b)| a + b).collect();
    (out, db)
}

/// Forward, mask and mask with the bias gradient on awkward shapes (channels 3, 13; spatial 4x4,
/// 8x8; a dense layer's [N, F]), against the references.
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
        // Dense outputs [N, F] too; db starts non-zero, as it is added to.
        for shape in [vec![3usize, 13, 4, 4], vec![5, 3, 8, 8], vec![4, 300]] {
            let n = shape.iter().product::<usize>();
            let (ys, vs, dbs) = (rng.normals(n), rng.normals(n), rng.normals(shape[1]));
            let (y, v) = (gpu.upload(&ys, &shape)?, gpu.upload(&vs, &shape)?);
            let (out, db) = (gpu.zeros(&shape)?, gpu.upload(&dbs, &[shape[1]])?);
            mask_bias_grad(gpu, &y, &v, &out, &db, SLOPE)?;
            let (out_ref, db_ref) = mask_bias_grad_ref(&f64s(&ys), &f64s(&vs), &f64s(&dbs), &shape, SLOPE as f64);
            rows.push(compare(
                "act mask_bias_grad: mask",
                &shape,
                &gpu.download(&out).await?,
                &out_ref,
                1e-6,
            ));
            rows.push(compare(
                "act mask_bias_grad: bias gradient",
                &[shape[1]],
                &gpu.download(&db).await?,
                &db_ref,
                1e-5,
            ));
        }
        Ok(rows)
    })
}
