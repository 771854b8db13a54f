//! `pggan train`: flags, config files, datasets, new runs and resumes; the run itself is
//! `pggan::train::run`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use clap::Args;
use pggan::data::{self, Dataset};
use pggan::errln;
use pggan::files;
use pggan::gpu::{Gpu, GpuOptions, PrecisionChoice};
use pggan::train::checkpoint::{self, Checkpoint};
use pggan::train::config::{kimg, parse_res_map, TrainConfig, EMOJI};
use pggan::train::dist::Replicas;
use pggan::train::driver::{Cadence, Driver, Outcome};
use pggan::train::run::{self, RunOptions, CHECKPOINT, CONFIG};
use pggan::train::trainer::Trainer;
use pollster::block_on;

use super::dataset::{summary, Progress};
use super::{ensure_folder, GpuArgs};

pub const EXAMPLES: &str = "\
Examples:
  # The embedded emoji set to 64x64, in runs/000-emoji-64:
  pggan train
  # A folder of images (searched recursively) to 128x128, 8 images per step:
  pggan train --data photos --max-res 128 --minibatch 8
  # A file made by pggan dataset prepare, at its resolution:
  pggan train --data photos-256.pggan --max-res 256
  # Continue a stopped run from its last checkpoint:
  pggan train --resume runs/000-photos-128";

/// Settings of `pggan train`; each overrides the config file, which overrides the defaults. The
/// defaults are the configuration's (`TrainConfig::default`), not clap's, since a resumed run keeps
/// its own settings; [`show_defaults`] writes them into the help.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// Image folder (PNG, JPEG, WebP, BMP; searched recursively; prepared into the cache), a file
    /// made by `pggan dataset prepare`, or `emoji`, the embedded set.
    #[arg(long)]
    pub data: Option<String>,
    /// Folder that holds the runs; each run gets `NNN-<data>-<res>` inside.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run (its folder or a checkpoint file) where it stopped.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// A JSON file with any of the settings (see `config.json` in a run folder for every field).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Final resolution, a power of two from 4 to 1024.
    #[arg(long)]
    pub max_res: Option<usize>,
    /// Feature maps at level l: min(fmap-base / 2^l, fmap-max) (official: 8192).
    #[arg(long)]
    pub fmap_base: Option<usize>,
    /// The most feature maps of any layer (official: 512).
    #[arg(long)]
    pub fmap_max: Option<usize>,
    /// Latent size, G's input (official: 512).
    #[arg(long)]
    pub latent: Option<usize>,
    /// Image channels: 3 (RGB) or 1 (grayscale).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Images per step (a multiple of 4, or under 4).
    #[arg(long)]
    pub minibatch: Option<usize>,
    /// Minibatch per resolution, e.g. `64=8,128=4`.
    #[arg(long)]
    pub minibatch_res: Option<String>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning rate per resolution, e.g. `128=0.0015`.
    #[arg(long)]
    pub lr_res: Option<String>,
    /// Adam's beta1.
    #[arg(long)]
    pub beta1: Option<f32>,
    /// Adam's beta2.
    #[arg(long)]
    pub beta2: Option<f32>,
    /// Adam's epsilon.
    #[arg(long)]
    pub epsilon: Option<f32>,
    /// Weight of the gradient penalty (lambda).
    #[arg(long)]
    pub lambda: Option<f32>,
    /// The penalty's target gradient norm (gamma).
    #[arg(long)]
    pub gamma: Option<f32>,
    /// Weight of the drift term, eps_drift E[D(real)^2].
    #[arg(long)]
    pub drift: Option<f32>,
    /// Decay of the generator's moving average (the EMA generator).
    #[arg(long)]
    pub ema_beta: Option<f32>,
    /// Thousands of real images per fade-in and per stabilisation phase (fractions allowed).
    #[arg(long)]
    pub phase_kimg: Option<f64>,
    /// Stop after this many thousand images.
    #[arg(long)]
    pub total_kimg: Option<f64>,
    /// Thousands of images between log lines and sample grids.
    #[arg(long)]
    pub tick_kimg: Option<f64>,
    /// Ticks between checkpoints.
    #[arg(long)]
    pub checkpoint_ticks: Option<usize>,
    /// Ticks between snapshots, checkpoints kept as `snapshot-<images>.safetensors` (0: none).
    #[arg(long)]
    pub snapshot_ticks: Option<usize>,
    /// Snapshots kept, the newest (0: all).
    #[arg(long)]
    pub snapshots: Option<usize>,
    /// Ticks between sliced Wasserstein distances in the log (0: never).
    #[arg(long)]
    pub swd_ticks: Option<usize>,
    /// Images per side for those distances.
    #[arg(long)]
    pub swd_images: Option<usize>,
    /// Seeds weights, minibatches and latents.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Turn off random horizontal flips of the real images.
    #[arg(long)]
    pub no_mirror: bool,
    /// Sample grids are N x N images, N from 1 to 32 (each is generated and held whole).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=32))]
    pub grid: Option<usize>,
    /// Where prepared datasets are cached (resuming a run folder without --out: `cache` beside that
    /// folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Nothing on stderr while training: no progress bar, no tick lines (they still go to log.txt
    /// and log.jsonl).
    #[arg(long)]
    pub quiet: bool,
    /// Write no TensorBoard event files into the run folder.
    #[arg(long)]
    pub no_tensorboard: bool,
    /// The layers' matrix products: f32, mixed (f16 operands, f32 sums; needs shader-f16) or auto
    /// (mixed where the adapter has f16 arithmetic). Kept in config.json when not f32; a resumed
    /// run keeps its own unless given.
    #[arg(long)]
    pub precision: Option<PrecisionChoice>,
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// Where runs go without `--out`.
const OUT: &str = "runs";
/// The side of sample grids without `--grid`.
const GRID: usize = 8;

