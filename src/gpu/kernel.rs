//! Kernels: WGSL shaders compiled once per device, and their launch.
//!
//! Binding convention, the same in every shader: `@group(0) @binding(0)` is the uniform of scalar
//! parameters, `@binding(1..)` are tensors. One shader file holds all entry points of an op family
//! (forward, backward, JVP), each using some of the file's tensor bindings. Naga reflects which ones
//! an entry point uses, and the launcher binds the tensors it is given to exactly those, in
//! ascending binding order.

use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use super::{Gpu, Tensor};

/// Helpers every shader may call (index arithmetic for split dispatches); prepended to each source.
pub const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// A shader of `shaders/`: its op name and WGSL source. A variant of a file (the same kernel with
/// other types, e.g. `dense+f16`) is named `file+variant`, and its source is the file's with a few
/// lines before it (`enable` directives, type aliases).
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

impl Shader {
    /// The file in `shaders/`, without `.wgsl`: the name up to a variant's `+`.
    pub fn file(&self) -> &'static str {
        self.name.split('+').next().unwrap_or(self.name)
    }

    /// The source's leading `enable` directives, which WGSL wants before any declaration (so before
    /// the common helpers), and the rest.
    fn directives(&self) -> (Vec<&'static str>, &'static str) {
        let mut rest = self.source;
        let mut enables = Vec::new();
        loop {
            let trimmed = rest.trim_start();
            let Some(line) = trimmed.strip_prefix("enable ") else {
                break;
            };
            let end = line.find(';').unwrap_or(line.len());
            enables.extend(line[..end].split(',').map(str::trim).filter(|e| !e.is_empty()));
            rest = &line[(end + 1).min(line.len())..];
        }
        (enables, rest)
    }

    /// The device features the shader's `enable` directives need: SHADER_F16 for `f16`,
    /// EXPERIMENTAL_COOPERATIVE_MATRIX for `wgpu_cooperative_matrix`.
    pub fn needs(&self) -> wgpu::Features {
        self.directives()
            .0
            .iter()
            .map(|e| match *e {
                "f16" => wgpu::Features::SHADER_F16,
                "wgpu_cooperative_matrix" => wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
                _ => wgpu::Features::empty(),
            })
            .fold(wgpu::Features::empty(), |a, b| a | b)
    }

    /// The source as compiled: its `enable` directives, the common helpers, then the op's own code.
    pub fn full_source(&self) -> String {
        let (enables, rest) = self.directives();
        let enables: String = enables.iter().map(|e| format!("enable {e};\n")).collect();
        format!("{enables}{COMMON}\n{rest}")
    }

    /// Parses and validates the full source with naga, as the device would, with the capabilities
    /// its `enable` directives ask for and no others.
    pub fn validate(&self) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
        let source = self.full_source();
        let what = || match self.name.split_once('+') {
            Some((file, variant)) => format!("shaders/{file}.wgsl ({variant})"),
            None => format!("shaders/{}.wgsl", self.name),
        };
        let module =
            naga::front::wgsl::parse_str(&source).map_err(|e| anyhow!("{}: {}", what(), e.emit_to_string(&source)))?;
        let mut caps = naga::valid::Capabilities::empty();
        let needs = self.needs();
        caps.set(
            naga::valid::Capabilities::SHADER_FLOAT16,
            needs.contains(wgpu::Features::SHADER_F16),
        );
        caps.set(
            naga::valid::Capabilities::COOPERATIVE_MATRIX,
            needs.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
        );
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .map_err(|e| anyhow!("{}: {}", what(), e.emit_to_string(&source)))?;
        Ok((module, info))
    }
}

/// How many workgroups to launch.
#[derive(Clone, Copy, Debug)]
pub enum Dispatch {
    /// One invocation per item of a 1-D range of this many items. Workgroups are spread over x and y
    /// so no dimension exceeds the limit; shaders recover the index with `linear_index` (common.wgsl).
    Items(usize),
    /// An explicit grid of workgroups.
    Groups([u32; 3]),
}

pub(super) struct Module {
    wgpu: wgpu::ShaderModule,
    naga: naga::Module,
    info: naga::valid::ModuleInfo,
}

/// A pipeline's cache key: shader name, entry point, and the override constants it was compiled with.
pub(super) type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u32)>);

pub(super) struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// The binding numbers the entry point uses, ascending.
    bindings: Vec<u32>,
    /// Bytes of the parameter struct at binding 0 (0 when the entry point uses none), and of its
    /// binding (a multiple of 16, at least 16).
    params_size: u64,
    uniform_size: u64,
    workgroup_size: [u32; 3],
}

