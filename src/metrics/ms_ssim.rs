//! MS-SSIM as the official progressive_growing_of_gans `metrics/ms_ssim.py` (from the TensorFlow
//! implementation): SSIM with an 11x11 Gaussian window (sigma 1.5) in 'valid' mode at 5 scales
//! halved by 2x2 averaging, the contrast-structure terms of the first 4 and the full SSIM of the
//! last combined with the weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]. Over a set, it is the
//! mean over random pairs: low values mean diverse images.
//!
//! Plain f64 on the CPU: with separable filtering one 64x64 RGB pair takes about 1.6 ms on one core,
//! so the paper's 10000 pairs take under 20 s, small beside training; a GPU kernel would not pay.

use anyhow::{ensure, Result};

use crate::data::Images;
use crate::rng::Rng;

use super::below;

const WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];
const MAX_VAL: f64 = 255.0;
const FILTER_SIZE: usize = 11;
const FILTER_SIGMA: f64 = 1.5;
const K1: f64 = 0.01;
const K2: f64 = 0.03;

/// MS-SSIM between image `ia` of `a` and image `ib` of `b` (same channels and size, at least 16x16
/// so that the 5 scales keep a pixel), in [0, 1]: 1 for identical images.
pub fn ms_ssim(a: &Images, ia: usize, b: &Images, ib: usize) -> Result<f64> {
    ensure!(
        (a.channels, a.res) == (b.channels, b.res),
        "MS-SSIM compares images of one shape: {}x{}x{} against {}x{}x{}",
        a.channels,
        a.res,
        a.res,
        b.channels,
        b.res,
        b.res
    );
    let min = 1 << (WEIGHTS.len() - 1);
    ensure!(
        a.res >= min,
        "MS-SSIM needs images of at least {min}x{min} for its {} scales, got {1}x{1}",
        WEIGHTS.len(),
        a.res
    );
    ensure!(
        ia < a.count && ib < b.count,
        "MS-SSIM: image {ia} of {} or {ib} of {} does not exist",
        a.count,
        b.count
    );
    let planes = |images: &Images, i: usize| -> Vec<f64> { images.image(i).iter().map(|&v| v as f64).collect() };
    let (mut x, mut y, mut size) = (planes(a, ia), planes(b, ib), a.res);
    let mut result = 1.0;
    for (scale, &weight) in WEIGHTS.iter().enumerate() {
        let (ssim, cs) = ssim(&x, &y, a.channels, size);
        // Clipped at zero as the official code does ("otherwise we get NaNs").
        let term = if scale + 1 < WEIGHTS.len() { cs } else { ssim };
        result *= term.max(0.0).powf(weight);
        if scale + 1 < WEIGHTS.len() {
            x = downsample(&x, a.channels, size);
            y = downsample(&y, a.channels, size);
            size /= 2;
        }
    }
    Ok(result)
}

/// Mean MS-SSIM over `pairs` random pairs of distinct images of `images` (the seed picks them).
pub fn ms_ssim_pairs(images: &Images, pairs: usize, seed: u64) -> Result<f64> {
    ensure!(pairs > 0, "MS-SSIM needs at least one pair");
    ensure!(
        images.count >= 2,
        "MS-SSIM pairs need at least 2 images, got {}",
        images.count
    );
    let mut rng = Rng::new(seed);
    let mut sum = 0.0;
    for _ in 0..pairs {
        let i = below(&mut rng, images.count);
        let mut j = below(&mut rng, images.count - 1);
        if j >= i {
            j += 1;
        }
        sum += ms_ssim(images, i, images, j)?;
    }
    Ok(sum / pairs as f64)
}

/// The official `_FSpecialGauss` as its 1-D factor: the window is the outer product of this with
/// itself (a Gaussian of x^2 + y^2 separates, and so does its normalisation).
fn gaussian(size: usize, sigma: f64) -> Vec<f64> {
    let offset = if size.is_multiple_of(2) { 0.5 } else { 0.0 };
    let start = -((size / 2) as f64) + offset;
    let g: Vec<f64> = (0..size)
        .map(|i| (-(start + i as f64).powi(2) / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = g.iter().sum();
    g.into_iter().map(|v| v / sum).collect()
}

/// 'valid' 2-D filtering of a `size`x`size` plane by the outer product of `w` with itself.
fn filter_valid(plane: &[f64], size: usize, w: &[f64]) -> Vec<f64> {
    let out = size - w.len() + 1;
    let mut rows = vec![0.0; size * out];
    for y in 0..size {
        for x in 0..out {
            rows[y * out + x] = w.iter().enumerate().map(|(t, wt)| wt * plane[y * size + x + t]).sum();
        }
    }
    let mut result = vec![0.0; out * out];
    for y in 0..out {
        for x in 0..out {
            result[y * out + x] = w.iter().enumerate().map(|(t, wt)| wt * rows[(y + t) * out + x]).sum();
        }
    }
    result
}

/// The official `_SSIMForMultiScale` of one pair of CHW images: (mean SSIM, mean contrast-structure)
/// over all channels and valid positions. The window shrinks to the image when it is smaller.
fn ssim(x: &[f64], y: &[f64], channels: usize, size: usize) -> (f64, f64) {
    let fsize = FILTER_SIZE.min(size);
    let w = gaussian(fsize, fsize as f64 * FILTER_SIGMA / FILTER_SIZE as f64);
    let (c1, c2) = ((K1 * MAX_VAL).powi(2), (K2 * MAX_VAL).powi(2));
    let (mut ssim_sum, mut cs_sum, mut terms) = (0.0, 0.0, 0usize);
    for c in 0..channels {
        let (xc, yc) = (
            &x[c * size * size..(c + 1) * size * size],
            &y[c * size * size..(c + 1) * size * size],
        );
        let product = |f: fn(f64, f64) -> f64| -> Vec<f64> {
            let p: Vec<f64> = xc.iter().zip(yc).map(|(&u, &v)| f(u, v)).collect();
            filter_valid(&p, size, &w)
        };
        let mu1 = product(|u, _| u);
        let mu2 = product(|_, v| v);
        let s11 = product(|u, _| u * u);
        let s22 = product(|_, v| v * v);
        let s12 = product(|u, v| u * v);
        for i in 0..mu1.len() {
            let (mu11, mu22, mu12) = (mu1[i] * mu1[i], mu2[i] * mu2[i], mu1[i] * mu2[i]);
            let v1 = 2.0 * (s12[i] - mu12) + c2;
            let v2 = (s11[i] - mu11) + (s22[i] - mu22) + c2;
            ssim_sum += (2.0 * mu12 + c1) * v1 / ((mu11 + mu22 + c1) * v2);
            cs_sum += v1 / v2;
        }
        terms += mu1.len();
    }
    (ssim_sum / terms as f64, cs_sum / terms as f64)
}

/// The official `_HoxDownsample`: the mean of each 2x2 block, per channel.
fn downsample(x: &[f64], channels: usize, size: usize) -> Vec<f64> {
    let half = size / 2;
    let mut out = Vec::with_capacity(channels * half * half);
    for c in 0..channels {
        let plane = &x[c * size * size..(c + 1) * size * size];
        for y in 0..half {
            for x in 0..half {
                let at = |dy: usize, dx: usize| plane[(2 * y + dy) * size + 2 * x + dx];
                out.push((at(0, 0) + at(1, 0) + at(0, 1) + at(1, 1)) * 0.25);
            }
        }
    }
    out
}
