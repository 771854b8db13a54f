//! The run driver: the one policy of a run around the [`Trainer`], for the command line, every rank
//! of a data-parallel run and the page. It decides when to read the losses back, stops on a
//! divergence, measures the speed and the time left, records the history, and at each tick measures
//! the SWD, draws the sample grid and writes the checkpoints and snapshots that are due; it makes
//! every collective call of a data-parallel run in one order for every rank.
//!
//! What a run reports goes to a [`Sink`]: the run folder, TensorBoard and the progress bar natively
//! (`train::run`), nothing on the ranks other than 0 (`train::mpi`), plain values the page polls
//! (`web.rs`). A new periodic action (a metric every N ticks) is one more field of
//! [`Due`](super::trainer::Due) and one more line in [`Driver::tick`].

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use super::config::{kimg, TrainConfig};
use super::cost::Cost;
use super::sample::sample_latents;
use super::state::{HistoryPoint, TrainState};
use super::trainer::{Due, Stats, Trainer};
use crate::clock::now;
use crate::data::Images;
use crate::metrics::Swd;

/// Steps between reading the losses back on the command line: keeps the queue of submitted steps
/// short and the progress bar current without waiting on the GPU after every step.
pub const SYNC_STEPS: u64 = 4;

/// How a run ends.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Finished,
    Interrupted,
}

/// When a driver reads back and records a point of the run's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cadence {
    /// The command line and the ranks of a data-parallel run: [`Driver::run`] reads back every
    /// [`SYNC_STEPS`] steps and at every tick, which ends a call of [`Driver::advance`]; a history
    /// point per tick, with its log line.
    Ticks,
    /// The page: a read-back and a history point after each call of [`Driver::advance`], however
    /// many steps it ran and ticks it crossed.
    Calls,
}

/// Which checkpoint a due save writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Save {
    /// The run's checkpoint only.
    Checkpoint,
    /// The checkpoint and a snapshot of it kept under its own name.
    Snapshot,
}

/// Where a run reports. Every method has a default that reports nothing: the ranks other than 0 of
/// a data-parallel run use [`Follower`] and make only the collective calls.
pub trait Sink {
    /// Whether anything is reported here; without it the driver skips the work that only feeds
    /// reports (the SWD, sample grids, checkpoints), none of which is collective.
    fn reports(&self) -> bool {
        false
    }
    /// Images in each tick's sample grid (0: none).
    fn grid_images(&self) -> usize {
        0
    }
    /// Whether due checkpoints and snapshots are written (the page saves when asked instead).
    fn saves(&self) -> bool {
        false
    }
    /// What a run that stops on an error leaves, appended to the error.
    fn kept(&self) -> String {
        String::new()
    }
    /// Where the run is, after each read-back.
    fn progress(&mut self, _progress: &Progress) {}
    /// Work that makes a person wait ("measuring the sliced Wasserstein distance").
    fn busy(&mut self, _what: &str) {}
    /// A tick: its log line, and the sample grid's images when [`Sink::grid_images`] asks for them.
    fn tick(&mut self, _line: &TickLine, _samples: Option<&Images>) -> Result<()> {
        Ok(())
    }
    /// A checkpoint's bytes, at `images` real images.
    fn save(&mut self, _bytes: &[u8], _save: Save, _images: u64) -> Result<()> {
        Ok(())
    }
    /// A stop request is being honoured: a checkpoint follows.
    fn stopping(&mut self) {}
    /// The run ended, `at` "kimg 1.234 (step 56)".
    fn ended(&mut self, _outcome: &Outcome, _at: &str) -> Result<()> {
        Ok(())
    }
}

/// The sink of the ranks other than 0: nothing but the line saying where a stop happened.
#[cfg(not(target_arch = "wasm32"))]
pub struct Follower {
    pub rank: usize,
    pub ranks: usize,
}

#[cfg(not(target_arch = "wasm32"))]
impl Sink for Follower {
    fn ended(&mut self, outcome: &Outcome, at: &str) -> Result<()> {
        if *outcome == Outcome::Interrupted {
            crate::errln!("rank {} of {}: stopped at {at}", self.rank, self.ranks);
        }
        Ok(())
    }
}

