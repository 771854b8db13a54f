//! The native run around the [`Driver`]: a run folder with the configuration, logs, sample grids,
//! checkpoints and snapshots, a progress bar (or a line per tick where stderr is not a terminal),
//! and a stop flag (Ctrl-C, SIGTERM, SIGHUP) honoured between steps after writing a checkpoint.
//! [`RunFolder`] is the driver's [`Sink`] here.
//!
//! A run folder holds `config.json`, `log.jsonl` (one line per tick), `log.txt` (the same ticks and
//! every event as plain text, each line after its UTC time, each run's first lines the version,
//! command line and adapter), `samples/reals.png`, `samples/fakes-<images>.png` (the EMA generator
//! on fixed latents), `checkpoint.safetensors`, `snapshot-<images>.safetensors` and, unless turned
//! off, TensorBoard's `events.out.tfevents.*` ([`crate::tensorboard`]).
//!
//! Nothing non-finite is ever saved: the losses are checked at every read-back and every tensor of
//! the model before every checkpoint; on the first NaN or infinity the run stops with an error and
//! the last good checkpoint and snapshots stay as they were.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pollster::block_on;

use super::config::TrainConfig;
use super::driver::{Driver, Outcome, Progress, Save, Sink, TickLine};
use super::trainer::Trainer;
use crate::data::{Damaged, Images};
use crate::files::{open_append, write_atomic};
use crate::samples::grid;
use crate::tensorboard::EventWriter;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const CONFIG: &str = "config.json";
pub const LOG: &str = "log.jsonl";
pub const LOG_TEXT: &str = "log.txt";

pub struct RunOptions<'a> {
    /// Sample grids are `grid` x `grid` images.
    pub grid: usize,
    /// Set (by Ctrl-C, SIGTERM or SIGHUP) to stop after the current step with a checkpoint.
    pub stop: &'a AtomicBool,
    /// Draw the progress bar.
    pub progress: bool,
    /// Print each tick's line to stderr (where there is no progress bar to show it).
    pub tick_lines: bool,
    /// Also write each tick as TensorBoard events into the run folder.
    pub tensorboard: bool,
}

/// A new folder `out/NNN-<data>-<res>`, numbered one past the highest number there (three digits
/// at least, more after 999).
pub fn new_run_dir(out: &Path, cfg: &TrainConfig) -> Result<PathBuf> {
    fs::create_dir_all(out).with_context(|| format!("cannot create the runs folder {}", out.display()))?;
    // A prepared file's name without its extension (`photos.pggan`: `photos`).
    let data = Path::new(&cfg.data);
    let name = match data.is_file() {
        true => data.file_stem(),
        false => data.file_name(),
    };
    let data = name
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        })
        .unwrap_or_else(|| "data".into());
    let number = |name: &str| -> Option<usize> {
        let digits = name.split('-').next()?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    // Two runs started at once may pick the same number: the one whose folder already exists
    // counts again (the other has made the highest number one more).
    loop {
        let next = fs::read_dir(out)
            .with_context(|| format!("cannot list the runs folder {}", out.display()))?
            .filter_map(|e| number(e.ok()?.file_name().to_str()?))
            .max()
            .map_or(0, |n| n + 1);
        let dir = out.join(format!("{next:03}-{data}-{}", cfg.net.max_res));
        match fs::create_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            created => {
                created.with_context(|| format!("cannot create {}", dir.display()))?;
                return Ok(dir);
            }
        }
    }
}

/// Fails unless files can be created in `dir` (created if missing): checked before a run decodes
/// its dataset and opens the GPU, not after.
pub fn check_writable(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let probe = dir.join(format!(".pggan-write-test-{}", std::process::id()));
    // A new file: whatever holds the name already (a link) is neither followed nor removed.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    fs::remove_file(&probe).with_context(|| format!("cannot remove {}", probe.display()))
}

/// `log.txt` of a run folder, and stderr where asked: the lines a person reads.
struct TextLog {
    file: fs::File,
    echo: bool,
}

impl TextLog {
    fn open(dir: &Path, echo: bool) -> Result<TextLog> {
        Ok(TextLog {
            file: open_append(&dir.join(LOG_TEXT))?,
            echo,
        })
    }

    fn line(&mut self, bar: &ProgressBar, text: &str) -> Result<()> {
        if self.echo {
            crate::errln!("{text}");
        } else if !bar.is_hidden() {
            bar.println(text);
        }
        self.keep(text)
    }

