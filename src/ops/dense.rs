//! dense: a fully connected layer with the equalized learning-rate scale `gain / sqrt(In)` applied in
//! the kernel, and no bias (act adds it, viewing y as [N, Out, 1, 1]). One tiled matrix product
//! (`shaders/dense.wgsl`) serves the forward pass, both backward passes and a plain `matmul`.
//!
//! Tensors of any rank are viewed as 2-D by element count: x is [N, In] (a [N, C, 4, 4] tensor is
//! [N, C*16]), y is [N, Out], w is [Out, In].

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, mixed_gemm_rows, Row, F32_UNIT_ROUNDOFF};
use crate::gpu::{Dispatch, Gpu, Precision, Shader, Tensor};
use crate::ops::reduce;
use crate::rng::Rng;

/// The f32 kernel, and its mixed-precision variant: the same file with its operands staged as f16
/// (dense.wgsl reads the staging type `Staged` from the lines composed before it).
pub const SHADER: Shader = Shader {
    name: "dense",
    source: concat!("alias Staged = f32;\n", include_str!("../../shaders/dense.wgsl")),
};
pub const SHADER_F16: Shader = Shader {
    name: "dense+f16",
    source: concat!(
        "enable f16;\nalias Staged = f16;\n",
        include_str!("../../shaders/dense.wgsl")
    ),
};

/// The kernel of `precision`: `dense`, or `dense+f16` (which needs SHADER_F16: `available_mixed`).
pub fn shader(precision: Precision) -> &'static Shader {
    match precision {
        Precision::F32 => &SHADER,
        Precision::Mixed => &SHADER_F16,
    }
}

/// The side of the output tile one workgroup computes, and the depth of its staged slices (dense.wgsl).
const TILE: usize = 64;
const CHUNK: usize = 16;

/// The sizes of a dense layer.
#[derive(Clone, Copy, Debug)]
pub struct DenseShape {
    pub n: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// One product c[M, N] = alpha op(a) op(b) (+ c), as dense.wgsl documents it.
struct Gemm {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    alpha: f32,
    precision: Precision,
}

/// Split K (split-K) until about this many workgroups run, when the output tiles alone are fewer, each
/// split reducing over at least `MIN_CHUNK` terms.
const TARGET_WORKGROUPS: usize = 256;
const MIN_CHUNK: usize = 256;

/// `Params` of dense.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    accumulate: u32,
    alpha: f32,
    /// The reduction length of one split.
    chunk: u32,
}

fn gemm(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor, g: Gemm) -> Result<()> {
    let tiles = g.n.div_ceil(TILE) * g.m.div_ceil(TILE);
    let (splits, chunk) = reduce::split_k(g.k, tiles, TARGET_WORKGROUPS, MIN_CHUNK, CHUNK);
    let params = |accumulate: bool| Params {
        m: g.m as u32,
        n: g.n as u32,
        k: g.k as u32,
        trans_a: g.trans_a as u32,
        trans_b: g.trans_b as u32,
        accumulate: accumulate as u32,
        alpha: g.alpha,
        chunk: chunk as u32,
    };
    // One workgroup per output tile and split; the launcher errors when a dimension exceeds the grid
    // limit.
    let grid = [g.n.div_ceil(TILE), g.m.div_ceil(TILE), splits].map(|d| u32::try_from(d).unwrap_or(u32::MAX));
    if g.precision == Precision::Mixed {
        available_mixed(gpu)?;
    }
    let shader = shader(g.precision);
    if splits == 1 {
        return gpu.launch(
            shader,
            "gemm",
            &params(g.accumulate),
            &[a, b, c],
            Dispatch::Groups(grid),
        );
    }
    let slices = gpu.scratch(&[splits, g.m * g.n])?;
    gpu.launch(
        shader,
        "gemm",
        &params(false),
        &[a, b, &slices],
        Dispatch::Groups(grid),
    )?;
    reduce::sum_slices(gpu, &slices, g.accumulate, c)
}

