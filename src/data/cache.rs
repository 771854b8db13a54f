//! The on-disk cache of prepared datasets: one prepared file per key (`pack`), its header, lists and
//! length checked when it is opened, so a cut or foreign file is rebuilt instead of trusted (a
//! damaged chunk is found when it is first read, and the entry removed then).

use super::{pack, Dataset};
use crate::files::Lock;
use anyhow::{anyhow, ensure, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Returns the dataset cached under `key` in `cache_dir` when that file is intact and was written for
/// this key and format version; otherwise runs `build` and stores its result there (atomically:
/// a temporary file renamed into place). One process builds a key at a time: another that needs
/// it meanwhile waits on the key's lock file, then reads what the first stored. A cache that cannot
/// be written (its folder, or the file: a full disk) is reported on stderr and the built dataset is
/// returned. With no `cache_dir`, just runs
/// `build`. `key` becomes the file name `<key>.bin`, so it may hold only ASCII letters, digits, '-',
/// '_' and '.'; an entry replaces those whose key differs only after its last '-' (see [`Slot`]).
pub fn cached(cache_dir: Option<&Path>, key: &str, build: impl FnOnce() -> Result<Dataset>) -> Result<Dataset> {
    check_key(key)?;
    match cache_dir.map(|dir| lookup(dir, key)).transpose() {
        Ok(Some(Entry::Ready(dataset))) => Ok(dataset),
        Ok(Some(Entry::Build(slot))) => {
            let dataset = build()?;
            slot.fill(|path| pack::write(path, &dataset, key, "")).or_else(|e| {
                unwritable(&e);
                Ok(dataset)
            })
        }
        Ok(None) => build(),
        Err(e) => {
            unwritable(&e);
            build()
        }
    }
}

/// Reports a cache that cannot be used; the dataset is kept in memory instead.
pub(crate) fn unwritable(e: &anyhow::Error) {
    crate::errln!("warning: the dataset cache cannot be written ({e:#}); the images are kept in memory");
}

/// A cache entry: there, or to be built under its lock.
pub(crate) enum Entry {
    Ready(Dataset),
    Build(Slot),
}

/// Where an entry is to be built, its lock held until it is.
pub(crate) struct Slot {
    dir: PathBuf,
    key: String,
    path: PathBuf,
    _lock: Lock,
}

fn check_key(key: &str) -> Result<()> {
    ensure!(
        !key.is_empty() && !key.starts_with('.') && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "the dataset cache key {key:?} must be a plain file name (ASCII letters, digits, '-', '_', '.')"
    );
    Ok(())
}

/// The intact entry of `key`, or its slot with the key's lock taken (waiting while another process
/// builds it, then taking what it stored). Errors when the cache folder cannot be created or
/// locked. `key` is a plain name ([`check_key`]).
pub(crate) fn lookup(dir: &Path, key: &str) -> Result<Entry> {
    let path = dir.join(format!("{key}.bin"));
    let load = || {
        pack::open(&path, true)
            .ok()
            .filter(|d| d.file().is_some_and(|f| f.key == key))
    };
    if let Some(dataset) = load() {
        return Ok(Entry::Ready(dataset));
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = Lock::wait(&dir.join(format!("{key}.lock")), |holder| {
        crate::errln!(
            "waiting for {holder}, which is preparing the dataset {}",
            path.display()
        )
    })?;
    if let Some(dataset) = load() {
        return Ok(Entry::Ready(dataset));
    }
    Ok(Entry::Build(Slot {
        dir: dir.to_path_buf(),
        key: key.to_string(),
        path,
        _lock: lock,
    }))
}

impl Slot {
    /// Runs `write(path)`, which writes the entry's prepared file, and opens it; then removes the
    /// entries it replaces (the same key up to its last '-': the same folder and shape, changed) and
    /// prints the cache's size.
    pub(crate) fn fill(self, write: impl FnOnce(&Path) -> Result<()>) -> Result<Dataset> {
        write(&self.path)?;
        let dataset = pack::open(&self.path, true)?;
        let family = &self.key[..self.key.rfind('-').map_or(0, |i| i + 1)];
        let (mut files, mut bytes) = (0, 0);
        for entry in fs::read_dir(&self.dir).map_err(|e| anyhow!("cannot list {}: {e}", self.dir.display()))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".bin") else { continue };
            if !family.is_empty() && key != self.key && key.starts_with(family) && fs::remove_file(entry.path()).is_ok()
            {
                crate::errln!("removed the cache entry {name}, which this one replaces");
                continue;
            }
            files += 1;
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
        crate::errln!(
            "dataset cache {}: {files} prepared sets, {:.1} MB",
            self.dir.display(),
            bytes as f64 / 1e6
        );
        Ok(dataset)
    }
}