/// Writes `[default: X]` into the help of each flag that has a default: the configuration's, which
/// a new run starts from (a resumed run keeps its own, so clap must not fill them in).
pub fn show_defaults(cmd: clap::Command) -> clap::Command {
    let c = TrainConfig::default();
    let (net, s) = (&c.net, &c.schedule);
    let defaults = [
        ("data", c.data.clone()),
        ("out", OUT.to_string()),
        ("max_res", net.max_res.to_string()),
        ("fmap_base", net.fmap_base.to_string()),
        ("fmap_max", net.fmap_max.to_string()),
        ("latent", net.latent.to_string()),
        ("channels", net.channels.to_string()),
        ("minibatch", s.minibatch.to_string()),
        ("lr", c.adam.lr.to_string()),
        ("phase_kimg", s.phase_kimg.to_string()),
        ("total_kimg", "the end of the last stabilisation".to_string()),
        ("tick_kimg", c.tick_kimg.to_string()),
        ("checkpoint_ticks", c.checkpoint_ticks.to_string()),
        ("snapshot_ticks", c.snapshot_ticks.to_string()),
        ("snapshots", c.snapshots.to_string()),
        ("swd_ticks", c.swd_ticks.to_string()),
        ("swd_images", c.swd_images.to_string()),
        ("seed", c.seed.to_string()),
        ("grid", GRID.to_string()),
        ("cache", "<out>/cache".to_string()),
        ("precision", c.precision.name().to_string()),
        ("beta1", c.adam.beta1.to_string()),
        ("beta2", c.adam.beta2.to_string()),
        ("epsilon", c.adam.epsilon.to_string()),
        ("lambda", c.lambda.to_string()),
        ("gamma", c.gamma.to_string()),
        ("drift", c.drift.to_string()),
        ("ema_beta", c.ema_beta.to_string()),
    ];
    defaults.into_iter().fold(cmd, |cmd, (id, value)| {
        cmd.mut_arg(id, |a| {
            // As clap shows its own defaults: after the text in short help, a paragraph in long help.
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            let long = a.get_long_help().map_or(help.clone(), ToString::to_string);
            a.help(format!("{help} [default: {value}]"))
                .long_help(format!("{long}\n\n[default: {value}]"))
        })
    })
}

