//! The native training loop around [`Trainer`]: a run folder with the configuration, logs, sample
//! grids, checkpoints and snapshots, a progress bar (or a line per tick where stderr is not a
//! terminal), and a stop flag (Ctrl-C, SIGTERM, SIGHUP) honoured between steps after writing a
//! checkpoint.
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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pollster::block_on;
use serde::Serialize;

use super::config::TrainConfig;
use super::cost::Cost;
use super::sample::sample_latents;
use super::state::HistoryPoint;
use super::trainer::{Stats, Trainer};
use crate::data::Images;
use crate::files::{open_append, write_atomic};
use crate::metrics::Swd;
use crate::samples::grid;
use crate::tensorboard::EventWriter;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const CONFIG: &str = "config.json";
pub const LOG: &str = "log.jsonl";
pub const LOG_TEXT: &str = "log.txt";

/// Steps between reading the losses back: keeps the queue of submitted steps short and the
/// progress bar current without waiting on the GPU after every step.
const SYNC_STEPS: u64 = 4;

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

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished,
    Interrupted,
}

/// One line of `log.jsonl`.
#[derive(Serialize)]
struct LogLine {
    kimg: f64,
    resolution: usize,
    phase: &'static str,
    alpha: f32,
    #[serde(flatten)]
    stats: Stats,
    images_per_second: f64,
    seconds: f64,
    steps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    swd: Option<Swd>,
}

impl LogLine {
    /// The line as a point of the run's history (saved in its checkpoints, for the page's plots).
    fn point(&self) -> HistoryPoint {
        HistoryPoint {
            kimg: self.kimg,
            d_loss: self.stats.d_loss,
            g_loss: self.stats.g_loss,
            penalty: self.stats.penalty,
            wasserstein: self.stats.wasserstein,
            swd: self.swd.as_ref().map(|s| s.average),
            resolution: self.resolution,
            alpha: self.alpha,
        }
    }
}

