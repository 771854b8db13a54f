//! Image folders: every regular file below a folder, decoded in parallel, cached by content stamp.

use super::cache::{lookup, unwritable, Entry};
use super::pack::Writer;
use super::prepare::{prepare_from, Transform};
use super::{check_shape, par_map, Dataset, Levels, Sink, Skipped, Tally, FORMAT_VERSION};
use anyhow::{bail, ensure, Context, Result};
use std::fs;
use std::io::{BufReader, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

struct File {
    /// Path relative to the folder, '/'-separated: what the user sees in the skipped list.
    rel: String,
    path: PathBuf,
    size: u64,
    /// Modification time in nanoseconds since the epoch (0 where the system gives none).
    mtime: u128,
}

/// Appends every regular file below `dir`, depth first in name order, skipping names that start
/// with '.'. Links to files are followed; links to folders are not (they could loop). A subfolder
/// that cannot be listed is appended to `unlisted` with why, to be skipped as an unreadable file is.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<File>, unlisted: &mut Vec<(String, anyhow::Error)>) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list the folder {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot list the folder {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let (path, rel) = (entry.path(), format!("{prefix}{name}"));
        let linked = entry.file_type().is_ok_and(|t| t.is_symlink());
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() && !linked => {
                let rel = format!("{rel}/");
                if let Err(e) = walk(&path, &rel, files, unlisted) {
                    unlisted.push((rel, e));
                }
            }
            Ok(meta) if meta.is_file() => files.push(File {
                rel,
                path,
                size: meta.len(),
                mtime: meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
            }),
            // A dangling link: listed so that reading it reports why it was skipped.
            Err(_) if linked => files.push(File {
                rel,
                path,
                size: 0,
                mtime: 0,
            }),
            // Sockets, pipes, devices, links to folders: not images.
            _ => {}
        }
    }
    Ok(())
}

/// 64-bit FNV-1a: a stable hash (unlike std's) for cache file names.
fn fnv1a(parts: impl IntoIterator<Item = String>) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A folder's files, listed.
struct Listing {
    /// Where the files came from, for messages.
    source: String,
    /// The folder's own name: the dataset's.
    name: String,
    /// Its canonical path.
    root: PathBuf,
    files: Vec<File>,
    /// Subfolders that could not be listed, and why.
    unlisted: Vec<(String, anyhow::Error)>,
}

impl Listing {
    fn new(dir: &Path) -> Result<Listing> {
        let meta = match fs::metadata(dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => bail!("the image folder {} does not exist", dir.display()),
            other => other.with_context(|| format!("cannot read the image folder {}", dir.display()))?,
        };
        ensure!(
            meta.is_dir(),
            "{} is not a folder; give a folder of images",
            dir.display()
        );
        let root = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve the folder {}", dir.display()))?;
        let (mut files, mut unlisted) = (Vec::new(), Vec::new());
        walk(&root, "", &mut files, &mut unlisted)?;
        ensure!(
            !files.is_empty() || !unlisted.is_empty(),
            "the image folder {} holds no files (names starting with '.' are ignored)",
            dir.display()
        );
        Ok(Listing {
            source: format!("the image folder {}", dir.display()),
            name: root
                .file_name()
                .map_or_else(|| root.to_string_lossy(), |n| n.to_string_lossy())
                .into_owned(),
            root,
            files,
            unlisted,
        })
    }

