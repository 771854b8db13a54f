#![cfg(not(target_arch = "wasm32"))]
//! pixelnorm (GPU check: tests/kernels.rs): the backward reference against finite differences of the forward, and
//! errors on mismatched shapes.

mod common;

use pggan::check::{f64s, finite_difference_error};
use pggan::ops::pixelnorm;
use pggan::rng::Rng;

/// Central differences with h = 1e-6 agree with the exact derivative to about 1e-9 here.
const FD_TOL: f64 = 1e-6;

#[test]
fn backward_reference_matches_finite_differences() {
    let mut rng = Rng::new(21);
    for (n, c, hw) in [(3, 5, 4), (2, 7, 1)] {
        let x = f64s(&rng.normals(n * c * hw));
        let dy = f64s(&rng.normals(x.len()));
        let vjp = pixelnorm::backward_ref(&x, &dy, n, c, hw);
        let err = finite_difference_error(|x| pixelnorm::forward_ref(x, n, c, hw), &x, &dy, &vjp);
        assert!(err < FD_TOL, "[{n}, {c}, {hw}]: error {err}");
    }
}

#[test]
fn mismatched_shapes_are_an_error() {
    let gpu = common::gpu();
    let x = gpu.zeros(&[3, 5, 4, 4]).unwrap();
    let other = gpu.zeros(&[3, 5, 4, 2]).unwrap();
    let same = gpu.zeros(&[3, 5, 4, 4]).unwrap();
    let flat = gpu.zeros(&[15]).unwrap();
    for err in [
        pixelnorm::forward(&gpu, &x, &other).unwrap_err(),
        pixelnorm::forward(&gpu, &flat, &flat).unwrap_err(),
        pixelnorm::backward(&gpu, &x, &other, &same).unwrap_err(),
        pixelnorm::backward(&gpu, &x, &same, &other).unwrap_err(),
    ] {
        assert!(err.to_string().starts_with("pixelnorm "), "{err}");
    }
}
