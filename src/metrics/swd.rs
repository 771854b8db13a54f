//! Sliced Wasserstein distance between two image sets, as the official progressive_growing_of_gans
//! `metrics/sliced_wasserstein.py`: random 7x7 neighbourhoods of each level of a Laplacian pyramid,
//! normalised per colour channel, compared by the distance between their sorted projections on
//! random unit directions. Reported x1e3 per level (finest first) and averaged over the levels.
//!
//! The pyramid and the patch extraction run on the CPU in both paths: they cost a few hundred
//! operations per pixel, far below the projections (descriptors x 147 x 512 multiply-adds per level
//! and side) and sorts that `swd` runs on the GPU.

use anyhow::{ensure, Result};

use crate::check::{compare, Row};
use crate::data::Images;
use crate::gpu::{Gpu, Tensor};
use crate::ops::{blas, dense, sort};
use crate::rng::Rng;

use super::below;

/// The relative difference per level allowed between `swd` and `swd_ref`.
pub const SWD_TOL: f64 = 1e-5;

/// The sizes of the metric; the defaults are the official ones.
#[derive(Clone, Debug, PartialEq)]
pub struct SwdConfig {
    /// Neighbourhoods drawn per image and level.
    pub patches_per_image: usize,
    /// Side of a neighbourhood.
    pub patch_size: usize,
    /// Random directions per repeat.
    pub dirs_per_repeat: usize,
    /// Independent sets of directions whose distances are averaged.
    pub repeats: usize,
    /// The coarsest pyramid level: levels are res, res/2, ... while at least this.
    pub min_res: usize,
}

impl Default for SwdConfig {
    fn default() -> Self {
        SwdConfig {
            patches_per_image: 128,
            patch_size: 7,
            dirs_per_repeat: 128,
            repeats: 4,
            min_res: 16,
        }
    }
}

/// The distance per pyramid level, (resolution, SWD x 1e3) finest first, and their mean.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Swd {
    pub levels: Vec<(usize, f64)>,
    pub average: f64,
}

/// Sliced Wasserstein distance, plain f64 on the CPU: the reference of `swd`. Same seed, same
/// numbers (one generator draws the neighbourhoods, then the directions, level by level).
pub fn swd_ref(real: &Images, fake: &Images, cfg: &SwdConfig, seed: u64) -> Result<Swd> {
    let mut levels = Vec::new();
    for level in Levels::new(real, fake, cfg, seed)? {
        levels.push((level.res, distance_ref(&level, cfg)));
    }
    Ok(Swd::new(levels))
}

/// Sliced Wasserstein distance with the projections, sorts and sums on the GPU: the numbers of
/// `swd_ref` within f32 rounding. Works in chunks of directions and of descriptors so that no
/// tensor exceeds the device's storage binding limit (128 MiB at WebGPU's defaults), which holds
/// the paper's 16384 images per side (2M descriptors per level).
pub async fn swd(gpu: &Gpu, real: &Images, fake: &Images, cfg: &SwdConfig, seed: u64) -> Result<Swd> {
    let mut levels = Vec::new();
    for level in Levels::new(real, fake, cfg, seed)? {
        levels.push((level.res, distance_gpu(gpu, &level).await?));
    }
    Ok(Swd::new(levels))
}

impl Swd {
    /// From the raw distance per level: scaled by 1e3 as the official code reports them.
    fn new(raw: Vec<(usize, f64)>) -> Swd {
        let levels: Vec<(usize, f64)> = raw.into_iter().map(|(r, d)| (r, d * 1e3)).collect();
        let average = levels.iter().map(|l| l.1).sum::<f64>() / levels.len() as f64;
        Swd { levels, average }
    }
}

/// Normalised descriptors of one side at one level: `rows` vectors of `dim` = C * patch^2 values in
/// (channel, y, x) order, f32 as the official code keeps them.
struct Descriptors {
    rows: usize,
    dim: usize,
    data: Vec<f32>,
}