    /// Decodes every file on every core, a window of them at a time, and adds their images to
    /// `sink` in path order: only a window's images are held at once, whatever the folder's size.
    fn prepare(
        self,
        sink: &mut dyn Sink,
        channels: usize,
        res: usize,
        transform: Transform,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Tally> {
        let total = self.files.len();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // About 8 MiB of prepared images (a few at the largest sizes), and work for every core.
        let window = ((8 << 20) / (channels * res * res)).clamp(2 * cores, 4096);
        let mut tally = Tally::default();
        for (i, files) in self.files.chunks(window).enumerate() {
            let prepared = par_map(
                files,
                |f| {
                    let file = fs::File::open(&f.path).context("cannot read the file")?;
                    let size = file.metadata().context("cannot read the file")?.len();
                    prepare_from(BufReader::new(file), size, channels, res, transform)
                },
                &mut |done, _| progress(i * window + done, total),
            );
            for (f, result) in files.iter().zip(prepared) {
                tally.add(sink, f.rel.clone(), result)?;
            }
        }
        tally.skipped.extend(self.unlisted.into_iter().map(|(path, e)| Skipped {
            path,
            reason: format!("{e:#}"),
        }));
        tally.check(&self.source)?;
        Ok(tally)
    }
}

/// Every image below `dir` (recursively, in path order; names starting with '.' are ignored),
/// decoded on every core as [`super::prepare`] does, with `channels` (1 or 3) and resolution `res`
/// (a power of two of at least 4). A file that fails to read or decode, or a subfolder that cannot
/// be listed, is listed in `skipped` (files in path order, then folders).
/// `progress(done, total)` is called as files finish (once with total, total on a cache hit).
/// With a `cache_dir`, the prepared set is written there as it is prepared, under a key that covers
/// the folder's path, every file's relative path, size and modification time, `channels`, `res` and
/// the format version, so it is reused while the folder is unchanged; the entry of the folder as
/// it was before a change is removed; a cache folder that cannot be created or locked is reported
/// on stderr and the set prepared in memory, while a cache file that cannot be written (a full disk)
/// is an error naming it (preparing again in memory would decode every image twice). Errors when
/// `dir` is missing, not a folder, empty, or holds no decodable image (with how many files were
/// skipped and the first reasons).
pub fn folder(
    dir: &Path,
    channels: usize,
    res: usize,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Dataset> {
    check_shape(channels, res)?;
    let list = Listing::new(dir)?;
    let shape = [
        format!("pggan folder v{FORMAT_VERSION}"),
        list.root.to_string_lossy().into_owned(),
        format!("{channels} {res}"),
    ];
    let contents = list
        .files
        .iter()
        .map(|f| format!("{}\0{}\0{}", f.rel, f.size, f.mtime))
        .chain(list.unlisted.iter().map(|(rel, _)| format!("{rel}\0unlisted")));
    // The folder and shape, then its contents: a changed folder's entry replaces the old one.
    let key = format!(
        "folder-{:016x}-{:016x}",
        fnv1a(shape.clone()),
        fnv1a(shape.into_iter().chain(contents))
    );
    let (name, total) = (list.name.clone(), list.files.len());
    let transform = Transform::CenterCrop;
    let build = |sink: &mut dyn Sink| list.prepare(sink, channels, res, transform, progress);
    match cache_dir.map(|dir| lookup(dir, &key)).transpose() {
        Ok(Some(Entry::Ready(dataset))) => {
            progress(total, total);
            Ok(dataset)
        }
        Ok(Some(Entry::Build(slot))) => slot.fill(|path| {
            let mut file = Writer::create(path, channels, res, total)?;
            let tally = build(&mut file)?;
            file.finish(&name, &key, transform.name(), &tally)
        }),
        cache => {
            if let Err(e) = cache {
                unwritable(&e);
            }
            let mut levels = Levels::new(channels, res);
            let tally = build(&mut levels)?;
            levels.finish(&name, tally)
        }
    }
}

/// Prepares every image below `dir` as [`folder`] does, made square by `transform`, into the
/// prepared file `dest` (written as the images are decoded, then renamed into place), and opens it.
pub fn prepare_folder(
    dir: &Path,
    dest: &Path,
    channels: usize,
    res: usize,
    transform: Transform,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Dataset> {
    check_shape(channels, res)?;
    let list = Listing::new(dir)?;
    let name = list.name.clone();
    let mut file = Writer::create(dest, channels, res, list.files.len())?;
    let tally = list.prepare(&mut file, channels, res, transform, progress)?;
    file.finish(&name, "", transform.name(), &tally)?;
    Dataset::open(dest)
}
