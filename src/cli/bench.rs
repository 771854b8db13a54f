//! `pggan bench`: the benchmarks of `pggan::bench`, printed as tables or as one JSON object.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use pggan::bench;
use pggan::gpu::{Gpu, GpuOptions, PrecisionChoice};
use pggan::ops::precision::LayerPrecision;
use pggan::train::dist::Replicas;
use pggan::{errln, out, outln};
use serde_json::Value;

use super::NetSize;

pub const EXAMPLES: &str = "\
Examples:
  # The training step's images per second up to 128x128, at the official network sizes:
  pggan bench train --resolution 128
  # The conv and dense kernels, as JSON:
  pggan bench kernels --json
  # What the adapter offers for mixed precision, and whether its kernels pass:
  pggan bench precision";

/// The benchmarks of `pggan bench`.
#[derive(Subcommand)]
pub enum BenchWhat {
    /// The host's time to record and to submit one kernel launch (a small one, so the GPU's
    /// time does not enter): the per-launch overhead that bounds the small levels' steps.
    #[command(after_long_help = "Examples:\n  pggan bench launches --launches 2000 --rounds 16")]
    Launches(LaunchesArgs),
    /// Images per second of the whole training step (D and G step, EMA) at each resolution.
    #[command(after_long_help = "\
Examples:
  # Up to 128x128 at the official network sizes:
  pggan bench train --resolution 128
  # 256x256 alone, in mixed precision, with the time of each kernel:
  pggan bench train --resolution 256 --levels 256 --precision mixed --profile")]
    Train(TrainArgs),
    /// Quality at a fixed budget: trains a fixed small configuration on the emoji set through
    /// its whole schedule, then prints the time and the SWD of its EMA generator.
    #[command(after_long_help = "Examples:\n  pggan bench quality --resolution 32 --phase-kimg 10")]
    Quality(QualityArgs),
    /// GFLOP/s of conv and dense passes beside a plain matmul of the same size.
    #[command(after_long_help = "Examples:\n  pggan bench kernels --json")]
    Kernels(KernelsArgs),
    /// The adapter's reduced-precision features (shader-f16, cooperative-matrix configurations),
    /// what `auto` resolves to, and the kernels that need them against their f64 references: the
    /// f16 convolution passes and dense product, the cooperative-matrix (tensor-core) product and
    /// the convolution passes on cooperative matrices. A kernel the
    /// adapter cannot run is refused, saying what it lacks; the exit status is a failure unless
    /// every one ran and passed.
    #[command(after_long_help = "Examples:\n  pggan bench precision")]
    Precision,
    /// The host's milliseconds to produce a minibatch of reals from a prepared file, as the trainer
    /// did before (scaled, mirrored and faded on the host in f64, uploaded as f32) and as it does now
    /// (the bytes read, uploaded as bytes, turned into reals on the GPU), at 64x64, 256x256 and
    /// 1024x1024 (those the file holds) with minibatches 16, 16 and 4; and the process's peak memory.
    #[command(after_long_help = "Examples:\n  pggan bench data --data photos-256.pggan")]
    Data(DataArgs),
}

/// The settings of `pggan bench data`.
#[derive(Args)]
pub struct DataArgs {
    /// A prepared file (`pggan dataset prepare`).
    #[arg(long)]
    data: PathBuf,
    /// Timed minibatches per resolution, after one untimed.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10000))]
    steps: usize,
}

/// The settings of `pggan bench launches`.
#[derive(Args)]
pub struct LaunchesArgs {
    /// Launches per round.
    #[arg(long, default_value_t = 2000)]
    launches: usize,
    /// Rounds; the first is not timed, the figures are the median of the others.
    #[arg(long, default_value_t = 16)]
    rounds: usize,
}

/// The settings of `pggan bench train`.
#[derive(Args)]
pub struct TrainArgs {
    /// The largest resolution; the networks are built for it.
    #[arg(long, default_value_t = 64)]
    resolution: usize,
    #[command(flatten)]
    size: NetSize,
    /// Images per step.
    #[arg(long, default_value_t = 16)]
    minibatch: usize,
    /// Timed steps per resolution.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Resolutions to time, comma-separated.
    ///
    /// [default: every one up to --resolution]
    #[arg(long, value_delimiter = ',')]
    levels: Vec<usize>,
    /// Also time every kernel over one more step at each resolution (needs timestamp queries).
    #[arg(long)]
    profile: bool,
    /// The layers' matrix products: f32, mixed (f16 operands, f32 sums) or auto.
    #[arg(long, default_value = "f32")]
    precision: PrecisionChoice,
}

