//! blas: axpy's refusal of mismatched sizes (the GPU check is in tests/kernels.rs, as every op's).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::ops::blas;

#[test]
fn axpy_refuses_mismatched_sizes() {
    let gpu = common::gpu();
    let err = blas::axpy(&gpu, 1.0, &gpu.zeros(&[4]).unwrap(), &gpu.zeros(&[5]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("differ in size"), "{err}");
}
