//! One module per op: its launchers, its CPU reference and its GPU-vs-reference check. The shader
//! of op `x` is `shaders/x.wgsl`.
//!
//! Every op is registered once, in [`for_each_op`]: the op modules, [`SHADERS`] and [`CHECKS`] here,
//! and the per-op tests natively (`tests/kernels.rs`) and in the browser (`tests/web.rs`) all come
//! from that one list.

use anyhow::{ensure, Result};

use crate::check::Check;
use crate::gpu::{Gpu, Shader};

/// Calls `$m!(act, reduce, ...)` with every op, in the order `pggan selftest` prints them.
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m!(act, reduce, conv, dense, resample, pixelnorm, lerp, reals, mbstd, gp, loss, adam, ema, blas, sort);
    };
}

macro_rules! register {
    ($($op:ident),*) => {
        $(pub mod $op;)*

        /// Every shader of the crate, one per op (the naga test validates each one).
        pub const SHADERS: &[Shader] = &[$($op::SHADER),*];

        /// Every op's check, by name.
        pub const CHECKS: &[(&str, Check)] = &[$((stringify!($op), $op::check)),*];
    };
}

for_each_op!(register);

pub mod coop_gemm;
pub mod precision;

/// The shaders that need a device feature (`Shader::needs`: f16 arithmetic, cooperative matrices),
/// variants of a file (`conv+f16`, `dense+f16`) or files of their own. The naga test validates each one with
/// exactly the capabilities it enables.
pub const FEATURE_SHADERS: &[Shader] = &[
    conv::SHADER_F16,
    conv::SHADER_COOP_16,
    conv::SHADER_COOP_8,
    dense::SHADER_F16,
    coop_gemm::SHADER_16,
    coop_gemm::SHADER_8,
];

/// A check that needs a device feature, with the test of whether the device has it (an error
/// naming what is missing). `pggan selftest` and `pggan bench precision` run those the device can.
pub struct FeatureCheck {
    pub name: &'static str,
    pub check: Check,
    pub available: fn(&Gpu) -> Result<()>,
}

pub const FEATURE_CHECKS: &[FeatureCheck] = &[
    FeatureCheck {
        name: "conv mixed",
        check: conv::check_mixed,
        available: conv::available_mixed,
    },
    FeatureCheck {
        name: "dense mixed",
        check: dense::check_mixed,
        available: dense::available_mixed,
    },
    FeatureCheck {
        name: "coop_gemm",
        check: coop_gemm::check,
        available: |gpu| coop_gemm::available(gpu).map(drop),
    },
    FeatureCheck {
        name: "conv coop",
        check: conv::check_coop,
        available: conv::available_coop,
    },
];

/// What a device without f16 arithmetic (a browser without `shader-f16`, or `GpuOptions::f32_only`)
/// must do: `auto` is f32, `mixed` is refused (as the layers' precision too), the f16 and
/// cooperative kernels are refused naming the missing feature, and the f32 product still runs. An
/// error says which of these failed. The native and the browser tests both run it.
pub async fn check_f32_fallback(gpu: &Gpu) -> Result<()> {
    use crate::gpu::{Precision, PrecisionChoice};
    ensure!(
        !gpu.precision.shader_f16 && gpu.precision.cooperative_matrix.is_empty(),
        "the device has f16 features: {}",
        gpu.precision.describe()
    );
    ensure!(
        PrecisionChoice::Auto.resolve(&gpu.precision)? == Precision::F32,
        "auto is not f32"
    );
    let refusal = |r: Result<()>, start: &str| -> Result<()> {
        match r {
            Ok(()) => anyhow::bail!("ran instead of refusing ({start}...)"),
            Err(e) if e.to_string().starts_with(start) => Ok(()),
            Err(e) => anyhow::bail!("refused with {e:#}, not {start}..."),
        }
    };
    let mixed = PrecisionChoice::Mixed.resolve(&gpu.precision).map(drop);
    refusal(mixed, "precision mixed needs f16 arithmetic (the shader-f16 feature)")?;
    let layers = precision::LayerPrecision::of(gpu, Precision::Mixed).map(drop);
    refusal(layers, "precision mixed needs f16 arithmetic (SHADER_F16")?;
    let a = gpu.upload(&[1.0, 2.0, 3.0, 4.0], &[2, 2])?;
    let c = gpu.zeros(&[2, 2])?;
    let dense = dense::matmul_in(gpu, Precision::Mixed, &a, &a, &c);
    refusal(dense, "dense mixed needs f16 arithmetic (SHADER_F16")?;
    let x = gpu.zeros(&[1, 1, 2, 2])?;
    let w = gpu.zeros(&[1, 1, 1, 1])?;
    let conv = conv::run(
        gpu,
        conv::Kernel::F16,
        conv::Pass::BackwardData,
        [&x, &w, &x],
        1.0,
        None,
    );
    refusal(conv, "conv mixed needs f16 arithmetic (SHADER_F16")?;
    let t = gpu.zeros(&[16, 16])?;
    let coop = coop_gemm::gemm(gpu, &t, &t, &t);
    refusal(
        coop,
        "coop_gemm needs cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX)",
    )?;
    dense::matmul_in(gpu, Precision::F32, &a, &a, &c)?;
    let got = gpu.download(&c).await?;
    ensure!(got == [7.0, 10.0, 15.0, 22.0], "the f32 product gave {got:?}");
    Ok(())
}