/// One pyramid level of both sides and its random unit directions, [dim, repeats * dirs] row-major
/// (repeat r owns columns r * dirs .. (r + 1) * dirs).
struct Level {
    res: usize,
    real: Descriptors,
    fake: Descriptors,
    dirs: Vec<f64>,
}

/// The levels of both sides, computed one at a time so that only one level's descriptors are held.
struct Levels<'a> {
    real: &'a Images,
    fake: &'a Images,
    cfg: &'a SwdConfig,
    resolutions: Vec<usize>,
    next: usize,
    rng: Rng,
}

impl<'a> Levels<'a> {
    fn new(real: &'a Images, fake: &'a Images, cfg: &'a SwdConfig, seed: u64) -> Result<Levels<'a>> {
        ensure!(
            cfg.patches_per_image > 0 && cfg.dirs_per_repeat > 0 && cfg.repeats > 0,
            "SWD needs at least one patch per image, one direction and one repeat: {cfg:?}"
        );
        ensure!(
            cfg.patch_size > 0 && cfg.patch_size <= cfg.min_res,
            "SWD patches of {0}x{0} do not fit the coarsest level of {1}x{1}",
            cfg.patch_size,
            cfg.min_res
        );
        ensure!(
            (real.count, real.channels, real.res) == (fake.count, fake.channels, fake.res),
            "SWD compares sets of the same shape: {} images of {}x{}x{} against {} of {}x{}x{}",
            real.count,
            real.channels,
            real.res,
            real.res,
            fake.count,
            fake.channels,
            fake.res,
            fake.res
        );
        ensure!(real.count > 0 && real.channels > 0, "SWD needs at least one image");
        ensure!(
            real.res >= cfg.min_res,
            "SWD needs images of at least {0}x{0}, got {1}x{1}",
            cfg.min_res,
            real.res
        );
        let mut resolutions = Vec::new();
        let mut r = real.res;
        while r >= cfg.min_res {
            resolutions.push(r);
            r /= 2;
        }
        // Every level but the last is halved, which needs an even size (the official code fails too).
        ensure!(
            resolutions[..resolutions.len() - 1].iter().all(|r| r % 2 == 0),
            "SWD halves {0}x{0} images {1} times, so their size must be a multiple of {2}",
            real.res,
            resolutions.len() - 1,
            1 << (resolutions.len() - 1)
        );
        Ok(Levels {
            real,
            fake,
            cfg,
            resolutions,
            next: 0,
            rng: Rng::new(seed),
        })
    }
}

impl Iterator for Levels<'_> {
    type Item = Level;

    fn next(&mut self) -> Option<Level> {
        let (level, count) = (self.next, self.resolutions.len());
        let res = *self.resolutions.get(level)?;
        self.next += 1;
        let real = descriptors(self.real, level, count, self.cfg, &mut self.rng);
        let fake = descriptors(self.fake, level, count, self.cfg, &mut self.rng);
        let dirs = directions(real.dim, self.cfg, &mut self.rng);
        Some(Level { res, real, fake, dirs })
    }
}

/// scipy.ndimage's 'mirror' boundary: reflection about the edge pixels (d c b | a b c d | c b a).
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n as isize - 2;
    let i = i.rem_euclid(period);
    (if i >= n as isize { period - i } else { i }) as usize
}

/// A `size`x`size` plane convolved with gain * [1,4,6,4,1]^T [1,4,6,4,1] / 256, mirror boundary.
/// The filter is an outer product, so two 1-D passes give the 2-D convolution.
fn binomial(plane: &[f64], size: usize, gain: f64) -> Vec<f64> {
    const TAPS: [f64; 5] = [1.0, 4.0, 6.0, 4.0, 1.0];
    let pass = |src: &[f64], along_x: bool| -> Vec<f64> {
        let mut out = vec![0.0; size * size];
        for y in 0..size {
            for x in 0..size {
                let mut sum = 0.0;
                for (t, w) in TAPS.iter().enumerate() {
                    let d = t as isize - 2;
                    sum += w * if along_x {
                        src[y * size + mirror(x as isize + d, size)]
                    } else {
                        src[mirror(y as isize + d, size) * size + x]
                    };
                }
                out[y * size + x] = sum / 16.0;
            }
        }
        out
    };
    let mut out = pass(&pass(plane, true), false);
    out.iter_mut().for_each(|v| *v *= gain);
    out
}

