//! sort (GPU check of the bitonic sort and the sliced Wasserstein helpers: tests/kernels.rs): the
//! refusal of rows that are not a power of two long.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::ops::sort;

#[test]
fn sort_refuses_rows_that_are_not_a_power_of_two() {
    let gpu = common::gpu();
    let err = sort::sort(&gpu, &gpu.zeros(&[2, 12]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
}
