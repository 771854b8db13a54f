//! [`Replicas`] over MPI (the `mpi` feature): `mpirun -n K pggan train` or a cluster launcher
//! (`srun`) starts K processes, and each is one rank of MPI_COMM_WORLD.
//!
//! Each gradient reduction goes through the host: the network's gradient (its active layers, one
//! tensor) is downloaded, summed on rank 0 with MPI_Reduce, divided by K there and broadcast with
//! MPI_Bcast, then uploaded: one message each way per network and step, and every rank receives the
//! same bytes (an allreduce could round differently on different ranks). D's message carries one
//! more value, this rank's stop request, so every rank learns of a signal at the same step.
//!
//! A rank that fails or panics calls MPI_Abort after printing its error with its rank (the launcher
//! then ends the others); a rank that dies is reported by the launcher, which ends the others: no rank waits
//! forever on a dead one.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use pollster::block_on;

use super::dist::Replicas;
use super::driver::{Cadence, Driver, Follower, Outcome};
use super::step::Grad;
use super::trainer::Trainer;
use crate::errln;
use crate::gpu::{Gpu, GpuOptions, Tensor};

/// A fault for the tests, `drift:RANK` or `panic:RANK`: on the first step that rank perturbs its
/// G gradient once (its model drifts from the others' and the check at the next tick must catch
/// it), or panics in the G reduction (the others must not wait for it forever).
pub const FAULT_TEST_ENV: &str = "PGGAN_TEST_FAULT";

/// The fault of [`FAULT_TEST_ENV`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Drift,
    Panic,
}

/// The fault [`FAULT_TEST_ENV`] injects into `rank`, if any.
fn injected_fault(rank: usize) -> Option<Fault> {
    let value = std::env::var(FAULT_TEST_ENV).ok()?;
    let (kind, r) = value.split_once(':')?;
    if r.parse() != Ok(rank) {
        return None;
    }
    match kind {
        "drift" => Some(Fault::Drift),
        "panic" => Some(Fault::Panic),
        _ => None,
    }
}

/// Whether this process was started by an MPI launcher: Open MPI's `mpirun` (OMPI_COMM_WORLD_SIZE),
/// a PMI or PMIx launcher such as `srun` (PMI_SIZE, PMIX_RANK). Outside one pggan never initialises
/// MPI, so a plain `pggan train` runs as without the feature.
pub fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// The ranks of MPI_COMM_WORLD.
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    stop: Arc<AtomicBool>,
    agreed: bool,
    reduce_seconds: f64,
    fault: Option<Fault>,
}

impl Mpi {
    /// Initialises MPI; `stop` is this process's stop request (set by its signal handler). The
    /// [`Universe`] finalises MPI when dropped: the caller keeps it until every rank is done, and
    /// on an error calls [`abort`] instead (finalising would wait for the other ranks).
    pub fn init(stop: Arc<AtomicBool>) -> Result<(Universe, Mpi)> {
        let universe = mpi::initialize().ok_or_else(|| anyhow::anyhow!("MPI was already initialised"))?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        // The ranks that share this host's memory, hence its adapters.
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        let mpi = Mpi {
            world,
            rank,
            size,
            local_rank,
            stop,
            agreed: false,
            reduce_seconds: 0.0,
            fault: injected_fault(rank),
        };
        Ok((universe, mpi))
    }

    /// This rank's index among the ranks of its host: which adapter it takes.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }
}

/// Runs `f` as one rank of a data-parallel run: initialises MPI and gives `f` this rank's GPU
/// options (its adapter by its rank on its host, unless `--adapter` names one) and the ranks. An
/// error or a panic ends every rank with MPI_Abort, naming this one (unwinding would finalise MPI,
/// which waits for the other ranks, while they wait in the next reduction); MPI is finalised once
/// `f` returns.
pub fn run_rank<T>(
    gpu: &GpuOptions,
    stop: Arc<AtomicBool>,
    f: impl FnOnce(&GpuOptions, Box<Mpi>) -> Result<T>,
) -> Result<T> {
    let (universe, mpi) = Mpi::init(stop)?;
    let gpu = GpuOptions {
        local_rank: Some(mpi.local_rank()),
        ..gpu.clone()
    };
    // The panic's message is printed by the panic hook as it happens.
    match std::panic::catch_unwind(AssertUnwindSafe(|| f(&gpu, Box::new(mpi)))) {
        Ok(Ok(value)) => {
            drop(universe);
            Ok(value)
        }
        Ok(Err(e)) => abort(&e),
        Err(_) => abort(&anyhow::anyhow!("panicked (the message is above)")),
    }
}

/// Prints `e` as this rank's error and ends every rank of the job with MPI_Abort (exit status 1).
pub fn abort(e: &anyhow::Error) -> ! {
    let world = SimpleCommunicator::world();
    errln!("error: rank {} of {}: {e:#}", world.rank(), world.size());
    world.abort(1)
}

impl Replicas for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn average(&mut self, gpu: &Gpu, grad: &Tensor, which: Grad) -> Result<()> {
        // The step's work so far is not the reduction's: its time is counted from its end.
        gpu.wait()?;
        let start = Instant::now();
        let mut send = block_on(gpu.download(grad))?;
        let len = send.len();
        if which == Grad::D {
            send.push(f32::from(u8::from(self.stop.load(Ordering::SeqCst))));
        }
        let root = self.world.process_at_rank(0);
        let mut mean = vec![0f32; send.len()];
        if self.rank == 0 {
            root.reduce_into_root(&send[..], &mut mean[..], SystemOperation::sum());
            let k = self.size as f32;
            mean[..len].iter_mut().for_each(|v| *v /= k);
        } else {
            root.reduce_into(&send[..], SystemOperation::sum());
        }
        root.broadcast_into(&mut mean[..]);
        if which == Grad::D {
            self.agreed = mean.pop().expect("the stop request") > 0.0;
        } else {
            match self.fault.take() {
                Some(Fault::Drift) => mean[0] += 1e-3,
                Some(Fault::Panic) => panic!("a panic injected by {FAULT_TEST_ENV}"),
                None => {}
            }
        }
        gpu.write(grad, &mean)?;
        self.reduce_seconds += start.elapsed().as_secs_f64();
        Ok(())
    }

    fn stop_agreed(&self) -> bool {
        self.agreed
    }

    fn all_gather(&mut self, value: u64) -> Result<Vec<u64>> {
        let mut all = vec![0u64; self.size];
        self.world.all_gather_into(&value, &mut all[..]);
        Ok(all)
    }

    fn broadcast(&mut self, bytes: &mut Vec<u8>) -> Result<()> {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
        Ok(())
    }

    fn reduce_seconds(&self) -> f64 {
        self.reduce_seconds
    }
}

/// The run of every rank but 0: rank 0's driver ([`Driver::run`]), so the same steps and collective
/// calls, with a sink that writes no file. Stops where rank 0 does: at the end of the schedule or
/// at the step where some rank asked to (each rank's request travels with D's gradient, so the
/// driver never asks this rank's flag directly).
pub fn follow(trainer: Trainer) -> Result<Outcome> {
    let (rank, ranks) = trainer.rank();
    let mut driver = Driver::new(trainer, Cadence::Ticks);
    block_on(driver.run(&mut Follower { rank, ranks }, &|| false))
}