    /// A line for the log only (one the command has printed already), after the time.
    fn keep(&mut self, text: &str) -> Result<()> {
        let now = utc_timestamp(SystemTime::now());
        writeln!(self.file, "{now} {text}").map_err(|e| LogFailed(format!("cannot write {LOG_TEXT}: {e}")).into())
    }
}

/// A log that cannot be written (a full disk): the run stops, but writes its checkpoint first.
#[derive(Debug)]
struct LogFailed(String);

impl std::fmt::Display for LogFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogFailed {}

/// `2026-12-07T07:00:00Z`: the time in UTC to the second, as log.txt's lines begin.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, s) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`), in eras of 400
    // years counted from 0000-03-01, so that the leap day ends each year.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// "pggan 0.1.0 (commit 1a2b3c4)"; the commit where the binary was built from a git checkout.
fn version() -> String {
    let version = format!("pggan {}", env!("CARGO_PKG_VERSION"));
    match option_env!("PGGAN_COMMIT") {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    }
}

/// The process's command line, each argument quoted where a shell would need it.
fn command_line() -> String {
    let plain = |a: &str| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    };
    let quoted: Vec<String> = std::env::args()
        .map(|a| match plain(&a) {
            true => a,
            false => format!("'{}'", a.replace('\'', r"'\''")),
        })
        .collect();
    quoted.join(" ")
}

/// Trains until the schedule ends or `opts.stop` is set; a checkpoint is written in either case.
/// `origin` is a line for the log about where the run comes from. An error ends the run with its
/// message in `log.txt` too.
pub fn train(driver: &mut Driver, dir: &Path, opts: &RunOptions, origin: &str) -> Result<Outcome> {
    let bar = progress_bar(opts.progress);
    let mut text = TextLog::open(dir, opts.tick_lines)?;
    // What ran, how and where, before anything else: what one needs to reproduce or compare a run.
    text.keep(&version())?;
    text.keep(&format!("command: {}", command_line()))?;
    text.keep(&format!("adapter: {}", driver.trainer().gpu().describe()))?;
    text.line(&bar, origin)?;
    // Which kernels trained, and why not the cooperative ones where they were refused.
    text.keep(&format!("precision: {}", driver.trainer().layers().describe()))?;
    let stop = || opts.stop.load(Ordering::SeqCst);
    let result = RunFolder::create(driver.trainer(), dir, opts, &bar, &mut text).and_then(|mut folder| {
        match block_on(driver.run(&mut folder, &stop)) {
            // Only the log or the dataset file failed: the model is good, so it is saved before the
            // run stops.
            Err(e) if e.is::<LogFailed>() || e.is::<Damaged>() => {
                Err(match block_on(driver.save(&mut folder, Save::Checkpoint)) {
                    Ok(()) => anyhow!("{e}; the run stopped after writing its checkpoint"),
                    Err(ck) => anyhow!("{e}; the checkpoint could not be written either: {ck:#}"),
                })
            }
            result => result,
        }
    });
    if let Err(e) = &result {
        bar.abandon();
        // The error itself is what the caller reports; a failure to log it adds nothing.
        let _ = text.keep(&format!("error: {e:#}"));
    }
    result
}

/// A run folder as the driver's sink: the logs, sample grids, TensorBoard events, checkpoints and
/// snapshots, and the progress bar.
pub struct RunFolder<'a> {
    dir: &'a Path,
    /// Sample grids are `grid` x `grid` images.
    grid: usize,
    max_res: usize,
    snapshots: usize,
    bar: &'a ProgressBar,
    text: &'a mut TextLog,
    log: fs::File,
    events: Option<EventWriter>,
}

impl<'a> RunFolder<'a> {
    /// Writes the configuration (and for a new run the first real images as a grid) and opens the
    /// logs.
    fn create(
        trainer: &Trainer,
        dir: &'a Path,
        opts: &RunOptions,
        bar: &'a ProgressBar,
        text: &'a mut TextLog,
    ) -> Result<RunFolder<'a>> {
        fs::create_dir_all(dir.join("samples")).with_context(|| format!("cannot write into {}", dir.display()))?;
        let cfg = trainer.cfg();
        write_atomic(&dir.join(CONFIG), serde_json::to_string_pretty(cfg)?.as_bytes())?;
        if trainer.state().steps == 0 {
            let data = trainer.data();
            let shown = (opts.grid * opts.grid).min(data.count());
            let first = data.images(cfg.net.max_res, &(0..shown).collect::<Vec<_>>())?;
            write_atomic(
                &dir.join("samples/reals.png"),
                &grid(&first, opts.grid, first.res)?.png()?,
            )?;
        }
        let log = open_append(&dir.join(LOG))?;
        let events = match opts.tensorboard {
            true => Some(EventWriter::create(dir)?),
            false => None,
        };
        Ok(RunFolder {
            dir,
            grid: opts.grid,
            max_res: cfg.net.max_res,
            snapshots: cfg.snapshots,
            bar,
            text,
            log,
            events,
        })
    }

    fn line(&mut self, text: &str) -> Result<()> {
        self.text.line(self.bar, text)
    }
}

