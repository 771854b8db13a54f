//! The GPU runtime shared by the native CLI and the browser: adapter and device choice, tensors,
//! kernels (a pipeline cache over `shaders/*.wgsl`) and their launch, and readback.

mod kernel;
mod pool;
mod precision;
mod profile;
mod tensor;
mod uniforms;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Result};

pub use kernel::{Dispatch, Shader};
pub use pool::{PoolStats, PooledBuffer};
pub use precision::{Precision, PrecisionCaps, PrecisionChoice};
pub use profile::{KernelTime, Profile};
pub use tensor::{check_slice, Tensor, SLICE_ALIGN};

/// Environment variable that filters adapters by name, like `--adapter NAME`.
pub const ADAPTER_ENV: &str = "PGGAN_ADAPTER";

/// How to pick the device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter's name; `None` takes the high-performance adapter.
    pub adapter: Option<String>,
    /// Ask for WebGPU's default limits instead of the adapter's: what every browser grants. The tests
    /// use this so that every kernel is proven correct at the defaults.
    pub default_limits: bool,
    /// The index of this process among the processes of a data-parallel run on its host (natively;
    /// see [`adapter_for_rank`]); without `adapter`, it picks the adapter.
    pub local_rank: Option<usize>,
    /// Open the device without SHADER_F16 and cooperative matrices even where the adapter offers
    /// them: the device of a browser without `shader-f16`, for testing the f32 fallback natively.
    pub f32_only: bool,
}

impl GpuOptions {
    /// The options the tests use: default WebGPU limits, adapter filter from the environment.
    pub fn for_tests() -> Self {
        GpuOptions {
            adapter: std::env::var(ADAPTER_ENV).ok(),
            default_limits: true,
            local_rank: None,
            f32_only: false,
        }
    }
}

/// One device and queue, with the kernels compiled on it and the commands recorded but not yet
/// submitted. Launches are recorded into one encoder and submitted together by [`Gpu::flush`]
/// (a download flushes first), so a training step is one submission. Consecutive launches share one
/// compute pass: a pass per launch cost about half of the host's time per launch (wgpu replays and
/// tracks each pass when the encoder finishes).
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// What the device offers below f32 (`PrecisionChoice::resolve` resolves a choice against it).
    pub precision: PrecisionCaps,
    pipelines: Mutex<HashMap<kernel::PipelineKey, Arc<kernel::Pipeline>>>,
    modules: Mutex<HashMap<&'static str, Arc<kernel::Module>>>,
    bind_groups: Mutex<HashMap<kernel::BindKey, wgpu::BindGroup>>,
    pending: Mutex<Pending>,
    pool: Arc<pool::Pool>,
    profile: Mutex<Option<profile::Recording>>,
    uniforms: Mutex<uniforms::Uniforms>,
    /// `poison_scratch`.
    poison: AtomicBool,
}

