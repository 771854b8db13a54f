//! GPU time per kernel: a timestamp before and after every compute pass recorded between
//! [`Gpu::profile_start`] and [`Gpu::profile_finish`], summed per kernel (shader, entry point and
//! override constants). What `pggan bench train --profile` prints; needs the adapter's
//! `TIMESTAMP_QUERY` feature.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};

use super::Gpu;

/// Passes one profile can time: a query set holds at most `QUERY_SET_MAX_QUERIES`, two per pass.
const PASSES: u32 = wgpu::QUERY_SET_MAX_QUERIES / 2;

/// The profile being recorded.
pub(super) struct Recording {
    set: wgpu::QuerySet,
    /// The kernel of each timed pass, in recording order.
    labels: Vec<String>,
    /// Passes recorded after the query set was full (not timed).
    missed: usize,
}

/// One kernel's time over a profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KernelTime {
    pub kernel: String,
    pub launches: usize,
    pub ms: f64,
}

/// What [`Gpu::profile_finish`] returns.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Profile {
    /// Kernels by total time, longest first.
    pub kernels: Vec<KernelTime>,
    /// Passes beyond the query set's capacity, recorded but not timed.
    pub untimed_passes: usize,
}

impl Profile {
    pub fn total_ms(&self) -> f64 {
        self.kernels.iter().map(|k| k.ms).sum()
    }
}

impl Gpu {
    /// Starts timing every compute pass recorded from now on.
    pub fn profile_start(&self) -> Result<()> {
        if !self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            bail!("adapter {} cannot time kernels (no timestamp queries)", self.info.name);
        }
        self.flush();
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * PASSES,
        });
        *self.profile.lock().unwrap() = Some(Recording {
            set,
            labels: Vec::new(),
            missed: 0,
        });
        Ok(())
    }

    /// The timestamp writes for the next pass, labelled `kernel`, while a profile is recorded.
    pub(super) fn profile_pass(&self, kernel: impl FnOnce() -> String) -> Option<(wgpu::QuerySet, u32)> {
        let mut guard = self.profile.lock().unwrap();
        let rec = guard.as_mut()?;
        let index = rec.labels.len() as u32;
        if index == PASSES {
            rec.missed += 1;
            return None;
        }
        rec.labels.push(kernel());
        Some((rec.set.clone(), 2 * index))
    }

    /// Stops profiling, runs what was recorded and returns the time of each kernel.
    pub async fn profile_finish(&self) -> Result<Profile> {
        let rec = self
            .profile
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| anyhow!("no profile was started"))?;
        let n = rec.labels.len();
        let mut kernels: Vec<KernelTime> = Vec::new();
        if n > 0 {
            let bytes = (2 * n * 8) as u64;
            let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile staging"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.record(|e| {
                e.resolve_query_set(&rec.set, 0..2 * n as u32, &resolved, 0);
                e.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
            });
            let ticks: Vec<u64> = self.map_read(&staging, |b| bytemuck::cast_slice(b).to_vec()).await?;
            let ns_per_tick = self.queue.get_timestamp_period() as f64;
            let mut index: HashMap<&str, usize> = HashMap::new();
            for (label, t) in rec.labels.iter().zip(ticks.chunks_exact(2)) {
                let ms = t[1].saturating_sub(t[0]) as f64 * ns_per_tick * 1e-6;
                let i = *index.entry(label).or_insert_with(|| {
                    kernels.push(KernelTime {
                        kernel: label.clone(),
                        launches: 0,
                        ms: 0.0,
                    });
                    kernels.len() - 1
                });
                kernels[i].launches += 1;
                kernels[i].ms += ms;
            }
        }
        kernels.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(Profile {
            kernels,
            untimed_passes: rec.missed,
        })
    }
}