/// Where a run is and how fast it goes: the progress bar's message, each tick's line and the page's
/// status.
#[derive(Clone, Debug, Serialize)]
pub struct Progress {
    pub resolution: usize,
    pub phase: &'static str,
    pub alpha: f32,
    pub kimg: f64,
    pub total_kimg: f64,
    /// The share of the schedule done, 0 to 1.
    pub done: f64,
    pub steps: u64,
    pub finished: bool,
    /// Training time so far.
    pub seconds: f64,
    /// Real images per second at the current resolution, at the speed measured so far; `None`
    /// before the first measurement.
    pub images_per_second: Option<f64>,
    /// Seconds of training left at that speed, counting the slower resolutions to come.
    pub eta_seconds: Option<f64>,
    /// The same as "3h05m", "12m30s", "40s".
    pub eta: Option<String>,
    /// The last losses read back.
    #[serde(skip)]
    pub stats: Option<Stats>,
}

impl Progress {
    /// A run's position in `cfg`'s schedule after `state`, at `speed` cost units per second.
    pub fn new(cfg: &TrainConfig, state: &TrainState, speed: Option<f64>, stats: Option<Stats>) -> Progress {
        let pos = state.position(cfg);
        let total = cfg.total_images();
        let cost = Cost::new(cfg);
        let eta_seconds = speed.map(|rate| cost.remaining(state.images) / rate);
        Progress {
            resolution: pos.res(),
            phase: pos.phase_name(),
            alpha: pos.alpha,
            kimg: kimg(state.images),
            total_kimg: kimg(total),
            done: state.images.min(total) as f64 / total as f64,
            steps: state.steps,
            finished: state.images >= total,
            seconds: state.seconds,
            images_per_second: speed.map(|rate| rate / cost.per_image(pos.level)),
            eta: eta_seconds.map(duration),
            eta_seconds,
            stats,
        }
    }

    /// "kimg 0.123/0.200 | 8x8 fade-in a=0.40 | 51.2 img/s | ETA 12m30s | D 0.123 G -0.456".
    pub fn line(&self) -> String {
        // Tiny runs (tests, trials) need the thousandths.
        let digits = if self.total_kimg < 10.0 { 3 } else { 1 };
        let mut s = format!(
            "kimg {:.digits$}/{:.digits$} | {r}x{r} {} a={:.2}",
            self.kimg,
            self.total_kimg,
            self.phase,
            self.alpha,
            r = self.resolution
        );
        if let (Some(rate), Some(eta)) = (self.images_per_second, &self.eta) {
            s += &format!(" | {rate:.1} img/s | ETA {eta}");
        }
        if let Some(st) = &self.stats {
            s += &format!(" | D {:.3} G {:.3}", st.d_loss, st.g_loss);
        }
        s
    }
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

/// One tick: a line of `log.jsonl`, and a TensorBoard step.
#[derive(Clone, Debug, Serialize)]
pub struct TickLine {
    /// The tick's number, from 1.
    #[serde(skip)]
    pub number: u64,
    /// [`Progress::line`] at the tick.
    #[serde(skip)]
    pub status: String,
    /// Real images so far.
    #[serde(skip)]
    pub images: u64,
    pub kimg: f64,
    pub resolution: usize,
    pub phase: &'static str,
    pub alpha: f32,
    #[serde(flatten)]
    pub stats: Stats,
    pub images_per_second: f64,
    pub seconds: f64,
    pub steps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swd: Option<Swd>,
}

/// Training speed in [`Cost`] units per second, measured over the calls of [`Driver::advance`]
/// (from a call's start to its read-back, when the GPU has finished its steps) and smoothed, so
/// that it does not jump when a tick's work or a pause of the page comes between calls.
#[derive(Default)]
struct Speed {
    work: f64,
    seconds: f64,
    /// Smoothed; `None` until the first measurement.
    rate: Option<f64>,
}

impl Speed {
    fn add(&mut self, work: f64, seconds: f64) {
        self.work += work;
        self.seconds += seconds;
        // Shorter spans measure the clock more than the GPU.
        if self.seconds < 0.1 {
            return;
        }
        let r = self.work / self.seconds;
        self.rate = Some(self.rate.map_or(r, |old| 0.8 * old + 0.2 * r));
        (self.work, self.seconds) = (0.0, 0.0);
    }
}

/// A [`Trainer`] and the run's policy around it.
pub struct Driver {
    trainer: Trainer,
    cadence: Cadence,
    cost: Cost,
    speed: Speed,
    /// The last losses read back.
    stats: Option<Stats>,
    /// The clock and the image count where the current tick started, for its images per second.
    tick_start: (f64, u64),
    /// The sample grids' latents, fixed for the run.
    latents: Vec<f32>,
    /// Whether the checkpoint holds the last step (a tick saved it), so the end writes none.
    saved: bool,
}

impl Driver {
    pub fn new(trainer: Trainer, cadence: Cadence) -> Driver {
        Driver {
            cost: Cost::new(trainer.cfg()),
            tick_start: (now(), trainer.state().images),
            trainer,
            cadence,
            speed: Speed::default(),
            stats: None,
            latents: Vec::new(),
            saved: false,
        }
    }

    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// Where the run is, at the speed measured so far.
    pub fn progress(&self) -> Progress {
        let t = &self.trainer;
        Progress::new(t.cfg(), t.state(), self.speed.rate, self.stats)
    }

