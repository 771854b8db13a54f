//! coop_gemm: one 16x16x16 product on cooperative matrices (tensor cores), f16 operands and an f32
//! accumulator (`shaders/coop_gemm.wgsl`): the proof of wgpu's experimental cooperative-matrix path
//! on a GPU before any kernel is built on it. It runs only where the device has
//! EXPERIMENTAL_COOPERATIVE_MATRIX with the f16 x f16 + f32 16x16 configuration (and SHADER_F16);
//! elsewhere the launcher refuses it, naming what is missing.

use anyhow::{ensure, Result};

use crate::check::{mixed_gemm_rows, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "coop_gemm",
    source: include_str!("../../shaders/coop_gemm.wgsl"),
};

/// The side of the product.
pub const N: usize = 16;

/// The accumulator's unit roundoff in the check: 2^-22, twice f32's ulp. NVIDIA's tensor cores
/// add the exact products with truncation rather than rounding to nearest (2^-23 per addition);
/// the factor 2 leaves room for an adder that keeps no extra bit.
pub const ACC_UNIT: f64 = 1.0 / 4_194_304.0;

/// Whether the device can run `gemm16`: an error saying what it lacks otherwise.
pub fn available(gpu: &Gpu) -> Result<()> {
    let caps = &gpu.precision;
    ensure!(
        caps.shader_f16 && caps.coop_f16_f32(N as u32),
        "coop_gemm needs cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX) listing a {N}x{N}x{N} \
         product with f16 operands and an f32 accumulator, and SHADER_F16; this device ({}) {}",
        gpu.describe(),
        if caps.cooperative_matrix.is_empty() {
            format!("has no cooperative matrices (shader-f16: {})", caps.shader_f16)
        } else {
            format!("lists:\n{}", caps.describe())
        }
    );
    Ok(())
}

/// c = a b for a, b, c [16, 16], operands rounded to f16, accumulated in f32.
pub fn gemm16(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    for (name, t) in [("a", a), ("b", b), ("c", c)] {
        ensure!(t.len() == N * N, "coop_gemm: {name} {:?} is not [{N}, {N}]", t.shape);
    }
    available(gpu)?;
    gpu.launch(&SHADER, "gemm16", &(), &[a, b, c], Dispatch::Groups([1, 1, 1]))
}

/// One product of N(0, 1) inputs (none of which f16 holds exactly) against f64, with the bounds of
/// `check::mixed_gemm_rows` (f16's unit roundoff 2^-11 on the operands, 16 additions at
/// `ACC_UNIT`): against the exact product, and against the product of the f16-rounded inputs,
/// which a kernel that kept its operands in f32 would miss. Needs the feature (`gemm16`).
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rng = Rng::new(17);
        let (as_, bs) = (rng.normals(N * N), rng.normals(N * N));
        let a = gpu.upload(&as_, &[N, N])?;
        let b = gpu.upload(&bs, &[N, N])?;
        let c = gpu.scratch(&[N, N])?;
        gemm16(gpu, &a, &b, &c)?;
        let got = gpu.download(&c).await?;
        mixed_gemm_rows("coop_gemm", (N, N, N), &as_, &bs, &got, None, ACC_UNIT, true)
    })
}
