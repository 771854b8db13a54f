//! Files as the native build writes and reads them, safe against a careless or hostile neighbour:
//! atomic writes through a temporary file created exclusively (a link planted at its name is
//! never followed), logs appended without following a link, advisory locks that the kernel
//! releases when their process dies, and reads that take only regular files and only as many bytes
//! as the caller expects.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, ensure, Context, Result};

/// Writes `bytes` to `path` atomically: a new temporary file beside it, flushed, then renamed over
/// `path`, so a crash leaves either the old file or the new one, never half of one. The temporary
/// file's name is unique to this process and call, and it is created exclusively: a file or link
/// already at that name is left alone and the next name is tried. A failed write (a full disk)
/// removes its temporary file, leaves `path` as it was and names it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let failed = |e: io::Error| anyhow!("cannot write {}: {e}", path.display());
    let (tmp, mut file) = create_temporary(path)?;
    let written = file
        .write_all(bytes)
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })
}

/// A new temporary file beside `path`, to be renamed over it once written: its name is unique to
/// this process and call, and it is created exclusively (a file or link already at that name is
/// left alone and the next name is tried).
pub fn create_temporary(path: &Path) -> Result<(PathBuf, File)> {
    loop {
        let tmp = temporary_name(path);
        match OpenOptions::new().read(true).write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => bail!("cannot write {}: {e}", path.display()),
        }
    }
}

/// `path.<process id>-<n>.tmp`, n counting this process's temporary files.
fn temporary_name(path: &Path) -> PathBuf {
    static MADE: AtomicU64 = AtomicU64::new(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    ));
    PathBuf::from(name)
}

/// open(2) flags, on unix: a symbolic link at the path is an error (ELOOP) instead of followed; a
/// FIFO opens without waiting for a writer. Elsewhere none (0).
#[cfg(unix)]
const NO_FOLLOW: i32 = libc::O_NOFOLLOW;
#[cfg(unix)]
const NON_BLOCKING: i32 = libc::O_NONBLOCK;
#[cfg(not(unix))]
const NO_FOLLOW: i32 = 0;
#[cfg(not(unix))]
const NON_BLOCKING: i32 = 0;

/// `options` with open(2) `flags` added (on unix; elsewhere the flags are all 0).
fn with_flags(options: &mut OpenOptions, flags: i32) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(options, flags);
    #[cfg(not(unix))]
    let _ = flags;
    options
}

/// Opens `path` for appending (created if missing); a symbolic link at `path` is refused rather
/// than followed.
pub fn open_append(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    with_flags(&mut options, NO_FOLLOW).open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return anyhow!(
                "{} is a symbolic link, which a log is never written through",
                path.display()
            );
        }
        anyhow!("cannot open {} for appending: {e}", path.display())
    })
}

/// Opens `path` for reading if it is a regular file: a FIFO, a device (`/dev/zero`) or a folder is
/// refused (natively a FIFO is opened without blocking, then refused).
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    let file = with_flags(&mut options, NON_BLOCKING)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        meta.is_file(),
        "{} is not a regular file (a folder, device or pipe), so it is not read",
        path.display()
    );
    Ok(file)
}

/// The whole of the regular file `path`, refused unread when it is over `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    ensure!(
        len <= limit,
        "{} is {len} bytes, over the {limit} bytes read from such a file",
        path.display()
    );
    read_exactly(file, len).with_context(|| format!("cannot read {}", path.display()))
}

/// Exactly `len` bytes from `input` (no more, however long it is); an error when it ends before.
pub fn read_exactly(input: impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    input.take(len).read_to_end(&mut bytes)?;
    match bytes.len() as u64 == len {
        true => Ok(bytes),
        false => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("it ends after {} of {len} bytes", bytes.len()),
        )),
    }
}

/// An exclusive advisory lock on a file (`flock` on unix), held until it is dropped or its process
/// ends, however it ends: the kernel releases it, so no stale lock survives `kill -9`. The file
/// holds the holder's process id, for the message of whoever finds it taken.
pub struct Lock {
    // Closing the file releases the lock.
    _file: File,
}

impl Lock {
    /// Takes the lock at `path` (the file is created if missing, never through a link), or `Err`
    /// with the holder's process id when another holds it.
    pub fn try_take(path: &Path) -> Result<std::result::Result<Lock, String>> {
        let mut file = Lock::open(path)?;
        match file.try_lock() {
            Ok(()) => {
                Lock::record(&mut file, path)?;
                Ok(Ok(Lock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(Err(Lock::holder(path))),
            Err(std::fs::TryLockError::Error(e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
        }
    }

    /// Takes the lock at `path`, waiting while another process holds it; `waiting(holder)` is
    /// called once before the wait.
    pub fn wait(path: &Path, waiting: impl FnOnce(&str)) -> Result<Lock> {
        if let Ok(lock) = Lock::try_take(path)? {
            return Ok(lock);
        }
        waiting(&Lock::holder(path));
        let mut file = Lock::open(path)?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Lock::record(&mut file, path)?;
        Ok(Lock { _file: file })
    }

    fn open(path: &Path) -> Result<File> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        with_flags(&mut options, NO_FOLLOW)
            .open(path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))
    }

    fn record(file: &mut File, path: &Path) -> Result<()> {
        file.set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write the lock file {}", path.display()))
    }

    /// "process 1234", as its lock file says (the file may be mid-write: then just "another process").
    fn holder(path: &Path) -> String {
        match std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            Some(pid) => format!("process {pid}"),
            None => "another process".to_string(),
        }
    }
}

/// Takes the lock of the run folder `dir` for the life of a run; refused, naming the holder, while
/// another process trains in it. The temporary files of a run killed in the middle of a write are
/// removed then, when no other process can be writing them.
pub fn lock_run(dir: &Path) -> Result<Lock> {
    match Lock::try_take(&dir.join(RUN_LOCK))? {
        Ok(lock) => {
            for folder in [dir.to_path_buf(), dir.join("samples")] {
                remove_temporaries(&folder);
            }
            Ok(lock)
        }
        Err(holder) => bail!(
            "{} is in use: {holder} is training in it (one run at a time per folder; stop that one \
             first, or resume a copy of the checkpoint, which starts a new run)",
            dir.display()
        ),
    }
}

/// Removes the regular files named as [`write_atomic`]'s temporary files from `dir` (a link or
/// anything else is left alone). Best effort: a folder that cannot be listed is no error.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let temporary = name
            .to_str()
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, id)| id.split_once('-'))
            .is_some_and(|(pid, n)| {
                [pid, n]
                    .iter()
                    .all(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            });
        if temporary && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The lock file of a run folder.
pub const RUN_LOCK: &str = "run.lock";
