//! sort: an ascending bitonic sort of each row of a [rows, len] tensor (len a power of two), and the
//! two helpers of the sliced Wasserstein distance around it (`shaders/sort.wgsl`): `place` writes a
//! block of a row-major projection matrix transposed into the rows to sort, `abs_diff_sums` sums
//! |a - b| per row of two sorted tensors.

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::ops::blas;
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "sort",
    source: include_str!("../../shaders/sort.wgsl"),
};

/// The elements one workgroup sorts in workgroup memory (sort.wgsl).
const BLOCK: usize = 2048;

/// `Params` of sort.wgsl; each entry point reads some of the fields.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    len: u32,
    k: u32,
    j: u32,
    k_last: u32,
    block: u32,
    offset: u32,
    n: u32,
}

/// The [rows, len] view of a rank-2 tensor.
fn rows_len(what: &str, t: &Tensor) -> Result<(usize, usize)> {
    ensure!(t.shape.len() == 2, "{what}: tensor {:?} is not [rows, len]", t.shape);
    Ok((t.shape[0], t.shape[1]))
}

/// Sorts each row of `x` [rows, len] ascending in place. `len` must be a power of two (pad with
/// `f32::MAX`, which sorts last).
pub fn sort(gpu: &Gpu, x: &Tensor) -> Result<()> {
    let (_, len) = rows_len("sort", x)?;
    ensure!(
        len.is_power_of_two(),
        "sort: rows of {len} elements; pad them to a power of two"
    );
    if len < 2 {
        return Ok(());
    }
    let block = len.min(BLOCK);
    let tiles = x.len() / block;
    let tile = |k: usize, k_last: usize| {
        let p = Params {
            count: tiles as u32,
            len: len as u32,
            k: k as u32,
            k_last: k_last as u32,
            block: block as u32,
            ..Default::default()
        };
        gpu.launch(&SHADER, "sort_tile", &p, &[x], Dispatch::Items(tiles * 256))
    };
    tile(2, block)?;
    let mut k = 2 * block;
    while k <= len {
        let mut j = k / 2;
        while j >= block {
            let p = Params {
                count: (x.len() / 2) as u32,
                len: len as u32,
                k: k as u32,
                j: j as u32,
                ..Default::default()
            };
            gpu.launch(&SHADER, "sort_step", &p, &[x], Dispatch::Items(x.len() / 2))?;
            j /= 2;
        }
        tile(k, k)?;
        k *= 2;
    }
    Ok(())
}

/// x[c, offset + r] = src[r, c] for src [R, C] and x [C, len]: rows R of a projection matrix become
/// elements offset..offset + R of the rows of x.
pub fn place(gpu: &Gpu, src: &Tensor, x: &Tensor, offset: usize) -> Result<()> {
    let (r, c) = rows_len("sort place", src)?;
    let (xc, len) = rows_len("sort place", x)?;
    ensure!(
        xc == c && offset + r <= len,
        "sort place: src {:?} does not fit x {:?} at offset {offset}",
        src.shape,
        x.shape
    );
    let p = Params {
        count: src.len() as u32,
        len: len as u32,
        offset: offset as u32,
        n: c as u32,
        ..Default::default()
    };
    gpu.launch(&SHADER, "place", &p, &[x, src], Dispatch::Items(src.len()))
}

/// out[offset + r] = sum over i < n of |a[r, i] - b[r, i]| for a, b [rows, len].
pub fn abs_diff_sums(gpu: &Gpu, a: &Tensor, b: &Tensor, n: usize, out: &Tensor, offset: usize) -> Result<()> {
    let (rows, len) = rows_len("sort abs_diff_sums", a)?;
    ensure!(
        a.shape == b.shape && n <= len && offset + rows <= out.len(),
        "sort abs_diff_sums: a {:?}, b {:?}, {n} elements per row, out {:?} at offset {offset}",
        a.shape,
        b.shape,
        out.shape
    );
    let p = Params {
        count: rows as u32,
        len: len as u32,
        offset: offset as u32,
        n: n as u32,
        ..Default::default()
    };
    gpu.launch(
        &SHADER,
        "abs_diff_sums",
        &p,
        &[a, b, out],
        Dispatch::Items(rows * 256),
    )
}

