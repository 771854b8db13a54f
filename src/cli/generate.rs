//! `pggan generate` and `pggan interpolate`: images and latent walks from a checkpoint's EMA
//! generator. Latents by seed (`--seeds 0-35,100`, one image per seed), truncated (`--trunc T`) or
//! read from a `.npy` file; PNG files, one grid, or G's float output as `.npy`; and beside them the
//! latents used, so that any image can be made again (`--latents`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use pggan::data::Images;
use pggan::gpu::{Gpu, GpuOptions};
use pggan::rng::Rng;
use pggan::samples::{self, grid, Picture};
use pggan::train::sample::Sampler;
use pggan::{files, outln};
use pollster::block_on;

use super::train::find_checkpoint;
use super::{ensure_folder, GpuArgs};

pub const GENERATE_EXAMPLES: &str = "\
Examples:
  # 16 PNG files from a run's checkpoint, in generated/:
  pggan generate --checkpoint runs/000-emoji-64
  # The images of seeds 0 to 63 as one grid, latents truncated to |z| <= 2:
  pggan generate --checkpoint runs/000-emoji-64 --seeds 0-63 --trunc 2 --grid --out grid";

pub const INTERPOLATE_EXAMPLES: &str = "\
Examples:
  # A 5-second loop (120 frames at 24 fps) through 4 random latents:
  pggan interpolate --checkpoint runs/000-emoji-64 --out walk.gif
  # A walk through the images of seeds 3, 7 and 12:
  pggan interpolate --checkpoint runs/000-emoji-64 --seeds 3,7,12 --frames 60";

/// Settings of `pggan generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// A checkpoint or snapshot file, or a run folder (its checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images of random latents (without --seeds or --latents), 1 to 100000.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_IMAGES as u64))]
    count: usize,
    /// Seeds the random latents of --count.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Latents from a NumPy file [N, latent] (float32 or float64) instead of random ones.
    #[arg(long)]
    latents: Option<PathBuf>,
    /// The folder the images and `latents.npy` are written into (created if missing).
    #[arg(long, default_value = "generated")]
    out: PathBuf,
    /// Write one square grid of the images, `grid.png`, instead of a file per image.
    #[arg(long)]
    grid: bool,
    #[command(flatten)]
    options: GenerateOptions,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// Settings of `pggan interpolate`.
#[derive(Args)]
pub struct InterpolateArgs {
    /// A checkpoint or snapshot file, or a run folder (its checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Seeds the random latents of --keys.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frames of the whole loop, 2 to 10000 (each is held in memory until the GIF is written).
    #[arg(long, default_value_t = 120, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=MAX_FRAMES as u64))]
    frames: usize,
    /// Random latents the walk passes through before it loops, at most 10000 (--seeds names them
    /// instead).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=MAX_FRAMES as u64))]
    keys: usize,
    /// Frames per second of the GIF.
    #[arg(long, default_value_t = 24)]
    fps: u32,
    /// The GIF file to write.
    #[arg(long, default_value = "walk.gif")]
    out: PathBuf,
    #[command(flatten)]
    keys_from: SeedOptions,
    #[command(flatten)]
    gpu: GpuArgs,
}