/// cv2.pyrDown as the official code does it: blur, then every second pixel.
fn pyr_down(plane: &[f64], size: usize) -> Vec<f64> {
    let blurred = binomial(plane, size, 1.0);
    let half = size.div_ceil(2);
    (0..half * half)
        .map(|i| blurred[(i / half) * 2 * size + (i % half) * 2])
        .collect()
}

/// cv2.pyrUp as the official code does it: zeros between the pixels, then blur x4.
fn pyr_up(plane: &[f64], size: usize) -> Vec<f64> {
    let big = 2 * size;
    let mut up = vec![0.0; big * big];
    for (i, &v) in plane.iter().enumerate() {
        up[(i / size) * 2 * big + (i % size) * 2] = v;
    }
    binomial(&up, big, 4.0)
}

/// Level `level` of the Laplacian pyramid of one channel plane: the band-pass difference between the
/// Gaussian level and its coarser neighbour expanded, or the Gaussian level itself for the last.
fn laplacian(plane: &[f64], res: usize, level: usize, levels: usize) -> Vec<f64> {
    let mut g = plane.to_vec();
    let mut size = res;
    for _ in 0..level {
        g = pyr_down(&g, size);
        size /= 2;
    }
    if level + 1 < levels {
        let up = pyr_up(&pyr_down(&g, size), size / 2);
        g.iter_mut().zip(&up).for_each(|(v, u)| *v -= u);
    }
    g
}

/// The normalised descriptors of every image of `images` at one pyramid level.
fn descriptors(images: &Images, level: usize, levels: usize, cfg: &SwdConfig, rng: &mut Rng) -> Descriptors {
    let (c, p, res) = (images.channels, cfg.patch_size, images.res);
    let size = res >> level;
    let dim = c * p * p;
    let rows = images.count * cfg.patches_per_image;
    let mut data = Vec::with_capacity(rows * dim);
    for i in 0..images.count {
        let image = images.image(i);
        let planes: Vec<Vec<f64>> = (0..c)
            .map(|ch| {
                let plane: Vec<f64> = image[ch * res * res..(ch + 1) * res * res]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                laplacian(&plane, res, level, levels)
            })
            .collect();
        for _ in 0..cfg.patches_per_image {
            let x0 = below(rng, size - p + 1);
            let y0 = below(rng, size - p + 1);
            for plane in &planes {
                for y in y0..y0 + p {
                    data.extend(plane[y * size + x0..y * size + x0 + p].iter().map(|&v| v as f32));
                }
            }
        }
    }
    normalise(&mut data, c, p * p);
    Descriptors { rows, dim, data }
}

/// Subtracts the mean and divides by the (population) standard deviation of each colour channel over
/// all descriptors and positions, in place. A constant channel is only centred: the official code
/// would divide by zero.
fn normalise(data: &mut [f32], channels: usize, positions: usize) {
    let dim = channels * positions;
    let rows = data.len() / dim;
    for c in 0..channels {
        let values = || (0..rows).flat_map(move |r| (0..positions).map(move |q| r * dim + c * positions + q));
        let n = (rows * positions) as f64;
        let mean = values().map(|i| data[i] as f64).sum::<f64>() / n;
        let var = values().map(|i| (data[i] as f64 - mean).powi(2)).sum::<f64>() / n;
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        for i in values() {
            data[i] = ((data[i] as f64 - mean) / std) as f32;
        }
    }
}

