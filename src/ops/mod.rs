//! One module per op: its launchers, its CPU reference and its GPU-vs-reference check. The shader
//! of op `x` is `shaders/x.wgsl`.

pub mod act;
pub mod adam;
pub mod blas;
pub mod conv;
pub mod dense;
pub mod ema;
pub mod gp;
pub mod lerp;
pub mod loss;
pub mod mbstd;
pub mod pixelnorm;
pub mod reduce;
pub mod resample;
pub mod sort;

use crate::check::Check;
use crate::gpu::Shader;

/// Every shader of the crate (the naga test validates each one).
pub const SHADERS: &[Shader] = &[
    act::SHADER,
    reduce::SHADER,
    conv::SHADER,
    dense::SHADER,
    resample::SHADER,
    pixelnorm::SHADER,
    lerp::SHADER,
    mbstd::SHADER,
    gp::SHADER,
    loss::SHADER,
    adam::SHADER,
    ema::SHADER,
    blas::SHADER,
    sort::SHADER,
];

/// Every op's check, in the order `pggan selftest` prints them.
pub const CHECKS: &[(&str, Check)] = &[
    ("act", act::check),
    ("reduce", reduce::check),
    ("conv", conv::check),
    ("dense", dense::check),
    ("resample", resample::check),
    ("pixelnorm", pixelnorm::check),
    ("lerp", lerp::check),
    ("mbstd", mbstd::check),
    ("gp", gp::check),
    ("loss", loss::check),
    ("adam", adam::check),
    ("ema", ema::check),
    ("blas", blas::check),
    ("sort", sort::check),
];
