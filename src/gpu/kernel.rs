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

/// A shader file of `shaders/`: its op name and WGSL source.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

impl Shader {
    /// The source as compiled: the common helpers, then the op's own code.
    pub fn full_source(&self) -> String {
        format!("{COMMON}\n{}", self.source)
    }

    /// Parses and validates the full source with naga, as the device would.
    pub fn validate(&self) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
        let source = self.full_source();
        let module = naga::front::wgsl::parse_str(&source)
            .map_err(|e| anyhow!("shaders/{}.wgsl: {}", self.name, e.emit_to_string(&source)))?;
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
            .validate(&module)
            .map_err(|e| anyhow!("shaders/{}.wgsl: {}", self.name, e.emit_to_string(&source)))?;
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
    workgroup_size: [u32; 3],
}

impl Gpu {
    fn module(&self, shader: &Shader) -> Result<Arc<Module>> {
        if let Some(m) = self.modules.lock().unwrap().get(shader.name) {
            return Ok(m.clone());
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
            .ok_or_else(|| anyhow!("shaders/{}.wgsl has no entry point {entry}", shader.name))?;
        let uses = module.info.get_entry_point(index);
        let mut bindings: Vec<u32> = module
            .naga
            .global_variables
            .iter()
            .filter(|(handle, _)| !uses[*handle].is_empty())
            .filter_map(|(_, var)| var.binding.as_ref().map(|b| b.binding))
            .collect();
        bindings.sort_unstable();
        let constants: Vec<(&str, f64)> = constants.iter().map(|&(name, v)| (name, v as f64)).collect();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module: &module.wgpu,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        let p = Arc::new(Pipeline {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
            bindings,
            workgroup_size: module.naga.entry_points[index].workgroup_size,
        });
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// Records one dispatch of `shader`'s `entry` with the scalar `params` (32-bit words: use
    /// `f32::to_bits` for floats) at binding 0 and `tensors` at the entry point's tensor bindings,
    /// in ascending order.
    /// Errors, never panics, when a tensor exceeds the device's binding limit or the grid its
    /// dispatch limit.
    pub fn launch(
        &self,
        shader: &Shader,
        entry: &'static str,
        params: &[u32],
        tensors: &[&Tensor],
        dispatch: Dispatch,
    ) -> Result<()> {
        self.launch_with(shader, entry, &[], params, tensors, dispatch)
    }

    /// `launch` of the pipeline compiled with the shader's `override` constants set to `constants`
    /// (by name; the rest keep their defaults). Each distinct set is compiled once and cached.
    pub fn launch_with(
        &self,
        shader: &Shader,
        entry: &'static str,
        constants: &[(&'static str, u32)],
        params: &[u32],
        tensors: &[&Tensor],
        dispatch: Dispatch,
    ) -> Result<()> {
        let p = self.pipeline(shader, entry, constants)?;
        let what = || format!("{}.{entry}", shader.name);
        let groups = self
            .groups(dispatch, p.workgroup_size[0])
            .map_err(|e| anyhow!("{}: {e}", what()))?;
        let uniform = self.uniform(params);
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
        let mut next = tensors.iter();
        let entries: Vec<_> = p
            .bindings
            .iter()
            .map(|&b| wgpu::BindGroupEntry {
                binding: b,
                resource: if b == 0 {
                    uniform.binding()
                } else {
                    next.next().unwrap().buf.as_entire_binding()
                },
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &p.layout,
            entries: &entries,
        });
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
        self.record_launch(timestamps, |pass| {
            pass.set_pipeline(&p.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        Ok(())
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