/// `repeats` blocks of `dirs_per_repeat` directions in `dim` dimensions, N(0, 1) then each column
/// scaled to unit length: [dim, repeats * dirs] row-major.
fn directions(dim: usize, cfg: &SwdConfig, rng: &mut Rng) -> Vec<f64> {
    let (dirs, total) = (cfg.dirs_per_repeat, cfg.dirs_per_repeat * cfg.repeats);
    let mut out = vec![0.0; dim * total];
    for r in 0..cfg.repeats {
        for k in 0..dim {
            for d in 0..dirs {
                out[k * total + r * dirs + d] = rng.normal();
            }
        }
    }
    for col in 0..total {
        let norm = (0..dim).map(|k| out[k * total + col].powi(2)).sum::<f64>().sqrt();
        (0..dim).for_each(|k| out[k * total + col] /= norm);
    }
    out
}

/// The official `sliced_wasserstein`: per repeat, the mean over directions and descriptors of
/// |sorted projections of real - sorted projections of fake|; then the mean over repeats.
fn distance_ref(level: &Level, cfg: &SwdConfig) -> f64 {
    let (n, dim, total) = (level.real.rows, level.real.dim, cfg.dirs_per_repeat * cfg.repeats);
    let project = |desc: &Descriptors, col: usize| -> Vec<f64> {
        let dir: Vec<f64> = (0..dim).map(|k| level.dirs[k * total + col]).collect();
        let mut proj: Vec<f64> = desc
            .data
            .chunks(dim)
            .map(|row| row.iter().zip(&dir).map(|(&v, d)| v as f64 * d).sum())
            .collect();
        proj.sort_by(f64::total_cmp);
        proj
    };
    let mut sum_over_repeats = 0.0;
    for r in 0..cfg.repeats {
        let mut sum = 0.0;
        for col in r * cfg.dirs_per_repeat..(r + 1) * cfg.dirs_per_repeat {
            let (a, b) = (project(&level.real, col), project(&level.fake, col));
            sum += a.iter().zip(&b).map(|(u, v)| (u - v).abs()).sum::<f64>();
        }
        sum_over_repeats += sum / (n * cfg.dirs_per_repeat) as f64;
    }
    sum_over_repeats / cfg.repeats as f64
}

/// `distance_ref` on the GPU. Equal-sized repeats make the mean over repeats of per-repeat means the
/// mean over all directions. Directions are taken in chunks whose sorted projections, one row of
/// `len` (the descriptor count padded to a power of two with f32::MAX) per direction, fit one
/// binding; descriptors are uploaded once, in row blocks that fit one binding, and each block's
/// projections (a matmul) are placed transposed into the rows to sort. Padding directions with
/// zeros to a whole number of chunks adds |0 - 0| terms only.
async fn distance_gpu(gpu: &Gpu, level: &Level) -> Result<f64> {
    let (n, dim) = (level.real.rows, level.real.dim);
    let total = level.dirs.len() / dim;
    let limit = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    let max_floats = usize::try_from(limit / 4).unwrap_or(usize::MAX);
    let len = n.next_power_of_two();
    ensure!(
        len <= max_floats,
        "SWD: {n} descriptors per level need rows of {len} floats, over this device's binding limit of {} \
         MiB; use fewer images",
        limit >> 20
    );
    let cols = (max_floats / len).min(total);
    let chunks = total.div_ceil(cols);
    // The matmul launches one workgroup row per 64 descriptors, at most 65535 of them.
    let block_rows = (max_floats / dim.max(cols)).min(65_535 * 64).min(n);
    let upload = |d: &Descriptors| -> Result<Vec<Tensor>> {
        d.data
            .chunks(block_rows * dim)
            .map(|c| gpu.upload(c, &[c.len() / dim, dim]))
            .collect()
    };
    let (real, fake) = (upload(&level.real)?, upload(&level.fake)?);
    let projections: Vec<Tensor> = real
        .iter()
        .map(|b| gpu.zeros(&[b.shape[0], cols]))
        .collect::<Result<_>>()?;
    let sorted = [gpu.zeros(&[cols, len])?, gpu.zeros(&[cols, len])?];
    let sums = gpu.zeros(&[chunks * cols])?;
    // The padding sorts last and stays there: filled once, never overwritten by `place`.
    if len > n {
        for out in &sorted {
            blas::fill(gpu, out, f32::MAX)?;
        }
    }
    for chunk in 0..chunks {
        let dirs: Vec<f32> = (0..dim * cols)
            .map(|i| {
                let col = chunk * cols + i % cols;
                if col < total {
                    level.dirs[(i / cols) * total + col] as f32
                } else {
                    0.0
                }
            })
            .collect();
        let dirs = gpu.upload(&dirs, &[dim, cols])?;
        for (side, out) in [&real, &fake].into_iter().zip(&sorted) {
            for (b, (block, proj)) in side.iter().zip(&projections).enumerate() {
                dense::matmul(gpu, block, &dirs, proj)?;
                sort::place(gpu, proj, out, b * block_rows)?;
            }
            sort::sort(gpu, out)?;
        }
        sort::abs_diff_sums(gpu, &sorted[0], &sorted[1], n, &sums, chunk * cols)?;
        // Submit chunk by chunk so the recorded work stays bounded.
        gpu.flush();
    }
    let sums = gpu.download(&sums).await?;
    Ok(sums.iter().map(|&s| s as f64).sum::<f64>() / (n * total) as f64)
}

