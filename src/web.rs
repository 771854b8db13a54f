//! The wasm-bindgen API the page calls: a training [`Session`] (or, for a checkpoint loaded without
//! data, a generator to sample from), the person's files ([`Files`]) and the decoding of a run's
//! images a chunk at a time ([`DatasetLoader`]), sample grids and latent walks as RGBA ([`Frame`]),
//! checkpoints as bytes in the native format, the self-test, and the training step's benchmark.
//!
//! Every method that touches the GPU is async and never blocks: steps are submitted, and the page
//! awaits the read-back of their losses. A session is used by one call at a time (the page
//! serialises its calls). Errors reject with a JS `Error` whose message is the anyhow chain.

use anyhow::{anyhow, bail, ensure, Result};
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::bench::TrainSettings;
use crate::data::{self, Dataset};
use crate::gpu::{Gpu, GpuOptions};
use crate::samples::{grid, latent_walk};
use crate::train::checkpoint::{generator_only, holds_a_run, Checkpoint};
use crate::train::config::{PhaseMark, TrainConfig, EMOJI};
use crate::train::driver::{Cadence, Driver, Progress, Sink};
use crate::train::sample::{sample_latents, Sampler};
use crate::train::trainer::{Due, Stats, Trainer};

fn js_error(e: anyhow::Error) -> JsValue {
    js_sys::Error::new(&format!("{e:#}")).into()
}

/// A serialisable value as a plain JS object.
fn to_js(value: &impl Serialize) -> Result<JsValue> {
    let text = serde_json::to_string(value)?;
    js_sys::JSON::parse(&text).map_err(|_| anyhow!("cannot hand {text} to the page"))
}

/// Runs every kernel check on the browser's WebGPU adapter and returns the table as text.
/// Rejects when there is no adapter; the table's last lines say whether everything passed.
#[wasm_bindgen]
pub async fn selftest() -> Result<String, JsValue> {
    let gpu = Gpu::new(&GpuOptions::default()).await.map_err(js_error)?;
    Ok(crate::selftest::report(&gpu).await.0)
}

/// `pggan bench train --json`'s object, timed in this tab on its WebGPU adapter: `settings_json` holds
/// any fields of [`TrainSettings`] (`{"resolution": 16, "fmap_base": 64, ...}`; the rest keep the
/// CLI's defaults). `bench/browser_vs_native.mjs` compares it with the native figures.
#[wasm_bindgen]
pub async fn bench_train(settings_json: String) -> Result<JsValue, JsValue> {
    async {
        let settings: TrainSettings =
            serde_json::from_str(&settings_json).map_err(|e| anyhow!("the benchmark's settings: {e}"))?;
        let b = settings.bench()?;
        let gpu = Gpu::new(&GpuOptions::default()).await?;
        let (layers, rows) = crate::bench::train(&gpu, &b).await?;
        to_js(&crate::bench::train_report(&gpu, &layers, &settings, &rows))
    }
    .await
    .map_err(js_error)
}

/// Image files the person picked or dropped, decoded in wasm by a [`DatasetLoader`].
#[wasm_bindgen]
pub struct Files {
    name: String,
    files: Vec<(String, Vec<u8>)>,
}

#[wasm_bindgen]
impl Files {
    /// An empty set called `name` (shown in the status and stored as the run's `data`).
    #[wasm_bindgen(constructor)]
    pub fn new(name: String) -> Files {
        Files { name, files: vec![] }
    }

    /// Adds one encoded image (PNG, JPEG, WebP, BMP, GIF); unreadable ones are skipped later.
    pub fn add(&mut self, name: String, bytes: Vec<u8>) {
        self.files.push((name, bytes));
    }

    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.files.len()
    }
}

/// Interleaved RGBA pixels for a canvas's `ImageData`.
#[wasm_bindgen]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    rgba: Vec<u8>,
}

#[wasm_bindgen]
impl Frame {
    /// A copy of the pixels (`width * height * 4` bytes).
    #[wasm_bindgen(getter)]
    pub fn rgba(&self) -> Vec<u8> {
        self.rgba.clone()
    }
}

/// What a session runs: a training run, or only the EMA generator of a checkpoint loaded without
/// data.
enum Run {
    Train(Box<Driver>),
    Sample(Box<Sampler>),
}

/// A training run in the page, or a checkpoint's generator to sample from.
#[wasm_bindgen]
pub struct Session {
    run: Run,
}

