//! Quality metrics of generated images against real ones, as the official PG-GAN code computes them:
//! the sliced Wasserstein distance of Laplacian-pyramid patches (`swd`) and MS-SSIM (`ms_ssim`).

pub mod ms_ssim;
pub mod swd;

pub use ms_ssim::{ms_ssim, ms_ssim_pairs};
pub use swd::{swd, swd_ref, Swd, SwdConfig};

use crate::rng::Rng;

/// A uniform integer in 0..n (n > 0).
fn below(rng: &mut Rng, n: usize) -> usize {
    ((rng.uniform() * n as f64) as usize).min(n - 1)
}
