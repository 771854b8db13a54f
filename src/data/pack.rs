//! The prepared dataset file: every level of a set in its own contiguous section, read an image at a
//! time with positioned reads, so a process holds only the images it asked for (the kernel's page
//! cache, shared and reclaimable, holds the rest).
//!
//! Layout, integers little-endian:
//! - header, 64 bytes: magic `PGGANDS\0`, format version (u32), channels (u32), full resolution
//!   (u32), 0 (u32), image count (u64), capacity (u64: image slots per level, the number of files
//!   prepared; the slots of skipped files stay holes at each level's end), upscaled count (u64),
//!   tail length (u64), 0 (u32), CRC-32 of the 60 bytes before it;
//! - one section per level from 4x4 up: `capacity` slots of channels x res x res bytes (CHW);
//! - tail: name, cache key and transform (strings: u64 length + UTF-8), the skipped files (u64
//!   count, then path and reason strings), each level's chunk CRC-32s (u32), CRC-32 of the tail.
//!
//! A chunk is as many consecutive images of one level as fit in `CHUNK_BYTES` (at least one); its
//! CRC is checked when it is first read, so opening reads only the header and the tail, and a file
//! whose length is not the one they give is refused at once.

use super::{pyramid, Dataset, Sink, Skipped, Store, Tally, FORMAT_VERSION};
use crate::files::{create_temporary, open_regular};
use anyhow::{bail, ensure, Context, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"PGGANDS\0";
const HEADER: usize = 64;
/// Bytes a chunk holds at most, unless one image is larger: what a first read checks.
const CHUNK_BYTES: usize = 1 << 20;
/// Far above any tail (a million skipped files with long reasons): a larger one is refused unread.
const MAX_TAIL: u64 = 1 << 30;
/// The largest resolution a header may give.
const MAX_RES: usize = 1 << 15;

/// Images per chunk at a level whose images have `image` bytes.
fn chunk_images(image: usize) -> usize {
    (CHUNK_BYTES / image).max(1)
}

/// Where each level's images are.
#[derive(Clone, Copy)]
struct Layout {
    channels: usize,
    res: usize,
    capacity: usize,
}

impl Layout {
    fn levels(&self) -> usize {
        self.res.trailing_zeros() as usize - 1
    }

    fn image_bytes(&self, level: usize) -> usize {
        self.channels * (4 << level) * (4 << level)
    }

    /// Where `level`'s section starts (`levels()`: where the data ends); `None` on overflow.
    fn offset(&self, level: usize) -> Option<u64> {
        (0..level).try_fold(HEADER as u64, |at, l| {
            at.checked_add((self.image_bytes(l) as u64).checked_mul(self.capacity as u64)?)
        })
    }

    fn chunks(&self, level: usize, count: usize) -> usize {
        count.div_ceil(chunk_images(self.image_bytes(level)))
    }
}

/// A chunk of a prepared file that does not match its CRC: the images it holds are damaged.
#[derive(Debug)]
pub struct Damaged {
    pub path: PathBuf,
    pub res: usize,
    /// The first and last image of the chunk, numbered from 0.
    pub first: usize,
    pub last: usize,
    /// The file was a cache entry, removed so that the next run prepares its images again.
    pub removed: bool,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let r = self.res;
        write!(
            f,
            "the prepared dataset {} is damaged: images {} to {} at {r}x{r} do not match their CRC-32",
            self.path.display(),
            self.first,
            self.last
        )?;
        match self.removed {
            true => write!(
                f,
                "; the cache entry was removed, so the next run prepares the images again"
            ),
            false => write!(f, "; prepare it again (pggan dataset prepare)"),
        }
    }
}

impl std::error::Error for Damaged {}

/// What a prepared file says of itself beyond its images.
#[derive(Clone, Debug, PartialEq)]
pub struct PackInfo {
    pub path: PathBuf,
    /// The file's length.
    pub bytes: u64,
    /// The cache key it was written under (empty outside the cache).
    pub key: String,
    /// How each image was made square (`Transform::name`).
    pub transform: String,
}

