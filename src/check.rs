//! Kernel checks: GPU output against the CPU reference, and references against finite differences.
//! The same checks run in `pggan selftest`, in the native tests and in the browser tests.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use crate::gpu::Gpu;

/// One compared output: its name and shape, the errors, the tolerance and the verdict.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub shape: String,
    /// Largest |gpu - reference|.
    pub max_abs: f64,
    /// `max_abs` divided by the reference's largest magnitude.
    pub max_rel: f64,
    /// The bound on `max_rel`.
    pub tol: f64,
    pub pass: bool,
}

/// A check of one op family on a GPU: one row per compared output.
pub type Check = for<'a> fn(&'a Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + 'a>>;

/// Compares a GPU result with its f64 reference. The error is measured relative to the reference's
/// largest magnitude, which stays meaningful for outputs that are sums with cancellation.
pub fn compare(name: &str, shape: &[usize], gpu: &[f32], reference: &[f64], tol: f64) -> Row {
    let scale = reference.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    let mut max_abs = if gpu.len() == reference.len() {
        0.0
    } else {
        f64::INFINITY
    };
    for (g, r) in gpu.iter().zip(reference) {
        let d = (*g as f64 - r).abs();
        // A NaN must fail the row, and f64::max would drop it.
        if d.is_nan() || d > max_abs {
            max_abs = d;
        }
    }
    let max_rel = if scale > 0.0 { max_abs / scale } else { max_abs };
    Row {
        name: name.to_string(),
        shape: format!("{shape:?}"),
        max_abs,
        max_rel,
        tol,
        pass: max_rel <= tol,
    }
}

/// The same table `pggan selftest` prints.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<34} {:<22} {:>10} {:>10} {:>8}  result\n",
        "kernel", "shape", "max abs", "max rel", "tol"
    );
    for r in rows {
        out += &format!(
            "{:<34} {:<22} {:>10.2e} {:>10.2e} {:>8.0e}  {}\n",
            r.name,
            r.shape,
            r.max_abs,
            r.max_rel,
            r.tol,
            if r.pass { "pass" } else { "FAIL" }
        );
    }
    out
}

/// Checks a vector-Jacobian product `vjp` = d<w, f(x)>/dx against central differences of the
/// reference `f` in f64. Returns the largest error relative to the largest gradient magnitude.
pub fn finite_difference_error(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], w: &[f64], vjp: &[f64]) -> f64 {
    let h = 1e-6;
    let objective = |x: &[f64]| f(x).iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
    let mut xp = x.to_vec();
    let scale = vjp.iter().fold(1e-12f64, |m, g| m.max(g.abs()));
    let mut worst = 0.0f64;
    for i in 0..x.len() {
        xp[i] = x[i] + h;
        let up = objective(&xp);
        xp[i] = x[i] - h;
        let down = objective(&xp);
        xp[i] = x[i];
        worst = worst.max(((up - down) / (2.0 * h) - vjp[i]).abs() / scale);
    }
    worst
}

/// Checks a Jacobian-vector product `jvp` = (df/dx) t against central differences of `f` along `t`.
pub fn jvp_difference_error(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], t: &[f64], jvp: &[f64]) -> f64 {
    let h = 1e-6;
    let shifted = |s: f64| f(&x.iter().zip(t).map(|(a, b)| a + s * b).collect::<Vec<_>>());
    let (up, down) = (shifted(h), shifted(-h));
    let scale = jvp.iter().fold(1e-12f64, |m, g| m.max(g.abs()));
    up.iter()
        .zip(&down)
        .zip(jvp)
        .map(|((u, d), j)| ((u - d) / (2.0 * h) - j).abs() / scale)
        .fold(0.0, f64::max)
}

/// f32 values widened for a reference.
pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// f16's unit roundoff: half its machine epsilon, 2^-11 (11 significant bits).
pub const F16_UNIT_ROUNDOFF: f64 = 1.0 / 2048.0;
/// f32's, 2^-24.
pub const F32_UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;

/// `x` rounded to the nearest f16 (ties to even), as f64: what a kernel's `f16(x)` gives. Normal
/// f16 values have 11 significant bits; below 2^-14 the step stays 2^-24 (subnormals); past the
/// largest finite f16 (65504) the result is infinite.
pub fn round_f16(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let exponent = x.abs().log2().floor().max(-14.0) as i32;
    let step = 2f64.powi(exponent - 10);
    let r = (x / step).round_ties_even() * step;
    if r.abs() > 65504.0 {
        f64::INFINITY.copysign(x)
    } else {
        r
    }
}

/// The checks of a mixed-precision product c [M, N] = a [M, K] b [K, N] (f16 operands, products
/// and sums at the accumulator's precision, unit roundoff `acc_unit`): `mixed_product_rows` with
/// the matrix product.
#[allow(clippy::too_many_arguments)]
pub fn mixed_gemm_rows(
    name: &str,
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    got: &[f32],
    f32_result: Option<&[f32]>,
    acc_unit: f64,
    discriminate: bool,
) -> anyhow::Result<Vec<Row>> {
    let product = |x: &[f64], y: &[f64]| -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| x[i * k + l] * y[l * n + j]).sum();
            }
        }
        c
    };
    let shape = [m, k, n];
    mixed_product_rows(name, &shape, k, a, b, &product, got, f32_result, acc_unit, discriminate)
}

