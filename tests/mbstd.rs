//! mbstd (GPU check: tests/kernels.rs): the references against finite differences in f64.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::check::{f64s, finite_difference_error, jvp_difference_error};
use pggan::ops::mbstd;
use pggan::rng::Rng;

/// Central differences in f64 agree with the exact derivatives to 1e-10..1e-7 here (the largest for
/// jvp_backward, whose small gradient sits under the rounding of the large passthrough term <dty, tx>);
/// 1e-6 leaves margin.
const FD_TOL: f64 = 1e-6;

/// (N, C, HW): both group sizes, and more than one group.
const SHAPES: [(usize, usize, usize); 3] = [(4, 3, 4), (3, 5, 4), (8, 3, 16)];

/// x well spread within groups, a random tangent and a random output gradient.
fn inputs(seed: u64, n: usize, c: usize, hw: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let x = f64s(&mbstd::spread_inputs(&mut rng, n, c * hw, 1));
    (x, f64s(&rng.normals(n * c * hw)), f64s(&rng.normals(n * (c + 1) * hw)))
}

#[test]
fn group_size_is_min_4_and_must_divide_the_batch() {
    assert_eq!(mbstd::group_size(3).unwrap(), 3);
    assert_eq!(mbstd::group_size(4).unwrap(), 4);
    assert_eq!(mbstd::group_size(12).unwrap(), 4);
    for n in [0, 6, 10] {
        let err = mbstd::group_size(n).unwrap_err().to_string();
        assert!(
            err.contains(&format!("batch of {n}")) && err.contains("group size"),
            "{err}"
        );
    }
}

#[test]
fn forward_groups_samples_m_apart() {
    // N = 8, M = 2: samples 0, 2, 4, 6 form group 0; a sample's extra map is its group's statistic.
    let (n, c, hw) = (8, 3, 4);
    let (x, _, _) = inputs(20, n, c, hw);
    let y = mbstd::forward_ref(&x, n, c, hw, 1);
    let mut x_moved = x.clone();
    // Changing sample 1 (group 1) leaves group 0's maps alone and changes group 1's.
    x_moved[c * hw..2 * c * hw].iter_mut().for_each(|v| *v *= 3.0);
    let y_moved = mbstd::forward_ref(&x_moved, n, c, hw, 1);
    let map = |y: &[f64], s: usize| y[(s * (c + 1) + c) * hw];
    for s in 0..n {
        assert_eq!(map(&y, s), map(&y, s % 2), "sample {s} shares its group's map");
        assert_eq!(map(&y, s) == map(&y_moved, s), s % 2 == 0, "sample {s}");
    }
}

#[test]
fn backward_ref_is_the_gradient_of_forward_ref() {
    for (seed, &(n, c, hw)) in SHAPES.iter().enumerate() {
        let (x, _, dy) = inputs(30 + seed as u64, n, c, hw);
        let dx = mbstd::backward_ref(&x, &dy, n, c, hw, 1);
        let err = finite_difference_error(|x| mbstd::forward_ref(x, n, c, hw, 1), &x, &dy, &dx);
        assert!(err < FD_TOL, "N {n} C {c} HW {hw}: backward error {err}");
    }
}

#[test]
fn jvp_ref_is_the_directional_derivative_of_forward_ref() {
    for (seed, &(n, c, hw)) in SHAPES.iter().enumerate() {
        let (x, tx, _) = inputs(40 + seed as u64, n, c, hw);
        let ty = mbstd::jvp_ref(&x, &tx, n, c, hw, 1);
        let err = jvp_difference_error(|x| mbstd::forward_ref(x, n, c, hw, 1), &x, &tx, &ty);
        assert!(err < FD_TOL, "N {n} C {c} HW {hw}: jvp error {err}");
    }
}

#[test]
fn jvp_backward_ref_is_the_gradient_of_the_jvp_in_x() {
    for (seed, &(n, c, hw)) in SHAPES.iter().enumerate() {
        let (x, tx, dty) = inputs(50 + seed as u64, n, c, hw);
        let dx2 = mbstd::jvp_backward_ref(&x, &tx, &dty, n, c, hw, 1);
        let err = finite_difference_error(|x| mbstd::jvp_ref(x, &tx, n, c, hw, 1), &x, &dty, &dx2);
        assert!(err < FD_TOL, "N {n} C {c} HW {hw}: jvp_backward error {err}");
    }
}