/// CPU reference of `sort`: each row of `x` [rows, len] sorted ascending.
pub fn sort_ref(x: &[f64], len: usize) -> Vec<f64> {
    let mut y = x.to_vec();
    for row in y.chunks_mut(len) {
        row.sort_by(f64::total_cmp);
    }
    y
}

/// CPU reference of `place`: `x` [C, len] with src [R, C] written transposed at `offset`.
pub fn place_ref(src: &[f64], cols: usize, x: &[f64], len: usize, offset: usize) -> Vec<f64> {
    let mut y = x.to_vec();
    for (i, &v) in src.iter().enumerate() {
        y[(i % cols) * len + offset + i / cols] = v;
    }
    y
}

/// CPU reference of `abs_diff_sums`: one sum per row of a, b [rows, len] over the first n elements.
pub fn abs_diff_sums_ref(a: &[f64], b: &[f64], len: usize, n: usize) -> Vec<f64> {
    a.chunks(len)
        .zip(b.chunks(len))
        .map(|(ra, rb)| ra[..n].iter().zip(&rb[..n]).map(|(u, v)| (u - v).abs()).sum())
        .collect()
}

/// The sort on rows of 1, 2, 256, one tile (2048) and four tiles (8192, which runs the steps
/// across tiles), with ties and `f32::MAX` padding; place and abs_diff_sums on awkward shapes.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(14);
        for shape in [[3usize, 1], [5, 2], [3, 256], [2, BLOCK], [3, 4 * BLOCK]] {
            let n = shape[0] * shape[1];
            // Values on a grid of quarters so rows hold ties; the last eighth is padding.
            let xs: Vec<f32> = (0..n)
                .map(|i| {
                    if i % shape[1] >= shape[1] - shape[1] / 8 {
                        f32::MAX
                    } else {
                        (rng.normal() * 16.0).round() as f32 / 4.0
                    }
                })
                .collect();
            let x = gpu.upload(&xs, &shape)?;
            sort(gpu, &x)?;
            let reference = sort_ref(&f64s(&xs), shape[1]);
            // A sort moves values without arithmetic: exact.
            rows.push(compare("sort", &shape, &gpu.download(&x).await?, &reference, 0.0));
        }
        for (src_shape, x_shape, offset) in [([5usize, 3usize], [3usize, 16usize], 4usize), ([70, 1], [1, 128], 58)] {
            let (ss, xs) = (
                rng.normals(src_shape[0] * src_shape[1]),
                rng.normals(x_shape[0] * x_shape[1]),
            );
            let src = gpu.upload(&ss, &src_shape)?;
            let x = gpu.upload(&xs, &x_shape)?;
            place(gpu, &src, &x, offset)?;
            let reference = place_ref(&f64s(&ss), src_shape[1], &f64s(&xs), x_shape[1], offset);
            rows.push(compare(
                "sort place",
                &x_shape,
                &gpu.download(&x).await?,
                &reference,
                0.0,
            ));
        }
        for (shape, n, offset) in [([4usize, 600usize], 517usize, 2usize), ([3, 1], 1, 0)] {
            let len = shape[0] * shape[1];
            let (as_, bs) = (rng.normals(len), rng.normals(len));
            let a = gpu.upload(&as_, &shape)?;
            let b = gpu.upload(&bs, &shape)?;
            let out = gpu.zeros(&[shape[0] + offset])?;
            blas::fill(gpu, &out, 7.0)?;
            abs_diff_sums(gpu, &a, &b, n, &out, offset)?;
            let mut reference = vec![7.0; offset];
            reference.extend(abs_diff_sums_ref(&f64s(&as_), &f64s(&bs), shape[1], n));
            // f32 sums of up to 517 terms, against f64.
            rows.push(compare(
                "sort abs_diff_sums",
                &shape,
                &gpu.download(&out).await?,
                &reference,
                1e-5,
            ));
        }
        Ok(rows)
    })
}
