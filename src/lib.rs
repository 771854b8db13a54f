//! pggan: Progressive Growing of GANs trained on the GPU through WebGPU, natively (wgpu on Vulkan,
//! Metal, DX12) and in the browser (WASM), with hand-written WGSL kernels.

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod clock;
pub mod data;
#[cfg(not(target_arch = "wasm32"))]
pub mod export;
#[cfg(not(target_arch = "wasm32"))]
pub mod files;
pub mod gpu;
pub mod metrics;
pub mod nn;
pub mod ops;
pub mod print;
#[cfg(not(target_arch = "wasm32"))]
pub mod proto;
pub mod rng;
pub mod samples;
pub mod selftest;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
#[cfg(not(target_arch = "wasm32"))]
pub mod tensorboard;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;
