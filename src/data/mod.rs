//! Datasets: the embedded emoji set, image folders, and the u8 image sets that training batches and
//! the metrics are drawn from.

use anyhow::{bail, ensure, Result};

#[cfg(not(target_arch = "wasm32"))]
mod cache;
mod emoji;
#[cfg(not(target_arch = "wasm32"))]
mod folder;
#[cfg(not(target_arch = "wasm32"))]
mod pack;
mod prepare;
pub mod resize;

#[cfg(not(target_arch = "wasm32"))]
pub use cache::cached;
pub use emoji::{emoji, emoji_cache_key};
#[cfg(not(target_arch = "wasm32"))]
pub use folder::{folder, prepare_folder};
#[cfg(not(target_arch = "wasm32"))]
pub use pack::{Damaged, PackInfo};
pub use prepare::{from_files, prepare, Loader, Transform};

/// Version of the prepared images (decoding, resampling, pyramid) and of the cache file layout: a
/// cache written under another version is rebuilt.
pub const FORMAT_VERSION: u32 = 2;

/// Same-size images as bytes, image-major then channel, row, column (NCHW), 0..=255.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub count: usize,
    pub channels: usize,
    pub res: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn new(count: usize, channels: usize, res: usize, pixels: Vec<u8>) -> Result<Images> {
        ensure!(
            pixels.len() == count * channels * res * res,
            "{count} images of {channels}x{res}x{res} need {} bytes, got {}",
            count * channels * res * res,
            pixels.len()
        );
        Ok(Images {
            count,
            channels,
            res,
            pixels,
        })
    }

    /// The images at `indices`, in that order.
    pub fn pick(&self, indices: &[usize]) -> Images {
        let pixels = indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect();
        Images {
            count: indices.len(),
            channels: self.channels,
            res: self.res,
            pixels,
        }
    }

    /// Bytes of one image (CHW).
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.channels * self.res * self.res;
        &self.pixels[index * n..(index + 1) * n]
    }

    /// From floats in [-1, 1] (NCHW, as G produces), rounded and clipped as the official code does.
    pub fn from_f32(count: usize, channels: usize, res: usize, values: &[f32]) -> Result<Images> {
        let pixels = values
            .iter()
            .map(|&v| ((v as f64 + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
            .collect();
        Images::new(count, channels, res, pixels)
    }
}

/// A file that could not be used, and why (shown to the user beside the dataset).
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// A training set at every resolution from 4x4 up to its largest, each level built as [`pyramid`]
/// does, held in memory (the page, the emoji set without a cache, tests) or in a prepared file
/// (natively: read an image at a time, so memory does not grow with the set).
#[derive(Clone)]
pub struct Dataset {
    pub name: String,
    pub skipped: Vec<Skipped>,
    /// How many images were smaller than the resolution, so upscaled to it.
    pub upscaled: usize,
    store: Store,
}

#[derive(Clone)]
enum Store {
    /// Every level, 4x4 first.
    Memory(Vec<Images>),
    #[cfg(not(target_arch = "wasm32"))]
    File(std::sync::Arc<pack::Pack>),
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let r = self.max_res();
        write!(
            f,
            "dataset {} ({} images, {r}x{r}, {} channels, {} skipped)",
            self.name,
            self.count(),
            self.channels(),
            self.skipped.len()
        )
    }
}

/// Equal when everything but where the images are kept is: the name, the lists, every image at every
/// level (read whole: for tests and small sets).
impl PartialEq for Dataset {
    fn eq(&self, other: &Dataset) -> bool {
        let shape = |d: &Dataset| (d.count(), d.channels(), d.max_res());
        let levels = |d: &Dataset| d.resolutions().map(|r| d.at(r).ok()).collect::<Vec<_>>();
        (&self.name, &self.skipped, self.upscaled, shape(self))
            == (&other.name, &other.skipped, other.upscaled, shape(other))
            && levels(self) == levels(other)
    }
}

/// Checks a requested image shape before any work is done.
pub(crate) fn check_shape(channels: usize, res: usize) -> Result<()> {
    ensure!(
        channels == 1 || channels == 3,
        "images must have 1 (grayscale) or 3 (RGB) channels, not {channels}"
    );
    ensure!(
        res >= 4 && res.is_power_of_two(),
        "the resolution must be a power of two of at least 4 (4, 8, 16, ...), not {res}"
    );
    Ok(())
}

/// Every level of an image set from 4x4 up to `res` (the full-resolution `planes`, `res` x `res`
/// bytes each, returned last), built as the official `dataset_tool.py` does: each level is the 2x2
/// box average of the previous level *before* its rounding (an unrounded f64 chain, exact here: every
/// value is a multiple of 4^-8 at most), and each is rounded half to even (`np.rint`). Plane by plane,
/// so only one plane is held in f64.
pub(crate) fn pyramid(planes: &[u8], res: usize) -> Vec<Vec<u8>> {
    let count = res.trailing_zeros() as usize - 1;
    let mut levels: Vec<Vec<u8>> = (0..count)
        .map(|l| Vec::with_capacity(planes.len() >> (2 * (count - 1 - l))))
        .collect();
    let mut chain = vec![0f64; res * res];
    for plane in planes.chunks_exact(res * res) {
        chain.iter_mut().zip(plane).for_each(|(c, &p)| *c = p as f64);
        let mut r = res;
        for level in levels.iter_mut().rev() {
            if r < res {
                // In place: output pixel (y, x) is written after every input it reads from.
                for y in 0..r {
                    for x in 0..r {
                        let at = |dy: usize, dx: usize| chain[(2 * y + dy) * 2 * r + 2 * x + dx];
                        let mean = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
                        chain[y * r + x] = mean;
                    }
                }
            }
            level.extend(chain[..r * r].iter().map(|v| v.round_ties_even() as u8));
            r /= 2;
        }
    }
    levels
}

/// Where prepared images go, one at a time in the dataset's order: memory ([`Levels`]) or, natively,
/// a prepared file being written.
pub(crate) trait Sink {
    /// Adds one image (CHW bytes at full resolution) and the levels [`pyramid`] builds from it.
    fn push(&mut self, image: &[u8]) -> Result<()>;
}

/// Every level of a set built in memory.
pub(crate) struct Levels {
    channels: usize,
    res: usize,
    count: usize,
    levels: Vec<Vec<u8>>,
}

impl Levels {
    pub(crate) fn new(channels: usize, res: usize) -> Levels {
        Levels {
            channels,
            res,
            count: 0,
            levels: vec![Vec::new(); res.trailing_zeros() as usize - 1],
        }
    }

    pub(crate) fn finish(self, name: &str, tally: Tally) -> Result<Dataset> {
        let levels = self
            .levels
            .into_iter()
            .enumerate()
            .map(|(l, pixels)| Images::new(self.count, self.channels, 4 << l, pixels))
            .collect::<Result<Vec<_>>>()?;
        Dataset::new(name, tally, Store::Memory(levels))
    }
}

impl Sink for Levels {
    fn push(&mut self, image: &[u8]) -> Result<()> {
        ensure!(
            image.len() == self.channels * self.res * self.res,
            "an image of {}x{}x{} has {} bytes, not {}",
            self.channels,
            self.res,
            self.res,
            self.channels * self.res * self.res,
            image.len()
        );
        for (level, pixels) in self.levels.iter_mut().zip(pyramid(image, self.res)) {
            level.extend_from_slice(&pixels);
        }
        self.count += 1;
        Ok(())
    }
}

/// One prepared image, or why its file could not be used.
pub(crate) struct Prepared {
    pub pixels: Vec<u8>,
    /// The source was smaller than the resolution.
    pub upscaled: bool,
}

/// What was made of a set's files: the skipped ones and how many were used and upscaled.
#[derive(Default)]
pub(crate) struct Tally {
    pub used: usize,
    pub upscaled: usize,
    pub skipped: Vec<Skipped>,
}

impl Tally {
    /// Adds the file `path`'s image to `sink`, or lists it as skipped with why.
    pub(crate) fn add(&mut self, sink: &mut dyn Sink, path: String, result: Result<Prepared>) -> Result<()> {
        match result {
            Ok(p) => {
                sink.push(&p.pixels)?;
                self.used += 1;
                self.upscaled += p.upscaled as usize;
            }
            Err(e) => self.skipped.push(Skipped {
                path,
                reason: format!("{e:#}"),
            }),
        }
        Ok(())
    }

    /// Refuses a set of no usable image; `source` names where the files came from.
    pub(crate) fn check(&self, source: &str) -> Result<()> {
        if self.used > 0 {
            return Ok(());
        }
        ensure!(!self.skipped.is_empty(), "there are no files in {source}");
        let reasons: Vec<String> = self
            .skipped
            .iter()
            .take(3)
            .map(|s| format!("{}: {}", s.path, s.reason))
            .collect();
        bail!(
            "no image in {source} could be used: all {} files were skipped ({}{})",
            self.skipped.len(),
            reasons.join("; "),
            if self.skipped.len() > 3 { "; ..." } else { "" }
        )
    }
}

impl Dataset {
    fn new(name: &str, tally: Tally, store: Store) -> Result<Dataset> {
        let d = Dataset {
            name: name.to_string(),
            skipped: tally.skipped,
            upscaled: tally.upscaled,
            store,
        };
        ensure!(d.count() > 0, "dataset {name} has no images");
        Ok(d)
    }

    /// Builds the pyramid down to 4x4 from the full-resolution images, in memory.
    pub fn from_images(name: &str, full: Images, skipped: Vec<Skipped>) -> Result<Dataset> {
        ensure!(
            full.res >= 4 && full.res.is_power_of_two(),
            "dataset {name}: the resolution must be a power of two of at least 4, not {}",
            full.res
        );
        ensure!(full.channels > 0, "dataset {name}: images have no channels");
        let mut levels = Levels::new(full.channels, full.res);
        for i in 0..full.count {
            levels.push(full.image(i))?;
        }
        let tally = Tally {
            used: full.count,
            upscaled: 0,
            skipped,
        };
        levels.finish(name, tally)
    }

    /// Opens a prepared file (`pggan dataset prepare`): only its header and lists are read; an image
    /// is read when asked for, and a chunk's CRC is checked on its first read.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Dataset> {
        pack::open(path, false)
    }

    /// The prepared file the images are read from, if any.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn file(&self) -> Option<&PackInfo> {
        match &self.store {
            Store::Memory(_) => None,
            Store::File(pack) => Some(&pack.info),
        }
    }

    pub fn count(&self) -> usize {
        match &self.store {
            Store::Memory(levels) => levels[0].count,
            #[cfg(not(target_arch = "wasm32"))]
            Store::File(pack) => pack.count,
        }
    }

    pub fn channels(&self) -> usize {
        match &self.store {
            Store::Memory(levels) => levels[0].channels,
            #[cfg(not(target_arch = "wasm32"))]
            Store::File(pack) => pack.channels(),
        }
    }

    pub fn max_res(&self) -> usize {
        match &self.store {
            Store::Memory(levels) => levels[levels.len() - 1].res,
            #[cfg(not(target_arch = "wasm32"))]
            Store::File(pack) => pack.max_res(),
        }
    }

    /// 4, 8, ... up to `max_res()`.
    pub fn resolutions(&self) -> impl Iterator<Item = usize> {
        let levels = self.max_res().trailing_zeros() - 1;
        (0..levels).map(|l| 4 << l)
    }

    /// The images at `indices`, in that order, at resolution `res` (a power of two from 4 to
    /// `max_res()`). From a prepared file each image is read on its own; the first read of a chunk
    /// checks its CRC, and a damaged one is refused with the images it holds ([`Damaged`]).
    pub fn images(&self, res: usize, indices: &[usize]) -> Result<Images> {
        let level = self.level(res, indices)?;
        match &self.store {
            Store::Memory(levels) => Ok(levels[level].pick(indices)),
            #[cfg(not(target_arch = "wasm32"))]
            Store::File(pack) => Images::new(indices.len(), pack.channels(), res, pack.read(level, indices)?),
        }
    }

    /// The level of resolution `res`, once `indices` are checked against the count.
    fn level(&self, res: usize, indices: &[usize]) -> Result<usize> {
        let level = self.resolutions().position(|r| r == res).ok_or_else(|| {
            anyhow::anyhow!(
                "dataset {} has resolutions 4 to {}, not {res}",
                self.name,
                self.max_res()
            )
        })?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.count()) {
            bail!(
                "image index {bad} is out of range: dataset {} has {} images",
                self.name,
                self.count()
            );
        }
        Ok(level)
    }

    /// Every image at resolution `res`: a whole level, for small sets and tests.
    pub fn at(&self, res: usize) -> Result<Images> {
        self.images(res, &(0..self.count()).collect::<Vec<_>>())
    }

    /// A minibatch at resolution `res` as f32 NCHW in [-1, 1]: image `indices[i]` as [`reals`] makes
    /// it.
    pub fn batch(&self, indices: &[usize], mirror: &[bool], res: usize, alpha: f32) -> Result<Vec<f32>> {
        reals(&self.images(res, indices)?, mirror, alpha)
    }

    /// [`Dataset::images`], read natively on a thread of its own from a prepared file, so that the
    /// caller can work meanwhile; what it read (or why it could not) is [`Fetch::wait`]ed for.
    pub fn fetch(&self, res: usize, indices: Vec<usize>) -> Fetch {
        #[cfg(not(target_arch = "wasm32"))]
        if let Store::File(pack) = &self.store {
            let level = match self.level(res, &indices) {
                Ok(level) => level,
                Err(e) => return Fetch::Ready(Err(e)),
            };
            let pack = pack.clone();
            return Fetch::Reading(std::thread::spawn(move || {
                Images::new(indices.len(), pack.channels(), res, pack.read(level, &indices)?)
            }));
        }
        Fetch::Ready(self.images(res, &indices))
    }
}