    /// Trains until the schedule ends or `stop` (or, in a data-parallel run, any rank's request)
    /// says to; a checkpoint is written in either case where the sink saves.
    pub async fn run(&mut self, sink: &mut dyn Sink, stop: &dyn Fn() -> bool) -> Result<Outcome> {
        while !self.trainer.finished() {
            let to_sync = SYNC_STEPS - self.trainer.state().steps % SYNC_STEPS;
            if self.advance(to_sync, sink, stop).await?.is_none() {
                return Ok(Outcome::Interrupted);
            }
        }
        if !self.saved {
            self.save(sink, Save::Checkpoint).await?;
        }
        sink.ended(&Outcome::Finished, &self.at())?;
        Ok(Outcome::Finished)
    }

    /// Runs up to `steps` steps (fewer at the end of the schedule, and with [`Cadence::Ticks`] up to
    /// a tick), then reads the losses back and does what the ticks crossed made due. `None` when a
    /// stop request ended the run (with a checkpoint where the sink saves); else the ticks' dues.
    pub async fn advance(&mut self, steps: u64, sink: &mut dyn Sink, stop: &dyn Fn() -> bool) -> Result<Option<Due>> {
        let (start, mut due, mut work) = (now(), Due::default(), 0.0);
        for _ in 0..steps {
            if self.trainer.finished() {
                break;
            }
            // A data-parallel run stops where every rank learns of a request (`train::dist`).
            if self.trainer.stop_agreed().unwrap_or_else(stop) {
                self.stop(sink).await?;
                return Ok(None);
            }
            let before = self.trainer.state().images;
            due = due.and(self.trainer.step()?);
            // The position the step used (the schedule is evaluated at its start).
            work += self.cost.per_image(self.trainer.position().level) * (self.trainer.state().images - before) as f64;
            self.saved = false;
            if self.cadence == Cadence::Ticks && due.tick.is_some() {
                break;
            }
        }
        self.read_back(due.tick.is_some(), sink).await?;
        let seconds = now() - start;
        self.speed.add(work, seconds);
        self.trainer.add_seconds(seconds);
        sink.progress(&self.progress());
        if let Some(number) = due.tick {
            self.tick(number, due, sink).await?;
        }
        Ok(Some(due))
    }

    /// Reads the last step's losses back and stops on a NaN or an infinity. At a tick every rank of
    /// a data-parallel run compares its model with the others' and the losses are averaged over
    /// them (each holds its share's): the whole minibatch's, for the log and the history.
    async fn read_back(&mut self, tick: bool, sink: &mut dyn Sink) -> Result<()> {
        let stats = match tick {
            true => {
                self.trainer.check_replicas().await?;
                self.trainer.mean_stats().await?
            }
            false => self.trainer.stats().await?,
        };
        if let Some(what) = stats.nonfinite() {
            bail!(self.with_kept(self.trainer.diverged(what), sink));
        }
        self.stats = Some(stats);
        if self.cadence == Cadence::Calls {
            self.trainer.record(self.point(None));
        }
        Ok(())
    }

