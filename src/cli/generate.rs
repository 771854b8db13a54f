//! `pggan generate` and `pggan interpolate`: images and latent walks from a checkpoint's EMA
//! generator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{ensure, Context, Result};
use clap::Args;
use pggan::gpu::{Gpu, GpuOptions};
use pggan::samples::{self, grid, Picture};
use pggan::train::trainer::Sampler;
use pollster::block_on;

use super::train::find_checkpoint;

/// Settings of `pggan generate`.
#[derive(Args)]
pub struct GenerateArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value_t = 16)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Latents from a NumPy file [N, latent] (float32 or float64) instead of random ones.
    #[arg(long)]
    latents: Option<PathBuf>,
    #[arg(long, default_value = "generated")]
    out: PathBuf,
    #[arg(long)]
    grid: bool,
}

/// Settings of `pggan interpolate`.
#[derive(Args)]
pub struct InterpolateArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 120)]
    frames: usize,
    /// Random latents the walk passes through before it loops.
    #[arg(long, default_value_t = 4)]
    keys: usize,
    #[arg(long, default_value_t = 24)]
    fps: u32,
    #[arg(long, default_value = "walk.gif")]
    out: PathBuf,
}

/// `pggan generate`.
pub fn run_generate(a: &GenerateArgs, gpu: &GpuOptions) -> Result<ExitCode> {
    let g = Generator::load(&a.checkpoint, gpu)?;
    let n = generate_images(&g, a.count, a.seed, a.latents.as_deref(), &a.out, a.grid)?;
    println!("wrote {n} images to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `pggan interpolate`.
pub fn run_interpolate(a: &InterpolateArgs, gpu: &GpuOptions) -> Result<ExitCode> {
    let g = Generator::load(&a.checkpoint, gpu)?;
    interpolate(&g, a.seed, a.frames, a.keys, a.fps, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// What `generate`, `interpolate` and the metrics need of a checkpoint file: its EMA generator
/// ([`Sampler`]), run to completion on the native GPU.
pub struct Generator(Sampler);

impl Generator {
    pub fn load(path: &Path, gpu: &GpuOptions) -> Result<Generator> {
        Ok(Generator(Sampler::new(block_on(Gpu::new(gpu))?, find_checkpoint(path)?)?))
    }

    pub fn latent(&self) -> usize {
        self.0.ck.config.net.latent
    }

    pub fn gpu(&self) -> &Gpu {
        &self.0.gpu
    }

    /// Images for `latents` at the checkpoint's resolution and fade-in.
    pub fn run(&self, latents: &[f32]) -> Result<pggan::data::Images> {
        block_on(self.0.run(latents))
    }
}

/// `pggan generate`: PNG files (or one grid) from random or given latents.
fn generate_images(
    g: &Generator,
    count: usize,
    seed: u64,
    latents: Option<&Path>,
    out: &Path,
    as_grid: bool,
) -> Result<usize> {
    let z = match latents {
        Some(file) => {
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            samples::read_npy(&bytes, g.latent()).with_context(|| format!("{}", file.display()))?
        }
        None => {
            ensure!(count > 0, "--count must be at least 1");
            pggan::rng::Rng::new(seed).normals(count * g.latent())
        }
    };
    let images = g.run(&z)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    if as_grid {
        let cols = (images.count as f64).sqrt().ceil() as usize;
        std::fs::write(out.join("grid.png"), grid(&images, cols, images.res)?.png()?)?;
    } else {
        for i in 0..images.count {
            std::fs::write(out.join(format!("{i:06}.png")), images.picture(i).png()?)?;
        }
    }
    Ok(images.count)
}

/// `pggan interpolate`: a looping GIF walking through `keys` random latents.
fn interpolate(g: &Generator, seed: u64, frames: usize, keys: usize, fps: u32, out: &Path) -> Result<()> {
    ensure!(frames >= 2, "--frames must be at least 2");
    let images = g.run(&samples::latent_walk(g.latent(), keys, frames, seed))?;
    let pictures: Vec<Picture> = (0..images.count).map(|i| images.picture(i)).collect();
    std::fs::write(out, samples::gif(&pictures, fps)?).with_context(|| format!("cannot write {}", out.display()))
}