impl Sink for RunFolder<'_> {
    fn reports(&self) -> bool {
        true
    }

    fn grid_images(&self) -> usize {
        self.grid * self.grid
    }

    fn saves(&self) -> bool {
        true
    }

    fn kept(&self) -> String {
        kept(self.dir)
    }

    fn progress(&mut self, progress: &Progress) {
        // The bar counts thousandths of the run; its message carries the figures.
        self.bar.set_position((progress.done * 1000.0) as u64);
        self.bar.set_message(progress.line());
    }

    fn busy(&mut self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    fn tick(&mut self, line: &TickLine, samples: Option<&Images>) -> Result<()> {
        writeln!(self.log, "{}", serde_json::to_string(line)?)
            .map_err(|e| LogFailed(format!("cannot write {LOG}: {e}")))?;
        self.line(&format!("tick {} {}", line.number, line.status))?;
        // A sample grid that cannot be written (a full disk) is reported, and the checkpoint is
        // still attempted: it matters more.
        let grid_png = match samples {
            Some(fakes) => grid(fakes, self.grid, self.max_res).and_then(|g| g.png()),
            None => Err(anyhow!("no samples")),
        };
        let png = self.dir.join(format!("samples/fakes-{:09}.png", line.images));
        let written = match &grid_png {
            Ok(bytes) => write_atomic(&png, bytes),
            Err(e) => Err(anyhow!("{e:#}")),
        };
        if let Err(e) = written {
            self.line(&format!("warning: no sample grid this tick: {e:#}"))?;
        }
        if let Some(events) = &mut self.events {
            let png = grid_png.as_deref().ok();
            if let Err(e) = events.tick(line.images, &serde_json::to_value(line)?, png) {
                self.line(&format!("warning: no TensorBoard events this tick: {e:#}"))?;
            }
        }
        Ok(())
    }

    /// Writes the checkpoint, and for a snapshot a copy beside it, pruned to the newest
    /// `snapshots`.
    fn save(&mut self, bytes: &[u8], save: Save, images: u64) -> Result<()> {
        write_atomic(&self.dir.join(CHECKPOINT), bytes)?;
        if save == Save::Snapshot {
            let name = format!("snapshot-{images:09}.safetensors");
            write_atomic(&self.dir.join(&name), bytes)?;
            self.line(&format!("snapshot {name}"))?;
            prune_snapshots(self.dir, self.snapshots)?;
        }
        Ok(())
    }

    fn stopping(&mut self) {
        self.bar.abandon_with_message("interrupted: writing a checkpoint");
    }

    fn ended(&mut self, outcome: &Outcome, at: &str) -> Result<()> {
        match outcome {
            Outcome::Finished => {
                self.line(&format!("finished at {at}"))?;
                self.bar.finish_with_message("done");
            }
            Outcome::Interrupted => self.line(&format!("stopped by a signal at {at}"))?,
        }
        Ok(())
    }
}

/// What a run that stops on an error leaves: nothing saved after it, the last checkpoint as it was.
fn kept(dir: &Path) -> String {
    match dir.join(CHECKPOINT).exists() {
        true => format!(
            "Nothing was saved after it; the last checkpoint, {}, is kept as it was",
            dir.join(CHECKPOINT).display()
        ),
        false => "Nothing was saved; the run has no earlier checkpoint".to_string(),
    }
}

/// Removes all but the newest `keep` snapshots (0 keeps all); their names sort by images seen.
fn prune_snapshots(dir: &Path, keep: usize) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("snapshot-") && n.ends_with(".safetensors"))
        .collect();
    names.sort();
    for old in names.iter().take(names.len().saturating_sub(keep)) {
        fs::remove_file(dir.join(old)).with_context(|| format!("cannot remove the old snapshot {old}"))?;
    }
    Ok(())
}

/// The bar counts thousandths of the run; its message carries the figures.
fn progress_bar(show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(1000);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} {bar:24} {msg}").expect("a valid template"));
    bar
}
