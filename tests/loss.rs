//! loss (GPU check: tests/kernels.rs): the score gradients against finite differences of the losses.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::check::{f64s, finite_difference_error};
use pggan::ops::{gp, loss};
use pggan::rng::Rng;

/// The losses are quadratic in the scores, so central differences are exact up to rounding (about
/// 1e-10); 1e-6 leaves margin.
const FD_TOL: f64 = 1e-6;

const LAMBDA: f64 = 10.0;
const GAMMA: f64 = 1.0;
const DRIFT: f64 = 0.001;

/// The D step's scores (B real, then B fake), sums of squares and G-step fake scores for a batch of `b`.
fn scores(seed: u64, b: usize) -> [Vec<f64>; 3] {
    let mut rng = Rng::new(seed);
    let sumsq = f64s(&rng.normals(b)).iter().map(|v| (1.0 + 0.5 * v).powi(2)).collect();
    [f64s(&rng.normals(2 * b)), sumsq, f64s(&rng.normals(b))]
}

fn stat(scores: &[f64], sumsq: &[f64], g_fake: &[f64], k: usize) -> Vec<f64> {
    vec![loss::stats_ref(scores, sumsq, g_fake, LAMBDA, GAMMA, DRIFT)[k]]
}

#[test]
fn score_grads_are_the_gradients_of_the_losses() {
    for (seed, b) in [(80, 3usize), (81, 16)] {
        let [d_scores, sumsq, g_fake] = scores(seed, b);
        let grads = loss::d_score_grads_ref(&d_scores, DRIFT);
        let err = finite_difference_error(|s| stat(s, &sumsq, &g_fake, 0), &d_scores, &[1.0], &grads);
        assert!(err < FD_TOL, "B {b}: D-step score gradient error {err}");
        let d_g = loss::g_score_grad_ref(b);
        let err = finite_difference_error(|f| stat(&d_scores, &sumsq, f, 1), &g_fake, &[1.0], &d_g);
        assert!(err < FD_TOL, "B {b}: G-step d_fake error {err}");
    }
}

#[test]
fn stats_ref_agrees_with_its_parts() {
    let mut rng = Rng::new(82);
    let (b, per) = (4, 10);
    let g = f64s(&rng.normals(b * per));
    let sumsq: Vec<f64> = g.chunks(per).map(|s| s.iter().map(|v| v * v).sum()).collect();
    let [d_scores, _, g_fake] = scores(83, b);
    let [l_d, _, penalty, drift_term, wasserstein] = loss::stats_ref(&d_scores, &sumsq, &g_fake, LAMBDA, GAMMA, DRIFT);
    assert!((penalty - gp::penalty_ref(&g, b, LAMBDA, GAMMA)).abs() < 1e-12 * penalty.abs().max(1.0));
    assert!((l_d - (-wasserstein + penalty + drift_term)).abs() < 1e-12);
}

#[test]
fn launchers_refuse_bad_shapes() {
    let gpu = common::gpu();
    let z = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (s, s5) = (z(&[4, 1]), z(&[5]));
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();

    // s: the D step's scores for B = 2; s5 cannot be B real then B fake.
    let e = err(loss::d_score_grads(&gpu, &s, &z(&[3, 1]), 0.001));
    assert!(e.contains("d_score_grads") && e.contains("d_scores"), "{e}");
    let e = err(loss::d_score_grads(&gpu, &s5, &s5, 0.001));
    assert!(e.contains("B real then B fake"), "{e}");
    let e = err(loss::stats(&gpu, &s5, &s, &s, &s5, 10.0, 1.0, 0.001));
    assert!(e.contains("B real then B fake"), "{e}");
    let e = err(loss::stats(&gpu, &s, &s, &s, &s5, 10.0, 1.0, 0.001));
    assert!(e.contains("sumsq"), "{e}");
    let e = err(loss::stats(&gpu, &s, &z(&[2]), &s, &z(&[4]), 10.0, 1.0, 0.001));
    assert!(e.contains("5 values"), "{e}");
}