// Defaults live here rather than in clap attributes so that `TrainArgs::default()`, what `pggan`
// without a command runs, has them too.
impl TrainArgs {
    fn out(&self) -> PathBuf {
        self.out.clone().unwrap_or_else(|| OUT.into())
    }

    fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        let net = &mut cfg.net;
        let s = &mut cfg.schedule;
        macro_rules! set {
            ($($field:expr => $value:expr),* $(,)?) => { $(if let Some(v) = $value.clone() { $field = v; })* };
        }
        set!(net.max_res => self.max_res, net.fmap_base => self.fmap_base, net.fmap_max => self.fmap_max,
             net.latent => self.latent, net.channels => self.channels, s.minibatch => self.minibatch,
             cfg.adam.lr => self.lr, s.phase_kimg => self.phase_kimg, cfg.tick_kimg => self.tick_kimg,
             cfg.checkpoint_ticks => self.checkpoint_ticks, cfg.seed => self.seed, cfg.data => self.data,
             cfg.swd_ticks => self.swd_ticks, cfg.swd_images => self.swd_images,
             cfg.snapshot_ticks => self.snapshot_ticks, cfg.snapshots => self.snapshots,
             cfg.precision => self.precision, cfg.adam.beta1 => self.beta1,
             cfg.adam.beta2 => self.beta2, cfg.adam.epsilon => self.epsilon, cfg.lambda => self.lambda, cfg.gamma => self.gamma,
             cfg.drift => self.drift, cfg.ema_beta => self.ema_beta);
        if self.total_kimg.is_some() {
            s.total_kimg = self.total_kimg;
        }
        if let Some(m) = &self.minibatch_res {
            s.minibatch_res = parse_res_map(m).context("--minibatch-res")?;
        }
        if let Some(m) = &self.lr_res {
            cfg.adam.lr_res = parse_res_map(m).context("--lr-res")?;
        }
        if self.no_mirror {
            cfg.mirror = false;
        }
        cfg.validate()
    }
}

/// Far above any configuration file (about 1 KiB): a device or a huge file given as one is refused.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

fn read_json_config(path: &Path) -> Result<TrainConfig> {
    let bytes = files::read_regular(path, MAX_CONFIG_BYTES)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    TrainConfig::from_json(&text).with_context(|| format!("{} is not a valid pggan configuration", path.display()))
}

/// `load_data` to read images at `r` x `r` (the metrics): a prepared file may hold larger ones, and
/// its level of `r` is read.
pub fn load_level(name: &str, c: usize, r: usize, cache: &Path) -> Result<Dataset> {
    let path = Path::new(name);
    if name == EMOJI || !path.is_file() {
        return load_data(name, c, r, cache);
    }
    let data = Dataset::open(path)?;
    ensure!(
        data.channels() == c && data.resolutions().any(|level| level == r),
        "the prepared dataset {name} holds {}x{} images with {} channels; {r}x{r} with {c} are asked for",
        data.max_res(),
        data.max_res(),
        data.channels()
    );
    errln!("{}", summary(&data));
    Ok(data)
}

/// The dataset a configuration names, prepared at its resolution (cached natively).
pub fn load_dataset(cfg: &TrainConfig, cache: &Path) -> Result<Dataset> {
    load_data(&cfg.data, cfg.net.channels, cfg.net.max_res, cache)
}

/// `"emoji"`, an image folder (prepared into the cache) or a prepared file, with `c` channels at
/// `r` x `r`; progress while preparing, and a summary.
pub fn load_data(name: &str, c: usize, r: usize, cache: &Path) -> Result<Dataset> {
    let path = Path::new(name);
    let data = if name == EMOJI {
        data::cached(Some(cache), &data::emoji_cache_key(c, r), || data::emoji(c, r))?
    } else if path.is_file() {
        let data = Dataset::open(path)?;
        ensure!(
            (data.max_res(), data.channels()) == (r, c),
            "the prepared dataset {name} is {}x{} with {} channels; this run needs {r}x{r} with {c} \
             (--max-res, --channels): prepare it again with pggan dataset prepare --res {r} --channels {c}",
            data.max_res(),
            data.max_res(),
            data.channels()
        );
        data
    } else {
        let mut progress = Progress::new(&format!("preparing {name}"));
        let data = data::folder(path, c, r, Some(cache), &mut |d, t| progress.update(d, t))?;
        progress.finish();
        data
    };
    errln!("{}", summary(&data));
    Ok(data)
}