/// A tensor viewed as [rows, rest]: its leading dimension and the elements per row.
fn rows(t: &Tensor) -> (usize, usize) {
    let r = t.shape.first().copied().unwrap_or(1);
    (r, t.len() / r)
}

/// The equalized learning-rate scale of a layer with `inputs` inputs.
fn scale(gain: f64, inputs: usize) -> f64 {
    gain / (inputs as f64).sqrt()
}

/// The layer's sizes from x [N, In] and y [N, Out], with w checked to hold [Out, In].
fn layer(pass: &str, x: &Tensor, w: &Tensor, y: &Tensor) -> Result<DenseShape> {
    let (n, inputs) = rows(x);
    let (ny, outputs) = rows(y);
    ensure!(
        ny == n,
        "dense {pass}: inputs {:?} and outputs {:?} differ in batch size",
        x.shape,
        y.shape
    );
    ensure!(
        w.len() == outputs * inputs,
        "dense {pass}: weight {:?} is not [{outputs}, {inputs}] for inputs {:?} and outputs {:?}",
        w.shape,
        x.shape,
        y.shape
    );
    Ok(DenseShape { n, inputs, outputs })
}

/// y = s x w^T with s = gain / sqrt(In). This and the two backward passes run at `precision`, the
/// run's (`ops::precision::LayerPrecision::precision`).
pub fn forward(gpu: &Gpu, precision: Precision, x: &Tensor, w: &Tensor, y: &Tensor, gain: f32) -> Result<()> {
    let s = layer("forward", x, w, y)?;
    let g = Gemm {
        m: s.n,
        n: s.outputs,
        k: s.inputs,
        trans_a: false,
        trans_b: true,
        accumulate: false,
        alpha: scale(gain as f64, s.inputs) as f32,
        precision,
    };
    gemm(gpu, x, w, y, g)
}

/// dx = s dy w: the gradient of the inputs.
pub fn backward_data(gpu: &Gpu, precision: Precision, dy: &Tensor, w: &Tensor, dx: &Tensor, gain: f32) -> Result<()> {
    let s = layer("backward_data", dx, w, dy)?;
    let g = Gemm {
        m: s.n,
        n: s.inputs,
        k: s.outputs,
        trans_a: false,
        trans_b: false,
        accumulate: false,
        alpha: scale(gain as f64, s.inputs) as f32,
        precision,
    };
    gemm(gpu, dy, w, dx, g)
}

/// dw = s dy^T x, or dw += s dy^T x when `accumulate`: the gradient of the weights.
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    gpu: &Gpu,
    precision: Precision,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    gain: f32,
    accumulate: bool,
) -> Result<()> {
    let s = layer("backward_weight", x, dw, dy)?;
    let g = Gemm {
        m: s.outputs,
        n: s.inputs,
        k: s.n,
        trans_a: true,
        trans_b: false,
        accumulate,
        alpha: scale(gain as f64, s.inputs) as f32,
        precision,
    };
    gemm(gpu, dy, x, dw, g)
}

/// A plain tiled matrix product c = a b (a [M, K], b [K, N]) with the same kernel and scale 1:
/// the baseline the kernel benchmark compares convolutions against.
pub fn matmul(gpu: &Gpu, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    matmul_in(gpu, Precision::F32, a, b, c)
}

