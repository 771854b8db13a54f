//! ema: exponential moving average of weights (`shaders/ema.wgsl`): avg = src + beta * (avg - src).

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "ema",
    source: include_str!("../../shaders/ema.wgsl"),
};

/// `Params` of ema.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    beta: f32,
}

/// avg = src + beta * (avg - src), in place.
pub fn update(gpu: &Gpu, avg: &Tensor, src: &Tensor, beta: f32) -> Result<()> {
    ensure!(
        avg.len() == src.len(),
        "ema: average {:?} and source {:?} differ in size",
        avg.shape,
        src.shape
    );
    let params = Params {
        len: avg.len() as u32,
        beta,
    };
    gpu.launch(&SHADER, "update", &params, &[avg, src], Dispatch::Items(avg.len()))
}

/// CPU reference of `update`.
pub fn update_ref(avg: &mut [f64], src: &[f64], beta: f64) {
    for (a, &s) in avg.iter_mut().zip(src) {
        *a = s + beta * (*a - s);
    }
}

/// Updates with PG-GAN's beta 0.999 and with 0.5, against the reference.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(5);
        for (shape, beta) in [(vec![17, 13, 3, 3], 0.999f32), (vec![5, 48], 0.5)] {
            let len: usize = shape.iter().product();
            let (a0, s) = (rng.normals(len), rng.normals(len));
            let avg = gpu.upload(&a0, &shape)?;
            let src = gpu.upload(&s, &shape)?;
            update(gpu, &avg, &src, beta)?;
            let mut reference = f64s(&a0);
            update_ref(&mut reference, &f64s(&s), beta as f64);
            let name = format!("ema update, beta {beta}");
            rows.push(compare(&name, &shape, &gpu.download(&avg).await?, &reference, 1e-6));
        }
        Ok(rows)
    })
}
