//! coop_gemm: one N x N x N product on cooperative matrices (tensor cores), f16 operands and an f32
//! accumulator (`shaders/coop_gemm.wgsl`): the proof of wgpu's experimental cooperative-matrix path
//! on a device before any kernel is built on it. N is 16 where the adapter lists that size (NVIDIA's
//! tensor cores), else 8 (lavapipe). It runs only where the device has
//! EXPERIMENTAL_COOPERATIVE_MATRIX with an f16 x f16 + f32 configuration of either size (and
//! SHADER_F16); elsewhere the launcher refuses it, naming what is missing.

use anyhow::{ensure, Result};

use crate::check::{mixed_gemm_rows, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

/// The lines that declare the cooperative-matrix types of side `$n` for a shader of this crate:
/// `CoopA`, `CoopB` (f16 operands), `CoopC` (f32 accumulator) and the side `N`, after the `enable`
/// directives they need.
#[macro_export]
macro_rules! coop_prelude {
    ($n:literal) => {
        concat!(
            "enable f16;\nenable wgpu_cooperative_matrix;\n",
            "const N: u32 = ",
            $n,
            "u;\n",
            "alias CoopA = coop_mat",
            $n,
            "x",
            $n,
            "<f16, A>;\n",
            "alias CoopB = coop_mat",
            $n,
            "x",
            $n,
            "<f16, B>;\n",
            "alias CoopC = coop_mat",
            $n,
            "x",
            $n,
            "<f32, C>;\n"
        )
    };
}

/// The kernel with 16x16 matrices, and with 8x8 ones.
pub const SHADER_16: Shader = Shader {
    name: "coop_gemm+16",
    source: concat!(coop_prelude!(16), include_str!("../../shaders/coop_gemm.wgsl")),
};
pub const SHADER_8: Shader = Shader {
    name: "coop_gemm+8",
    source: concat!(coop_prelude!(8), include_str!("../../shaders/coop_gemm.wgsl")),
};

/// The accumulator's unit roundoff in the checks of the cooperative kernels: 2^-22, twice f32's
/// ulp. NVIDIA's tensor cores add the exact products with truncation rather than rounding to
/// nearest (2^-23 per addition); the factor 2 leaves room for an adder that keeps no extra bit.
pub const ACC_UNIT: f64 = 1.0 / 4_194_304.0;

/// The side N of the device's product and its shader: an error saying what the device lacks where
/// it has none.
pub fn available(gpu: &Gpu) -> Result<(usize, &'static Shader)> {
    let caps = &gpu.precision;
    let size = caps.coop_size().filter(|_| caps.shader_f16);
    ensure!(
        size.is_some(),
        "coop_gemm needs cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX) listing a 16x16x16 or \
         8x8x8 product with f16 operands and an f32 accumulator, and SHADER_F16; this device ({}) {}",
        gpu.describe(),
        if caps.cooperative_matrix.is_empty() {
            format!("has no cooperative matrices (shader-f16: {})", caps.shader_f16)
        } else {
            format!("lists:\n{}", caps.describe())
        }
    );
    Ok(match size {
        Some(16) => (16, &SHADER_16),
        _ => (8, &SHADER_8),
    })
}

/// c = a b for a, b, c [N, N], N the device's side (`available`), operands rounded to f16,
/// accumulated in f32.
pub fn gemm(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    let (n, shader) = available(gpu)?;
    for (name, t) in [("a", a), ("b", b), ("c", c)] {
        ensure!(t.len() == n * n, "coop_gemm: {name} {:?} is not [{n}, {n}]", t.shape);
    }
    gpu.launch(shader, "gemm", &(), &[a, b, c], Dispatch::Groups([1, 1, 1]))
}

/// One product of N(0, 1) inputs (none of which f16 holds exactly) against f64, with the bounds of
/// `check::mixed_gemm_rows` (f16's unit roundoff 2^-11 on the operands, N additions at
/// `ACC_UNIT`): against the exact product, and against the product of the f16-rounded inputs,
/// which a kernel that kept its operands in f32 would miss. Needs the feature (`available`).
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let (n, _) = available(gpu)?;
        let mut rng = Rng::new(17);
        let (as_, bs) = (rng.normals(n * n), rng.normals(n * n));
        let a = gpu.upload(&as_, &[n, n])?;
        let b = gpu.upload(&bs, &[n, n])?;
        let c = gpu.scratch(&[n, n])?;
        gemm(gpu, &a, &b, &c)?;
        let got = gpu.download(&c).await?;
        mixed_gemm_rows("coop_gemm", (n, n, n), &as_, &bs, &got, None, ACC_UNIT, true)
    })
}