/// `pggan generate`.
pub fn run_generate(a: &GenerateArgs) -> Result<ExitCode> {
    ensure_folder("--out", &a.out)?;
    let g = Generator::load(&a.checkpoint, &a.gpu.options())?;
    let n = images(&g, a.count, a.seed, a.latents.as_deref(), &a.out, a.grid, &a.options)?;
    outln!("wrote {n} images to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `pggan interpolate`.
pub fn run_interpolate(a: &InterpolateArgs) -> Result<ExitCode> {
    let g = Generator::load(&a.checkpoint, &a.gpu.options())?;
    interpolate(&g, a.seed, a.frames, a.keys, a.fps, &a.out, &a.keys_from)?;
    outln!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// What `generate`, `interpolate` and the metrics need of a checkpoint file: its EMA generator
/// ([`Sampler`]), run to completion on the native GPU.
pub struct Generator(Sampler);

impl Generator {
    /// The checkpoint is read first: a mistyped path is reported before the GPU's driver says
    /// anything.
    pub fn load(path: &Path, gpu: &GpuOptions) -> Result<Generator> {
        let ck = find_checkpoint(path)?;
        Ok(Generator(Sampler::new(block_on(Gpu::new(gpu))?, ck)?))
    }

    pub fn latent(&self) -> usize {
        self.0.ck.config.net.latent
    }

    pub fn gpu(&self) -> &Gpu {
        &self.0.gpu
    }

    pub fn sampler(&self) -> &Sampler {
        &self.0
    }

    /// Images for `latents` at the checkpoint's resolution and fade-in.
    pub fn run(&self, latents: &[f32]) -> Result<pggan::data::Images> {
        block_on(self.0.run(latents))
    }
}

/// The latents used, [N, latent] float32, written beside the images.
pub const LATENTS: &str = "latents.npy";
/// `--format npy`'s images, [N, C, H, W] float32.
pub const IMAGES: &str = "images.npy";
/// More seeds than anyone renders in one call: a typo such as `0-1000000000` is refused, not run.
const MAX_SEEDS: usize = 1_000_000;
/// The most images `--count` asks for: their latents, values and PNGs are held at once.
const MAX_IMAGES: usize = 100_000;
/// The most frames (and keys) of a walk: every frame is held until the GIF is written.
const MAX_FRAMES: usize = 10_000;
/// The smallest `--trunc`: each component is drawn again until it is within the bound, about
/// 1 / (0.8 T) draws for a small T, so a smaller one would take longer than anyone waits.
const MIN_TRUNC: f64 = 0.01;
/// The largest `--latents` file read: [MAX_SEEDS, 512] float64 with its header.
const MAX_LATENTS_BYTES: u64 = (MAX_SEEDS * 512 * 8 + 4096) as u64;

/// A list of seeds: `0-35,100` is 0 to 35, then 100.
#[derive(Clone, Debug, PartialEq)]
pub struct Seeds(pub Vec<u64>);

impl std::str::FromStr for Seeds {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Seeds> {
        let bad = || format!("bad seed list {text:?}: give seeds and ranges such as 0-35,100");
        let mut seeds = Vec::new();
        for item in text.split(',').map(str::trim) {
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (a.trim().parse().with_context(bad)?, b.trim().parse().with_context(bad)?),
                None => {
                    let s: u64 = item.parse().with_context(bad)?;
                    (s, s)
                }
            };
            ensure!(first <= last, "bad seed range {item}: it ends before it starts");
            ensure!(
                last - first < (MAX_SEEDS - seeds.len()) as u64,
                "{text} is more than {MAX_SEEDS} seeds"
            );
            seeds.extend(first..=last);
        }
        Ok(Seeds(seeds))
    }
}

/// Where drawn latents come from (`generate` and `interpolate`).
#[derive(clap::Args, Debug, Default)]
pub struct SeedOptions {
    /// Seeds such as `0-35,100`: seed s draws its latent from the random generator seeded with s,
    /// as `--seed s --count 1` does, so a seed names its image. `generate`: one image per seed
    /// (`seed0000.png`, ...); `interpolate`: the walk's keys, in order.
    #[arg(long)]
    pub seeds: Option<Seeds>,
    /// Truncation: each latent component is drawn from N(0, 1) again until |z_i| <= T, with
    /// T >= 0.01 (without it, none).
    #[arg(long, value_parser = parse_trunc)]
    pub trunc: Option<f64>,
}

fn parse_trunc(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t >= MIN_TRUNC && t.is_finite() => Ok(t),
        _ => Err(format!(
            "--trunc must be a number of at least {MIN_TRUNC} (below that nearly every draw is redrawn)"
        )),
    }
}

impl SeedOptions {
    /// The latent [latent] of each seed.
    fn latents(&self, seeds: &Seeds, latent: usize) -> Vec<Vec<f32>> {
        seeds
            .0
            .iter()
            .map(|&s| normals(&mut Rng::new(s), latent, self.trunc))
            .collect()
    }
}

/// What `generate` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq)]
pub enum Format {
    /// One PNG per image (or one grid with --grid), clipped to [-1, 1] and scaled to 0..255.
    #[default]
    Png,
    /// G's output as it is (unclipped), `images.npy`: float32 [N, C, H, W].
    Npy,
}

/// `generate`'s flags beyond the checkpoint, count, seed, latents file, folder and grid.
#[derive(clap::Args, Debug, Default)]
pub struct GenerateOptions {
    #[command(flatten)]
    pub latents: SeedOptions,
    /// What to write.
    #[arg(long, value_enum, default_value_t = Format::Png)]
    pub format: Format,
}

/// `n` values from N(0, 1) (the generator's `normal`, rounded to f32), each truncated to
/// |z| <= `trunc` by drawing it again while it is beyond; without `trunc`, `rng.normals(n)`.
pub fn normals(rng: &mut Rng, n: usize, trunc: Option<f64>) -> Vec<f32> {
    (0..n)
        .map(|_| loop {
            let z = rng.normal() as f32;
            // Compared after rounding, so that the stored f32 value itself is within the bound.
            if trunc.is_none_or(|t| z.abs() as f64 <= t) {
                break z;
            }
        })
        .collect()
}

/// `pggan generate`: images of the latents from `latents_file`, `--seeds`, or `count` random ones
/// drawn from `seed`, into `out` with `latents.npy`; returns how many.
fn images(
    g: &Generator,
    count: usize,
    seed: u64,
    latents_file: Option<&Path>,
    out: &Path,
    as_grid: bool,
    opts: &GenerateOptions,
) -> Result<usize> {
    let (drawn, latent) = (&opts.latents, g.latent());
    ensure!(
        !(as_grid && opts.format == Format::Npy),
        "--grid makes one PNG; leave it out with --format npy"
    );
    let z = match (latents_file, &drawn.seeds) {
        (Some(_), Some(_)) => bail!("--latents and --seeds both give the latents; use one"),
        (Some(file), None) => {
            ensure!(
                drawn.trunc.is_none(),
                "--trunc applies to drawn latents, not to --latents"
            );
            let bytes = files::read_regular(file, MAX_LATENTS_BYTES)?;
            samples::read_npy(&bytes, latent).with_context(|| format!("{}", file.display()))?
        }
        (None, Some(seeds)) => drawn.latents(seeds, latent).concat(),
        (None, None) => normals(&mut Rng::new(seed), count * latent, drawn.trunc),
    };
    let sampler = g.sampler();
    let values = block_on(sampler.run_values(&z))?;
    let (n, c, r) = (
        z.len() / latent,
        sampler.ck.config.net.channels,
        sampler.position().res(),
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| files::write_atomic(&out.join(name), bytes);
    write(LATENTS, &samples::npy(&[n, latent], &z))?;
    if opts.format == Format::Npy {
        write(IMAGES, &samples::npy(&[n, c, r, r], &values))?;
        return Ok(n);
    }
    let images = Images::from_f32(n, c, r, &values)?;
    if as_grid {
        let cols = (n as f64).sqrt().ceil() as usize;
        return write("grid.png", &grid(&images, cols, r)?.png()?).map(|()| n);
    }
    for i in 0..n {
        let name = match &drawn.seeds {
            Some(seeds) => format!("seed{:04}.png", seeds.0[i]),
            None => format!("{i:06}.png"),
        };
        write(&name, &images.picture(i).png()?)?;
    }
    Ok(n)
}

/// `pggan interpolate`: a looping GIF walking through `--seeds`' latents, or `keys` random ones
/// drawn from `seed`.
fn interpolate(
    g: &Generator,
    seed: u64,
    frames: usize,
    keys: usize,
    fps: u32,
    out: &Path,
    drawn: &SeedOptions,
) -> Result<()> {
    let latent = g.latent();
    let keyframes = match (&drawn.seeds, drawn.trunc) {
        // As before --seeds and --trunc existed: keys drawn in f64.
        (None, None) => None,
        (Some(seeds), _) => {
            ensure!(seeds.0.len() >= 2, "a walk needs at least two --seeds");
            Some(drawn.latents(seeds, latent))
        }
        (None, trunc) => {
            let mut rng = Rng::new(seed);
            Some((0..keys.max(2)).map(|_| normals(&mut rng, latent, trunc)).collect())
        }
    };
    let z = match keyframes {
        Some(k) => {
            let k: Vec<Vec<f64>> = k.iter().map(|z| z.iter().map(|&v| v as f64).collect()).collect();
            samples::walk_through(&k, frames)
        }
        None => samples::latent_walk(latent, keys, frames, seed),
    };
    let images = g.run(&z)?;
    let pictures: Vec<Picture> = (0..images.count).map(|i| images.picture(i)).collect();
    files::write_atomic(out, &samples::gif(&pictures, fps)?)
}