impl Gpu {
    pub async fn new(opts: &GpuOptions) -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = match opts.local_rank {
            #[cfg(not(target_arch = "wasm32"))]
            Some(rank) if opts.adapter.is_none() => adapter_for_rank(&instance, rank).await?,
            _ => pick_adapter(&instance, opts.adapter.as_deref()).await?,
        };
        let info = adapter.get_info();
        let required_limits = if opts.default_limits {
            wgpu::Limits::default()
        } else {
            adapter.limits()
        };
        // SHADER_F16 and cooperative matrices only where offered, the latter through wgpu's
        // experimental opt-in; an adapter with neither gets exactly the plain request.
        let (precision_features, experimental) = if opts.f32_only {
            (wgpu::Features::empty(), false)
        } else {
            precision::features(&adapter.features())
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pggan"),
                // TIMESTAMP_QUERY only for `profile_start`; nothing else depends on it.
                required_features: (adapter.features() & wgpu::Features::TIMESTAMP_QUERY) | precision_features,
                required_limits: required_limits.clone(),
                experimental_features: if experimental {
                    // SAFETY: wgpu's terms for experimental features (bugs reported, UB possible
                    // in them): only the cooperative-matrix kernels (ops::coop_gemm) use it, and
                    // they are checked against their reference wherever they run.
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("adapter {} could not open a device: {e}", info.name))?;
        let features = device.features();
        let precision = PrecisionCaps {
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            cooperative_matrix: if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                adapter.cooperative_matrix_properties()
            } else {
                Vec::new()
            },
            subgroup_size: (info.subgroup_min_size == info.subgroup_max_size && info.subgroup_min_size > 0)
                .then_some(info.subgroup_min_size),
        };
        Ok(Gpu {
            limits: device.limits(),
            precision,
            device,
            queue,
            info,
            pipelines: Mutex::default(),
            modules: Mutex::default(),
            bind_groups: Mutex::default(),
            pending: Mutex::default(),
            pool: Arc::default(),
            profile: Mutex::default(),
            uniforms: Mutex::default(),
            poison: AtomicBool::new(false),
        })
    }

    /// "name (backend, device type)", the line every test and command prints.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Submits everything recorded so far.
    pub fn flush(&self) -> wgpu::SubmissionIndex {
        let encoder = {
            let mut pending = self.pending.lock().unwrap();
            pending.pass = None;
            pending.encoder.take()
        };
        self.write_uniforms();
        self.queue.submit(encoder.map(|e| e.finish()))
    }

    /// Launches, compute passes and new bind groups recorded since the device was opened.
    pub fn record_stats(&self) -> RecordStats {
        self.pending.lock().unwrap().stats
    }

    /// What the buffer pool has done: buffers created and reused, buffers free now.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Frees the pool's idle buffers, e.g. when a change of resolution leaves the old sizes unused.
    pub fn trim_pool(&self) {
        // The cached bind groups hold their buffers.
        self.bind_groups.lock().unwrap().clear();
        self.pool.trim()
    }

    /// Runs `record` on the pending encoder (ending the open compute pass, if any), creating it when
    /// there is none.
    fn record<R>(&self, record: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut pending = self.pending.lock().unwrap();
        pending.pass = None;
        record(pending.encoder(&self.device))
    }

    /// Runs `record` on the open compute pass with `pipeline` set, beginning a pass when there is
    /// none. `timestamps` (while profiling) gives the launch a pass of its own, timed at its start and
    /// end. The pipeline is set only when the pass has another one: in the browser every call is a
    /// crossing from WASM to JS, and consecutive launches of one kernel are common.
    fn record_launch(
        &self,
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
        pipeline: &wgpu::ComputePipeline,
        record: impl FnOnce(&mut wgpu::ComputePass),
    ) {
        let mut pending = self.pending.lock().unwrap();
        pending.stats.launches += 1;
        if timestamps.is_some() {
            pending.pass = None;
        }
        if pending.pass.is_none() {
            pending.stats.passes += 1;
            let pass = pending
                .encoder(&self.device)
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: timestamps.clone(),
                })
                // The pass is kept open between calls; `Pending` ends it before the encoder is
                // used again.
                .forget_lifetime();
            pending.pass = Some(pass);
            pending.pipeline = None;
        }
        // Through the guard once, so that the pass and the pipeline are borrowed apart.
        let pending = &mut *pending;
        let pass = pending.pass.as_mut().expect("begun above");
        if pending.pipeline.as_ref() != Some(pipeline) {
            pass.set_pipeline(pipeline);
            pending.pipeline = Some(pipeline.clone());
        }
        record(pass);
        if timestamps.is_some() {
            pending.pass = None;
        }
    }
}

/// Commands recorded and not yet submitted: the encoder, and the compute pass open on it. While the
/// pass is open the encoder cannot record anything else, so every other command ends the pass first.
#[derive(Default)]
struct Pending {
    // Before the encoder, so that it is dropped (ended) first.
    pass: Option<wgpu::ComputePass<'static>>,
    /// The pipeline set on the open pass.
    pipeline: Option<wgpu::ComputePipeline>,
    encoder: Option<wgpu::CommandEncoder>,
    stats: RecordStats,
}

