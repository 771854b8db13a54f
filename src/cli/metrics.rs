//! The native `pggan metrics` commands: SWD between two image sets (folders, the emoji set, or a
//! checkpoint's generator) and MS-SSIM among generated (or real) images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, Subcommand};
use pollster::block_on;
use serde::Serialize;

use pggan::data::Images;
use pggan::gpu::{Gpu, GpuOptions};
use pggan::metrics::{ms_ssim_pairs, swd, Swd, SwdConfig};
use pggan::outln;
use pggan::rng::Rng;

use super::generate::Generator;
use super::train::load_level;

const SWD_EXAMPLES: &str = "\
Examples:
  # A checkpoint's images against the images it was trained on:
  pggan metrics swd --checkpoint runs/000-emoji-64
  # Two folders of images, at 128x128:
  pggan metrics swd --real photos --fake generated --res 128";

const MSSSIM_EXAMPLES: &str = "\
Examples:
  # The diversity of a checkpoint's images (lower: more varied):
  pggan metrics msssim --checkpoint runs/000-emoji-64";

pub const EXAMPLES: &str = "\
Examples:
  # How close a checkpoint's images come to its training data, and how varied they are:
  pggan metrics swd --checkpoint runs/000-emoji-64
  pggan metrics msssim --checkpoint runs/000-emoji-64";

/// The metrics of `pggan metrics`.
#[derive(Subcommand)]
pub enum Metric {
    /// SWD x1e3 per Laplacian-pyramid level and their average, real against fake images.
    #[command(after_long_help = SWD_EXAMPLES)]
    Swd {
        /// Real images: an image folder, or `emoji` (the embedded set).
        ///
        /// [default: with --checkpoint, the data it was trained on; with --fake, none: give --real]
        #[arg(long)]
        real: Option<String>,
        /// Fake images from a folder (or use --checkpoint).
        #[arg(long)]
        fake: Option<PathBuf>,
        /// Images per side (the paper uses 16384).
        #[arg(long, default_value_t = 4096)]
        count: usize,
        #[command(flatten)]
        source: Source,
    },
    /// Mean MS-SSIM of random pairs of images (generated with --checkpoint, or --images).
    #[command(after_long_help = MSSSIM_EXAMPLES)]
    Msssim {
        /// A folder, or `emoji`, instead of a checkpoint's images.
        #[arg(long)]
        images: Option<String>,
        /// Images generated (or drawn from --images); the pairs are drawn among them.
        #[arg(long, default_value_t = 4096)]
        count: usize,
        /// Random pairs whose MS-SSIM is averaged.
        #[arg(long, default_value_t = 10000)]
        pairs: usize,
        #[command(flatten)]
        source: Source,
    },
}

/// `pggan metrics`.
pub fn run(metric: &Metric, gpu: &GpuOptions) -> Result<ExitCode> {
    match metric {
        Metric::Swd {
            real,
            fake,
            count,
            source,
        } => swd_command(real.as_deref(), fake.as_deref(), *count, source, gpu)?,
        Metric::Msssim {
            images,
            count,
            pairs,
            source,
        } => msssim_command(images.as_deref(), *count, *pairs, source, gpu)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a side's images come from: a checkpoint's EMA generator, or a dataset.
#[derive(Args, Debug)]
pub struct Source {
    /// Generate the images with this checkpoint (a run folder or a file).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Resolution of the dataset images, a power of two from 4 to 1024 as the networks'.
    ///
    /// [default: the checkpoint's, else 64]
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4..=1024))]
    pub res: Option<usize>,
    /// Seeds the latents and the choice of images and pairs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where prepared datasets are cached.
    #[arg(long, default_value = "runs/cache")]
    pub cache: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `count` images of a dataset (`"emoji"`, a folder or a prepared file holding `res`), drawn at
/// random without repeats when it has more.
fn dataset_images(name: &str, channels: usize, res: usize, count: usize, src: &Source, seed: u64) -> Result<Images> {
    let data = load_level(name, channels, res, &src.cache)?;
    data.images(res, &Rng::new(seed).sample(data.count(), count))
}

