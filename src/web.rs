//! The wasm-bindgen API the page calls.

use wasm_bindgen::prelude::*;

use crate::gpu::{Gpu, GpuOptions};

fn js_error(e: anyhow::Error) -> JsValue {
    JsValue::from_str(&format!("{e:#}"))
}

/// Runs every kernel check on the browser's WebGPU adapter and returns the table as text.
/// Rejects when there is no adapter; the table's last lines say whether everything passed.
#[wasm_bindgen]
pub async fn selftest() -> Result<String, JsValue> {
    let gpu = Gpu::new(&GpuOptions::default()).await.map_err(js_error)?;
    Ok(crate::selftest::report(&gpu).await.0)
}
