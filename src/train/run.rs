//! The native training loop around [`Trainer`]: a run folder with the configuration, a JSONL log,
//! sample grids and checkpoints, a progress bar, and a stop flag (Ctrl-C) honoured between steps
//! after writing a checkpoint.
//!
//! A run folder holds `config.json`, `log.jsonl` (one line per tick), `samples/reals.png`,
//! `samples/fakes-<images>.png` (the EMA generator on fixed latents) and `checkpoint.safetensors`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pollster::block_on;
use serde::Serialize;

use super::config::TrainConfig;
use super::trainer::{sample_latents, Stats, Trainer};
use crate::checkpoint::{self, write_atomic};
use crate::data::Images;
use crate::metrics::Swd;
use crate::samples::grid;

pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const CONFIG: &str = "config.json";
pub const LOG: &str = "log.jsonl";

/// Steps between reading the losses back: keeps the queue of submitted steps short and the
/// progress bar current without waiting on the GPU after every step.
const SYNC_STEPS: u64 = 4;

pub struct RunOptions<'a> {
    /// Sample grids are `grid` x `grid` images.
    pub grid: usize,
    /// Set (by Ctrl-C) to stop after the current step with a checkpoint.
    pub stop: &'a AtomicBool,
    /// Draw the progress bar (hidden anyway when stderr is not a terminal).
    pub progress: bool,
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

/// A new folder `out/NNN-<data>-<res>` with the next free number.
pub fn new_run_dir(out: &Path, cfg: &TrainConfig) -> Result<PathBuf> {
    fs::create_dir_all(out).with_context(|| format!("cannot create the runs folder {}", out.display()))?;
    let data = Path::new(&cfg.data)
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        })
        .unwrap_or_else(|| "data".into());
    let next = fs::read_dir(out)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.get(..3)?.parse::<usize>().ok())
        .max()
        .map_or(0, |n| n + 1);
    let dir = out.join(format!("{next:03}-{data}-{}", cfg.net.max_res));
    fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Trains until the schedule ends or `opts.stop` is set; a checkpoint is written in either case.
pub fn train(trainer: &mut Trainer, dir: &Path, opts: &RunOptions) -> Result<Outcome> {
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
        fs::write(
            dir.join("samples/reals.png"),
            grid(&first, opts.grid, reals.res)?.png()?,
        )?;
    }
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG))
        .with_context(|| format!("cannot open the log in {}", dir.display()))?;
    let latents = sample_latents(&trainer.cfg, grid_count);
    let total = trainer.cfg.total_images();
    let bar = progress_bar(total, trainer.state.images, opts.progress);
    let tick_images = ((trainer.cfg.tick_kimg * 1000.0).round() as u64).max(1);
    let mut tick = Tick {
        next: (trainer.state.images / tick_images + 1) * tick_images,
        done: trainer.state.images / tick_images,
        start: Instant::now(),
        start_images: trainer.state.images,
    };
    let mut last = Instant::now();
    let mut stats = Stats::default();
    let mut saved = false;
    while !trainer.finished() {
        if opts.stop.load(Ordering::SeqCst) {
            bar.abandon_with_message("interrupted: writing a checkpoint");
            save(trainer, dir)?;
            return Ok(Outcome::Interrupted);
        }
        trainer.step()?;
        saved = false;
        let at_tick = trainer.state.images >= tick.next || trainer.finished();
        if trainer.state.steps.is_multiple_of(SYNC_STEPS) || at_tick {
            stats = block_on(trainer.stats())?;
        }
        let now = Instant::now();
        trainer.state.seconds += (now - last).as_secs_f64();
        last = now;
        let pos = trainer.position();
        bar.set_position(trainer.state.images.min(total));
        bar.set_message(format!(
            "kimg {:.1}/{:.1} | {r}x{r} {} a={:.2} | {:.0} img/s | D {:.3} G {:.3}",
            trainer.state.images as f64 / 1000.0,
            total as f64 / 1000.0,
            pos.phase_name(),
            pos.alpha,
            tick.rate(trainer.state.images),
            stats.d_loss,
            stats.g_loss,
            r = pos.res()
        ));
        if at_tick {
            let rate = tick.rate(trainer.state.images);
            tick.done += 1;
            let swd = match trainer.cfg.swd_ticks {
                n if n > 0 && (tick.done.is_multiple_of(n as u64) || trainer.finished()) => {
                    bar.set_message(format!(
                        "{r}x{r}: measuring the sliced Wasserstein distance",
                        r = pos.res()
                    ));
                    block_on(trainer.swd(trainer.cfg.swd_images, trainer.cfg.seed ^ tick.done))?
                }
                _ => None,
            };
            let line = LogLine {
                kimg: trainer.state.images as f64 / 1000.0,
                resolution: pos.res(),
                phase: pos.phase_name(),
                alpha: pos.alpha,
                stats,
                images_per_second: rate,
                seconds: trainer.state.seconds,
                steps: trainer.state.steps,
                swd,
            };
            writeln!(log, "{}", serde_json::to_string(&line)?)?;
            let fakes = block_on(trainer.samples(&latents))?;
            let png = grid(&fakes, opts.grid, trainer.cfg.net.max_res)?.png()?;
            fs::write(dir.join(format!("samples/fakes-{:09}.png", trainer.state.images)), png)?;
            if tick.done.is_multiple_of(trainer.cfg.checkpoint_ticks as u64) {
                save(trainer, dir)?;
                saved = true;
            }
            tick.next = (trainer.state.images / tick_images + 1) * tick_images;
            tick.start = Instant::now();
            tick.start_images = trainer.state.images;
            last = tick.start;
        }
    }
    if !saved {
        save(trainer, dir)?;
    }
    bar.finish_with_message("done");
    Ok(Outcome::Finished)
}

struct Tick {
    next: u64,
    done: u64,
    start: Instant,
    start_images: u64,
}

impl Tick {
    fn rate(&self, images: u64) -> f64 {
        (images - self.start_images) as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }
}

fn save(trainer: &Trainer, dir: &Path) -> Result<()> {
    checkpoint::save(&dir.join(CHECKPOINT), &block_on(trainer.checkpoint())?)
}

fn progress_bar(total: u64, at: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_position(at);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} {bar:24} {msg} | ETA {eta}").expect("a valid template"),
    );
    bar
}
