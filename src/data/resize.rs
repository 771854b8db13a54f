//! Exact area (box) resampling for any ratio, up or down: each output pixel is the mean of the input
//! over the output pixel's footprint, every input pixel weighted by the area it shares with it. The
//! filter is separable (a rectangle's overlap is the product of its two 1-D overlaps), so it runs as a
//! horizontal pass then a vertical one. Weights are computed from integer overlaps, so an integer
//! ratio is exactly a plain box average.

use anyhow::{ensure, Result};

/// For one output index: the first input index it covers and the weight of each input from there.
struct Tap {
    first: usize,
    weights: Vec<f64>,
}

/// The area weights of one axis resampled from `src` to `dst` samples. Output j covers
/// [j src, (j + 1) src) and input i covers [i dst, (i + 1) dst) in units of 1 / dst input pixels.
fn taps(src: usize, dst: usize) -> Vec<Tap> {
    (0..dst)
        .map(|j| {
            let (lo, hi) = (j * src, (j + 1) * src);
            let (first, last) = (lo / dst, (hi - 1) / dst);
            let weights = (first..=last)
                .map(|i| (hi.min((i + 1) * dst) - lo.max(i * dst)) as f64 / src as f64)
                .collect();
            Tap { first, weights }
        })
        .collect()
}

/// Area-resizes `channels` planes of `h` rows by `w` columns to `dh` by `dw`. `row(y, buf)` fills
/// `buf` with input row `y` of every channel, channel after channel (`channels * w` values), so a
/// caller can produce rows on the fly (decoded pixels, composited) instead of whole planes.
/// Returns the output planes channel after channel (CHW).
pub fn resize_rows(
    w: usize,
    h: usize,
    dw: usize,
    dh: usize,
    channels: usize,
    mut row: impl FnMut(usize, &mut [f64]),
) -> Result<Vec<f64>> {
    ensure!(
        w > 0 && h > 0 && dw > 0 && dh > 0,
        "cannot resize {w}x{h} to {dw}x{dh}: every side must be at least one pixel"
    );
    let (across, down) = (taps(w, dw), taps(h, dh));
    // Horizontal pass into `mid`: channels planes of h rows by dw.
    let mut mid = vec![0f64; channels * h * dw];
    let mut buf = vec![0f64; channels * w];
    for y in 0..h {
        row(y, &mut buf);
        for c in 0..channels {
            let src = &buf[c * w..(c + 1) * w];
            let dst = &mut mid[(c * h + y) * dw..(c * h + y + 1) * dw];
            for (d, tap) in dst.iter_mut().zip(&across) {
                let taken = &src[tap.first..tap.first + tap.weights.len()];
                *d = taken.iter().zip(&tap.weights).map(|(s, wt)| s * wt).sum();
            }
        }
    }
    // Vertical pass: each output row accumulates its weighted input rows.
    let mut out = vec![0f64; channels * dh * dw];
    for c in 0..channels {
        for (j, tap) in down.iter().enumerate() {
            let dst = &mut out[(c * dh + j) * dw..(c * dh + j + 1) * dw];
            for (k, wt) in tap.weights.iter().enumerate() {
                let src = &mid[(c * h + tap.first + k) * dw..(c * h + tap.first + k + 1) * dw];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += wt * s;
                }
            }
        }
    }
    Ok(out)
}

/// A plane sample type the resampler accepts (computed in f64 either way).
pub trait Sample: Copy {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Sample for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
}

impl Sample for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
}

/// Refuses a plane whose sample count is not `w * h`.
fn check_plane(len: usize, w: usize, h: usize) -> Result<()> {
    ensure!(len == w * h, "a {w}x{h} plane has {} samples, got {len}", w * h);
    Ok(())
}

/// Area-resizes one row-major plane of `h` rows by `w` columns to `dh` by `dw`.
pub fn resize<T: Sample>(plane: &[T], w: usize, h: usize, dw: usize, dh: usize) -> Result<Vec<T>> {
    check_plane(plane.len(), w, h)?;
    let out = resize_rows(w, h, dw, dh, 1, |y, buf| {
        for (b, s) in buf.iter_mut().zip(&plane[y * w..(y + 1) * w]) {
            *b = s.to_f64();
        }
    })?;
    Ok(out.into_iter().map(T::from_f64).collect())
}

/// The centered square of a `w` by `h` image: (left column, top row, side). An odd leftover pixel
/// is dropped on the right or bottom.
pub fn square_window(w: usize, h: usize) -> (usize, usize, usize) {
    let side = w.min(h);
    ((w - side) / 2, (h - side) / 2, side)
}

/// Crops one row-major plane to its centered square; returns the square plane and its side.
pub fn center_crop<T: Copy>(plane: &[T], w: usize, h: usize) -> Result<(Vec<T>, usize)> {
    check_plane(plane.len(), w, h)?;
    let (x0, y0, side) = square_window(w, h);
    let out = (y0..y0 + side)
        .flat_map(|y| plane[y * w + x0..y * w + x0 + side].iter().copied())
        .collect();
    Ok((out, side))
}