/// A bind group's cache key: the pipeline, the parameter arena, and the tensors' buffers with their
/// byte offsets and sizes, in binding order.
pub(super) type BindKey = (wgpu::ComputePipeline, wgpu::Buffer, Vec<(wgpu::Buffer, u64, u64)>);

/// Bind groups kept for reuse at most: a step's launches need a few hundred, and the cache is emptied
/// when it grows past this (or when the buffer pool is trimmed), so buffers are not kept alive forever.
const BIND_GROUPS: usize = 8192;

impl Gpu {
    fn module(&self, shader: &Shader) -> Result<Arc<Module>> {
        if let Some(m) = self.modules.lock().unwrap().get(shader.name) {
            return Ok(m.clone());
        }
        // A kernel the device cannot compile is refused here, by name, before wgpu sees it.
        let missing = shader.needs() - self.device.features();
        if !missing.is_empty() {
            bail!(
                "{} needs {}, which this device ({}) does not have",
                shader.name,
                super::precision::feature_names(missing),
                self.describe()
            );
        }
        let (naga, info) = shader.validate()?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(shader.name),
            source: wgpu::ShaderSource::Wgsl(shader.full_source().into()),
        };
        // Every loop of the kernels is bounded by its parameters and every index into workgroup and
        // function arrays is in range by construction (the tests run each kernel at awkward sizes
        // against its reference), so wgpu's guards are dropped: its forced loop bound (a counter in
        // every loop, which also keeps the driver from unrolling the GEMM's inner loop) and its
        // clamping of array indices; storage buffers stay guarded by the driver's robust buffer
        // access where the platform has it. Convolutions ran 2.3x faster on an H100 (Vulkan).
        let mut checks = wgpu::ShaderRuntimeChecks::checked();
        checks.force_loop_bounding = false;
        checks.bounds_checks = false;
        // SAFETY: as above; the shaders are this crate's own, not user input.
        let wgpu = unsafe { self.device.create_shader_module_trusted(desc, checks) };
        let m = Arc::new(Module { wgpu, naga, info });
        self.modules.lock().unwrap().insert(shader.name, m.clone());
        Ok(m)
    }

    fn pipeline(
        &self,
        shader: &Shader,
        entry: &'static str,
        constants: &[(&'static str, u32)],
    ) -> Result<Arc<Pipeline>> {
        let key = (shader.name, entry, constants.to_vec());
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let module = self.module(shader)?;
        let index = module
            .naga
            .entry_points
            .iter()
            .position(|e| e.name == entry)
            .ok_or_else(|| anyhow!("shaders/{}.wgsl has no entry point {entry}", shader.file()))?;
        let uses = module.info.get_entry_point(index);
        // The layout, from the bindings the entry point uses: the parameters with a dynamic offset
        // (one bind group serves every launch with the same tensors), then the tensors.
        let (mut entries, mut params_size) = (Vec::new(), 0);
        for (handle, var) in module.naga.global_variables.iter() {
            let Some(binding) = var.binding.as_ref().filter(|_| !uses[handle].is_empty()) else {
                continue;
            };
            let ty = match var.space {
                naga::AddressSpace::Uniform => {
                    params_size = u64::from(module.naga.types[var.ty].inner.size(module.naga.to_ctx()));
                    wgpu::BufferBindingType::Uniform
                }
                naga::AddressSpace::Storage { access } => wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
                other => bail!(
                    "shaders/{}.wgsl: binding {} in {other:?} is not a buffer",
                    shader.file(),
                    binding.binding
                ),
            };
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: binding.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty,
                    has_dynamic_offset: ty == wgpu::BufferBindingType::Uniform,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        entries.sort_unstable_by_key(|e| e.binding);
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pipeline_layout = self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants: Vec<(&str, f64)> = constants.iter().map(|&(name, v)| (name, v as f64)).collect();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pipeline_layout),
            module: &module.wgpu,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        let p = Arc::new(Pipeline {
            pipeline,
            layout,
            bindings: entries.iter().map(|e| e.binding).collect(),
            params_size,
            // Uniform bindings are at least 16 bytes and a multiple of 16 in every backend's rules.
            uniform_size: params_size.next_multiple_of(16).max(16),
            workgroup_size: module.naga.entry_points[index].workgroup_size,
        });
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// Records one dispatch of `shader`'s `entry` with `params` at binding 0 (a `#[repr(C)]` struct
    /// mirroring the shader's `Params`, field for field) and `tensors` at the entry point's tensor
    /// bindings, in ascending order.
    /// Errors, never panics, when `params` is not the size of the shader's struct (a field missing
    /// on either side), a tensor exceeds the device's binding limit or the grid its dispatch limit.
    pub fn launch<P: bytemuck::Pod>(
        &self,
        shader: &Shader,
        entry: &'static str,
        params: &P,
        tensors: &[&Tensor],
        dispatch: Dispatch,
    ) -> Result<()> {
        self.launch_with(shader, entry, &[], params, tensors, dispatch)
    }

    /// `launch` of the pipeline compiled with the shader's `override` constants set to `constants`
    /// (by name; the rest keep their defaults). Each distinct set is compiled once and cached.
    pub fn launch_with<P: bytemuck::Pod>(
        &self,
        shader: &Shader,
        entry: &'static str,
        constants: &[(&'static str, u32)],
        params: &P,
        tensors: &[&Tensor],
        dispatch: Dispatch,
    ) -> Result<()> {
        let p = self.pipeline(shader, entry, constants)?;
        let what = || format!("{}.{entry}", shader.name);
        let given = std::mem::size_of::<P>() as u64;
        if given != p.params_size {
            bail!(
                "{}: shaders/{}.wgsl's parameters take {} bytes, the launcher passes {given}",
                what(),
                shader.file(),
                p.params_size
            );
        }
        let groups = self
            .groups(dispatch, p.workgroup_size[0])
            .map_err(|e| anyhow!("{}: {e}", what()))?;
        let storage = p.bindings.iter().filter(|&&b| b != 0).count();
        if tensors.len() != storage {
            bail!("{} binds {storage} tensors but was given {}", what(), tensors.len());
        }
        let limit = self.limits.max_storage_buffer_binding_size;
        if let Some(t) = tensors.iter().find(|t| t.bytes() > limit) {
            bail!(
                "{}: tensor {:?} is {} MiB, over this device's storage binding limit of {} MiB",
                what(),
                t.shape,
                t.bytes() >> 20,
                limit >> 20
            );
        }
        let uniform = self.uniform(bytemuck::bytes_of(params), p.uniform_size);
        let bind_group = self.bind_group(&p, &uniform.arena, tensors);
        let timed = self.profile_pass(|| {
            let mut label = what();
            for (name, value) in constants {
                label += &format!(" {name}={value}");
            }
            label
        });
        let timestamps = timed.as_ref().map(|(set, i)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(*i),
            end_of_pass_write_index: Some(*i + 1),
        });
        // An entry point without parameters (binding 0 unused) has no dynamic offset to set.
        let offsets: &[u32] = if p.bindings.contains(&0) {
            &[uniform.offset]
        } else {
            &[]
        };
        self.record_launch(timestamps, &p.pipeline, |pass| {
            pass.set_bind_group(0, &bind_group, offsets);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        Ok(())
    }

    /// The bind group of `p` with the parameter arena `arena` and `tensors`, from the cache when the
    /// same launch ran before (the next step's), else created and cached. Creating one was about
    /// two thirds of the host's time to record a launch on lavapipe.
    fn bind_group(&self, p: &Pipeline, arena: &wgpu::Buffer, tensors: &[&Tensor]) -> wgpu::BindGroup {
        let key: BindKey = (
            p.pipeline.clone(),
            arena.clone(),
            tensors
                .iter()
                .map(|t| (wgpu::Buffer::clone(&t.buf), t.offset, t.bytes()))
                .collect(),
        );
        let mut cache = self.bind_groups.lock().unwrap();
        if let Some(bg) = cache.get(&key) {
            return bg.clone();
        }
        let mut next = key.2.iter();
        let entries: Vec<_> = p
            .bindings
            .iter()
            .map(|&b| wgpu::BindGroupEntry {
                binding: b,
                resource: if b == 0 {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: arena,
                        offset: 0,
                        size: wgpu::BufferSize::new(p.uniform_size),
                    })
                } else {
                    let (buffer, offset, size) = next.next().expect("checked against the bindings");
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: *offset,
                        size: wgpu::BufferSize::new(*size),
                    })
                },
            })
            .collect();
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.layout,
            entries: &entries,
        });
        self.pending.lock().unwrap().stats.bind_groups += 1;
        if cache.len() >= BIND_GROUPS {
            cache.clear();
        }
        cache.insert(key, bg.clone());
        bg
    }

    /// The workgroup grid of a dispatch, within the device's per-dimension limit.
    fn groups(&self, dispatch: Dispatch, workgroup_x: u32) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        let grid = match dispatch {
            Dispatch::Items(n) => {
                let total = n.div_ceil(workgroup_x as usize).max(1);
                let x = total.min(max as usize);
                [x as u64, total.div_ceil(x) as u64, 1]
            }
            Dispatch::Groups(g) => g.map(u64::from),
        };
        if grid.iter().any(|&g| g > max as u64) {
            bail!("a grid of {grid:?} workgroups exceeds this device's limit of {max} per dimension");
        }
        Ok(grid.map(|g| g as u32))
    }
}