/// `count` random RGB test images: a colour gradient, four soft-edged discs of random colours and
/// sizes, and pixel noise of amplitude `noise`; structure at every scale the pyramid looks at.
pub fn synthetic(count: usize, res: usize, noise: f64, rng: &mut Rng) -> Result<Images> {
    let mut pixels = vec![0u8; count * 3 * res * res];
    let r = res as f64;
    for image in pixels.chunks_mut(3 * res * res) {
        let angle = rng.uniform() * std::f64::consts::TAU;
        let gradient: Vec<[f64; 2]> = (0..3).map(|_| [rng.uniform() * 160.0, rng.uniform() * 96.0]).collect();
        let discs: Vec<[f64; 6]> = (0..4)
            .map(|_| {
                let [x, y, radius] = [rng.uniform() * r, rng.uniform() * r, (0.1 + 0.3 * rng.uniform()) * r];
                [
                    x,
                    y,
                    radius,
                    rng.uniform() * 255.0,
                    rng.uniform() * 255.0,
                    rng.uniform() * 255.0,
                ]
            })
            .collect();
        for y in 0..res {
            for x in 0..res {
                let t = (x as f64 * angle.cos() + y as f64 * angle.sin()) / r;
                for (c, [base, slope]) in gradient.iter().enumerate() {
                    let mut v = base + slope * t;
                    for d in &discs {
                        let dist = ((x as f64 - d[0]).powi(2) + (y as f64 - d[1]).powi(2)).sqrt();
                        // Opaque inside, fading over 1.5 pixels at the edge.
                        let alpha = ((d[2] - dist) / 1.5 + 0.5).clamp(0.0, 1.0);
                        v += alpha * (d[3 + c] - v);
                    }
                    v += noise * (rng.uniform() - 0.5);
                    image[(c * res + y) * res + x] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
    }
    Images::new(count, 3, res, pixels)
}

/// `swd` against `swd_ref` per level on two 32x32 sets of 12 images with 100 patches each (1200
/// descriptors, padded to 2048 for the sort), so both levels and the padding are exercised.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rng = Rng::new(21);
        let real = synthetic(12, 32, 8.0, &mut rng)?;
        let fake = synthetic(12, 32, 64.0, &mut rng)?;
        let cfg = SwdConfig {
            patches_per_image: 100,
            ..SwdConfig::default()
        };
        let reference = swd_ref(&real, &fake, &cfg, 5)?;
        let got = swd(gpu, &real, &fake, &cfg, 5).await?;
        let mut rows = Vec::new();
        for ((res, g), (_, r)) in got.levels.iter().zip(&reference.levels) {
            // f32 projections and sums of 1200 sorted differences against f64.
            rows.push(compare(
                &format!("swd level {res}x{res}"),
                &[real.count, real.channels, real.res, real.res],
                &[*g as f32],
                &[*r],
                SWD_TOL,
            ));
        }
        Ok(rows)
    })
}
