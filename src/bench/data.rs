//! `pggan bench data`: the host's time to produce one minibatch of reals from a prepared file, the
//! way the trainer did before (`data::reals`: scaled, mirrored and faded on the host in f64, uploaded
//! as f32) and the way it does now (the bytes read as they are, uploaded as bytes, `ops::reals` on the
//! GPU), at the resolutions and minibatches of a large run; and the process's peak memory.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::data::Dataset;
use crate::gpu::Gpu;
use crate::ops::reals;
use crate::rng::Rng;

/// The (resolution, minibatch) pairs timed: the official schedule's minibatches at 64 and 256, and
/// 4 at 1024.
pub const SIZES: [(usize, usize); 3] = [(64, 16), (256, 16), (1024, 4)];

/// Host milliseconds per minibatch at one size.
#[derive(Clone, Debug, Serialize)]
pub struct DataRow {
    pub resolution: usize,
    pub minibatch: usize,
    /// Before: the images read, turned into f32 reals on the host in f64, uploaded.
    pub f64_ms: f64,
    /// Now: reading the images' bytes, which the trainer does on a thread of its own while the GPU
    /// runs the step before.
    pub read_ms: f64,
    /// Now, on the training thread: the bytes and mirror flags uploaded, `ops::reals` recorded
    /// (the trainer submits it with the step).
    pub bytes_ms: f64,
}

/// Times both ways over `steps` minibatches (after one untimed) of random images (each way its
/// own), mirror flags
/// and a fade-in at alpha 0.5 (the host's f64 path's costliest case), at each of `SIZES` the
/// dataset has. The GPU's work is submitted and waited for between minibatches, untimed.
pub fn reals_rows(gpu: &Gpu, data: &Dataset, steps: usize) -> Result<Vec<DataRow>> {
    let mut rng = Rng::new(1);
    let mut rows = Vec::new();
    for (res, n) in SIZES.into_iter().filter(|&(r, _)| r <= data.max_res()) {
        let shape = [n, data.channels(), res, res];
        let mut ms = [0.0; 3];
        for step in 0..=steps {
            // Each way on images of its own, so that neither finds the other's in the page cache
            // with their chunks' CRCs checked.
            let mut draw = || -> Vec<usize> {
                (0..n)
                    .map(|_| (rng.next_u64() % data.count() as u64) as usize)
                    .collect()
            };
            let (before, indices) = (draw(), draw());
            let mirror: Vec<bool> = (0..n).map(|_| rng.next_u64() & 1 == 1).collect();
            let alpha = 0.5;
            let start = Instant::now();
            let values = data.batch(&before, &mirror, res, alpha)?;
            drop(gpu.upload(&values, &shape)?);
            let f64_done = Instant::now();
            let images = data.images(res, &indices)?;
            let read = Instant::now();
            let out = gpu.scratch(&shape)?;
            let flags = reals::flags(&mirror);
            reals::forward(
                gpu,
                &gpu.upload_bytes(&images.pixels)?,
                &gpu.upload_bytes(&flags)?,
                &out,
                alpha,
            )?;
            let done = Instant::now();
            // Submitted and run untimed: a trainer submits it with the step.
            gpu.wait()?;
            if step > 0 {
                let spans = [f64_done - start, read - f64_done, done - read];
                for (m, d) in ms.iter_mut().zip(spans) {
                    *m += d.as_secs_f64() * 1e3 / steps as f64;
                }
            }
        }
        rows.push(DataRow {
            resolution: res,
            minibatch: n,
            f64_ms: ms[0],
            read_ms: ms[1],
            bytes_ms: ms[2],
        });
    }
    Ok(rows)
}

/// The printed table.
pub fn data_table(rows: &[DataRow]) -> String {
    let mut out = format!(
        "{:>10} {:>9} {:>16} {:>14} {:>16}\n",
        "resolution", "minibatch", "before: f64 ms", "now: read ms", "now: upload ms"
    );
    for r in rows {
        out += &format!(
            "{:>10} {:>9} {:>16.2} {:>14.2} {:>16.2}\n",
            r.resolution, r.minibatch, r.f64_ms, r.read_ms, r.bytes_ms
        );
    }
    out
}

/// This process's peak resident memory and its private (anonymous) resident memory now, in bytes,
/// from /proc/self/status (`VmHWM`, `RssAnon`); None where there is no such file.
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("VmHWM:")?, field("RssAnon:")?))
}
