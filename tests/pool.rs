//! The buffer pool: a dropped tensor's buffer is reused for the next tensor of its size, never while
//! a clone still holds it; reuse keeps zeros zero and uploads correct even when commands recorded
//! with the buffer's previous owner have not run yet; a training step allocates nothing once warm.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::gpu::Gpu;
use pggan::nn::backend::GpuBackend;
use pggan::ops::blas;
use pggan::train::check::{models, tiny};
use pggan::train::step::{self, StepConfig};

fn download(gpu: &Gpu, t: &pggan::gpu::Tensor) -> Vec<f32> {
    pollster::block_on(gpu.download(t)).unwrap()
}

#[test]
fn a_dropped_buffer_is_reused_and_a_held_one_never() {
    let gpu = common::gpu();
    let a = gpu.zeros(&[3, 5]).unwrap();
    let held = a.clone();
    drop(a);
    // `held` still shares the buffer: the pool must not hand it out.
    let b = gpu.zeros(&[15]).unwrap();
    assert!(
        **b.buf != **held.buf,
        "the pool handed out a buffer a live tensor still uses"
    );
    let before = gpu.pool_stats();
    drop(held);
    assert_eq!(gpu.pool_stats().free_buffers, before.free_buffers + 1);
    // Same byte size, other shape: the same buffer comes back.
    let c = gpu.zeros(&[5, 3]).unwrap();
    let after = gpu.pool_stats();
    assert_eq!(after.reused, before.reused + 1);
    assert_eq!(after.created, before.created);
    // Another size is not served from it.
    let d = gpu.zeros(&[16]).unwrap();
    assert_eq!(gpu.pool_stats().created, after.created + 1);
    assert!(**d.buf != **c.buf && **c.buf != **b.buf);
    gpu.trim_pool();
    assert_eq!(gpu.pool_stats().free_buffers, 0);
}

#[test]
fn reuse_respects_commands_recorded_with_the_previous_owner() {
    let gpu = common::gpu();
    let xs: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
    let a = gpu.upload(&xs, &[64]).unwrap();
    let (y, z) = (gpu.zeros(&[64]).unwrap(), gpu.zeros(&[64]).unwrap());
    blas::axpy(&gpu, 1.0, &a, &y).unwrap();
    let old = (**a.buf).clone();
    drop(a);
    // Recorded, not yet run: y += a. The reused buffer's clear must run after it.
    let zeroed = gpu.zeros(&[64]).unwrap();
    assert!(**zeroed.buf == old, "the dropped buffer was not reused");
    blas::axpy(&gpu, 1.0, &zeroed, &z).unwrap();
    drop(zeroed);
    // And a queue write into it must not overtake z += zeroed.
    let ys: Vec<f32> = (0..64).map(|i| 0.5 * i as f32).collect();
    let uploaded = gpu.upload(&ys, &[64]).unwrap();
    assert!(**uploaded.buf == old, "the dropped buffer was not reused");
    assert_eq!(download(&gpu, &y), xs);
    assert_eq!(download(&gpu, &z), vec![0.0; 64]);
    assert_eq!(download(&gpu, &uploaded), ys);
}

#[test]
fn a_warm_training_step_creates_no_buffers() {
    let gpu = common::gpu();
    let (mut model, inputs, _, _) = models(&gpu, 3).unwrap();
    let (_, _, level, alpha) = tiny();
    let (sc, stats) = (StepConfig::default(), gpu.zeros(&[5]).unwrap());
    let bk = GpuBackend::f32(&gpu);
    step::step(&bk, &mut model, &inputs, level, alpha, &sc, &stats).unwrap();
    gpu.wait().unwrap();
    let warm = gpu.pool_stats();
    for _ in 0..2 {
        step::step(&bk, &mut model, &inputs, level, alpha, &sc, &stats).unwrap();
    }
    gpu.wait().unwrap();
    let after = gpu.pool_stats();
    assert_eq!(after.created, warm.created, "a warm step created buffers");
    // Every intermediate tensor of the two steps came from the pool (hundreds per step).
    assert!(after.reused - warm.reused > 200, "{warm:?} -> {after:?}");
    assert!(download(&gpu, &stats).iter().all(|v| v.is_finite()));
}
