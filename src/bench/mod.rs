//! Benchmarks: the training step per resolution (`pggan bench train`, and the page's `bench_train`),
//! natively and in the browser; the kernels, the cost of a launch and a fixed training run for its
//! quality, natively.

#[cfg(not(target_arch = "wasm32"))]
mod data;
#[cfg(not(target_arch = "wasm32"))]
mod native;
mod train;

#[cfg(not(target_arch = "wasm32"))]
pub use data::*;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;
pub use train::{adapter, train, train_on, train_report, train_table, TrainBench, TrainRow, TrainSettings};