/// A new folder `out/NNN-<data>-<res>`, numbered one past the highest number there (three digits
/// at least, more after 999).
pub fn new_run_dir(out: &Path, cfg: &TrainConfig) -> Result<PathBuf> {
    fs::create_dir_all(out).with_context(|| format!("cannot create the runs folder {}", out.display()))?;
    let data = Path::new(&cfg.data)
        .file_name()
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
pub fn train(trainer: &mut Trainer, dir: &Path, opts: &RunOptions, origin: &str) -> Result<Outcome> {
    let bar = progress_bar(opts.progress);
    let mut text = TextLog::open(dir, opts.tick_lines)?;
    // What ran, how and where, before anything else: what one needs to reproduce or compare a run.
    text.keep(&version())?;
    text.keep(&format!("command: {}", command_line()))?;
    text.keep(&format!("adapter: {}", trainer.gpu.describe()))?;
    text.line(&bar, origin)?;
    // Which kernels trained, and why not the cooperative ones where they were refused.
    text.keep(&format!(
        "precision: {}",
        crate::ops::conv::describe_layers(&trainer.gpu)
    ))?;
    let result = match train_loop(trainer, dir, opts, &bar, &mut text) {
        // Only the log failed: the model is good, so it is saved before the run stops.
        Err(e) if e.is::<LogFailed>() => Err(match save_checkpoint(trainer, dir) {
            Ok(_) => anyhow!("{e}; the run stopped after writing its checkpoint"),
            Err(ck) => anyhow!("{e}; the checkpoint could not be written either: {ck:#}"),
        }),
        result => result,
    };
    if let Err(e) = &result {
        bar.abandon();
        // The error itself is what the caller reports; a failure to log it adds nothing.
        let _ = text.keep(&format!("error: {e:#}"));
    }
    result
}

fn train_loop(
    trainer: &mut Trainer,
    dir: &Path,
    opts: &RunOptions,
    bar: &ProgressBar,
    text: &mut TextLog,
) -> Result<Outcome> {
    fs::create_dir_all(dir.join("samples")).with_context(|| format!("cannot write into {}", dir.display()))?;
    write_atomic(
        &dir.join(CONFIG),
        serde_json::to_string_pretty(&trainer.cfg)?.as_bytes(),
    )?;
    let grid_count = opts.grid * opts.grid;
    if trainer.state.steps == 0 {
        let reals = trainer.data.at(trainer.cfg.net.max_res)?;
        let shown = grid_count.min(reals.count);
        let first = Images::new(
            shown,
            reals.channels,
            reals.res,
            reals.pixels[..shown * reals.image(0).len()].to_vec(),
        )?;
        write_atomic(
            &dir.join("samples/reals.png"),
            &grid(&first, opts.grid, reals.res)?.png()?,
        )?;
    }
    let mut log = open_append(&dir.join(LOG))?;
    let mut events = match opts.tensorboard {
        true => Some(EventWriter::create(dir)?),
        false => None,
    };
    let latents = sample_latents(&trainer.cfg, grid_count);
    let total = trainer.cfg.total_images();
    let cost = Cost::new(&trainer.cfg);
    let mut tick = Tick {
        start: Instant::now(),
        start_images: trainer.state.images,
    };
    let mut speed = Speed::new();
    let mut last = Instant::now();
    let mut stats: Option<Stats> = None;
    let mut saved = false;
    while !trainer.finished() {
        // A data-parallel run stops where every process learns of a request (`train::dist`).
        if trainer
            .stop_agreed()
            .unwrap_or_else(|| opts.stop.load(Ordering::SeqCst))
        {
            bar.abandon_with_message("interrupted: writing a checkpoint");
            // Every process compares its model with the others' before rank 0 saves it.
            block_on(trainer.check_replicas())?;
            save(trainer, dir, false, text, bar)?;
            text.line(bar, &format!("stopped by a signal at {}", at(trainer)))?;
            return Ok(Outcome::Interrupted);
        }
        let due = trainer.step()?;
        // The position the step used (the schedule is evaluated at its start).
        let pos = trainer.position();
        speed.work += cost.per_image(pos.level) * trainer.cfg.minibatch(pos.res()) as f64;
        saved = false;
        if trainer.state.steps.is_multiple_of(SYNC_STEPS) || due.tick.is_some() {
            let s = match due.tick {
                // At a tick every process of a data-parallel run compares its model with the
                // others', and the losses are averaged over them (each holds its share's): the
                // whole minibatch's, for the log and the history.
                Some(_) => {
                    block_on(trainer.check_replicas())?;
                    block_on(trainer.mean_stats())?
                }
                None => block_on(trainer.stats())?,
            };
            if let Some(what) = s.nonfinite() {
                bail!("{}. {}", trainer.diverged(what), kept(dir));
            }
            stats = Some(s);
            speed.sync();
        }
        let now = Instant::now();
        trainer.state.seconds += (now - last).as_secs_f64();
        last = now;
        let status = status_line(trainer, &stats, &speed, &cost, total);
        bar.set_position(((trainer.state.images.min(total) as f64 / total as f64) * 1000.0) as u64);
        bar.set_message(status.clone());
        if let Some(number) = due.tick {
            let rate = tick.rate(trainer.state.images);
            let swd = match due.swd {
                true => {
                    bar.set_message(format!(
                        "{r}x{r}: measuring the sliced Wasserstein distance",
                        r = pos.res()
                    ));
                    block_on(trainer.logged_swd())?
                }
                false => None,
            };
            let line = LogLine {
                kimg: trainer.state.images as f64 / 1000.0,
                resolution: pos.res(),
                phase: pos.phase_name(),
                alpha: pos.alpha,
                stats: stats.unwrap_or_default(),
                images_per_second: rate,
                seconds: trainer.state.seconds,
                steps: trainer.state.steps,
                swd,
            };
            writeln!(log, "{}", serde_json::to_string(&line)?)
                .map_err(|e| LogFailed(format!("cannot write {LOG}: {e}")))?;
            trainer.state.record(line.point());
            text.line(bar, &format!("tick {number} {status}"))?;
            // A sample grid that cannot be written (a full disk) is reported, and the checkpoint
            // is still attempted: it matters more.
            let fakes = block_on(trainer.samples(&latents))?;
            let png = dir.join(format!("samples/fakes-{:09}.png", trainer.state.images));
            let grid_png = grid(&fakes, opts.grid, trainer.cfg.net.max_res).and_then(|g| g.png());
            let written = match &grid_png {
                Ok(bytes) => write_atomic(&png, bytes),
                Err(e) => Err(anyhow!("{e:#}")),
            };
            if let Err(e) = written {
                text.line(bar, &format!("warning: no sample grid this tick: {e:#}"))?;
            }
            if let Some(events) = &mut events {
                let png = grid_png.as_deref().ok();
                if let Err(e) = events.tick(trainer.state.images, &serde_json::to_value(&line)?, png) {
                    text.line(bar, &format!("warning: no TensorBoard events this tick: {e:#}"))?;
                }
            }
            if due.checkpoint || due.snapshot {
                save(trainer, dir, due.snapshot, text, bar)?;
                saved = true;
            }
            tick.start = Instant::now();
            tick.start_images = trainer.state.images;
            last = tick.start;
            speed.restart();
        }
    }
    if !saved {
        save(trainer, dir, false, text, bar)?;
    }
    text.line(bar, &format!("finished at {}", at(trainer)))?;
    bar.finish_with_message("done");
    Ok(Outcome::Finished)
}

/// "kimg 1.234 (step 56)".
fn at(trainer: &Trainer) -> String {
    format!(
        "kimg {:.3} (step {})",
        trainer.state.images as f64 / 1000.0,
        trainer.state.steps
    )
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

/// Progress, speed, losses and the time left: the bar's message and each tick's line.
fn status_line(trainer: &Trainer, stats: &Option<Stats>, speed: &Speed, cost: &Cost, total: u64) -> String {
    let pos = trainer.position();
    // Tiny runs (tests, trials) need the thousandths.
    let digits = if total < 10_000 { 3 } else { 1 };
    let mut s = format!(
        "kimg {:.digits$}/{:.digits$} | {r}x{r} {} a={:.2}",
        trainer.state.images as f64 / 1000.0,
        total as f64 / 1000.0,
        pos.phase_name(),
        pos.alpha,
        r = pos.res()
    );
    if let Some(rate) = speed.rate {
        let per_image = cost.per_image(pos.level);
        s += &format!(" | {:.1} img/s", rate / per_image);
        let left = cost.remaining(trainer.state.images) / rate;
        s += &format!(" | ETA {}", duration(left));
    }
    if let Some(st) = stats {
        s += &format!(" | D {:.3} G {:.3}", st.d_loss, st.g_loss);
    }
    s
}

/// "3h05m", "12m30s", "40s".
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Training speed in cost units per second, measured between read-backs (when the GPU has finished
/// the steps submitted) and smoothed, so that it does not jump when a tick restarts it.
struct Speed {
    /// Cost of the steps since the last measurement.
    work: f64,
    since: Instant,
    /// Smoothed; `None` until the first measurement.
    rate: Option<f64>,
}

impl Speed {
    fn new() -> Speed {
        Speed {
            work: 0.0,
            since: Instant::now(),
            rate: None,
        }
    }

    fn sync(&mut self) {
        let dt = self.since.elapsed();
        if dt < Duration::from_millis(100) {
            return;
        }
        let r = self.work / dt.as_secs_f64();
        self.rate = Some(self.rate.map_or(r, |old| 0.8 * old + 0.2 * r));
        self.work = 0.0;
        self.since = Instant::now();
    }

    /// Leaves out the time a tick spent on samples, metrics and checkpoints.
    fn restart(&mut self) {
        self.work = 0.0;
        self.since = Instant::now();
    }
}

/// The current tick's start, for its images per second.
struct Tick {
    start: Instant,
    start_images: u64,
}

impl Tick {
    fn rate(&self, images: u64) -> f64 {
        (images - self.start_images) as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }
}

/// Writes the checkpoint (and with `snapshot` a snapshot beside it, pruned to the newest
/// `snapshots`); [`Trainer::checkpoint`] refuses a model with a NaN or an infinity.
fn save(trainer: &Trainer, dir: &Path, snapshot: bool, text: &mut TextLog, bar: &ProgressBar) -> Result<()> {
    let bytes = save_checkpoint(trainer, dir)?;
    if snapshot {
        let name = format!("snapshot-{:09}.safetensors", trainer.state.images);
        write_atomic(&dir.join(&name), &bytes)?;
        text.line(bar, &format!("snapshot {name}"))?;
        prune_snapshots(dir, trainer.cfg.snapshots)?;
    }
    Ok(())
}

/// Writes the checkpoint and returns its bytes.
fn save_checkpoint(trainer: &Trainer, dir: &Path) -> Result<Vec<u8>> {
    let ck = block_on(trainer.checkpoint()).map_err(|e| anyhow!("{e:#}. {}", kept(dir)))?;
    let bytes = ck.to_bytes()?;
    write_atomic(&dir.join(CHECKPOINT), &bytes)?;
    Ok(bytes)
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
