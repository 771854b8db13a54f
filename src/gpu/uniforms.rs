//! Every launch's scalar parameters, packed into shared uniform buffers (arenas) rather than a new
//! buffer per launch: a training step records hundreds of launches, and creating and filling a buffer
//! for each was a large part of the host's time per step. An arena's bytes are written with one
//! `queue.write_buffer` when it is full or at the next submission, which the queue applies before that
//! submission's commands run; a submitted arena is never written again (the next launch starts a new
//! one), so commands still in flight keep their parameters.

use std::num::NonZeroU64;

use super::Gpu;

/// Bytes per arena: 256 launches at the usual 256-byte offset alignment.
const ARENA: u64 = 64 << 10;

/// The arena being filled: its buffer and the bytes recorded into it so far.
#[derive(Default)]
pub(super) struct Uniforms {
    current: Option<(wgpu::Buffer, Vec<u8>)>,
}

/// One launch's parameters: a range of an arena.
pub(super) struct Uniform {
    buffer: wgpu::Buffer,
    offset: u64,
    size: NonZeroU64,
}

impl Uniform {
    pub(super) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: Some(self.size),
        })
    }
}

impl Gpu {
    /// Places `params` (32-bit words) in the current arena, starting a new one when it is full.
    pub(super) fn uniform(&self, params: &[u32]) -> Uniform {
        // Uniform bindings are at least 16 bytes and a multiple of 16 in every backend's rules.
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let align = self.limits.min_uniform_buffer_offset_alignment as usize;
        let mut guard = self.uniforms.lock().unwrap();
        if let Some((_, data)) = &guard.current {
            if (data.len().next_multiple_of(align) + bytes.len()) as u64 > ARENA {
                self.write_arena(&mut guard);
            }
        }
        let (buffer, data) = guard.current.get_or_insert_with(|| {
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: ARENA,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (buffer, Vec::with_capacity(ARENA as usize))
        });
        let offset = data.len().next_multiple_of(align);
        data.resize(offset, 0);
        data.extend_from_slice(bytes);
        Uniform {
            buffer: buffer.clone(),
            offset: offset as u64,
            size: NonZeroU64::new(bytes.len() as u64).expect("at least 16 bytes"),
        }
    }

    /// Queues the current arena's bytes and retires it; the next launch starts a new arena. Called
    /// before every submission.
    pub(super) fn write_uniforms(&self) {
        self.write_arena(&mut self.uniforms.lock().unwrap());
    }

    fn write_arena(&self, uniforms: &mut Uniforms) {
        if let Some((buffer, data)) = uniforms.current.take() {
            self.queue.write_buffer(&buffer, 0, &data);
        }
    }
}
