//! One module per op: its launchers, its CPU reference and its GPU-vs-reference check. The shader
//! of op `x` is `shaders/x.wgsl`.
//!
//! Every op is registered once, in [`for_each_op`]: the op modules, [`SHADERS`] and [`CHECKS`] here,
//! and the per-op tests natively (`tests/kernels.rs`) and in the browser (`tests/web.rs`) all come
//! from that one list.

use anyhow::Result;

use crate::check::Check;
use crate::gpu::{Gpu, Shader};

/// Calls `$m!(act, reduce, ...)` with every op, in the order `pggan selftest` prints them.
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m!(act, reduce, conv, dense, resample, pixelnorm, lerp, mbstd, gp, loss, adam, ema, blas, sort);
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

/// The shaders that need a device feature (`Shader::needs`: f16 arithmetic, cooperative matrices),
/// variants of a file (`dense+f16`) or files of their own. The naga test validates each one with
/// exactly the capabilities it enables.
pub const FEATURE_SHADERS: &[Shader] = &[dense::SHADER_F16, coop_gemm::SHADER];

/// A check that needs a device feature, with the test of whether the device has it (an error
/// naming what is missing). `pggan selftest` and `pggan bench precision` run those the device can.
pub struct FeatureCheck {
    pub name: &'static str,
    pub check: Check,
    pub available: fn(&Gpu) -> Result<()>,
}

pub const FEATURE_CHECKS: &[FeatureCheck] = &[
    FeatureCheck {
        name: "dense mixed",
        check: dense::check_mixed,
        available: dense::available_mixed,
    },
    FeatureCheck {
        name: "coop_gemm",
        check: coop_gemm::check,
        available: coop_gemm::available,
    },
];