/// The settings of `pggan bench quality`.
#[derive(Args)]
pub struct QualityArgs {
    /// Final resolution (SWD needs 16 or more).
    #[arg(long, default_value_t = 32)]
    resolution: usize,
    /// Thousands of real images per phase: the budget.
    #[arg(long, default_value_t = 10.0)]
    phase_kimg: f64,
    /// Images per side for the SWD.
    #[arg(long, default_value_t = 2048)]
    swd_images: usize,
    /// Seeds the weights, minibatches and latents.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the prepared emoji set is cached.
    #[arg(long, default_value = "runs/cache")]
    cache: PathBuf,
    /// The layers' matrix products, as `train --precision`: f32, mixed (f16 operands, f32 sums) or
    /// auto.
    #[arg(long, default_value = "f32")]
    precision: PrecisionChoice,
}

/// The settings of `pggan bench kernels`.
#[derive(Args)]
pub struct KernelsArgs {
    /// Images per pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Cap on every channel count (lower it on a software adapter).
    #[arg(long, default_value_t = 512)]
    max_channels: usize,
    /// Timed runs per pass, after one warm-up.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Time each convolution pass with these tile shapes (ROWSxCOLSxDEPTH, comma-separated;
    /// every shape when none is named) instead of the planned one.
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    tiles: Option<Vec<String>>,
    /// The passes' arithmetic, and the plain matmul's beside them: f32, mixed (f16 operands, f32
    /// sums) or auto.
    #[arg(long, default_value = "f32")]
    precision: PrecisionChoice,
}

/// `pggan bench`; under an MPI launcher (with the `mpi` feature), `bench train` as one rank of a
/// data-parallel run, rank 0 printing.
pub fn run(opts: &GpuOptions, what: BenchWhat, json: bool) -> Result<ExitCode> {
    #[cfg(feature = "mpi")]
    if pggan::train::mpi::launched() {
        anyhow::ensure!(
            matches!(what, BenchWhat::Train(_)),
            "only `pggan bench train` runs under an MPI launcher"
        );
        let stop = std::sync::Arc::default();
        return pggan::train::mpi::run_rank(opts, stop, |opts, mpi| bench(opts, what, json, Some(mpi)));
    }
    bench(opts, what, json, None)
}