/// An open prepared file.
pub(crate) struct Pack {
    file: File,
    layout: Layout,
    pub(crate) count: usize,
    pub(crate) info: PackInfo,
    /// Each level's chunk CRCs, and whether each chunk was checked.
    crcs: Vec<Vec<u32>>,
    checked: Vec<Vec<AtomicBool>>,
    /// A cache entry, removed when found damaged.
    cached: bool,
}

impl Pack {
    pub(crate) fn channels(&self) -> usize {
        self.layout.channels
    }

    pub(crate) fn max_res(&self) -> usize {
        self.layout.res
    }

    /// The bytes of images `indices` at `level`, one after the other.
    pub(crate) fn read(&self, level: usize, indices: &[usize]) -> Result<Vec<u8>> {
        let n = self.layout.image_bytes(level);
        let start = self.layout.offset(level).expect("checked when opened");
        let mut out = vec![0u8; indices.len() * n];
        for (dst, &i) in out.chunks_exact_mut(n).zip(indices) {
            let chunk = i / chunk_images(n);
            if !self.checked[level][chunk].load(Ordering::Relaxed) {
                self.check(level, chunk)?;
            }
            self.file
                .read_exact_at(dst, start + (i * n) as u64)
                .with_context(|| format!("cannot read {}", self.info.path.display()))?;
        }
        Ok(out)
    }

    /// Reads chunk `chunk` of `level` whole and compares its CRC.
    fn check(&self, level: usize, chunk: usize) -> Result<()> {
        let n = self.layout.image_bytes(level);
        let per = chunk_images(n);
        let (first, end) = (chunk * per, ((chunk + 1) * per).min(self.count));
        let mut bytes = vec![0u8; (end - first) * n];
        let at = self.layout.offset(level).expect("checked when opened") + (first * n) as u64;
        self.file
            .read_exact_at(&mut bytes, at)
            .with_context(|| format!("cannot read {}", self.info.path.display()))?;
        if crc32fast::hash(&bytes) != self.crcs[level][chunk] {
            let removed = self.cached && std::fs::remove_file(&self.info.path).is_ok();
            return Err(Damaged {
                path: self.info.path.clone(),
                res: 4 << level,
                first,
                last: end - 1,
                removed,
            }
            .into());
        }
        self.checked[level][chunk].store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads a u64 or a string from the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (n <= self.0.len()).then(|| {
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            head
        })
    }

