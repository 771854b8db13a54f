//! The native command line: one module per command; the library holds the runtime, networks,
//! training, data and metrics they call.

mod bench;
mod dataset;
mod export;
mod generate;
mod metrics;
mod train;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{ensure, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use pggan::gpu::{Gpu, GpuOptions, ADAPTER_ENV};
use pggan::nn::NetConfig;
use pggan::{errln, out, outln};

#[derive(Parser)]
#[command(
    name = "pggan",
    version,
    about = "Progressive Growing of GANs on the GPU through WebGPU",
    long_about = "Progressive Growing of GANs on the GPU through WebGPU. `pggan` alone runs `pggan train` \
                  with its defaults; `pggan COMMAND --help` shows a command's flags and examples.",
    after_long_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  # Train on a folder of images (searched recursively) to 128x128:
  pggan train --data photos --max-res 128
  # Images from a run's checkpoint, as one grid:
  pggan generate --checkpoint runs/000-photos-128 --grid --out grid
  # The page, to train in a browser tab:
  pggan serve";

const INFO_EXAMPLES: &str = "\
Examples:
  # The official networks at 256x256:
  pggan info --resolution 256";

const SERVE_EXAMPLES: &str = "\
Examples:
  # From a pggan checkout, on http://localhost:8000:
  pggan serve";

const SELFTEST_EXAMPLES: &str = "\
Examples:
  # Every kernel on the adapter, within the limits every browser grants:
  pggan selftest --default-limits";

#[derive(Subcommand)]
enum Command {
    /// Train a PG-GAN (what `pggan` alone runs: on the embedded emoji set to 64x64).
    #[command(after_long_help = train::EXAMPLES)]
    Train(Box<train::TrainArgs>),
    /// Prepared datasets: `prepare` a folder of images into one file that training reads without
    /// loading it; `info` on such a file.
    #[command(after_long_help = dataset::EXAMPLES)]
    Dataset {
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Images from a checkpoint's EMA generator: PNG files, one grid, or a .npy file.
    #[command(after_long_help = generate::GENERATE_EXAMPLES)]
    Generate(generate::GenerateArgs),
    /// Quality metrics: `swd` (sliced Wasserstein distance, Karras et al. 2018, section 5) and
    /// `msssim` (diversity).
    #[command(after_long_help = metrics::EXAMPLES)]
    Metrics {
        #[command(subcommand)]
        metric: metrics::Metric,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// A looping GIF of a walk through the latent space of a checkpoint's EMA generator.
    #[command(after_long_help = generate::INTERPOLATE_EXAMPLES)]
    Interpolate(generate::InterpolateArgs),
    /// The EMA generator of a checkpoint as an ONNX model (onnxruntime, onnx2torch, ...).
    #[command(after_long_help = export::EXAMPLES)]
    Export(export::ExportArgs),
    /// Benchmarks: the training step, the conv and dense kernels, the cost of a kernel launch, the
    /// quality at a fixed budget, and the adapter's reduced-precision features.
    #[command(after_long_help = bench::EXAMPLES)]
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
        /// Print one JSON object (adapter, settings, figures) instead of the table.
        #[arg(long, global = true)]
        json: bool,
        #[command(flatten)]
        gpu: GpuArgs,
    },
    /// Print the layers of G and D with shapes and parameter counts.
    #[command(after_long_help = INFO_EXAMPLES)]
    Info {
        /// The final resolution the networks are built for.
        #[arg(long, default_value_t = 1024)]
        resolution: usize,
        #[command(flatten)]
        size: NetSize,
        /// Image channels: 3 (RGB) or 1 (grayscale).
        #[arg(long, default_value_t = 3)]
        channels: usize,
    },
    /// Serve the page on localhost (building its WASM package when missing or stale) and print the URL.
    ///
    /// Only the page is served: index.html and the files under web/ and pkg/ (the WASM package),
    /// no dotfile, nothing a symlink leads out of them, and only to requests for localhost,
    /// 127.0.0.1 or [::1] (so another site cannot reach it by rebinding its name).
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve {
        /// The port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Never run wasm-pack; serve the package that is there.
        #[arg(long)]
        no_build: bool,
        /// The pggan checkout whose page is served (and built).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Run every kernel on the adapter against its CPU reference and print the table.
    #[command(after_long_help = SELFTEST_EXAMPLES)]
    Selftest {
        /// Ask for WebGPU's default limits (what browsers grant) instead of the adapter's.
        #[arg(long)]
        default_limits: bool,
        #[command(flatten)]
        gpu: GpuArgs,
    },
}

/// `--adapter`, on the commands that open a GPU.
#[derive(clap::Args, Debug, Default)]
pub struct GpuArgs {
    /// Use the adapter whose name contains this text.
    #[arg(long, global = true, env = ADAPTER_ENV)]
    adapter: Option<String>,
}

impl GpuArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            adapter: self.adapter.clone(),
            ..GpuOptions::default()
        }
    }
}