impl Pending {
    /// The encoder, created when there is none. The open pass must have been ended.
    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        debug_assert!(self.pass.is_none());
        self.encoder
            .get_or_insert_with(|| device.create_command_encoder(&Default::default()))
    }
}

/// Counts of what has been recorded: kernel launches, the compute passes they ran in, and the bind
/// groups created for them (the others came from the cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    pub launches: u64,
    pub passes: u64,
    pub bind_groups: u64,
}

impl RecordStats {
    /// What was recorded between `earlier` and these counts.
    pub fn since(self, earlier: RecordStats) -> RecordStats {
        RecordStats {
            launches: self.launches - earlier.launches,
            passes: self.passes - earlier.passes,
            bind_groups: self.bind_groups - earlier.bind_groups,
        }
    }
}

/// The adapter of the `local_rank`-th process of a data-parallel run on one host: the host's GPUs
/// (or, with none, its software adapters), each once (on the best backend that lists it, not GL
/// where another exists), in the driver's order, taken in turn, shared when the processes
/// outnumber them.
#[cfg(not(target_arch = "wasm32"))]
async fn adapter_for_rank(instance: &wgpu::Instance, local_rank: usize) -> Result<wgpu::Adapter> {
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let rank = |a: &wgpu::Adapter| {
        let info = a.get_info();
        (
            info.device_type == wgpu::DeviceType::Cpu,
            info.backend == wgpu::Backend::Gl,
        )
    };
    let best = adapters.iter().map(rank).min().ok_or_else(|| {
        anyhow!("no GPU adapter found; install a Vulkan driver (on Debian: mesa-vulkan-drivers libvulkan1)")
    })?;
    let mut usable: Vec<wgpu::Adapter> = adapters.into_iter().filter(|a| rank(a) == best).collect();
    // One backend only, so that a GPU listed by two (Vulkan and DX12, say) counts once.
    let backend = usable[0].get_info().backend;
    usable.retain(|a| a.get_info().backend == backend);
    let count = usable.len();
    Ok(usable.swap_remove(local_rank % count))
}

#[cfg(not(target_arch = "wasm32"))]
async fn pick_adapter(instance: &wgpu::Instance, filter: Option<&str>) -> Result<wgpu::Adapter> {
    let Some(filter) = filter else {
        return instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                anyhow!(
                    "no GPU adapter found ({e}); install a Vulkan driver (on Debian: mesa-vulkan-drivers libvulkan1)"
                )
            });
    };
    let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
    let names: Vec<String> = adapters
        .iter()
        .map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().backend))
        .collect();
    let needle = filter.to_lowercase();
    adapters
        .into_iter()
        .filter(|a| a.get_info().name.to_lowercase().contains(&needle))
        // Among matches, a real GPU before a software one, Vulkan/Metal/DX12 before GL.
        .min_by_key(|a| {
            let info = a.get_info();
            (
                info.device_type == wgpu::DeviceType::Cpu,
                info.backend == wgpu::Backend::Gl,
            )
        })
        .ok_or_else(|| {
            anyhow!(
                "no adapter's name contains {filter:?}; adapters found: {}",
                names.join(", ")
            )
        })
}

#[cfg(target_arch = "wasm32")]
async fn pick_adapter(instance: &wgpu::Instance, filter: Option<&str>) -> Result<wgpu::Adapter> {
    // A browser offers one adapter per power preference; the filter only checks its name.
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("this browser offers no WebGPU adapter ({e})"))?;
    match filter {
        Some(f) if !adapter.get_info().name.to_lowercase().contains(&f.to_lowercase()) => Err(anyhow!(
            "the browser's adapter {:?} does not match {f:?}",
            adapter.get_info().name
        )),
        _ => Ok(adapter),
    }
}