/// The page as the driver's sink: it measures the SWD when due and keeps every value in the
/// session, where the page asks for them ([`Session::status`], [`Session::history`]); it draws
/// its own sample grids and saves when the person asks.
struct Page;

impl Sink for Page {
    fn reports(&self) -> bool {
        true
    }

    fn kept(&self) -> String {
        "The page will not save it; load the last checkpoint you saved and train with a lower learning rate".into()
    }
}

/// `step()`'s object: the last step's losses, and what the run's tick clock said was due after the
/// steps (the SWD, measured then, is in the history's last point).
#[derive(Serialize)]
struct StepReport {
    #[serde(flatten)]
    stats: Stats,
    due: Due,
}

/// `status()`'s object: where the run is, its speed and time left as the command line shows them,
/// and the schedule's phase changes for the plots.
#[derive(Serialize)]
struct Status<'a> {
    /// False for a sampling-only session.
    training: bool,
    max_resolution: usize,
    #[serde(flatten)]
    progress: Progress,
    /// Where each phase after the first starts; a fade-in names its resolution.
    phase_marks: Vec<PhaseMark>,
    dataset: Option<DatasetInfo<'a>>,
}

#[derive(Serialize)]
struct DatasetInfo<'a> {
    name: &'a str,
    images: usize,
    skipped: usize,
    /// The first skipped file and why, for the status line.
    first_skipped: Option<String>,
}

/// A run's images being decoded a chunk at a time: the page calls `prepare(n)` with a yield between
/// calls, so that it keeps painting, then hands the loader to [`Session::create`] or
/// [`Session::resume`]. Built for a configuration or a checkpoint, it has that run's shape.
#[wasm_bindgen]
pub struct DatasetLoader {
    loader: data::Loader,
    /// The embedded emoji set rather than the person's files.
    emoji: bool,
}

#[wasm_bindgen]
impl DatasetLoader {
    /// The images for a new run of `config_json` (as [`Session::create`] takes it): `files`, or the
    /// embedded emoji set when undefined. Refuses the configuration before any decoding.
    pub fn for_run(config_json: String, files: Option<Files>) -> Result<DatasetLoader, JsValue> {
        new_config(&config_json, files.is_none())
            .and_then(|cfg| DatasetLoader::new(&cfg, files))
            .map_err(js_error)
    }

    /// The images a checkpoint's run continues on: `files`, or when undefined the emoji set if the run
    /// was trained on it. Refuses a checkpoint that cannot resume before any decoding.
    pub fn for_checkpoint(checkpoint: Vec<u8>, files: Option<Files>) -> Result<DatasetLoader, JsValue> {
        resumable(&checkpoint)
            .and_then(|ck| DatasetLoader::new(&ck.config, files))
            .map_err(js_error)
    }

    /// Decodes the next `n` images (fewer at the end) and returns how many are done.
    pub fn prepare(&mut self, n: usize) -> usize {
        self.loader.prepare(n)
    }

    /// Number of images to decode (unreadable files included).
    #[wasm_bindgen(getter)]
    pub fn total(&self) -> usize {
        self.loader.total()
    }

    /// Number decoded so far.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> usize {
        self.loader.done()
    }
}

/// A run on anything but the emoji set cannot silently replace its images with them.
fn needs_its_data(cfg: &TrainConfig) -> anyhow::Error {
    anyhow!(
        "this run was trained on {:?}: pick those images first, or load the checkpoint to sample only",
        cfg.data
    )
}

impl DatasetLoader {
    /// The images of the run `cfg` at its shape: the person's files when given, else the emoji set.
    fn new(cfg: &TrainConfig, files: Option<Files>) -> Result<DatasetLoader> {
        let (c, r) = (cfg.net.channels, cfg.net.max_res);
        Ok(match files {
            Some(f) => DatasetLoader {
                loader: data::Loader::files(&f.name, f.files, c, r)?,
                emoji: false,
            },
            None if cfg.data == EMOJI => DatasetLoader {
                loader: data::Loader::emoji(c, r)?,
                emoji: true,
            },
            None => return Err(needs_its_data(cfg)),
        })
    }