/// `pggan train`: exit status 130 when stopped by a signal (with a checkpoint written). Under an
/// MPI launcher (with the `mpi` feature), one rank of a data-parallel run.
pub fn run(args: &TrainArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let gpu = &args.gpu.options();
    #[cfg(feature = "mpi")]
    if pggan::train::mpi::launched() {
        return distributed(args, gpu, stop);
    }
    train(args, gpu, stop, None).map(exit_code)
}

fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Finished => ExitCode::SUCCESS,
        Outcome::Interrupted => ExitCode::from(130),
    }
}

/// One rank of a data-parallel run: its adapter by its rank on its host (unless `--adapter` names
/// one); an error ends every rank (MPI_Abort), naming this one.
#[cfg(feature = "mpi")]
fn distributed(args: &TrainArgs, gpu: &GpuOptions, stop: Arc<AtomicBool>) -> Result<ExitCode> {
    pggan::train::mpi::run_rank(gpu, stop.clone(), |gpu, mpi| train(args, gpu, stop, Some(mpi))).map(exit_code)
}

/// The checkpoint to resume; in a data-parallel run rank 0 reads it and sends it to every rank
/// (the other hosts need not see the file).
fn read_checkpoint(file: &Path, replicas: Option<&mut dyn Replicas>) -> Result<Checkpoint> {
    let Some(r) = replicas else {
        return checkpoint::load(file);
    };
    let mut bytes = match r.rank() {
        0 => pggan::checkpoint::read(file)?,
        _ => Vec::new(),
    };
    r.broadcast(&mut bytes)?;
    checkpoint::load_bytes(file, &bytes)
}

/// Where a run goes: its folder (none on the ranks other than 0) and a line for its log about where
/// it comes from.
struct Destination {
    dir: PathBuf,
    origin: String,
    /// The run folder's lock, held until the run ends: one process trains in a folder at a time.
    _lock: Option<files::Lock>,
}

impl Destination {
    /// Where a rank other than 0 writes: nowhere.
    fn none() -> Destination {
        Destination {
            dir: PathBuf::new(),
            origin: String::new(),
            _lock: None,
        }
    }

    /// A new, locked run folder under `out`.
    fn new_run(out: &Path, cfg: &TrainConfig, origin: String) -> Result<Destination> {
        let dir = run::new_run_dir(out, cfg)?;
        let lock = files::lock_run(&dir)?;
        Ok(Destination {
            dir,
            origin,
            _lock: Some(lock),
        })
    }
}

/// A new run, or `--resume` of one; with `replicas`, one process of a data-parallel run, where
/// rank 0 alone writes the run folder.
fn train(
    args: &TrainArgs,
    gpu: &GpuOptions,
    stop: Arc<AtomicBool>,
    replicas: Option<Box<dyn Replicas>>,
) -> Result<Outcome> {
    ensure_folder("--out", &args.out())?;
    if let Some(cache) = &args.cache {
        ensure_folder("--cache", cache)?;
    }
    let lead = replicas.as_ref().is_none_or(|r| r.rank() == 0);
    let (trainer, to) = match &args.resume {
        Some(path) => resumed(args, gpu, path, replicas, lead)?,
        None => started(args, gpu, replicas, lead)?,
    };
    if let Some(warning) = trainer.precision_warning() {
        errln!("warning: {warning}");
    }
    if lead {
        errln!("precision: {}", trainer.layers().describe());
    }
    describe_adapter(&trainer);
    let (rank, ranks) = trainer.rank();
    let flag = stop.clone();
    // The first Ctrl-C, SIGTERM or SIGHUP stops after the current step with a checkpoint; a
    // second one exits at once.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    })
    .context("cannot install the signal handler")?;
    #[cfg(feature = "mpi")]
    if !lead {
        let outcome = pggan::train::mpi::follow(trainer);
        describe_memory(rank, ranks);
        return outcome;
    }
    let terminal = std::io::stderr().is_terminal();
    let opts = RunOptions {
        grid: args.grid.unwrap_or(GRID),
        stop: &stop,
        progress: !args.quiet && terminal,
        tick_lines: !args.quiet && !terminal,
        tensorboard: !args.no_tensorboard,
    };
    let mut driver = Driver::new(trainer, Cadence::Ticks);
    let outcome = run::train(&mut driver, &to.dir, &opts, &to.origin)?;
    match outcome {
        Outcome::Finished => errln!("finished; checkpoint in {}", to.dir.join(CHECKPOINT).display()),
        Outcome::Interrupted => errln!(
            "interrupted; checkpoint written. Continue with: pggan train --resume {}",
            to.dir.display()
        ),
    }
    describe_memory(rank, ranks);
    Ok(outcome)
}