    /// A tick: the SWD when due, the log line, the history point, the sample grid, and the
    /// checkpoint and snapshot when due. The place for another periodic action.
    async fn tick(&mut self, number: u64, due: Due, sink: &mut dyn Sink) -> Result<()> {
        let (since, images_then) = self.tick_start;
        let images = self.trainer.state().images;
        let swd = match due.swd && sink.reports() {
            true => {
                let r = self.trainer.position().res();
                sink.busy(&format!("{r}x{r}: measuring the sliced Wasserstein distance"));
                self.trainer.logged_swd().await?
            }
            false => None,
        };
        let average = swd.as_ref().map(|s| s.average);
        match self.cadence {
            Cadence::Ticks => self.trainer.record(self.point(average)),
            Cadence::Calls => self.trainer.set_last_swd(average),
        }
        let line = self.tick_line(number, (images - images_then) as f64 / (now() - since).max(1e-9), swd);
        let samples = match sink.grid_images() {
            0 => None,
            n => {
                if self.latents.len() != n * self.trainer.cfg().net.latent {
                    self.latents = sample_latents(self.trainer.cfg(), n);
                }
                Some(self.trainer.samples(&self.latents).await?)
            }
        };
        sink.tick(&line, samples.as_ref())?;
        if due.checkpoint || due.snapshot {
            let save = if due.snapshot { Save::Snapshot } else { Save::Checkpoint };
            self.save(sink, save).await?;
            self.saved = sink.saves();
        }
        self.tick_start = (now(), self.trainer.state().images);
        Ok(())
    }

    fn tick_line(&self, number: u64, images_per_second: f64, swd: Option<Swd>) -> TickLine {
        let (state, pos) = (self.trainer.state(), self.trainer.position());
        TickLine {
            number,
            status: self.progress().line(),
            images: state.images,
            kimg: kimg(state.images),
            resolution: pos.res(),
            phase: pos.phase_name(),
            alpha: pos.alpha,
            stats: self.stats.unwrap_or_default(),
            images_per_second,
            seconds: state.seconds,
            steps: state.steps,
            swd,
        }
    }

    /// The history point of the last losses read back.
    fn point(&self, swd: Option<f64>) -> HistoryPoint {
        let (stats, pos) = (self.stats.unwrap_or_default(), self.trainer.position());
        HistoryPoint {
            kimg: kimg(self.trainer.state().images),
            d_loss: stats.d_loss,
            g_loss: stats.g_loss,
            penalty: stats.penalty,
            wasserstein: stats.wasserstein,
            swd,
            resolution: pos.res(),
            alpha: pos.alpha,
        }
    }

    /// A stop request: every rank compares its model with the others' before rank 0 saves it.
    async fn stop(&mut self, sink: &mut dyn Sink) -> Result<()> {
        sink.stopping();
        self.trainer.check_replicas().await?;
        self.save(sink, Save::Checkpoint).await?;
        sink.ended(&Outcome::Interrupted, &self.at())
    }

    /// Writes the checkpoint where the sink saves; [`Trainer::checkpoint`] refuses a model with a
    /// NaN or an infinity.
    pub async fn save(&mut self, sink: &mut dyn Sink, save: Save) -> Result<()> {
        if !sink.saves() {
            return Ok(());
        }
        let ck = self
            .trainer
            .checkpoint()
            .await
            .map_err(|e| anyhow!(self.with_kept(format!("{e:#}"), sink)))?;
        sink.save(&ck.to_bytes()?, save, self.trainer.state().images)
    }

    fn with_kept(&self, error: String, sink: &dyn Sink) -> String {
        match sink.kept() {
            kept if kept.is_empty() => error,
            kept => format!("{error}. {kept}"),
        }
    }

    /// "kimg 1.234 (step 56)".
    fn at(&self) -> String {
        let state = self.trainer.state();
        format!("kimg {:.3} (step {})", kimg(state.images), state.steps)
    }
}