/// `matmul` at `precision`: `Mixed` rounds the operands to f16 and accumulates in f32 (the
/// `dense+f16` kernel), and is refused on a device without SHADER_F16.
pub fn matmul_in(gpu: &Gpu, precision: Precision, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<()> {
    let (m, k) = rows(a);
    let (kb, n) = rows(b);
    ensure!(
        kb == k,
        "matmul: a {:?} has {k} columns but b {:?} has {kb} rows",
        a.shape,
        b.shape
    );
    ensure!(
        rows(c) == (m, n),
        "matmul: c {:?} is not [{m}, {n}] for a {:?} and b {:?}",
        c.shape,
        a.shape,
        b.shape
    );
    let g = Gemm {
        m,
        n,
        k,
        trans_a: false,
        trans_b: false,
        accumulate: false,
        alpha: 1.0,
        precision,
    };
    gemm(gpu, a, b, c, g)
}

/// CPU reference of `forward`: y [N, Out].
pub fn forward_ref(x: &[f64], w: &[f64], s: DenseShape, gain: f64) -> Vec<f64> {
    let k = scale(gain, s.inputs);
    let mut y = vec![0.0; s.n * s.outputs];
    for b in 0..s.n {
        for o in 0..s.outputs {
            let mut sum = 0.0;
            for i in 0..s.inputs {
                sum += x[b * s.inputs + i] * w[o * s.inputs + i];
            }
            y[b * s.outputs + o] = k * sum;
        }
    }
    y
}

/// CPU reference of `backward_data`: dx [N, In].
pub fn backward_data_ref(dy: &[f64], w: &[f64], s: DenseShape, gain: f64) -> Vec<f64> {
    let k = scale(gain, s.inputs);
    let mut dx = vec![0.0; s.n * s.inputs];
    for b in 0..s.n {
        for i in 0..s.inputs {
            let mut sum = 0.0;
            for o in 0..s.outputs {
                sum += dy[b * s.outputs + o] * w[o * s.inputs + i];
            }
            dx[b * s.inputs + i] = k * sum;
        }
    }
    dx
}

/// CPU reference of `backward_weight` (without accumulation): dw [Out, In].
pub fn backward_weight_ref(x: &[f64], dy: &[f64], s: DenseShape, gain: f64) -> Vec<f64> {
    let k = scale(gain, s.inputs);
    let mut dw = vec![0.0; s.outputs * s.inputs];
    for o in 0..s.outputs {
        for i in 0..s.inputs {
            let mut sum = 0.0;
            for b in 0..s.n {
                sum += dy[b * s.outputs + o] * x[b * s.inputs + i];
            }
            dw[o * s.inputs + i] = k * sum;
        }
    }
    dw
}

/// Every pass on awkward shapes: sizes that fill no tile (5, 17), span two tiles (80), a flattened
/// 4x4 map (13*16 inputs or outputs), reductions long enough to be split (1040 inputs: 4 splits of the
/// forward; a batch of 600: 2 splits of the weight gradient, accumulating too); and matmul, all
/// against the references. Rows are labelled [N, In, Out] for the layer and [M, K, N] for matmul.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        // f32 sums of up to 1040 terms, against f64.
        const TOL: f64 = 1e-5;
        let mut rows = Vec::new();
        let mut rng = Rng::new(3);
        let gain = std::f32::consts::SQRT_2;
        for (x_shape, y_shape) in [
            (vec![3, 5], vec![3, 17]),
            (vec![4, 13, 4, 4], vec![4, 48]),
            (vec![5, 80], vec![5, 13, 4, 4]),
            (vec![3, 17], vec![3, 80]),
            (vec![3, 1040], vec![3, 7]),
            (vec![600, 5], vec![600, 3]),
        ] {
            let s = DenseShape {
                n: x_shape[0],
                inputs: x_shape[1..].iter().product(),
                outputs: y_shape[1..].iter().product(),
            };
            let w_shape = [s.outputs, s.inputs];
            let (xs, ws, dys, dw0) = (
                rng.normals(s.n * s.inputs),
                rng.normals(s.outputs * s.inputs),
                rng.normals(s.n * s.outputs),
                rng.normals(s.outputs * s.inputs),
            );
            let x = gpu.upload(&xs, &x_shape)?;
            let w = gpu.upload(&ws, &w_shape)?;
            let dy = gpu.upload(&dys, &y_shape)?;
            let dw_acc = gpu.upload(&dw0, &w_shape)?;
            let (y, dx, dw) = (gpu.zeros(&y_shape)?, gpu.zeros(&x_shape)?, gpu.zeros(&w_shape)?);
            forward(gpu, Precision::F32, &x, &w, &y, gain)?;
            backward_data(gpu, Precision::F32, &dy, &w, &dx, gain)?;
            backward_weight(gpu, Precision::F32, &x, &dy, &dw, gain, false)?;
            backward_weight(gpu, Precision::F32, &x, &dy, &dw_acc, gain, true)?;
            let (x64, w64, dy64, g) = (f64s(&xs), f64s(&ws), f64s(&dys), gain as f64);
            let dw_ref = backward_weight_ref(&x64, &dy64, s, g);
            let dw_acc_ref: Vec<f64> = dw_ref.iter().zip(&dw0).map(|(d, &a)| d + a as f64).collect();
            let shape = [s.n, s.inputs, s.outputs];
            for (name, out, reference) in [
                ("dense forward", &y, forward_ref(&x64, &w64, s, g)),
                ("dense backward_data", &dx, backward_data_ref(&dy64, &w64, s, g)),
                ("dense backward_weight", &dw, dw_ref),
                ("dense backward_weight accumulate", &dw_acc, dw_acc_ref),
            ] {
                let got = gpu.download(out).await?;
                rows.push(compare(name, &shape, &got, &reference, TOL));
            }
        }
        // A plain product: its reference is forward's with w = b^T, gain sqrt(K) (scale 1).
        for (m, k, n) in [(80, 17, 48), (13, 208, 80)] {
            let (as_, bs) = (rng.normals(m * k), rng.normals(k * n));
            let a = gpu.upload(&as_, &[m, k])?;
            let b = gpu.upload(&bs, &[k, n])?;
            let c = gpu.zeros(&[m, n])?;
            matmul(gpu, &a, &b, &c)?;
            let bt: Vec<f64> = (0..n * k).map(|e| bs[(e % k) * n + e / k] as f64).collect();
            let s = DenseShape {
                n: m,
                inputs: k,
                outputs: n,
            };
            let reference = forward_ref(&f64s(&as_), &bt, s, (k as f64).sqrt());
            rows.push(compare(
                "dense matmul",
                &[m, k, n],
                &gpu.download(&c).await?,
                &reference,
                TOL,
            ));
        }
        Ok(rows)
    })
}

