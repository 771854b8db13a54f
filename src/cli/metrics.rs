//! The native `pggan metrics` commands: SWD between two image sets (folders, the emoji set, or a
//! checkpoint's generator) and MS-SSIM among generated (or real) images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Result};
use clap::{Args, Subcommand};
use pollster::block_on;
use serde::Serialize;

use pggan::data::Images;
use pggan::gpu::{Gpu, GpuOptions};
use pggan::metrics::{ms_ssim_pairs, swd, Swd, SwdConfig};
use pggan::outln;
use pggan::rng::Rng;

use super::generate::Generator;
use super::train::load_data;

/// The metrics of `pggan metrics`.
#[derive(Subcommand)]
pub enum Metric {
    /// SWD x1e3 per Laplacian-pyramid level and their average, real against fake images.
    Swd {
        /// Real images: an image folder, or `emoji` (the embedded set).
        #[arg(long, default_value = "emoji")]
        real: String,
        /// Fake images from a folder (or use --checkpoint).
        #[arg(long)]
        fake: Option<PathBuf>,
        #[command(flatten)]
        source: Source,
    },
    /// Mean MS-SSIM of random pairs of images (generated with --checkpoint, or --images).
    Msssim {
        /// A folder, or `emoji`, instead of a checkpoint's images.
        #[arg(long)]
        images: Option<String>,
        #[arg(long, default_value_t = 10000)]
        pairs: usize,
        #[command(flatten)]
        source: Source,
    },
}

/// `pggan metrics`.
pub fn run(metric: &Metric, gpu: &GpuOptions) -> Result<ExitCode> {
    match metric {
        Metric::Swd { real, fake, source } => swd_command(real, fake.as_deref(), source, gpu)?,
        Metric::Msssim { images, pairs, source } => msssim_command(images.as_deref(), *pairs, source, gpu)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Where a side's images come from: a checkpoint's EMA generator, or a dataset.
#[derive(Args, Debug)]
pub struct Source {
    /// Generate the images with this checkpoint (a run folder or a file).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Images per side (the paper uses 16384 for SWD).
    #[arg(long, default_value_t = 4096)]
    pub count: usize,
    /// Resolution for datasets, a power of two from 4 to 1024 as the networks' (default: the
    /// checkpoint's, else 64).
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4..=1024))]
    pub res: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where prepared datasets are cached.
    #[arg(long, default_value = "runs/cache")]
    pub cache: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `count` images of a dataset (`"emoji"` or a folder), drawn at random without repeats when it
/// has more.
fn dataset_images(name: &str, channels: usize, res: usize, count: usize, src: &Source, seed: u64) -> Result<Images> {
    let data = load_data(name, channels, res, &src.cache)?;
    let all = data.at(res)?;
    Ok(all.pick(&Rng::new(seed).sample(all.count, count)))
}

fn generated(g: &Generator, count: usize, seed: u64) -> Result<Images> {
    ensure!(count > 0, "--count must be at least 1");
    g.run(&Rng::new(seed).normals(count * g.latent()))
}

#[derive(Serialize)]
struct SwdReport<'a> {
    adapter: String,
    images: usize,
    res: usize,
    real: &'a str,
    fake: String,
    swd: Swd,
}

/// `pggan metrics swd`: the sliced Wasserstein distance between real and fake images.
fn swd_command(real: &str, fake: Option<&Path>, src: &Source, opts: &GpuOptions) -> Result<()> {
    let (generator, own_gpu);
    let (fakes, fake_name, gpu) = match (&src.checkpoint, fake) {
        (Some(ck), None) => {
            generator = Generator::load(ck, opts)?;
            let fakes = generated(&generator, src.count, src.seed)?;
            (fakes, ck.display().to_string(), generator.gpu())
        }
        (None, Some(dir)) => {
            let fakes = dataset_images(
                &dir.to_string_lossy(),
                3,
                src.res.unwrap_or(64),
                src.count,
                src,
                src.seed ^ 1,
            )?;
            own_gpu = block_on(Gpu::new(opts))?;
            (fakes, dir.display().to_string(), &own_gpu)
        }
        _ => bail!("give the fake side as --fake DIR or as --checkpoint C, one of them"),
    };
    let reals = dataset_images(real, fakes.channels, fakes.res, fakes.count, src, src.seed ^ 2)?;
    let n = reals.count.min(fakes.count);
    let first: Vec<usize> = (0..n).collect();
    let (reals, fakes) = (reals.pick(&first), fakes.pick(&first));
    let report = SwdReport {
        adapter: gpu.describe(),
        images: n,
        res: reals.res,
        real,
        fake: fake_name,
        swd: block_on(swd(gpu, &reals, &fakes, &SwdConfig::default(), src.seed))?,
    };
    if src.json {
        outln!("{}", serde_json::to_string(&report)?);
    } else {
        outln!("adapter: {}", report.adapter);
        outln!(
            "sliced Wasserstein distance x1e3, {n} images per side, {r}x{r}:",
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
fn msssim_command(images: Option<&str>, pairs: usize, src: &Source, opts: &GpuOptions) -> Result<()> {
    let (set, name) = match (&src.checkpoint, images) {
        (Some(ck), None) => (
            generated(&Generator::load(ck, opts)?, src.count, src.seed)?,
            ck.display().to_string(),
        ),
        (None, Some(data)) => (
            dataset_images(data, 3, src.res.unwrap_or(64), src.count, src, src.seed)?,
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