/// In a data-parallel run, each process's peak resident memory and its private memory at the end
/// (the dataset is read from one file, not held by each process).
fn describe_memory(rank: usize, ranks: usize) {
    if let (Some((peak, private)), true) = (pggan::bench::memory(), ranks > 1) {
        // Formatted first: the processes share stderr.
        let line = format!(
            "rank {rank} of {ranks}: peak memory {:.1} MB, private {:.1} MB",
            peak as f64 / 1e6,
            private as f64 / 1e6
        );
        errln!("{line}");
    }
}

/// `--resume PATH`: the checkpoint's run with the settings given, and where it continues.
fn resumed(
    args: &TrainArgs,
    gpu: &GpuOptions,
    path: &Path,
    mut replicas: Option<Box<dyn Replicas>>,
    lead: bool,
) -> Result<(Trainer, Destination)> {
    let (file, run) = match lead {
        true => resume_source(path)?,
        false => (path.to_path_buf(), None),
    };
    let (run_dir, lock) = run.unzip();
    let mut ck = read_checkpoint(&file, replicas.as_mut().map(|r| r.as_mut() as &mut dyn Replicas))?;
    let mut cfg = match &args.config {
        Some(file) => read_json_config(file)?,
        None => ck.config.clone(),
    };
    args.apply(&mut cfg)?;
    ck.config.check_resumable_as(&cfg)?;
    // Where the run continues is known, and writable, before the dataset and the GPU.
    match &run_dir {
        Some(dir) => run::check_writable(dir)?,
        None if lead => run::check_writable(&args.out())?,
        None => {}
    }
    let data = load_dataset(&cfg, &cache_dir(args, run_dir.as_deref()))?;
    ck.config = cfg;
    let mut trainer = Trainer::resume(block_on(Gpu::new(gpu))?, &ck, data)?;
    if let Some(r) = replicas {
        block_on(trainer.distribute(r))?;
    }
    let at = format!("kimg {:.3}", kimg(trainer.state().images));
    let to = match run_dir {
        Some(dir) => Destination {
            origin: format!("resuming at {at} (step {})", trainer.state().steps),
            dir,
            _lock: lock,
        },
        None if !lead => Destination::none(),
        // Any other checkpoint file (a snapshot, a copy, the page's) leaves its run untouched:
        // the continuation is a new run that records where it came from.
        None => Destination::new_run(
            &args.out(),
            trainer.cfg(),
            format!(
                "new run resumed from {} at {at}",
                file.canonicalize().unwrap_or(file.clone()).display()
            ),
        )?,
    };
    if lead {
        errln!("{}: {}", to.dir.display(), to.origin);
    }
    Ok((trainer, to))
}

