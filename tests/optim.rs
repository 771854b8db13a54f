//! adam and ema (GPU checks: tests/kernels.rs): the launchers' refusals of bad input.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::ops::{adam, ema};

#[test]
fn adam_refuses_mismatched_state_and_step_zero() {
    let gpu = common::gpu();
    let t = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (p, g, m, v) = (t(&[5, 3]), t(&[5, 3]), t(&[5, 3]), t(&[5, 3]));
    let hp = adam::AdamParams::default();
    let err = adam::step(&gpu, &p, &g, &t(&[5, 2]), &v, hp, 1).unwrap_err();
    assert!(err.to_string().contains("differ in size"), "{err}");
    let err = adam::step(&gpu, &p, &g, &m, &v, hp, 0).unwrap_err();
    assert!(err.to_string().contains("1-based"), "{err}");
}

#[test]
fn adam_defaults_are_pggans() {
    let hp = adam::AdamParams::default();
    assert_eq!((hp.lr, hp.beta1, hp.beta2, hp.eps), (0.001, 0.0, 0.99, 1e-8));
}

#[test]
fn ema_refuses_mismatched_sizes() {
    let gpu = common::gpu();
    let err = ema::update(&gpu, &gpu.zeros(&[4]).unwrap(), &gpu.zeros(&[5]).unwrap(), 0.999).unwrap_err();
    assert!(err.to_string().contains("differ in size"), "{err}");
}