fn generated(g: &Generator, count: usize, seed: u64) -> Result<Images> {
    ensure!(count > 0, "--count must be at least 1");
    g.run(&Rng::new(seed).normals(count * g.latent()))
}

#[derive(Serialize)]
struct SwdReport {
    adapter: String,
    images: usize,
    res: usize,
    real: String,
    fake: String,
    swd: Swd,
}

/// `pggan metrics swd`: the sliced Wasserstein distance between real and fake images; the real ones
/// are `--real`, else the data the checkpoint was trained on.
fn swd_command(real: Option<&str>, fake: Option<&Path>, count: usize, src: &Source, opts: &GpuOptions) -> Result<()> {
    let (generator, own_gpu);
    let (fakes, fake_name, real, gpu) = match (&src.checkpoint, fake) {
        (Some(ck), None) => {
            generator = Generator::load(ck, opts)?;
            let trained_on = &generator.sampler().ck.config.data;
            let fakes = generated(&generator, count, src.seed)?;
            (
                fakes,
                ck.display().to_string(),
                real.unwrap_or(trained_on),
                generator.gpu(),
            )
        }
        (None, Some(dir)) => {
            let real = real.context(
                "give the real images with --real DIR|emoji (only --checkpoint has a default: the data \
                 it was trained on)",
            )?;
            let fakes = dataset_images(
                &dir.to_string_lossy(),
                3,
                src.res.unwrap_or(64),
                count,
                src,
                src.seed ^ 1,
            )?;
            own_gpu = block_on(Gpu::new(opts))?;
            (fakes, dir.display().to_string(), real, &own_gpu)
        }
        _ => bail!("give the fake side as --fake DIR or as --checkpoint C, one of them"),
    };
    let reals = dataset_images(real, fakes.channels, fakes.res, fakes.count, src, src.seed ^ 2)
        .with_context(|| format!("the real images, {real}"))?;
    let n = reals.count.min(fakes.count);
    let first: Vec<usize> = (0..n).collect();
    let (reals, fakes) = (reals.pick(&first), fakes.pick(&first));
    let report = SwdReport {
        adapter: gpu.describe(),
        images: n,
        res: reals.res,
        real: real.to_string(),
        fake: fake_name,
        swd: block_on(swd(gpu, &reals, &fakes, &SwdConfig::default(), src.seed))?,
    };
    if src.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!("adapter: {}", report.adapter);
        outln!(
            "sliced Wasserstein distance x1e3 of {} against {real}, {n} images per side, {r}x{r}:",
            report.fake,
            r = report.res
        );
        for (res, d) in &report.swd.levels {
            outln!("  {:>9} {d:10.3}", format!("{res}x{res}"));
        }
        outln!("  {:>9} {:10.3}", "average", report.swd.average);
    }
    Ok(())
}

/// `pggan metrics msssim`: mean MS-SSIM over random pairs of generated (or dataset) images; lower
/// means more varied images.
fn msssim_command(images: Option<&str>, count: usize, pairs: usize, src: &Source, opts: &GpuOptions) -> Result<()> {
    let (set, name) = match (&src.checkpoint, images) {
        (Some(ck), None) => (
            generated(&Generator::load(ck, opts)?, count, src.seed)?,
            ck.display().to_string(),
        ),
        (None, Some(data)) => (
            dataset_images(data, 3, src.res.unwrap_or(64), count, src, src.seed)?,
            data.to_string(),
        ),
        _ => bail!("give the images as --checkpoint C or as --images DIR|emoji, one of them"),
    };
    let value = ms_ssim_pairs(&set, pairs, src.seed)?;
    if src.json {
        let report =
            serde_json::json!({"images": name, "count": set.count, "res": set.res, "pairs": pairs, "ms_ssim": value});
        outln!("{report}");
    } else {
        outln!(
            "MS-SSIM over {pairs} random pairs of {} images of {name} ({r}x{r}): {value:.4}",
            set.count,
            r = set.res
        );
    }
    Ok(())
}
