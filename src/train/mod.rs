//! Training: the WGAN-GP step with the exact gradient penalty, Adam and the EMA generator, the
//! progressive schedule, the trainer, the run driver shared by the CLI, the MPI ranks and the page,
//! and the native run folder.

pub mod check;
pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod dist;
pub mod driver;
#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi;
#[cfg(not(target_arch = "wasm32"))]
pub mod run;
pub mod sample;
pub mod state;
pub mod step;
pub mod trainer;