fn bench(opts: &GpuOptions, what: BenchWhat, json: bool, mut replicas: Option<Box<dyn Replicas>>) -> Result<ExitCode> {
    let gpu = pollster::block_on(Gpu::new(opts))?;
    let lead = replicas.as_ref().is_none_or(|r| r.rank() == 0);
    let json_out = json || !lead;
    let adapter = bench::adapter(&gpu);
    if !json_out {
        outln!("adapter: {}", gpu.describe());
    }
    // Only rank 0 prints: the others' figures are gathered into its report.
    let json = json_out;
    let report = match what {
        BenchWhat::Launches(a) => launches(gpu, adapter, a, json)?,
        BenchWhat::Train(a) => train(gpu, a, json, replicas.as_mut().map(|r| r.as_mut() as &mut dyn Replicas))?,
        BenchWhat::Quality(a) => quality(gpu, adapter, a, json)?,
        BenchWhat::Kernels(a) => kernels(gpu, adapter, a, json)?,
        BenchWhat::Precision => precision(gpu, adapter, json)?,
        BenchWhat::Data(a) => data(gpu, adapter, a, json)?,
    };
    if json && lead {
        outln!("{report}");
    }
    Ok(match report.get("ok") {
        Some(Value::Bool(false)) => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn precision(gpu: Gpu, adapter: Value, json: bool) -> Result<Value> {
    let caps = &gpu.precision;
    let auto = PrecisionChoice::Auto.resolve(caps)?;
    if !json {
        out!("{}", caps.describe());
        outln!("precision auto: {auto:?}");
    }
    let (mut rows, mut refused, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for c in pggan::ops::FEATURE_CHECKS {
        if let Err(e) = (c.available)(&gpu) {
            if !json {
                outln!("{}: refused: {e:#}", c.name);
            }
            refused.push(serde_json::json!({ "check": c.name, "error": format!("{e:#}") }));
            continue;
        }
        // A check that cannot run (e.g. a kernel the driver does not compile) is reported, and the
        // next ones still run.
        match pollster::block_on((c.check)(&gpu)) {
            Ok(r) => {
                if !json {
                    out!("{}", pggan::check::table(&r));
                }
                rows.extend(r);
            }
            Err(e) => {
                if !json {
                    outln!("{}: failed: {e:#}", c.name);
                }
                failed.push(serde_json::json!({ "check": c.name, "error": format!("{e:#}") }));
            }
        }
    }
    let ok = refused.is_empty() && failed.is_empty() && rows.iter().all(|r| r.pass);
    let configs: Vec<Value> = caps
        .cooperative_matrix
        .iter()
        .map(|c| {
            serde_json::json!({
                "m": c.m_size, "n": c.n_size, "k": c.k_size,
                "ab": format!("{:?}", c.ab_type), "cr": format!("{:?}", c.cr_type),
                "saturating": c.saturating_accumulation,
            })
        })
        .collect();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.name, "shape": r.shape, "max_abs": r.max_abs, "max_rel": r.max_rel,
                "tol": r.tol, "pass": r.pass,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "bench": "precision",
        "adapter": adapter,
        "shader_f16": caps.shader_f16,
        "cooperative_matrix": configs,
        "auto": format!("{auto:?}"),
        "rows": rows,
        "refused": refused,
        "failed": failed,
        "ok": ok,
    }))
}

fn launches(gpu: Gpu, adapter: Value, a: LaunchesArgs, json: bool) -> Result<Value> {
    let LaunchesArgs { launches, rounds } = a;
    let r = bench::launches(&gpu, launches, rounds)?;
    if !json {
        outln!(
            "launches: {launches} per round, median of {} rounds: record {:.2} us, submit {:.2} us \
             per launch ({} compute passes and {} new bind groups per round)",
            rounds - 1,
            r.record_us,
            r.submit_us,
            r.passes,
            r.bind_groups
        );
    }
    Ok(serde_json::json!({ "bench": "launches", "adapter": adapter, "result": r }))
}

fn train(gpu: Gpu, a: TrainArgs, json: bool, replicas: Option<&mut dyn Replicas>) -> Result<Value> {
    let TrainArgs {
        resolution,
        size,
        minibatch,
        steps,
        warmup,
        levels,
        profile,
        precision,
    } = a;
    let settings = bench::TrainSettings {
        resolution,
        fmap_base: size.fmap_base,
        fmap_max: size.fmap_max,
        latent: size.latent,
        minibatch,
        steps,
        warmup,
        levels,
        profile,
        precision,
    };
    let b = settings.bench()?;
    if !json {
        outln!(
            "train: resolution {resolution}, fmap-base {}, fmap-max {}, latent {}, minibatch {minibatch}, \
             {steps} steps after {warmup} warm-up",
            size.fmap_base,
            size.fmap_max,
            size.latent
        );
    }
    let ranks = replicas.as_ref().map_or(1, |r| r.size());
    let (layers, rows) = pollster::block_on(bench::train_on(&gpu, &b, replicas))?;
    if !json {
        outln!("precision: {}", layers.describe());
        out!("{}", bench::train_table(&rows));
        if ranks > 1 {
            out!("{}", dist_table(ranks, minibatch, &rows));
        }
    }
    let mut report = bench::train_report(&gpu, &layers, &settings, &rows);
    report["config"]["processes"] = ranks.into();
    Ok(report)
}

/// The figures of a data-parallel `bench train`: per rank and together, and the reductions' time.
fn dist_table(ranks: usize, minibatch: usize, rows: &[bench::TrainRow]) -> String {
    let mut out = format!(
        "\n{ranks} processes, each {} of the minibatch of {minibatch}: images/s per rank and together, \
         ms per step in the gradient reductions (download, MPI, upload) per rank\n",
        minibatch / ranks
    );
    for r in rows {
        let Some(d) = &r.dist else { continue };
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
        out += &format!(
            "{:>10} images/s {} (together {:.2}), reduction ms/step {}\n",
            r.resolution,
            list(&d.ranks_images_per_s),
            d.aggregate_images_per_s,
            list(&d.ranks_reduce_ms_per_step)
        );
    }
    out
}

fn quality(gpu: Gpu, adapter: Value, a: QualityArgs, json: bool) -> Result<Value> {
    let QualityArgs {
        resolution,
        phase_kimg,
        swd_images,
        seed,
        cache,
        precision,
    } = a;
    let mut cfg = bench::quality_config(resolution, phase_kimg, seed);
    cfg.precision = precision;
    cfg.validate()?;
    // Refused here, before the data set is prepared, where the adapter cannot run it.
    cfg.precision.resolve(&gpu.precision)?;
    let data = super::train::load_data("emoji", 3, resolution, &cache)?;
    let mut trainer = pggan::train::trainer::Trainer::new(gpu, cfg, data)?;
    if let Some(warning) = trainer.precision_warning() {
        errln!("warning: {warning}");
    }
    let r = bench::quality(&mut trainer, swd_images)?;
    let layers = trainer.layers();
    if !json {
        outln!(
            "quality: emoji to {resolution}x{resolution}, {phase_kimg} kimg per phase ({} kimg), \
             precision {:?}: {:.1} s, {:.1} img/s",
            r.kimg,
            layers.precision,
            r.seconds,
            r.images_per_second
        );
        match &r.swd {
            Some(swd) => {
                for (res, d) in &swd.levels {
                    outln!("  SWD x1e3 {:>9} {d:10.3}", format!("{res}x{res}"));
                }
                outln!("  SWD x1e3 {:>9} {:10.3}", "average", swd.average);
            }
            None => outln!("  no SWD below 16x16"),
        }
    }
    Ok(serde_json::json!({
        "bench": "quality",
        "adapter": adapter,
        "config": trainer.cfg(),
        "precision": format!("{:?}", layers.precision),
        "layers": layers.describe(),
        "result": r,
    }))
}

fn data(gpu: Gpu, adapter: Value, a: DataArgs, json: bool) -> Result<Value> {
    let set = pggan::data::Dataset::open(&a.data)?;
    let rows = bench::reals_rows(&gpu, &set, a.steps)?;
    let (peak, private) = bench::memory().unwrap_or_default();
    if !json {
        outln!(
            "data: {} ({} images of {}x{}), {} minibatches per resolution after one",
            a.data.display(),
            set.count(),
            set.max_res(),
            set.max_res(),
            a.steps
        );
        match rows.is_empty() {
            true => outln!("nothing timed: the file's images are smaller than 64x64"),
            false => out!("{}", bench::data_table(&rows)),
        }
        outln!(
            "memory: peak resident {:.1} MB, private now {:.1} MB",
            peak as f64 / 1e6,
            private as f64 / 1e6
        );
    }
    Ok(serde_json::json!({
        "bench": "data",
        "adapter": adapter,
        "config": { "data": a.data, "steps": a.steps, "images": set.count(), "resolution": set.max_res() },
        "rows": rows,
        "peak_resident_bytes": peak,
        "private_bytes": private,
    }))
}

fn kernels(gpu: Gpu, adapter: Value, a: KernelsArgs, json: bool) -> Result<Value> {
    let KernelsArgs {
        batch,
        max_channels,
        reps,
        tiles,
        precision,
    } = a;
    let (layers, warning) = pollster::block_on(LayerPrecision::choose(&gpu, precision))?;
    if let Some(warning) = warning {
        errln!("warning: {warning}");
    }
    let tiles = match tiles {
        None => Vec::new(),
        Some(names) if names.is_empty() => layers.conv.tiles(),
        Some(names) => names.iter().map(|n| n.parse()).collect::<Result<_>>()?,
    };
    let mut rows = Vec::new();
    for shape in bench::pggan_shapes(batch, max_channels) {
        errln!("benchmarking {shape:?}");
        rows.extend(bench::run(&gpu, &layers, shape, reps.max(1), &tiles)?);
    }
    if !json {
        outln!("precision: {}", layers.describe());
        out!("{}", bench::table(&rows));
    }
    Ok(serde_json::json!({
        "bench": "kernels",
        "adapter": adapter,
        "config": {
            "batch": batch, "max_channels": max_channels, "reps": reps, "tiles": !tiles.is_empty(),
            "precision": precision,
        },
        "precision": format!("{:?}", layers.precision),
        "layers": layers.describe(),
        "rows": rows,
    }))
}
