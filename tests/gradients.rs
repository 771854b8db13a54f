//! Every backward and JVP reference against central finite differences of the forward reference, in
//! f64. (The GPU kernels are then checked against these references in tests/kernels.rs.)
#![cfg(not(target_arch = "wasm32"))]

use pggan::check::{f64s, finite_difference_error, jvp_difference_error};
use pggan::ops::act;
use pggan::rng::Rng;

/// Central differences in f64 agree with an exact derivative to about 1e-8 here; 1e-6 leaves margin.
const FD_TOL: f64 = 1e-6;

#[test]
fn act_mask_is_the_backward_and_the_jvp_of_forward() {
    let mut rng = Rng::new(10);
    let (hw, slope) = (16, act::SLOPE as f64);
    // Inputs kept away from the kink at zero, where finite differences straddle two slopes.
    let x: Vec<f64> = f64s(&rng.normals(3 * 5 * hw))
        .iter()
        .map(|v| v + 0.1 * v.signum())
        .collect();
    let bias = vec![0.0; 5];
    let w = f64s(&rng.normals(x.len()));
    let f = |x: &[f64]| act::forward_ref(x, &bias, hw, slope);
    let y = f(&x);
    let vjp = act::mask_ref(&y, &w, slope);
    let err = finite_difference_error(f, &x, &w, &vjp);
    assert!(err < FD_TOL, "backward error {err}");
    let jvp = act::mask_ref(&y, &w, slope);
    let err = jvp_difference_error(f, &x, &w, &jvp);
    assert!(err < FD_TOL, "jvp error {err}");
}