#[test]
fn backward_ref_is_the_gradient_of_the_jvp_in_the_tangent() {
    for (seed, &(n, c, hw)) in SHAPES.iter().enumerate() {
        let (x, tx, dty) = inputs(60 + seed as u64, n, c, hw);
        let dtx = mbstd::backward_ref(&x, &dty, n, c, hw, 1);
        let err = finite_difference_error(|tx| mbstd::jvp_ref(&x, tx, n, c, hw, 1), &tx, &dty, &dtx);
        assert!(err < FD_TOL, "N {n} C {c} HW {hw}: error {err}");
    }
}

#[test]
fn launchers_refuse_bad_shapes() {
    let gpu = common::gpu();
    let z = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (x, y) = (z(&[4, 3, 4, 4]), z(&[4, 4, 4, 4]));
    let err = |r: anyhow::Result<()>| r.unwrap_err().to_string();

    let e = err(mbstd::forward(&gpu, &z(&[6, 3, 4, 4]), &z(&[6, 4, 4, 4]), 1));
    assert!(e.contains("batch of 6") && e.contains("group size 4"), "{e}");
    let e = err(mbstd::forward(&gpu, &z(&[4, 3, 16]), &y, 1));
    assert!(e.contains("[N, C, H, W]"), "{e}");
    let e = err(mbstd::forward(&gpu, &x, &z(&[4, 3, 4, 4]), 1));
    assert!(e.contains("y must be [4, 4, 4, 4]"), "{e}");
    let e = err(mbstd::backward(&gpu, &x, &x, &x, 1));
    assert!(e.contains("dy must be"), "{e}");
    let e = err(mbstd::backward(&gpu, &x, &y, &y, 1));
    assert!(e.contains("dx must be"), "{e}");
    let e = err(mbstd::jvp(&gpu, &x, &y, &y, 1));
    assert!(e.contains("tx must be"), "{e}");
    let e = err(mbstd::jvp(&gpu, &x, &x, &x, 1));
    assert!(e.contains("ty must be"), "{e}");
    let e = err(mbstd::jvp_backward(&gpu, &x, &x, &x, &x, 1));
    assert!(e.contains("dty must be"), "{e}");
    let e = err(mbstd::jvp_backward(&gpu, &x, &x, &y, &y, 1));
    assert!(e.contains("dx2 must be"), "{e}");
    // Stacked minibatches: N must split into them, and each must split into groups.
    let e = err(mbstd::forward(&gpu, &z(&[6, 3, 4, 4]), &z(&[6, 4, 4, 4]), 4));
    assert!(e.contains("does not split into 4 minibatches"), "{e}");
    let e = err(mbstd::forward(&gpu, &z(&[12, 3, 4, 4]), &z(&[12, 4, 4, 4]), 2));
    assert!(e.contains("batch of 6") && e.contains("group size 4"), "{e}");
}

#[test]
fn stacked_minibatches_are_grouped_each_on_its_own() {
    // Two minibatches of 8 (M = 2 each): the groups never mix them, so changing every sample of the
    // second leaves the first's maps exactly as when the first runs alone.
    let (n, c, hw) = (16, 3, 4);
    let mut rng = Rng::new(21);
    let x = f64s(&mbstd::spread_inputs(&mut rng, n, c * hw, 2));
    let alone = mbstd::forward_ref(&x[..n / 2 * c * hw], n / 2, c, hw, 1);
    let mut x_moved = x.clone();
    x_moved[n / 2 * c * hw..].iter_mut().for_each(|v| *v *= 3.0);
    let half = n / 2 * (c + 1) * hw;
    for x in [&x, &x_moved] {
        assert_eq!(mbstd::forward_ref(x, n, c, hw, 2)[..half], alone[..]);
    }
    // Run as one batch of 16 instead (M = 4), they would mix.
    assert_ne!(mbstd::forward_ref(&x, n, c, hw, 1)[..half], alone[..]);
}
