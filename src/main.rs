//! The native command line.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

// The browser uses the library through src/web.rs; the binary has nothing to do there.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::process::ExitCode;

    use std::path::PathBuf;

    use clap::{Parser, Subcommand};
    use pggan::gpu::{Gpu, GpuOptions, ADAPTER_ENV};
    use pggan::nn::NetConfig;
    use pggan::train::commands::{self, Generator, TrainArgs};
    use pggan::train::run::Outcome;

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
        Train(Box<TrainArgs>),
        /// Images from a checkpoint's EMA generator: PNG files, or one grid with --grid.
        Generate {
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
        },
        /// A looping GIF of a walk through the latent space of a checkpoint's EMA generator.
        Interpolate {
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
        },
        /// Benchmarks: `kernels` prints GFLOP/s of conv and dense passes beside a plain matmul.
        Bench {
            #[arg(value_parser = ["kernels"], default_value = "kernels")]
            what: String,
            #[arg(long, default_value_t = 16)]
            batch: usize,
            /// Cap on every channel count (lower it on a software adapter).
            #[arg(long, default_value_t = 512)]
            max_channels: usize,
            /// Timed runs per pass, after one warm-up.
            #[arg(long, default_value_t = 3)]
            reps: usize,
        },
        /// Print the layers of G and D with shapes and parameter counts.
        Info {
            #[arg(long, default_value_t = 1024)]
            resolution: usize,
            #[arg(long, default_value_t = 8192)]
            fmap_base: usize,
            #[arg(long, default_value_t = 512)]
            fmap_max: usize,
            #[arg(long, default_value_t = 512)]
            latent: usize,
            #[arg(long, default_value_t = 3)]
            channels: usize,
        },
        /// Serve the page on localhost (building its WASM package when missing or stale) and print the URL.
        Serve {
            /// 0 picks a free port.
            #[arg(long, default_value_t = 8000)]
            port: u16,
            /// Never run wasm-pack; serve the package that is there.
            #[arg(long)]
            no_build: bool,
            /// The folder to serve (default: this crate's, which holds index.html, web/ and pkg/).
            #[arg(long, default_value = env!("CARGO_MANIFEST_DIR"))]
            root: PathBuf,
        },
        /// Run every kernel on the adapter against its CPU reference and print the table.
        Selftest {
            /// Ask for WebGPU's default limits (what browsers grant) instead of the adapter's.
            #[arg(long)]
            default_limits: bool,
        },
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let gpu = GpuOptions {
            adapter: cli.adapter.clone(),
            default_limits: false,
        };
        let result = match cli.command.unwrap_or_else(|| Command::Train(Box::default())) {
            Command::Train(args) => commands::train(&args, &gpu).map(|outcome| match outcome {
                Outcome::Finished => ExitCode::SUCCESS,
                Outcome::Interrupted => ExitCode::from(130),
            }),
            Command::Generate {
                checkpoint,
                count,
                seed,
                latents,
                out,
                grid,
            } => Generator::load(&checkpoint, &gpu)
                .and_then(|g| commands::generate_images(&g, count, seed, latents.as_deref(), &out, grid))
                .map(|n| {
                    println!("wrote {n} images to {}", out.display());
                    ExitCode::SUCCESS
                }),
            Command::Interpolate {
                checkpoint,
                seed,
                frames,
                keys,
                fps,
                out,
            } => Generator::load(&checkpoint, &gpu)
                .and_then(|g| commands::interpolate(&g, seed, frames, keys, fps, &out))
                .map(|()| {
                    println!("wrote {}", out.display());
                    ExitCode::SUCCESS
                }),
            Command::Bench {
                what: _,
                batch,
                max_channels,
                reps,
            } => bench(
                GpuOptions {
                    adapter: cli.adapter,
                    default_limits: false,
                },
                batch,
                max_channels,
                reps,
            ),
            Command::Info {
                resolution,
                fmap_base,
                fmap_max,
                latent,
                channels,
            } => {
                let cfg = NetConfig {
                    max_res: resolution,
                    fmap_base,
                    fmap_max,
                    latent,
                    channels,
                };
                cfg.validate().map(|()| {
                    print!("{}", pggan::nn::arch::describe(&cfg));
                    ExitCode::SUCCESS
                })
            }
            Command::Serve { port, no_build, root } => pggan::serve::serve(&pggan::serve::ServeOptions {
                root,
                port,
                build: !no_build,
            })
            .map(|()| ExitCode::SUCCESS),
            Command::Selftest { default_limits } => selftest(GpuOptions {
                adapter: cli.adapter,
                default_limits,
            }),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }

    fn bench(opts: GpuOptions, batch: usize, max_channels: usize, reps: usize) -> anyhow::Result<ExitCode> {
        let gpu = pollster::block_on(Gpu::new(&opts))?;
        println!("adapter: {}", gpu.describe());
        let mut rows = Vec::new();
        for shape in pggan::bench::pggan_shapes(batch, max_channels) {
            eprintln!("benchmarking {shape:?}");
            rows.extend(pggan::bench::run(&gpu, shape, reps.max(1))?);
        }
        print!("{}", pggan::bench::table(&rows));
        Ok(ExitCode::SUCCESS)
    }

    fn selftest(opts: GpuOptions) -> anyhow::Result<ExitCode> {
        let gpu = pollster::block_on(Gpu::new(&opts))?;
        println!("adapter: {}", gpu.describe());
        let (table, ok) = pollster::block_on(pggan::selftest::report(&gpu));
        print!("{table}");
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
