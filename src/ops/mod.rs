//! One module per op: its launchers, its CPU reference and its GPU-vs-reference check. The shader
//! of op `x` is `shaders/x.wgsl`.
//!
//! Every op is registered once, in [`for_each_op`]: the op modules, [`SHADERS`] and [`CHECKS`] here,
//! and the per-op tests natively (`tests/kernels.rs`) and in the browser (`tests/web.rs`) all come
//! from that one list.

use crate::check::Check;
use crate::gpu::Shader;

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
