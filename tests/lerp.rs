#![cfg(not(target_arch = "wasm32"))]
//! lerp (GPU check: tests/kernels.rs): both backward references against finite differences of the forward, the
//! forward as its own JVP (it is linear in a and b), and errors on mismatched shapes.

mod common;

use pggan::check::{f64s, finite_difference_error, jvp_difference_error};
use pggan::ops::lerp;
use pggan::rng::Rng;

/// Central differences of a linear map in f64 are exact up to rounding (about 1e-10 here).
const FD_TOL: f64 = 1e-6;

#[test]
fn backward_and_jvp_references_match_finite_differences() {
    let mut rng = Rng::new(22);
    let n = 40;
    let (a, b, g) = (f64s(&rng.normals(n)), f64s(&rng.normals(n)), f64s(&rng.normals(n)));
    // Interior alphas: at 0 or 1 one gradient is zero and the error, relative to it, is undefined.
    for alpha in [0.3, 0.75] {
        let (da, db) = lerp::backward_ref(&g, alpha);
        let err = finite_difference_error(|a| lerp::forward_ref(a, &b, alpha), &a, &g, &da);
        assert!(err < FD_TOL, "da at alpha {alpha}: error {err}");
        let err = finite_difference_error(|b| lerp::forward_ref(&a, b, alpha), &b, &g, &db);
        assert!(err < FD_TOL, "db at alpha {alpha}: error {err}");
        // Tangents (a, b) of the stacked input [a; b]: the JVP is the forward of the tangents.
        let ab = [a.clone(), b.clone()].concat();
        let t = [b.clone(), g.clone()].concat();
        let stacked = |x: &[f64]| lerp::forward_ref(&x[..n], &x[n..], alpha);
        let err = jvp_difference_error(stacked, &ab, &t, &lerp::forward_ref(&b, &g, alpha));
        assert!(err < FD_TOL, "jvp at alpha {alpha}: error {err}");
    }
}

#[test]
fn mismatched_shapes_are_an_error() {
    let gpu = common::gpu();
    let x = gpu.zeros(&[3, 5, 4, 4]).unwrap();
    let y = gpu.zeros(&[3, 5, 4, 4]).unwrap();
    let other = gpu.zeros(&[3, 5, 16]).unwrap();
    for err in [
        lerp::forward(&gpu, &x, &other, &y, 0.5).unwrap_err(),
        lerp::forward(&gpu, &x, &y, &other, 0.5).unwrap_err(),
        lerp::backward(&gpu, &x, &other, &y, 0.5).unwrap_err(),
        lerp::backward(&gpu, &x, &y, &other, 0.5).unwrap_err(),
    ] {
        assert!(err.to_string().starts_with("lerp "), "{err}");
    }
}
