//! `pggan export --onnx`: a checkpoint's EMA generator (and with `--onnx-d` its discriminator) as
//! ONNX models; the graphs are `pggan::export`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use pggan::export::{discriminator_onnx, generator_onnx};
use pggan::files::write_atomic;
use pggan::outln;

use super::train::find_checkpoint;

pub const EXAMPLES: &str = "\
Examples:
  # A run's EMA generator, latents [batch, latent] -> images [batch, C, R, R]:
  pggan export --checkpoint runs/000-emoji-64 --onnx generator.onnx
  # The discriminator too:
  pggan export --checkpoint runs/000-emoji-64 --onnx generator.onnx --onnx-d discriminator.onnx";

/// `pggan export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write the EMA generator as an ONNX model to this file.
    #[arg(long)]
    pub onnx: PathBuf,
    /// Also write the discriminator (images -> scores) as an ONNX model to this file.
    #[arg(long)]
    pub onnx_d: Option<PathBuf>,
    /// A checkpoint or snapshot file, or a run folder (its checkpoint).
    #[arg(long)]
    pub checkpoint: PathBuf,
}

/// Runs `pggan export` and says what it wrote.
pub fn run(args: &ExportArgs) -> Result<ExitCode> {
    let ck = find_checkpoint(&args.checkpoint)?;
    // Built before anything is written: a checkpoint without D (an exported generator) writes nothing.
    let d = match &args.onnx_d {
        Some(path) => {
            // A D of an older format is refused for what it is, before the missing-D reading below.
            ck.check_discriminator()?;
            let model = discriminator_onnx(&ck, &args.checkpoint)
                .context("this checkpoint holds no discriminator (an exported generator?)")?;
            Some((path, model))
        }
        None => None,
    };
    write_atomic(&args.onnx, &generator_onnx(&ck, &args.checkpoint)?)?;
    let (pos, net) = (ck.state.position(&ck.config), &ck.config.net);
    let (c, r) = (net.channels, pos.res());
    outln!(
        "wrote {}: latents [batch, {}] -> images [batch, {c}, {r}, {r}] (alpha {})",
        args.onnx.display(),
        net.latent,
        pos.alpha,
    );
    if let Some((path, model)) = d {
        write_atomic(path, &model)?;
        outln!(
            "wrote {}: images [batch, {c}, {r}, {r}] -> scores [batch, 1]",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
