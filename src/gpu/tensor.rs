//! A GPU tensor (a pooled storage buffer and its NCHW shape), upload and asynchronous download.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};

use super::{Gpu, PooledBuffer};

/// How long a native download waits for the GPU before it reports an error instead of hanging.
#[cfg(not(target_arch = "wasm32"))]
const DOWNLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// An f32 tensor living in a storage buffer, from byte `offset` on (0 but for a [`Gpu::slice`]).
/// Cloning shares the buffer, which goes back to the device's pool when the last clone drops.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub buf: Arc<PooledBuffer>,
    pub offset: u64,
    pub shape: Vec<usize>,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        4 * self.len() as u64
    }
}

/// Slices start at multiples of this many elements: 256 bytes, WebGPU's largest
/// `minStorageBufferOffsetAlignment` (every device guarantees it).
pub const SLICE_ALIGN: usize = 64;

/// Refuses a slice of `shape` at element `offset` of a tensor of shape `whole` unless it is
/// non-empty, inside, and starts at a multiple of [`SLICE_ALIGN`] (the f64 reference checks the same).
pub fn check_slice(whole: &[usize], offset: usize, shape: &[usize]) -> Result<()> {
    let len: usize = shape.iter().product();
    if len == 0 || !offset.is_multiple_of(SLICE_ALIGN) || offset + len > whole.iter().product() {
        bail!(
            "a slice of shape {shape:?} at element {offset} does not fit a tensor of shape {whole:?} \
             (it must be non-empty, inside, and start at a multiple of {SLICE_ALIGN})"
        );
    }
    Ok(())
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    fn check_shape(&self, shape: &[usize]) -> Result<u64> {
        let len: usize = shape.iter().product();
        if len == 0 {
            bail!("tensor of shape {shape:?} is empty");
        }
        let bytes = 4 * len as u64;
        if bytes > self.limits.max_buffer_size {
            bail!(
                "tensor of shape {shape:?} needs {} MiB, over this device's buffer limit of {} MiB",
                bytes >> 20,
                self.limits.max_buffer_size >> 20
            );
        }
        Ok(bytes)
    }

    /// A buffer for a tensor of `shape`, from the pool when one of its size is free (then `true`).
    fn alloc(&self, shape: &[usize]) -> Result<(Tensor, bool)> {
        let size = self.check_shape(shape)?;
        let (buf, reused) = self.pool.take(size, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: USAGE,
                mapped_at_creation: false,
            })
        });
        let t = Tensor {
            buf,
            offset: 0,
            shape: shape.to_vec(),
        };
        Ok((t, reused))
    }

    /// A tensor holding `data`, which must have exactly the shape's number of elements.
    pub fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.check_shape(shape)?;
        if data.len() != shape.iter().product::<usize>() {
            bail!("{} values do not fill a tensor of shape {shape:?}", data.len());
        }
        let (t, reused) = self.alloc(shape)?;
        // Only a reused buffer can have commands recorded with it (its previous owner's).
        self.queue_write(&t, bytemuck::cast_slice(data), reused);
        Ok(t)
    }

    /// A tensor of `bytes` packed four to a 32-bit element, little-endian, the last one padded with
    /// zeros: for shaders that read them as `array<u32>` (`ops::reals`), a quarter of the upload of
    /// the same values as f32.
    pub fn upload_bytes(&self, bytes: &[u8]) -> Result<Tensor> {
        let words = bytes.len().div_ceil(4).max(1);
        let (t, reused) = self.alloc(&[words])?;
        // Copied only to be padded: a minibatch's images are whole words already.
        let padded: Cow<[u8]> = match bytes.len() == 4 * words {
            true => Cow::Borrowed(bytes),
            false => {
                let mut padded = bytes.to_vec();
                padded.resize(4 * words, 0);
                Cow::Owned(padded)
            }
        };
        self.queue_write(&t, &padded, reused);
        Ok(t)
    }

    /// Writes `bytes` at `t` with a queue write, which runs before the next submission's commands:
    /// with `after_recorded`, the commands recorded so far are submitted first, so that they run
    /// before it.
    fn queue_write(&self, t: &Tensor, bytes: &[u8], after_recorded: bool) {
        if after_recorded && self.pending.lock().unwrap().encoder.is_some() {
            self.flush();
        }
        self.queue.write_buffer(&t.buf, t.offset, bytes);
    }

    /// A zero-filled tensor: a new buffer (wgpu zero-initialises those) or a reused one cleared in
    /// recording order.
    pub fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        let (t, reused) = self.alloc(shape)?;
        if reused {
            self.clear(&t);
        }
        Ok(t)
    }

    /// A tensor for a kernel to write in full before anything reads it (op outputs, split-K slices,
    /// minibatch stddev's per-group scalars): a reused buffer keeps its last values, so no clear is
    /// recorded. With [`Gpu::poison_scratch`] on, it is filled with NaN instead.
    pub fn scratch(&self, shape: &[usize]) -> Result<Tensor> {
        if self.poison.load(Ordering::Relaxed) {
            return self.upload(&vec![f32::NAN; shape.iter().product()], shape);
        }
        Ok(self.alloc(shape)?.0)
    }

    /// A test mode: every `scratch` tensor starts as NaN (uploaded, so slowly), so that a kernel that
    /// leaves part of its output unwritten, or a caller that reads a scratch tensor first, puts NaN
    /// into results the tests compare.
    pub fn poison_scratch(&self, on: bool) {
        self.poison.store(on, Ordering::Relaxed);
    }

    /// A tensor of `shape` over `t`'s elements from `offset` on, sharing its buffer: one network's
    /// parameters live in one buffer, so that Adam updates them in one launch. The offset must be a
    /// multiple of [`SLICE_ALIGN`] elements (the binding offset alignment WebGPU guarantees), and the
    /// slice must fit one storage binding.
    pub fn slice(&self, t: &Tensor, offset: usize, shape: &[usize]) -> Result<Tensor> {
        check_slice(&t.shape, offset, shape)?;
        let slice = Tensor {
            buf: t.buf.clone(),
            offset: t.offset + 4 * offset as u64,
            shape: shape.to_vec(),
        };
        let limit = self.limits.max_storage_buffer_binding_size;
        if slice.bytes() > limit {
            bail!(
                "a slice of shape {shape:?} needs {} MiB, over this device's storage binding limit of {} MiB \
                 (a slice is bound to kernels whole)",
                slice.bytes() >> 20,
                limit >> 20
            );
        }
        Ok(slice)
    }

    /// Writes `data` into `t` (a tensor or a slice) before the commands recorded after this call.
    pub fn write(&self, t: &Tensor, data: &[f32]) -> Result<()> {
        if data.len() != t.len() {
            bail!("{} values do not fill a tensor of shape {:?}", data.len(), t.shape);
        }
        // Commands recorded so far (a clear of this buffer, say) may use it.
        self.queue_write(t, bytemuck::cast_slice(data), true);
        Ok(())
    }

    /// Records copying `parts`, one after another, into `out`, which they must fill: buffer copies,
    /// no kernel launch.
    pub fn copy_into(&self, parts: &[&Tensor], out: &Tensor) -> Result<()> {
        let len: usize = parts.iter().map(|t| t.len()).sum();
        if len != out.len() {
            bail!("{len} values do not fill a tensor of shape {:?}", out.shape);
        }
        self.record_copies(parts, &out.buf, out.offset);
        Ok(())
    }

    /// Records copying `parts`, one after another, into `dst` from byte `start` on.
    fn record_copies(&self, parts: &[&Tensor], dst: &wgpu::Buffer, start: u64) {
        self.record(|e| {
            let mut offset = start;
            for t in parts {
                e.copy_buffer_to_buffer(&t.buf, t.offset, dst, offset, t.bytes());
                offset += t.bytes();
            }
        });
    }

    /// Records setting every element of `t` to 0: a buffer clear, no kernel launch.
    pub fn clear(&self, t: &Tensor) {
        self.record(|e| e.clear_buffer(&t.buf, t.offset, Some(t.bytes())));
    }

    /// Submits all recorded work and blocks until the GPU has finished it (native only: the
    /// browser must never block). A finite timeout turns a hung device into an error.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<()> {
        self.flush();
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(DOWNLOAD_TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| anyhow!("waiting for the GPU failed: {e}"))
    }

    /// Submits all recorded work and reads `t` back. Never blocks the browser: on wasm it awaits the
    /// mapping callback; natively it polls the device with a finite timeout.
    pub async fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(self.download_many(&[t]).await?.pop().expect("one tensor in, one out"))
    }

    /// Reads several tensors back with one wait per staging buffer (each at most the device's buffer
    /// size limit) instead of one per tensor: checkpoints read hundreds of tensors.
    pub async fn download_many(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(tensors.len());
        let mut rest = tensors;
        while !rest.is_empty() {
            // The longest prefix that fits one staging buffer (at least one tensor, which always fits).
            let (mut n, mut size) = (0, 0);
            while n < rest.len() && (n == 0 || size + rest[n].bytes() <= self.limits.max_buffer_size) {
                size += rest[n].bytes();
                n += 1;
            }
            let (batch, tail) = rest.split_at(n);
            out.extend(self.download_batch(batch, size).await?);
            rest = tail;
        }
        Ok(out)
    }

    async fn download_batch(&self, tensors: &[&Tensor], size: u64) -> Result<Vec<Vec<f32>>> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.record_copies(tensors, &staging, 0);
        self.map_read(&staging, |bytes| {
            let values = bytemuck::cast_slice::<u8, f32>(bytes);
            let mut start = 0;
            tensors
                .iter()
                .map(|t| {
                    let part = values[start..start + t.len()].to_vec();
                    start += t.len();
                    part
                })
                .collect()
        })
        .await
    }

    /// Submits all recorded work, maps `staging` (a `MAP_READ` buffer) and returns `read` of its
    /// bytes. Never blocks the browser: on wasm it awaits the mapping callback; natively it polls the
    /// device with a finite timeout.
    pub(super) async fn map_read<R>(&self, staging: &wgpu::Buffer, read: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.flush();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        rx.await
            .map_err(|_| anyhow!("the GPU dropped a download before it finished"))?
            .map_err(|e| anyhow!("reading a buffer back failed: {e}"))?;
        let out = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| anyhow!("mapping a download failed: {e}"))?;
            read(&view)
        };
        staging.unmap();
        Ok(out)
    }
}