/// Whether the device can run the mixed-precision kernel (`dense+f16`): an error saying what it
/// lacks otherwise.
pub fn available_mixed(gpu: &Gpu) -> Result<()> {
    gpu.require_f16("dense mixed")
}

/// The mixed-precision product (`matmul_in` with `Precision::Mixed`) against f64, on inputs drawn
/// N(0, 1) in f32 (none of which f16 holds exactly), with the bounds of `check::mixed_gemm_rows`
/// (f16's unit roundoff 2^-11 on the operands, K f32 roundings in the sums): one tile with a short
/// reduction, several tiles, and a reduction long enough to be split (K = 1040: 4 splits). Where
/// the reduction is short enough for f16's rounding to stand out of f32's (K <= 208), the result
/// must also differ from the f32 kernel's by more than both kernels' bounds. Needs SHADER_F16.
pub fn check_mixed(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(11);
        for (m, k, n) in [(5, 17, 9), (80, 208, 48), (3, 1040, 7)] {
            let (as_, bs) = (rng.normals(m * k), rng.normals(k * n));
            let a = gpu.upload(&as_, &[m, k])?;
            let b = gpu.upload(&bs, &[k, n])?;
            let (mixed, single) = (gpu.scratch(&[m, n])?, gpu.scratch(&[m, n])?);
            matmul_in(gpu, Precision::Mixed, &a, &b, &mixed)?;
            matmul_in(gpu, Precision::F32, &a, &b, &single)?;
            let got = gpu.download(&mixed).await?;
            let f32_result = gpu.download(&single).await?;
            let short = k <= 208;
            let against_f32 = short.then_some(f32_result.as_slice());
            rows.extend(mixed_gemm_rows(
                "dense mixed",
                (m, k, n),
                &as_,
                &bs,
                &got,
                against_f32,
                F32_UNIT_ROUNDOFF,
                short,
            )?);
        }
        Ok(rows)
    })
}
