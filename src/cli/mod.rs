//! The native command line: one module per command; the library holds the runtime, networks,
//! training, data and metrics they call.

mod bench;
mod export;
mod generate;
mod metrics;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pggan::gpu::{Gpu, GpuOptions, ADAPTER_ENV};
use pggan::nn::NetConfig;
use pggan::{errln, out, outln};

#[derive(Parser)]
#[command(
    name = "pggan",
    version,
    about = "Progressive Growing of GANs on the GPU through WebGPU"
)]
struct Cli {
    /// Use the adapter whose name contains this text (also the PGGAN_ADAPTER environment variable).
    #[arg(long, global = true, env = ADAPTER_ENV)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a PG-GAN (the default command: with no flags, on the embedded emoji set to 64x64).
    Train(Box<train::TrainArgs>),
    /// Images from a checkpoint's EMA generator: PNG files, or one grid with --grid.
    Generate(generate::GenerateArgs),
    /// Quality metrics: `swd` (sliced Wasserstein distance, Karras et al. 2018, section 5) and
    /// `msssim` (diversity).
    Metrics {
        #[command(subcommand)]
        metric: metrics::Metric,
    },
    /// A looping GIF of a walk through the latent space of a checkpoint's EMA generator.
    Interpolate(generate::InterpolateArgs),
    /// The EMA generator of a checkpoint as an ONNX model (onnxruntime, onnx2torch, ...).
    Export(export::ExportArgs),
    /// Benchmarks: `train` times the training step per resolution, `kernels` the conv and dense
    /// passes, `launches` the host's time per kernel launch; `precision` lists the adapter's f16 and
    /// cooperative-matrix features and checks the kernels that use them.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
        /// Print one JSON object (adapter, settings, figures) instead of the table.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print the layers of G and D with shapes and parameter counts.
    Info {
        #[arg(long, default_value_t = 1024)]
        resolution: usize,
        #[command(flatten)]
        size: NetSize,
        #[arg(long, default_value_t = 3)]
        channels: usize,
    },
    /// Serve the page on localhost (building its WASM package when missing or stale) and print the URL.
    ///
    /// Only the page is served: index.html and the files under web/ and pkg/ (the WASM package),
    /// no dotfile, nothing a symlink leads out of them, and only to requests for localhost,
    /// 127.0.0.1 or [::1] (so another site cannot reach it by rebinding its name).
    Serve {
        /// 0 picks a free port.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Never run wasm-pack; serve the package that is there.
        #[arg(long)]
        no_build: bool,
        /// The pggan checkout whose page is served (and built): the current folder by default.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
    /// Run every kernel on the adapter against its CPU reference and print the table.
    Selftest {
        /// Ask for WebGPU's default limits (what browsers grant) instead of the adapter's.
        #[arg(long)]
        default_limits: bool,
    },
}

/// The network-size flags of `info` and `bench train`, defaulting to the official sizes.
#[derive(clap::Args)]
struct NetSize {
    #[arg(long, default_value_t = 8192)]
    fmap_base: usize,
    #[arg(long, default_value_t = 512)]
    fmap_max: usize,
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let gpu = GpuOptions {
        adapter: cli.adapter.clone(),
        default_limits: false,
        local_rank: None,
        f32_only: false,
    };
    let result = match cli.command.unwrap_or_else(|| Command::Train(Box::default())) {
        Command::Train(args) => train::run(&args, &gpu),
        Command::Generate(args) => generate::run_generate(&args, &gpu),
        Command::Interpolate(args) => generate::run_interpolate(&args, &gpu),
        Command::Export(args) => export::run(&args),
        Command::Metrics { metric } => metrics::run(&metric, &gpu),
        Command::Bench { what, json } => bench::run(&gpu, what, json),
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
        Command::Selftest { default_limits } => selftest(GpuOptions { default_limits, ..gpu }),
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