/// An f64 reference of a product of two inputs.
pub type Bilinear<'a> = dyn Fn(&[f64], &[f64]) -> Vec<f64> + 'a;

/// The checks of a mixed-precision bilinear product of `a` and `b` (f16 operands, products and
/// sums at the accumulator's precision, unit roundoff `acc_unit`), each output a sum of at most `k`
/// products with nonnegative coefficients, so that `product(|a|, |b|)` is the sum of the terms'
/// magnitudes. `product` is its f64 reference (a matrix product, a convolution). As rows:
///
/// - against the f64 product of the f32 inputs: per element, rounding a and b to f16 changes each
///   product by at most (2u + u^2) |a_ik b_kj| (u = 2^-11), and a sum of K terms adds at most
///   gamma_K = K acc_unit / (1 - K acc_unit) times the sum of the magnitudes; the row's tolerance is
///   the largest such bound over the elements, relative to the reference's largest magnitude;
/// - against the f64 product of the f16-rounded inputs, with the accumulation bound alone. With
///   `discriminate`, the inputs must move that reference by more than twice the bound (and the f32
///   kernel's) somewhere, an error otherwise, so a kernel that silently kept its operands in f32
///   fails this row (over long reductions the worst-case bounds exceed f16's effect: not asked);
/// - with `f32`, the f32 kernel's result on the same inputs: the mixed result must differ from it by
///   more than the f32 kernel's own rounding and the accumulation bound allow (a row that passes
///   when the difference is above its tolerance).
#[allow(clippy::too_many_arguments)]
pub fn mixed_product_rows(
    name: &str,
    shape: &[usize],
    k: usize,
    a: &[f32],
    b: &[f32],
    product: &Bilinear<'_>,
    got: &[f32],
    f32_result: Option<&[f32]>,
    acc_unit: f64,
    discriminate: bool,
) -> anyhow::Result<Vec<Row>> {
    let u = F16_UNIT_ROUNDOFF;
    let gamma = |unit: f64| k as f64 * unit / (1.0 - k as f64 * unit);
    let (a64, b64) = (f64s(a), f64s(b));
    let (a16, b16): (Vec<f64>, Vec<f64>) = (
        a64.iter().map(|&x| round_f16(x)).collect(),
        b64.iter().map(|&x| round_f16(x)).collect(),
    );
    let inexact = a64.iter().chain(&b64).filter(|&&x| round_f16(x) != x).count();
    anyhow::ensure!(
        inexact * 10 >= (a.len() + b.len()) * 9,
        "{name}: only {inexact} of {} inputs are inexact in f16; the check needs inputs f16 cannot hold",
        a.len() + b.len()
    );
    let abs = |x: &[f64]| -> Vec<f64> { x.iter().map(|v| v.abs()).collect() };
    let (exact, rounded) = (product(&a64, &b64), product(&a16, &b16));
    let (mag, mag16) = (product(&abs(&a64), &abs(&b64)), product(&abs(&a16), &abs(&b16)));
    let scale = |r: &[f64]| r.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    let max = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, f64::max);
    // Bounds per element, then the largest, relative to each reference's largest magnitude.
    let full = max(&mut mag
        .iter()
        .map(|s| (2.0 * u + u * u) * s + gamma(acc_unit) * (1.0 + u).powi(2) * s));
    let acc = max(&mut mag16.iter().map(|s| gamma(acc_unit) * s));
    // The f32 kernel's bound: within gamma_K(2^-24) of the exact product.
    let f32_bound = max(&mut mag.iter().map(|s| gamma(F32_UNIT_ROUNDOFF) * s));
    let moved = max(&mut exact.iter().zip(&rounded).map(|(e, r)| (e - r).abs()));
    anyhow::ensure!(
        // A correct mixed kernel then differs from the f32 one by more than moved - acc - f32_bound,
        // which exceeds the `!= f32` row's tolerance, acc + f32_bound.
        !discriminate || moved > 2.0 * (acc + f32_bound),
        "{name}: rounding the inputs to f16 moves the product by only {moved:.2e}, within the \
         accumulation bounds ({acc:.2e}, {f32_bound:.2e}); the check would not tell f16 from f32"
    );
    let mut rows = vec![
        compare(&format!("{name} vs f64"), shape, got, &exact, full / scale(&exact)),
        compare(
            &format!("{name} vs f16 inputs"),
            shape,
            got,
            &rounded,
            acc / scale(&rounded),
        ),
    ];
    if let Some(f32_result) = f32_result {
        // The f32 kernel is within `f32_bound` of the exact product, the mixed one within `acc`
        // of the rounded one: a difference above both means the operands really were f16.
        let diff = max(&mut got.iter().zip(f32_result).map(|(g, f)| (*g as f64 - *f as f64).abs()));
        let tol = (acc + f32_bound) / scale(&exact);
        let rel = diff / scale(&exact);
        rows.push(Row {
            name: format!("{name} != f32 (> tol)"),
            shape: format!("{shape:?}"),
            max_abs: diff,
            max_rel: rel,
            tol,
            pass: rel > tol,
        });
    }
    Ok(rows)
}
