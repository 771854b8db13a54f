//! The same kernel checks as tests/kernels.rs, in headless Chromium through WebGPU
//! (`wasm-pack test --headless --chrome -- --test web`).
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

#[wasm_bindgen_test]
async fn act() {
    run_check(ops::act::check).await;
}

#[wasm_bindgen_test]
async fn reduce() {
    run_check(ops::reduce::check).await;
}

#[wasm_bindgen_test]
async fn selftest_passes_in_the_browser() {
    let table = pggan::web::selftest().await.expect("selftest could not run");
    assert!(table.contains(" 0 failed"), "{table}");
}
