//! The on-disk cache of prepared datasets: one file per key holding every level and the skipped
//! list, checked by a CRC-32 so a damaged or foreign file is rebuilt instead of trusted.

use super::{Dataset, Images, Skipped, FORMAT_VERSION};
use crate::files::{read_regular, write_atomic, Lock};
use anyhow::{anyhow, ensure, Context, Result};
use std::fs;
use std::path::Path;

const MAGIC: &[u8; 8] = b"PGGANDS\0";

/// Returns the dataset cached under `key` in `cache_dir` when that file is intact and was written for
/// this key and format version; otherwise runs `build` and stores its result there (atomically:
/// a temporary file renamed into place). One process builds a key at a time: another that needs
/// it meanwhile waits on the key's lock file, then reads what the first stored. A cache that cannot
/// be written is reported on stderr and the built dataset is returned. With no `cache_dir`, just runs `build`. `key` becomes the file
/// name `<key>.bin`, so it may hold only ASCII letters, digits, '-', '_' and '.'.
pub fn cached(cache_dir: Option<&Path>, key: &str, build: impl FnOnce() -> Result<Dataset>) -> Result<Dataset> {
    let Some(dir) = cache_dir else {
        return build();
    };
    ensure!(
        !key.is_empty() && !key.starts_with('.') && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "the dataset cache key {key:?} must be a plain file name (ASCII letters, digits, '-', '_', '.')"
    );
    let path = dir.join(format!("{key}.bin"));
    let load = || read_regular(&path, u64::MAX).ok().and_then(|bytes| decode(&bytes, key));
    if let Some(dataset) = load() {
        return Ok(dataset);
    }
    // Without the lock (a cache folder that cannot be written) the dataset is built all the same.
    let lock = fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .and_then(|()| {
            Lock::wait(&dir.join(format!("{key}.lock")), |holder| {
                crate::errln!(
                    "waiting for {holder}, which is preparing the dataset {}",
                    path.display()
                )
            })
        });
    if let Some(dataset) = lock.is_ok().then(load).flatten() {
        return Ok(dataset);
    }
    let dataset = build()?;
    let stored = lock
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|_| write_atomic(&path, &encode(&dataset, key)));
    if let Err(e) = stored {
        crate::errln!(
            "warning: the dataset cache {} could not be written: {e:#}",
            path.display()
        );
    }
    Ok(dataset)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Layout: magic, version, key, name, channels, level count, image count, skipped (count, then path
/// and reason each), every level's pixels from 4x4 up, CRC-32 of all that. Integers little-endian
/// u64, strings as length + UTF-8.
fn encode(dataset: &Dataset, key: &str) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(FORMAT_VERSION as u64).to_le_bytes());
    put_str(&mut out, key);
    put_str(&mut out, &dataset.name);
    for n in [
        dataset.channels(),
        dataset.levels.len(),
        dataset.count(),
        dataset.skipped.len(),
    ] {
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    for s in &dataset.skipped {
        put_str(&mut out, &s.path);
        put_str(&mut out, &s.reason);
    }
    for level in &dataset.levels {
        out.extend_from_slice(&level.pixels);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        (n <= self.bytes.len()).then(|| {
            let (head, rest) = self.bytes.split_at(n);
            self.bytes = rest;
            head
        })
    }

    fn num(&mut self) -> Option<usize> {
        usize::try_from(u64::from_le_bytes(self.take(8)?.try_into().ok()?)).ok()
    }

    fn string(&mut self) -> Option<String> {
        let n = self.num()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The dataset in `bytes` if they are an intact cache file for `key` of this format version.
fn decode(bytes: &[u8], key: &str) -> Option<Dataset> {
    let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
    if crc32fast::hash(body).to_le_bytes() != crc || !body.starts_with(MAGIC) {
        return None;
    }
    let mut r = Reader {
        bytes: &body[MAGIC.len()..],
    };
    if r.num()? != FORMAT_VERSION as usize || r.string()? != key {
        return None;
    }
    let name = r.string()?;
    let (channels, levels, count, skipped) = (r.num()?, r.num()?, r.num()?, r.num()?);
    // 4 << 29 pixels a side is far beyond any image; the bound keeps the shift below from overflowing.
    if levels == 0 || levels > 30 || count == 0 {
        return None;
    }
    let skipped = (0..skipped)
        .map(|_| {
            Some(Skipped {
                path: r.string()?,
                reason: r.string()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let levels = (0..levels)
        .map(|i| {
            let res = 4usize << i;
            let n = count.checked_mul(channels)?.checked_mul(res)?.checked_mul(res)?;
            Images::new(count, channels, res, r.take(n)?.to_vec()).ok()
        })
        .collect::<Option<Vec<_>>>()?;
    r.bytes.is_empty().then_some(Dataset { name, levels, skipped })
}
