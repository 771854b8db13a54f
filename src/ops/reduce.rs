//! reduce: sums and sums of squares over the outer and inner axes of a tensor viewed as [A, J, K]
//! (`shaders/reduce.wgsl`): per-sample sums of squares, per-channel sums (the reference of act.rs's
//! bias gradient), batch sums, and the split-K slices of the conv and dense GEMMs (how many, and
//! their sum).

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
};

/// What is summed of each element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Term {
    Value = 0,
    Square = 1,
    /// 1 for NaN and infinities, 0 otherwise: the sum counts them.
    NonFinite = 2,
}

impl Term {
    fn of(self, v: f64) -> f64 {
        match self {
            Term::Value => v,
            Term::Square => v * v,
            Term::NonFinite => (!v.is_finite()) as u8 as f64,
        }
    }
}

/// How `x` is viewed: `[outer, rows, inner]`, summed over outer and inner.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub outer: usize,
    pub rows: usize,
    pub inner: usize,
}

impl View {
    /// One sum per sample of an [N, ...] tensor.
    pub fn per_sample(shape: &[usize]) -> View {
        View {
            outer: 1,
            rows: shape[0],
            inner: shape[1..].iter().product(),
        }
    }

    /// One sum per channel of an [N, C, ...] tensor.
    pub fn per_channel(shape: &[usize]) -> View {
        View {
            outer: shape[0],
            rows: shape[1],
            inner: shape[2..].iter().product(),
        }
    }
}

/// Split-K for a GEMM whose output tiles keep `busy` units (invocations or workgroups) at work: the
/// reduction of `kdim` terms is split until about `target` units run, each split over at least
/// `min_chunk` terms and a multiple of `depth` (the GEMM's slice). Returns (splits, chunk).
pub fn split_k(kdim: usize, busy: usize, target: usize, min_chunk: usize, depth: usize) -> (usize, usize) {
    let splits = target.div_ceil(busy).min(kdim / min_chunk).max(1);
    let chunk = kdim.div_ceil(splits).next_multiple_of(depth);
    (kdim.div_ceil(chunk), chunk)
}

/// out = the sum of the split-K slices [splits, len] (added to out when `accumulate`).
pub fn sum_slices(gpu: &Gpu, slices: &Tensor, accumulate: bool, out: &Tensor) -> Result<()> {
    let view = View {
        outer: slices.shape[0],
        rows: slices.shape[1],
        inner: 1,
    };
    sum(gpu, slices, view, Term::Value, accumulate, out)
}

/// `Params` of reduce.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    outer: u32,
    rows: u32,
    inner: u32,
    term: u32,
    accumulate: u32,
}

/// Terms per output up to which one invocation sums them alone (`sum_few`) rather than a workgroup.
const FEW_TERMS: usize = 64;

/// out[j] = sum over a, k of `term` of x[a, j, k]; added to out when `accumulate`.
pub fn sum(gpu: &Gpu, x: &Tensor, view: View, term: Term, accumulate: bool, out: &Tensor) -> Result<()> {
    ensure!(
        view.outer * view.rows * view.inner == x.len(),
        "reduce: view {view:?} of a tensor {:?}",
        x.shape
    );
    ensure!(
        out.len() == view.rows,
        "reduce: {} outputs for {} rows",
        out.len(),
        view.rows
    );
    let params = Params {
        outer: view.outer as u32,
        rows: view.rows as u32,
        inner: view.inner as u32,
        term: term as u32,
        accumulate: accumulate as u32,
    };
    if view.outer * view.inner <= FEW_TERMS {
        gpu.launch(&SHADER, "sum_few", &params, &[x, out], Dispatch::Items(view.rows))
    } else {
        gpu.launch(&SHADER, "sum", &params, &[x, out], Dispatch::Items(view.rows * 256))
    }
}

/// CPU reference of `sum`.
pub fn sum_ref(x: &[f64], view: View, term: Term) -> Vec<f64> {
    let mut out = vec![0.0; view.rows];
    for a in 0..view.outer {
        for (j, o) in out.iter_mut().enumerate() {
            for k in 0..view.inner {
                let v = x[(a * view.rows + j) * view.inner + k];
                *o += term.of(v);
            }
        }
    }
    out
}

/// Per-sample sums of squares, per-channel sums, batch sums and non-finite counts on awkward shapes.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(2);
        for shape in [[3usize, 17, 8, 8], [4, 5, 16, 16]] {
            let mut xs = rng.normals(shape.iter().product());
            let x = gpu.upload(&xs, &shape)?;
            let batch = View {
                outer: shape[0],
                rows: shape[1..].iter().product(),
                inner: 1,
            };
            // The first two take the workgroup path, the batch sum (3 or 4 terms) the one per output.
            for (name, view, term) in [
                ("reduce per-sample sum of squares", View::per_sample(&shape), Term::Square),
                ("reduce per-channel sum", View::per_channel(&shape), Term::Value),
                ("reduce batch sum", batch, Term::Value),
            ] {
                let out = gpu.zeros(&[view.rows])?;
                sum(gpu, &x, view, term, false, &out)?;
                let r = sum_ref(&f64s(&xs), view, term);
                rows.push(compare(name, &shape, &gpu.download(&out).await?, &r, 1e-5));
                // Accumulating the same sum again doubles it.
                sum(gpu, &x, view, term, true, &out)?;
                let r2: Vec<f64> = r.iter().map(|v| 2.0 * v).collect();
                rows.push(compare(
                    &format!("{name} (accumulate)"),
                    &shape,
                    &gpu.download(&out).await?,
                    &r2,
                    1e-5,
                ));
            }
            // NaN, both infinities and the largest finite values, counted per sample.
            let len = xs.len();
            for (k, v) in [(0, f32::NAN), (len / 3, f32::INFINITY), (len - 1, f32::NEG_INFINITY), (1, f32::MAX)] {
                xs[k] = v;
            }
            let view = View::per_sample(&shape);
            let out = gpu.zeros(&[view.rows])?;
            sum(gpu, &gpu.upload(&xs, &shape)?, view, Term::NonFinite, false, &out)?;
            let r = sum_ref(&f64s(&xs), view, Term::NonFinite);
            rows.push(compare("reduce non-finite count", &shape, &gpu.download(&out).await?, &r, 0.0));
        }
        Ok(rows)
    })
}
