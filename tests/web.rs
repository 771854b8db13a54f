//! The kernel checks and the training-step check of the native tests, in headless Chromium through
//! WebGPU (`wasm-pack test --headless --chrome -- --test web`).
#![cfg(target_arch = "wasm32")]

use pggan::check::{table, Check};
use pggan::gpu::{Gpu, GpuOptions};
use pggan::ops;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn run_check(check: Check) {
    let gpu = Gpu::new(&GpuOptions {
        adapter: None,
        default_limits: true,
    })
    .await
    .expect("a WebGPU adapter is required");
    web_sys::console::log_1(&format!("adapter: {}", gpu.describe()).into());
    let rows = check(&gpu).await.expect("the check could not run");
    web_sys::console::log_1(&table(&rows).into());
    assert!(!rows.is_empty(), "the check compared nothing");
    assert!(
        rows.iter().all(|r| r.pass),
        "GPU output differs from the CPU reference:\n{}",
        table(&rows)
    );
}

/// One browser test per op check, named after the op.
macro_rules! op_tests {
    ($($op:ident),*) => {$(
        #[wasm_bindgen_test]
        async fn $op() {
            run_check(ops::$op::check).await;
        }
    )*};
}

op_tests!(act, reduce, conv, dense, resample, pixelnorm, lerp, mbstd, gp, loss, adam, ema, blas, sort);

#[wasm_bindgen_test]
fn every_op_has_a_browser_test() {
    let names: Vec<&str> = ops::CHECKS.iter().map(|(n, _)| *n).collect();
    let tested = [
        "act",
        "reduce",
        "conv",
        "dense",
        "resample",
        "pixelnorm",
        "lerp",
        "mbstd",
        "gp",
        "loss",
        "adam",
        "ema",
        "blas",
        "sort",
    ];
    assert_eq!(names, tested);
}

#[wasm_bindgen_test]
async fn train_step_matches_the_reference() {
    run_check(pggan::train::check::check).await;
}

#[wasm_bindgen_test]
async fn swd_matches_the_reference() {
    run_check(pggan::metrics::swd::check).await;
}

#[wasm_bindgen_test]
async fn selftest_passes_in_the_browser() {
    let table = pggan::web::selftest().await.expect("selftest could not run");
    assert!(table.contains(" 0 failed"), "{table}");
}