/// The network-size flags of `info` and `bench train`, defaulting to the official sizes.
#[derive(clap::Args)]
struct NetSize {
    /// Feature maps at level l: min(fmap-base / 2^l, fmap-max).
    #[arg(long, default_value_t = 8192)]
    fmap_base: usize,
    /// The most feature maps of any layer.
    #[arg(long, default_value_t = 512)]
    fmap_max: usize,
    /// Latent size (G's input).
    #[arg(long, default_value_t = 512)]
    latent: usize,
}

impl NetSize {
    fn net(&self, max_res: usize, channels: usize) -> NetConfig {
        NetConfig {
            max_res,
            fmap_base: self.fmap_base,
            fmap_max: self.fmap_max,
            latent: self.latent,
            channels,
        }
    }
}

/// The command line: the derived one, with `train`'s defaults in its help and negative numbers
/// taken as values.
fn command() -> clap::Command {
    negative_numbers(Cli::command().mut_subcommand("train", train::show_defaults))
}

/// Lets every flag take a value such as `-1` (`--lr -1`), so that it reaches the flag's own check
/// and its message, rather than being read as an unknown flag.
fn negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| match a.get_action().takes_values() {
        true => a.allow_negative_numbers(true),
        false => a,
    })
    .mut_subcommands(negative_numbers)
}

/// Refuses a `flag` that names a file where the command writes a folder.
fn ensure_folder(flag: &str, path: &Path) -> Result<()> {
    ensure!(
        !path.exists() || path.is_dir(),
        "{flag} {} is a file; give a folder",
        path.display()
    );
    Ok(())
}

pub fn main() -> ExitCode {
    // `pggan` alone is `pggan train` with its defaults.
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push("train".into());
    }
    let matches = command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Train(args) => train::run(&args),
        Command::Dataset { command } => dataset::run(&command).map(|()| ExitCode::SUCCESS),
        Command::Generate(args) => generate::run_generate(&args),
        Command::Interpolate(args) => generate::run_interpolate(&args),
        Command::Export(args) => export::run(&args),
        Command::Metrics { metric, gpu } => metrics::run(&metric, &gpu.options()),
        Command::Bench { what, json, gpu } => bench::run(&gpu.options(), what, json),
        Command::Info {
            resolution,
            size,
            channels,
        } => {
            let cfg = size.net(resolution, channels);
            cfg.validate().map(|()| {
                out!("{}", pggan::nn::arch::describe(&cfg));
                ExitCode::SUCCESS
            })
        }
        Command::Serve { port, no_build, root } => pggan::serve::serve(&pggan::serve::ServeOptions {
            root,
            port,
            build: !no_build,
        })
        .map(|()| ExitCode::SUCCESS),
        Command::Selftest { default_limits, gpu } => selftest(GpuOptions {
            default_limits,
            ..gpu.options()
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn selftest(opts: GpuOptions) -> anyhow::Result<ExitCode> {
    let gpu = pollster::block_on(Gpu::new(&opts))?;
    outln!("adapter: {}", gpu.describe());
    let (table, ok) = pollster::block_on(pggan::selftest::report(&gpu));
    out!("{table}");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
