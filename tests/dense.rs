//! dense (GPU check: tests/kernels.rs): the backward references against finite
//! differences of the forward reference, and the launchers' refusals of bad shapes.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::check::{f64s, finite_difference_error};
use pggan::gpu::Precision::F32;
use pggan::ops::dense::{self, DenseShape};
use pggan::rng::Rng;

/// Central differences in f64 of a bilinear map are exact up to rounding (about 1e-9 here).
const FD_TOL: f64 = 1e-6;

#[test]
fn backward_references_are_the_gradients_of_forward() {
    let mut rng = Rng::new(20);
    let s = DenseShape {
        n: 3,
        inputs: 13,
        outputs: 5,
    };
    let gain = 2f64.sqrt();
    let x = f64s(&rng.normals(s.n * s.inputs));
    let w = f64s(&rng.normals(s.outputs * s.inputs));
    let dy = f64s(&rng.normals(s.n * s.outputs));
    let dx = dense::backward_data_ref(&dy, &w, s, gain);
    let err = finite_difference_error(|x| dense::forward_ref(x, &w, s, gain), &x, &dy, &dx);
    assert!(err < FD_TOL, "backward_data error {err}");
    let dw = dense::backward_weight_ref(&x, &dy, s, gain);
    let err = finite_difference_error(|w| dense::forward_ref(&x, w, s, gain), &w, &dy, &dw);
    assert!(err < FD_TOL, "backward_weight error {err}");
}

#[test]
fn launchers_refuse_mismatched_shapes() {
    let gpu = common::gpu();
    let t = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (x, w, y) = (t(&[3, 5]), t(&[17, 5]), t(&[3, 17]));
    let message = |r: anyhow::Result<()>| r.unwrap_err().to_string();
    assert!(message(dense::forward(&gpu, F32, &x, &t(&[17, 4]), &y, 1.0)).contains("weight"));
    assert!(message(dense::forward(&gpu, F32, &x, &w, &t(&[4, 17]), 1.0)).contains("batch size"));
    assert!(message(dense::backward_data(&gpu, F32, &y, &w, &t(&[3, 6]), 1.0)).contains("weight"));
    assert!(message(dense::backward_weight(&gpu, F32, &x, &y, &t(&[5, 16]), 1.0, true)).contains("weight"));
    assert!(message(dense::backward_weight(&gpu, F32, &x, &t(&[2, 17]), &w, 1.0, false)).contains("batch size"));
    assert!(message(dense::matmul(&gpu, &x, &t(&[6, 2]), &t(&[3, 2]))).contains("columns"));
    assert!(message(dense::matmul(&gpu, &x, &t(&[5, 2]), &t(&[3, 3]))).contains("is not [3, 2]"));
}

#[test]
fn launchers_refuse_a_grid_over_the_limit() {
    let gpu = common::gpu();
    // 65536 tiles of 64 rows: one workgroup row past the 65535 limit.
    let n = 65_536 * 64;
    let x = gpu.zeros(&[n, 1]).unwrap();
    let w = gpu.zeros(&[1, 1]).unwrap();
    let y = gpu.zeros(&[n, 1]).unwrap();
    let err = dense::forward(&gpu, F32, &x, &w, &y, 1.0).unwrap_err().to_string();
    assert!(err.contains("dense.gemm") && err.contains("exceeds"), "{err}");
}
