//! One module per op: its launchers, its CPU reference and its GPU-vs-reference check. The shader
//! of op `x` is `shaders/x.wgsl`.

pub mod act;
pub mod conv;
pub mod reduce;

use crate::check::Check;
use crate::gpu::Shader;

/// Every shader of the crate (the naga test validates each one).
pub const SHADERS: &[Shader] = &[act::SHADER, conv::SHADER, reduce::SHADER];

/// Every op's check, in the order `pggan selftest` prints them.
pub const CHECKS: &[(&str, Check)] = &[("act", act::check), ("reduce", reduce::check), ("conv", conv::check)];