/// Images being read ([`Dataset::fetch`]).
pub enum Fetch {
    Ready(Result<Images>),
    #[cfg(not(target_arch = "wasm32"))]
    Reading(std::thread::JoinHandle<Result<Images>>),
}

impl Fetch {
    pub fn wait(self) -> Result<Images> {
        match self {
            Fetch::Ready(images) => images,
            #[cfg(not(target_arch = "wasm32"))]
            Fetch::Reading(thread) => thread
                .join()
                .unwrap_or_else(|_| bail!("the thread reading the dataset panicked")),
        }
    }
}

/// `images` as a minibatch of f32 NCHW in [-1, 1] (x / 127.5 - 1), image `i` mirrored left-right
/// where `mirror[i]`, faded as G's output is during a fade-in:
/// x = lerp(upsample2x_nearest(avgpool2x2(x)), x, alpha), so alpha = 1 leaves x unchanged (and 4x4
/// images are never faded). Computed on the host in f64 (`ops::reals::forward_ref`), as the trainer
/// did before it uploaded the bytes and ran `ops::reals` on the GPU; kept for the tests and for
/// `pggan bench data`'s comparison.
pub fn reals(images: &Images, mirror: &[bool], alpha: f32) -> Result<Vec<f32>> {
    ensure!(
        images.count == mirror.len(),
        "a batch of {} images needs {} mirror flags, got {}",
        images.count,
        images.count,
        mirror.len()
    );
    ensure!(
        (0.0..=1.0).contains(&alpha),
        "the fade-in alpha must be within [0, 1], got {alpha}"
    );
    let values = crate::ops::reals::forward_ref(&images.pixels, mirror, images.channels, images.res, alpha as f64);
    Ok(values.into_iter().map(|v| v as f32).collect())
}

/// Maps `f` over `items` on every core (in order on wasm, which has no threads here), calling
/// `progress(done, total)` on the calling thread as items finish; results keep the items' order.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<R> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let total = items.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(total.max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..total).map(|_| None).collect();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let (tx, next, f) = (tx.clone(), &next, &f);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || tx.send((i, f(&items[i]))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (done, (i, r)) in rx.into_iter().enumerate() {
            out[i] = Some(r);
            progress(done + 1, total);
        }
    });
    out.into_iter().map(|r| r.expect("every item was mapped")).collect()
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<R> {
    let total = items.len();
    let mut out = Vec::with_capacity(total);
    for item in items {
        out.push(f(item));
        progress(out.len(), total);
    }
    out
}
