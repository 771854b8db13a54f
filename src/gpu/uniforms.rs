//! Every launch's scalar parameters, packed into shared uniform buffers (arenas) rather than a new
//! buffer per launch: a training step records hundreds of launches, and creating and filling a buffer
//! for each was a large part of the host's time per step. An arena's bytes are written with one
//! `queue.write_buffer` when it is full or at the next submission, which the queue applies before that
//! submission's commands run and after every earlier submission's. So within one submission each arena
//! is filled once (the next launch moves on to the next arena), and the next submission fills the same
//! arenas again from the first: the launches of a step find the same arena at the same position
//! every step, which lets their bind groups be reused (`kernel.rs`). A launch binds its arena once,
//! at offset 0, and passes its parameters' offset as the binding's dynamic offset.

use super::Gpu;

/// Bytes per arena: 256 launches at the usual 256-byte offset alignment.
const ARENA: u64 = 64 << 10;

/// The arenas, and the one being filled: its index and the bytes recorded into it so far.
#[derive(Default)]
pub(super) struct Uniforms {
    arenas: Vec<wgpu::Buffer>,
    current: Option<(usize, Vec<u8>)>,
    /// The arena after the last one filled in this submission.
    next: usize,
}

/// One launch's parameters: an arena and their offset in it.
pub(super) struct Uniform {
    pub(super) arena: wgpu::Buffer,
    pub(super) offset: u32,
}

impl Gpu {
    /// Places `params` (the shader's parameter struct), padded with zeros to its binding's `size`,
    /// in the current arena, moving on to the next one when it is full.
    pub(super) fn uniform(&self, params: &[u8], size: u64) -> Uniform {
        let mut bytes = params.to_vec();
        bytes.resize(size as usize, 0);
        let align = self.limits.min_uniform_buffer_offset_alignment as usize;
        let mut guard = self.uniforms.lock().unwrap();
        let u = &mut *guard;
        if let Some((_, data)) = &u.current {
            if (data.len().next_multiple_of(align) + bytes.len()) as u64 > ARENA {
                self.write_arena(u);
            }
        }
        if u.current.is_none() {
            if u.next == u.arenas.len() {
                u.arenas.push(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("params"),
                    size: ARENA,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            }
            u.current = Some((u.next, Vec::with_capacity(ARENA as usize)));
            u.next += 1;
        }
        let (index, data) = u.current.as_mut().expect("set above");
        let offset = data.len().next_multiple_of(align);
        data.resize(offset, 0);
        data.extend_from_slice(&bytes);
        Uniform {
            arena: u.arenas[*index].clone(),
            offset: offset as u32,
        }
    }

    /// Queues the current arena's bytes; the next submission fills the arenas from the first again.
    /// Called before every submission.
    pub(super) fn write_uniforms(&self) {
        let mut u = self.uniforms.lock().unwrap();
        self.write_arena(&mut u);
        u.next = 0;
    }

    /// Queues the current arena's bytes; the next launch moves on to the next arena.
    fn write_arena(&self, u: &mut Uniforms) {
        if let Some((index, data)) = u.current.take() {
            self.queue.write_buffer(&u.arenas[index], 0, &data);
        }
    }
}
