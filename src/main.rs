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

    use clap::{Parser, Subcommand};
    use pggan::gpu::{Gpu, GpuOptions, ADAPTER_ENV};
    use pggan::nn::NetConfig;

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
        /// Run every kernel on the adapter against its CPU reference and print the table.
        Selftest {
            /// Ask for WebGPU's default limits (what browsers grant) instead of the adapter's.
            #[arg(long)]
            default_limits: bool,
        },
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let result = match cli.command.unwrap_or(Command::Selftest { default_limits: false }) {
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
