//! gp (GPU check: tests/kernels.rs): the tangent against finite differences of the penalty.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::check::{f64s, finite_difference_error};
use pggan::ops::gp;
use pggan::rng::Rng;

/// Central differences of the penalty in f64 agree with the exact gradient to about 1e-9; 1e-6 leaves margin.
const FD_TOL: f64 = 1e-6;

#[test]
fn tangent_ref_is_the_gradient_of_penalty_ref() {
    let mut rng = Rng::new(70);
    let (lambda, gamma) = (10.0, 1.0);
    for (b, per) in [(3usize, 12usize), (5, 48)] {
        // Per-sample norms from about 0.4 to 2.4, on both sides of gamma, none zero (the norm's kink).
        let g: Vec<f64> = f64s(&rng.normals(b * per))
            .iter()
            .enumerate()
            .map(|(i, v)| v * (0.4 + 0.5 * (i / per) as f64) / (per as f64).sqrt())
            .collect();
        let t = gp::tangent_ref(&g, b, lambda, gamma);
        let err = finite_difference_error(|g| vec![gp::penalty_ref(g, b, lambda, gamma)], &g, &[1.0], &t);
        assert!(err < FD_TOL, "B {b}: tangent error {err}");
    }
}

#[test]
fn tangent_of_a_zero_gradient_is_zero_not_nan() {
    let gpu = common::gpu();
    let shape = [2, 3, 4, 4];
    let g = gpu.zeros(&shape).unwrap();
    let sumsq = gpu.zeros(&[2]).unwrap();
    let t = gpu.upload(&vec![f32::NAN; 96], &shape).unwrap();
    gp::tangent(&gpu, &g, &sumsq, &t, 10.0, 1.0).unwrap();
    assert!(pollster::block_on(gpu.download(&t)).unwrap().iter().all(|&v| v == 0.0));
    assert!(gp::tangent_ref(&[0.0; 96], 2, 10.0, 1.0).iter().all(|&v| v == 0.0));
}

#[test]
fn launchers_refuse_bad_shapes() {
    let gpu = common::gpu();
    let z = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (x, u) = (z(&[3, 2, 4, 4]), z(&[3]));
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();

    let e = err(gp::mix(&gpu, &x, &z(&[3, 2, 4, 5]), &u, &x));
    assert!(e.contains("must have one shape"), "{e}");
    let e = err(gp::mix(&gpu, &x, &x, &z(&[2]), &x));
    assert!(e.contains("2 mixing weights for a batch of 3"), "{e}");
    let e = err(gp::tangent(&gpu, &x, &z(&[4]), &x, 10.0, 1.0));
    assert!(e.contains("4 sums of squares for a batch of 3"), "{e}");
    let e = err(gp::tangent(&gpu, &x, &u, &z(&[3, 32]), 10.0, 1.0));
    assert!(e.contains("gp tangent: t"), "{e}");
    let e = err(gp::tangent(&gpu, &x, &u, &x, 10.0, 0.0));
    assert!(e.contains("gamma"), "{e}");
}
