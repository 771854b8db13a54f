//! Data-parallel training as the trainer sees it: the [`Replicas`] of a run (K processes, one
//! adapter each, one model), the share of each global minibatch that one process trains on, and
//! the check that a configuration can be shared. No MPI here: the implementation over MPI is
//! `train::mpi` (the `mpi` feature, native only); without it, and with one process, the trainer
//! holds no replicas and its step is the single-process one.
//!
//! Each process runs the D and G steps on its share; the trainer calls [`Replicas::average`] at
//! two fixed points of the step (`step::step_synced`): after D's backward pass (D's gradient) and
//! after G's (G's), so every Adam update sees the mean over the processes, the same on every one,
//! and the parameters, Adam moments and EMA generator stay identical, bit for bit.

use anyhow::{ensure, Result};

use super::config::TrainConfig;
use super::step::{check_batch, Grad};
use crate::gpu::{Gpu, Tensor};
use crate::nn::config::res_of;

/// The processes of a data-parallel run, as the trainer calls them. Every process makes the same
/// calls in the same order (they are collective); a process that cannot ends the whole run.
pub trait Replicas {
    /// This process's rank, 0 to `size() - 1`; rank 0 writes the run's files.
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Replaces `grad`, one network's gradient (its active layers, one tensor), by its mean over the
    /// processes, identical on every one. D's message also carries this process's stop request
    /// (a signal), so that every process learns of any request at the same step ([`Replicas::stop_agreed`]).
    fn average(&mut self, gpu: &Gpu, grad: &Tensor, which: Grad) -> Result<()>;
    /// Whether some process asked to stop, as of the last reduction of D's gradient.
    fn stop_agreed(&self) -> bool;
    /// Every process's `value`, in rank order.
    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>>;
    /// Rank 0's `bytes` on every process (the others' are replaced).
    fn broadcast(&mut self, bytes: &mut Vec<u8>) -> Result<()>;
    /// Seconds spent in the reductions so far: download, MPI reduction (with the wait for the
    /// slowest process), upload; not the GPU work before them.
    fn reduce_seconds(&self) -> f64;
}

/// The samples of a global minibatch of `n` that `rank` of `ranks` trains on: rank, rank + K,
/// rank + 2K, ... Minibatch stddev groups sample m with m + M, m + 2M, ... (M = n / 4 groups), so
/// with at least 4 samples per process each of its groups is exactly one of the whole minibatch's:
/// K processes compute the statistics of one process on the whole minibatch.
pub fn share(n: usize, rank: usize, ranks: usize) -> impl Iterator<Item = usize> {
    (rank..n).step_by(ranks)
}

/// The rows of `values` ([n, width], row-major) in this process's share.
pub fn share_rows<T: Copy>(values: &[T], width: usize, rank: usize, ranks: usize) -> Vec<T> {
    let n = values.len() / width;
    share(n, rank, ranks)
        .flat_map(|i| values[i * width..(i + 1) * width].iter().copied())
        .collect()
}

/// Each process's share of a global minibatch of `n`, refused (saying why) when `ranks` processes
/// cannot share it.
pub fn local_minibatch(n: usize, ranks: usize) -> Result<usize> {
    ensure!(
        n.is_multiple_of(ranks),
        "a minibatch of {n} images cannot be shared equally by {ranks} processes (each trains on \
         minibatch / processes images); run with a number of processes that divides every minibatch"
    );
    check_batch(n / ranks).map_err(|e| {
        anyhow::anyhow!(
            "{ranks} processes would each train on {} of the minibatch of {n}, which the minibatch \
             stddev groups cannot split ({e:#}); run with fewer processes",
            n / ranks
        )
    })?;
    Ok(n / ranks)
}

/// Refuses a configuration whose minibatch at some resolution cannot be shared by `ranks`
/// processes, saying why.
pub fn check_share(cfg: &TrainConfig, ranks: usize) -> Result<()> {
    for level in 1..=cfg.net.levels() {
        let r = res_of(level);
        local_minibatch(cfg.minibatch(r), ranks).map_err(|e| anyhow::anyhow!("at {r}x{r}: {e:#}"))?;
    }
    Ok(())
}

/// One resolution's figures of `pggan bench train` under an MPI launcher, gathered from every rank.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepTimes {
    /// Each rank's images per second (its share of each minibatch), in rank order.
    pub ranks_images_per_s: Vec<f64>,
    /// Their sum: the run's images per second.
    pub aggregate_images_per_s: f64,
    /// Each rank's milliseconds per step in the two gradient reductions (download, MPI, upload).
    pub ranks_reduce_ms_per_step: Vec<f64>,
}

impl StepTimes {
    /// Gathers this rank's figures with every other rank's (collective).
    pub fn gather(r: &mut dyn Replicas, reduce_seconds_per_step: f64, images_per_s: f64) -> Result<StepTimes> {
        let mut all =
            |v: f64| -> Result<Vec<f64>> { Ok(r.all_gather(v.to_bits())?.into_iter().map(f64::from_bits).collect()) };
        let ranks_images_per_s = all(images_per_s)?;
        Ok(StepTimes {
            aggregate_images_per_s: ranks_images_per_s.iter().sum(),
            ranks_images_per_s,
            ranks_reduce_ms_per_step: all(1e3 * reduce_seconds_per_step)?,
        })
    }
}
