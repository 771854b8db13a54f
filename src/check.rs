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