    fn num(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let n = self.num()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Opens the prepared file `path`: refused when it is not one, was written by another format
/// version, or its length is not the one its header and tail give. `cached`: a cache entry, which
/// is removed when a chunk is found damaged.
pub(crate) fn open(path: &Path, cached: bool) -> Result<Dataset> {
    let shown = path.display();
    let file = open_regular(path)?;
    let len = file.metadata().with_context(|| format!("cannot read {shown}"))?.len();
    let mut head = [0u8; HEADER];
    file.read_exact_at(&mut head, 0)
        .map_err(|_| anyhow::anyhow!("{shown} is not a prepared dataset: it is {len} bytes, shorter than a header"))?;
    ensure!(
        head.starts_with(MAGIC),
        "{shown} is not a prepared dataset (it does not start with {:?}); prepare one with pggan dataset prepare",
        String::from_utf8_lossy(&MAGIC[..7])
    );
    let mut f = Fields(&head[MAGIC.len()..]);
    let version = f.u32().expect("the header's size");
    ensure!(
        version == FORMAT_VERSION,
        "{shown} was prepared in format version {version}; this pggan reads version {FORMAT_VERSION}: \
         prepare it again"
    );
    ensure!(
        crc32fast::hash(&head[..60]).to_le_bytes() == head[60..],
        "{shown} is damaged: its header does not match its CRC-32; prepare it again"
    );
    let (channels, res) = (f.u32().unwrap_or(0) as usize, f.u32().unwrap_or(0) as usize);
    let _ = f.u32();
    let (count, capacity, upscaled, tail) = (f.num(), f.num(), f.num(), f.num());
    let (Some(count), Some(capacity), Some(upscaled), Some(tail)) = (count, capacity, upscaled, tail) else {
        bail!("{shown} is damaged: its header gives sizes beyond this machine's");
    };
    ensure!(
        (channels == 1 || channels == 3)
            && res.is_power_of_two()
            && (4..=MAX_RES).contains(&res)
            && (1..=capacity).contains(&count)
            && upscaled <= count
            && (4..=MAX_TAIL).contains(&(tail as u64)),
        "{shown} is damaged: its header gives {count} of {capacity} images of {res}x{res} with {channels} channels \
         and a tail of {tail} bytes"
    );
    let layout = Layout {
        channels,
        res,
        capacity,
    };
    let data_end = layout.offset(layout.levels()).context("the header's sizes overflow")?;
    let want = data_end
        .checked_add(tail as u64)
        .context("the header's sizes overflow")?;
    ensure!(
        len == want,
        "{shown} is {len} bytes, but its header gives {want} ({count} images of {res}x{res} with {channels} \
         channels): the file was cut short or added to; prepare it again"
    );
    let mut tail_bytes = vec![0u8; tail];
    file.read_exact_at(&mut tail_bytes, data_end)
        .with_context(|| format!("cannot read {shown}"))?;
    let (body, crc) = tail_bytes.split_at(tail - 4);
    ensure!(
        crc32fast::hash(body).to_le_bytes() == crc,
        "{shown} is damaged: its list of skipped files and checksums does not match its CRC-32; prepare it again"
    );
    let parsed = (|| {
        let mut f = Fields(body);
        let (name, key, transform) = (f.string()?, f.string()?, f.string()?);
        let skipped = (0..f.num()?)
            .map(|_| {
                Some(Skipped {
                    path: f.string()?,
                    reason: f.string()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let crcs = (0..layout.levels())
            .map(|l| {
                (0..layout.chunks(l, count))
                    .map(|_| f.u32())
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        f.0.is_empty().then_some((name, key, transform, skipped, crcs))
    })();
    let Some((name, key, transform, skipped, crcs)) = parsed else {
        bail!("{shown} is damaged: its tail does not hold what its header says");
    };
    let checked = crcs
        .iter()
        .map(|c| c.iter().map(|_| AtomicBool::new(false)).collect())
        .collect();
    let pack = Pack {
        file,
        layout,
        count,
        info: PackInfo {
            path: path.to_path_buf(),
            bytes: len,
            key,
            transform,
        },
        crcs,
        checked,
        cached,
    };
    let tally = Tally {
        used: count,
        upscaled,
        skipped,
    };
    Dataset::new(&name, tally, Store::File(Arc::new(pack)))
}

/// A prepared file being written: a temporary file beside its destination, sized for `capacity`
/// images up front (sparse), each image's levels written at their slots as it is pushed, renamed
/// into place by [`finish`](Writer::finish); removed if dropped before.
pub(crate) struct Writer {
    dest: PathBuf,
    tmp: PathBuf,
    file: File,
    layout: Layout,
    count: usize,
    /// Each level's CRC of its current chunk, and of those done.
    running: Vec<crc32fast::Hasher>,
    crcs: Vec<Vec<u32>>,
    done: bool,
}

impl Writer {
    pub(crate) fn create(dest: &Path, channels: usize, res: usize, capacity: usize) -> Result<Writer> {
        let layout = Layout {
            channels,
            res,
            capacity,
        };
        let end = layout.offset(layout.levels()).context("the dataset is too large")?;
        let (tmp, file) = create_temporary(dest)?;
        let w = Writer {
            dest: dest.to_path_buf(),
            tmp,
            file,
            layout,
            count: 0,
            running: vec![crc32fast::Hasher::new(); layout.levels()],
            crcs: vec![Vec::new(); layout.levels()],
            done: false,
        };
        w.file.set_len(end).map_err(|e| w.failed(e))?;
        Ok(w)
    }

    fn failed(&self, e: std::io::Error) -> anyhow::Error {
        anyhow::anyhow!("cannot write {}: {e}", self.dest.display())
    }

    /// Writes the tail and the header, then renames the file into place.
    pub(crate) fn finish(mut self, name: &str, key: &str, transform: &str, tally: &Tally) -> Result<()> {
        for (l, running) in self.running.iter_mut().enumerate() {
            if self.crcs[l].len() < self.layout.chunks(l, self.count) {
                self.crcs[l].push(std::mem::take(running).finalize());
            }
        }
        let mut tail = Vec::new();
        for s in [name, key, transform] {
            put_str(&mut tail, s);
        }
        tail.extend_from_slice(&(tally.skipped.len() as u64).to_le_bytes());
        for s in &tally.skipped {
            put_str(&mut tail, &s.path);
            put_str(&mut tail, &s.reason);
        }
        for crc in self.crcs.iter().flatten() {
            tail.extend_from_slice(&crc.to_le_bytes());
        }
        tail.extend_from_slice(&crc32fast::hash(&tail).to_le_bytes());
        let l = &self.layout;
        let mut head = MAGIC.to_vec();
        for v in [FORMAT_VERSION, l.channels as u32, l.res as u32, 0] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.count, l.capacity, tally.upscaled, tail.len()] {
            head.extend_from_slice(&(v as u64).to_le_bytes());
        }
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&crc32fast::hash(&head).to_le_bytes());
        let end = l.offset(l.levels()).expect("checked when created");
        self.file
            .write_all_at(&tail, end)
            .and_then(|()| self.file.write_all_at(&head, 0))
            .and_then(|()| self.file.sync_all())
            .and_then(|()| std::fs::rename(&self.tmp, &self.dest))
            .map_err(|e| self.failed(e))?;
        self.done = true;
        Ok(())
    }
}

impl Sink for Writer {
    fn push(&mut self, image: &[u8]) -> Result<()> {
        let l = self.layout;
        ensure!(
            self.count < l.capacity && image.len() == l.image_bytes(l.levels() - 1),
            "image {} of {} bytes does not fit a file of {} images of {} bytes",
            self.count,
            image.len(),
            l.capacity,
            l.image_bytes(l.levels() - 1)
        );
        for (level, pixels) in pyramid(image, l.res).into_iter().enumerate() {
            let at = l.offset(level).expect("checked when created") + (self.count * pixels.len()) as u64;
            self.file.write_all_at(&pixels, at).map_err(|e| self.failed(e))?;
            self.running[level].update(&pixels);
            if (self.count + 1).is_multiple_of(chunk_images(pixels.len())) {
                let crc = std::mem::take(&mut self.running[level]).finalize();
                self.crcs[level].push(crc);
            }
        }
        self.count += 1;
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `data` (every image, its lists) as a prepared file at `path`.
pub(crate) fn write(path: &Path, data: &Dataset, key: &str, transform: &str) -> Result<()> {
    let (res, count) = (data.max_res(), data.count());
    let mut w = Writer::create(path, data.channels(), res, count)?;
    // A few images at a time, so that a file-backed set is never read whole.
    for first in (0..count).step_by(256) {
        let images = data.images(res, &(first..(first + 256).min(count)).collect::<Vec<_>>())?;
        for i in 0..images.count {
            w.push(images.image(i))?;
        }
    }
    let tally = Tally {
        used: count,
        upscaled: data.upscaled,
        skipped: data.skipped.clone(),
    };
    w.finish(&data.name, key, transform, &tally)
}
