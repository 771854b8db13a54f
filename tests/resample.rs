#![cfg(not(target_arch = "wasm32"))]
//! resample (GPU check: tests/kernels.rs): the backward references against finite differences of the forwards, the
//! forwards as their own JVPs (the ops are linear), and errors on shapes that are not a resampling.

mod common;

use pggan::check::{f64s, finite_difference_error, jvp_difference_error};
use pggan::ops::resample;
use pggan::rng::Rng;

/// Central differences of a linear map in f64 are exact up to rounding (about 1e-10 here).
const FD_TOL: f64 = 1e-6;

#[test]
fn backward_and_jvp_references_match_finite_differences() {
    let mut rng = Rng::new(20);
    for (nc, h, w, f) in [(3, 2, 3, 2), (2, 2, 1, 4)] {
        let (hb, wb) = (h * f, w * f);
        let small = f64s(&rng.normals(nc * h * w));
        let big = f64s(&rng.normals(nc * hb * wb));
        // Tangents independent of the points, so the JVP test sees more than homogeneity.
        let small_t = f64s(&rng.normals(small.len()));
        let big_t = f64s(&rng.normals(big.len()));

        let up = |x: &[f64]| resample::upsample_ref(x, nc, h, w, f);
        let vjp = resample::upsample_backward_ref(&big, nc, h, w, f);
        let err = finite_difference_error(up, &small, &big, &vjp);
        assert!(err < FD_TOL, "upsample backward x{f}: error {err}");
        let err = jvp_difference_error(up, &small, &small_t, &up(&small_t));
        assert!(err < FD_TOL, "upsample jvp x{f}: error {err}");

        let down = |x: &[f64]| resample::downsample_ref(x, nc, hb, wb, f);
        let vjp = resample::downsample_backward_ref(&small, nc, hb, wb, f);
        let err = finite_difference_error(down, &big, &small, &vjp);
        assert!(err < FD_TOL, "downsample backward /{f}: error {err}");
        let err = jvp_difference_error(down, &big, &big_t, &down(&big_t));
        assert!(err < FD_TOL, "downsample jvp /{f}: error {err}");
    }
}

/// Every launcher refuses `small` -> `big` (upsample direction) with an error naming the op.
fn refused(small: &[usize], big: &[usize]) {
    let gpu = common::gpu();
    let s = gpu.zeros(small).unwrap();
    let b = gpu.zeros(big).unwrap();
    for (name, result) in [
        ("upsample", resample::upsample(&gpu, &s, &b)),
        ("upsample_backward", resample::upsample_backward(&gpu, &b, &s)),
        ("downsample", resample::downsample(&gpu, &b, &s)),
        ("downsample_backward", resample::downsample_backward(&gpu, &s, &b)),
    ] {
        let err = result.expect_err(&format!("{name} accepted {small:?} -> {big:?}"));
        assert!(err.to_string().contains(&format!("resample {name}:")), "{err}");
    }
}

#[test]
fn a_factor_that_is_not_a_power_of_two_is_an_error() {
    refused(&[2, 3, 4, 4], &[2, 3, 12, 12]);
}

#[test]
fn unequal_factors_in_the_two_axes_are_an_error() {
    refused(&[2, 3, 4, 4], &[2, 3, 8, 16]);
}

#[test]
fn sizes_that_do_not_divide_are_an_error() {
    refused(&[2, 3, 4, 4], &[2, 3, 10, 10]);
}

#[test]
fn equal_sizes_are_an_error() {
    refused(&[2, 3, 4, 4], &[2, 3, 4, 4]);
}

#[test]
fn mismatched_batch_or_channels_are_an_error() {
    refused(&[2, 3, 4, 4], &[2, 5, 8, 8]);
    refused(&[2, 3, 4, 4], &[3, 3, 8, 8]);
}

#[test]
fn a_tensor_that_is_not_nchw_is_an_error() {
    refused(&[6, 4, 4], &[6, 8, 8]);
}

#[test]
fn upsampling_into_a_smaller_tensor_is_an_error() {
    let gpu = common::gpu();
    let x = gpu.zeros(&[2, 3, 8, 8]).unwrap();
    let y = gpu.zeros(&[2, 3, 4, 4]).unwrap();
    assert!(resample::upsample(&gpu, &x, &y).is_err());
    assert!(resample::downsample(&gpu, &y, &x).is_err());
}