    /// The finished dataset for the run `cfg`, whose `data` becomes its name; refuses images of
    /// another shape, or the emoji set for a run on other images.
    fn dataset(self, cfg: &mut TrainConfig) -> Result<Dataset> {
        let (c, r) = (cfg.net.channels, cfg.net.max_res);
        let (lc, lr) = (self.loader.channels(), self.loader.res());
        ensure!(
            (lc, lr) == (c, r),
            "the images were decoded with {lc} channels at {lr}x{lr}, but the run needs {c} at {r}x{r}"
        );
        if self.emoji && cfg.data != EMOJI {
            return Err(needs_its_data(cfg));
        }
        let data = self.loader.finish()?;
        cfg.data = data.name.clone();
        Ok(data)
    }
}

/// A new run's configuration from JSON (any fields of a run's `config.json`; those left out keep
/// their defaults), checked; on the emoji set when `emoji`.
fn new_config(config_json: &str, emoji: bool) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::from_json(config_json).map_err(|e| anyhow!("the configuration: {e:#}"))?;
    if emoji {
        cfg.data = EMOJI.into();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// A checkpoint that training can continue from (not an exported generator), checked.
fn resumable(checkpoint: &[u8]) -> Result<Checkpoint> {
    let ck = Checkpoint::from_bytes(checkpoint)?;
    if !holds_a_run(&ck) {
        bail!("this checkpoint holds only a generator (an export): load it to sample, not to train");
    }
    ck.config.validate()?;
    Ok(ck)
}

#[wasm_bindgen]
impl Session {
    /// A new run from a configuration in JSON (any fields of a run's `config.json`; those left out
    /// keep their defaults) on the images of `data`, a loader from `DatasetLoader.for_run` with every
    /// image decoded.
    pub async fn create(config_json: String, data: DatasetLoader) -> Result<Session, JsValue> {
        async {
            let mut cfg = new_config(&config_json, data.emoji)?;
            let data = data.dataset(&mut cfg)?;
            let gpu = Gpu::new(&GpuOptions::default()).await?;
            Ok(Session::train(Trainer::new(gpu, cfg, data)?))
        }
        .await
        .map_err(js_error)
    }

    /// Continues a checkpoint (saved here or by `pggan train`) exactly where it stopped, on the
    /// images of `data`, a loader from `DatasetLoader.for_checkpoint` with every image decoded.
    pub async fn resume(checkpoint: Vec<u8>, data: DatasetLoader) -> Result<Session, JsValue> {
        async {
            let mut ck = resumable(&checkpoint)?;
            let data = data.dataset(&mut ck.config)?;
            let gpu = Gpu::new(&GpuOptions::default()).await?;
            Ok(Session::train(Trainer::resume(gpu, &ck, data)?))
        }
        .await
        .map_err(js_error)
    }

    /// Loads a checkpoint (a full one or an exported generator) only to sample from its EMA
    /// generator; needs no data.
    pub async fn load(checkpoint: Vec<u8>) -> Result<Session, JsValue> {
        async {
            let ck = Checkpoint::from_bytes(&checkpoint)?;
            let gpu = Gpu::new(&GpuOptions::default()).await?;
            Ok(Session {
                run: Run::Sample(Box::new(Sampler::new(gpu, ck)?)),
            })
        }
        .await
        .map_err(js_error)
    }

    /// Records and submits up to `n` training steps (fewer when the schedule ends), then awaits the
    /// last step's losses: `{d_loss, g_loss, penalty, drift, wasserstein, due: {tick, swd,
    /// checkpoint, snapshot}}` (`due`: what the run's tick clock says is due after these steps;
    /// the driver has measured the SWD when due). Awaiting keeps the queue of submitted work
    /// short, so the page stays responsive.
    pub async fn step(&mut self, n: u32) -> Result<JsValue, JsValue> {
        async {
            let Run::Train(driver) = &mut self.run else {
                bail!("this checkpoint was loaded to sample only: load it with \"resume training\" to train");
            };
            let due = driver.advance(n.into(), &mut Page, &|| false).await?;
            let stats = driver.progress().stats.unwrap_or_default();
            to_js(&StepReport {
                stats,
                due: due.unwrap_or_default(),
            })
        }
        .await
        .map_err(js_error)
    }

    /// Where the run is: `{training, max_resolution, resolution, phase, alpha, kimg, total_kimg,
    /// done, steps, finished, seconds, images_per_second, eta_seconds, eta, phase_marks: [{kimg,
    /// label}], dataset: {name, images, skipped, first_skipped} | null}`; the speed and the time
    /// left are null before the first steps.
    pub fn status(&self) -> Result<JsValue, JsValue> {
        let (cfg, progress) = match &self.run {
            Run::Train(d) => (d.trainer().cfg(), d.progress()),
            Run::Sample(s) => (&s.ck.config, Progress::new(&s.ck.config, &s.ck.state, None, None)),
        };
        let dataset = match &self.run {
            Run::Train(d) => {
                let data = d.trainer().data();
                Some(DatasetInfo {
                    name: &data.name,
                    images: data.count(),
                    skipped: data.skipped.len(),
                    first_skipped: data.skipped.first().map(|s| format!("{}: {}", s.path, s.reason)),
                })
            }
            Run::Sample(_) => None,
        };
        to_js(&Status {
            training: matches!(self.run, Run::Train(_)),
            max_resolution: cfg.net.max_res,
            progress,
            phase_marks: cfg.phase_marks(),
            dataset,
        })
        .map_err(js_error)
    }

    /// The run's curves: `[{kimg, d_loss, g_loss, penalty, wasserstein, swd?, resolution, alpha}]`,
    /// one point per batch of `step()` here, per tick in `pggan train`, and those of the checkpoint
    /// it continues or samples; at most 2000 (`HISTORY_POINTS`), thinned as it grows.
    pub fn history(&self) -> Result<JsValue, JsValue> {
        let state = match &self.run {
            Run::Train(d) => d.trainer().state(),
            Run::Sample(s) => &s.ck.state,
        };
        to_js(&state.history).map_err(js_error)
    }

    /// The run's whole configuration as JSON.
    pub fn config(&self) -> Result<String, JsValue> {
        serde_json::to_string_pretty(self.cfg()).map_err(|e| js_error(e.into()))
    }

    /// A `side` x `side` grid from the EMA generator on the run's fixed latents, at the current
    /// resolution and fade-in, each image scaled (nearest) to the final resolution.
    pub async fn samples(&self, side: u32) -> Result<Frame, JsValue> {
        let side = side.max(1) as usize;
        let latents = sample_latents(self.cfg(), side * side);
        self.frame(&latents, side).await.map_err(js_error)
    }

    /// A loop of `frames` images walking spherically through 4 random latents (seeded by the run's
    /// seed), side by side in one row, each at the final resolution.
    pub async fn walk(&self, frames: u32) -> Result<Frame, JsValue> {
        let frames = frames.max(2) as usize;
        let cfg = self.cfg();
        let latents = latent_walk(cfg.net.latent, 4, frames, cfg.seed);
        self.frame(&latents, frames).await.map_err(js_error)
    }

    /// The checkpoint in the native format (`pggan train --resume` and `pggan generate` read it);
    /// a sampling-only session returns the checkpoint it loaded.
    pub async fn checkpoint(&self) -> Result<Vec<u8>, JsValue> {
        self.full_checkpoint()
            .await
            .and_then(|ck| ck.to_bytes())
            .map_err(js_error)
    }

    /// A checkpoint holding only the EMA generator (`g_ema/...`) with the configuration and
    /// position: what `pggan generate` and `pggan interpolate` need, without D or Adam state.
    pub async fn export_generator(&self) -> Result<Vec<u8>, JsValue> {
        async { generator_only(self.full_checkpoint().await?).to_bytes() }
            .await
            .map_err(js_error)
    }
}

impl Session {
    fn train(trainer: Trainer) -> Session {
        Session {
            run: Run::Train(Box::new(Driver::new(trainer, Cadence::Calls))),
        }
    }

    fn cfg(&self) -> &TrainConfig {
        match &self.run {
            Run::Train(d) => d.trainer().cfg(),
            Run::Sample(s) => &s.ck.config,
        }
    }

    async fn full_checkpoint(&self) -> Result<Checkpoint> {
        match &self.run {
            Run::Train(d) => d.trainer().checkpoint().await,
            Run::Sample(s) => Ok(s.ck.clone()),
        }
    }

    /// The EMA generator's images for `latents` in a grid of `cols` columns at the final resolution.
    async fn frame(&self, latents: &[f32], cols: usize) -> Result<Frame> {
        let images = match &self.run {
            Run::Train(d) => d.trainer().samples(latents).await?,
            Run::Sample(s) => s.run(latents).await?,
        };
        let cfg = self.cfg();
        let picture = grid(&images, cols, cfg.net.max_res)?;
        Ok(Frame {
            width: picture.width as u32,
            height: picture.height as u32,
            rgba: picture.rgba(),
        })
    }
}