/// A new run from the settings given, and its new folder.
fn started(
    args: &TrainArgs,
    gpu: &GpuOptions,
    replicas: Option<Box<dyn Replicas>>,
    lead: bool,
) -> Result<(Trainer, Destination)> {
    let mut cfg = match &args.config {
        Some(file) => read_json_config(file)?,
        None => TrainConfig::default(),
    };
    args.apply(&mut cfg)?;
    if lead {
        run::check_writable(&args.out())?;
    }
    let data = load_dataset(&cfg, &cache_dir(args, None))?;
    let mut trainer = Trainer::new(block_on(Gpu::new(gpu))?, cfg, data)?;
    if let Some(r) = replicas {
        block_on(trainer.distribute(r))?;
    }
    if !lead {
        return Ok((trainer, Destination::none()));
    }
    let to = Destination::new_run(&args.out(), trainer.cfg(), "new run".to_string())?;
    errln!("new run {}", to.dir.display());
    Ok((trainer, to))
}

/// The adapter (each rank's, with its precision, in a data-parallel run), and a warning for a
/// software one.
fn describe_adapter(trainer: &Trainer) {
    let gpu = trainer.gpu();
    match trainer.rank() {
        (_, 1) => errln!("adapter: {}", gpu.describe()),
        // Each process resolves `auto` and checks the cooperative kernel on its own device. The
        // line is formatted first: stderr is unbuffered, and the processes share it.
        (rank, ranks) => {
            let line = format!(
                "rank {rank} of {ranks}: adapter {}, precision {}",
                gpu.describe(),
                trainer.layers().describe()
            );
            errln!("{line}");
        }
    }
    if gpu.info.device_type == wgpu::DeviceType::Cpu {
        errln!(
            "warning: {} is a software adapter (the GPU is emulated on the CPU): training runs \
             hundreds of times slower than on a GPU; the ETA counts every resolution still to come",
            gpu.info.name
        );
    }
}

/// Where prepared datasets are cached: `--cache`, or `cache` in the runs folder: `--out`, else the
/// folder that holds the resumed run folder `run_dir`, else `runs`.
fn cache_dir(args: &TrainArgs, run_dir: Option<&Path>) -> PathBuf {
    if let Some(cache) = &args.cache {
        return cache.clone();
    }
    match (&args.out, run_dir.and_then(Path::parent)) {
        (None, Some(runs)) => runs.join("cache"),
        _ => args.out().join("cache"),
    }
}

/// The checkpoint file `--resume PATH` names, and the run folder to continue in with its lock: a run
/// folder (its `config.json` and `checkpoint.safetensors`), given as the folder or as that
/// checkpoint, continues in place; any other checkpoint file has none (the run starts a new folder).
/// The lock is taken first, so a second run of a folder is refused before it reads anything.
fn resume_source(path: &Path) -> Result<(PathBuf, Option<(PathBuf, files::Lock)>)> {
    if path.is_dir() {
        ensure!(
            path.join(CONFIG).exists(),
            "{} is not a run folder (no {CONFIG}); give a run folder or a checkpoint file",
            path.display()
        );
        // Before the checkpoint is looked for: a run in training may not have written it yet.
        let lock = files::lock_run(path)?;
        let file = path.join(CHECKPOINT);
        ensure!(
            file.exists(),
            "the run folder {} has no checkpoint yet: it stopped before its first one (written every \
             --checkpoint-ticks ticks and when a run is stopped), so there is nothing to resume; start \
             a new run",
            path.display()
        );
        return Ok((file, Some((path.to_path_buf(), lock))));
    }
    ensure!(path.exists(), "no checkpoint at {}", path.display());
    let dir = path
        .parent()
        .filter(|d| path.file_name() == Some(CHECKPOINT.as_ref()) && d.join(CONFIG).exists());
    let run = match dir {
        Some(dir) => Some((dir.to_path_buf(), files::lock_run(dir)?)),
        None => None,
    };
    Ok((path.to_path_buf(), run))
}

/// A checkpoint given as a file or as a run folder (its `checkpoint.safetensors`).
pub fn find_checkpoint(path: &Path) -> Result<Checkpoint> {
    let file = match path.is_dir() {
        true => path.join(CHECKPOINT),
        false => path.to_path_buf(),
    };
    ensure!(
        file.exists(),
        "no checkpoint at {} (a run folder has {CHECKPOINT} once it has trained a few ticks)",
        file.display()
    );
    checkpoint::load(&file)
}
