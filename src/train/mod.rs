//! Training: the WGAN-GP step with the exact gradient penalty, Adam and the EMA generator, the
//! progressive schedule, the trainer shared by the CLI and the page, and the native run loop.

pub mod check;
pub mod config;
pub mod cost;
pub mod dist;
#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
pub mod sample;
pub mod state;
pub mod step;
pub mod trainer;
