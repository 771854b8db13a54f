//! A pool of storage buffers, so that a training step allocates nothing once warm: a tensor's buffer
//! goes back to the pool when the last clone of the tensor drops, and the next tensor of the same
//! byte size takes it.
//!
//! Free buffers are handed out oldest first, so each training step, which starts with the same free
//! buffers as the last one, gets the same buffer for each of its tensors: its launches then find their
//! bind groups in the cache (`kernel.rs`). (Last in, first out would hand them out in an order that
//! depends on the order of the previous step's releases, which differs from step to step.)
//!
//! Handing out a buffer that recorded but unfinished commands still use is safe, because all work
//! runs on one queue in recording order: the new owner's commands are recorded after the old owner's
//! and run after them. Only writes that bypass the encoder (`Queue::write_buffer`, which runs before
//! the next submission's commands) must first submit what was recorded; `Gpu::upload` does.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::sync::{Arc, Mutex, Weak};

/// Buffers free for reuse, by size in bytes, and counts of what the pool has done.
#[derive(Debug, Default)]
pub(super) struct Pool(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// By size, then by serial number (the order of creation).
    free: HashMap<u64, BTreeMap<u64, wgpu::Buffer>>,
    stats: PoolStats,
}

/// What a pool has handed out since its device was opened, and what it holds now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers created because none of the size was free.
    pub created: u64,
    /// Requests served with a returned buffer.
    pub reused: u64,
    /// Buffers free now, and their bytes.
    pub free_buffers: u64,
    pub free_bytes: u64,
}

/// A storage buffer that returns to its pool when dropped.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    serial: u64,
    home: Weak<Pool>,
}

impl Deref for PooledBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer
            .as_ref()
            .expect("a pooled buffer is only taken when it drops")
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.home.upgrade()) {
            let mut inner = pool.0.lock().unwrap();
            inner.stats.free_buffers += 1;
            inner.stats.free_bytes += buffer.size();
            inner.free.entry(buffer.size()).or_default().insert(self.serial, buffer);
        }
    }
}

impl Pool {
    /// A buffer of `size` bytes: the oldest free one (second value true) or one made by `create`.
    pub(super) fn take(
        self: &Arc<Self>,
        size: u64,
        create: impl FnOnce() -> wgpu::Buffer,
    ) -> (Arc<PooledBuffer>, bool) {
        let mut inner = self.0.lock().unwrap();
        let free = inner.free.get_mut(&size).and_then(BTreeMap::pop_first);
        let reused = free.is_some();
        let (serial, buffer) = match free {
            Some(b) => {
                inner.stats.reused += 1;
                inner.stats.free_buffers -= 1;
                inner.stats.free_bytes -= size;
                b
            }
            None => {
                inner.stats.created += 1;
                (inner.stats.created, create())
            }
        };
        let pooled = PooledBuffer {
            buffer: Some(buffer),
            serial,
            home: Arc::downgrade(self),
        };
        // On wasm wgpu's buffers are neither Send nor Sync (the page has one thread); natively they are.
        #[allow(clippy::arc_with_non_send_sync)]
        (Arc::new(pooled), reused)
    }

    pub(super) fn stats(&self) -> PoolStats {
        self.0.lock().unwrap().stats
    }

    /// Destroys every free buffer (wgpu frees each once the commands using it have finished).
    pub(super) fn trim(&self) {
        let mut inner = self.0.lock().unwrap();
        inner.free.clear();
        inner.stats.free_buffers = 0;
        inner.stats.free_bytes = 0;
    }
}
