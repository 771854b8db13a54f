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
    use pggan::metrics::commands::{self as metrics, Source};
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
            #[command(flatten)]
            options: pggan::generate::GenerateOptions,
        },
        /// Quality metrics: `swd` (sliced Wasserstein distance, Karras et al. 2018, section 5) and
        /// `msssim` (diversity).
        Metrics {
            #[command(subcommand)]
            metric: Metric,
        },
        /// A looping GIF of a walk through the latent space of a checkpoint's EMA generator.
        Interpolate {
            #[arg(long)]
            checkpoint: PathBuf,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            #[arg(long, default_value_t = 120)]
            frames: usize,
            /// Random latents the walk passes through before it loops (--seeds names them instead).
            #[arg(long, default_value_t = 4)]
            keys: usize,
            #[arg(long, default_value_t = 24)]
            fps: u32,
            #[arg(long, default_value = "walk.gif")]
            out: PathBuf,
            #[command(flatten)]
            keys_from: pggan::generate::SeedOptions,
        },
        /// The EMA generator of a checkpoint as an ONNX model (onnxruntime, onnx2torch, ...).
        Export(pggan::export::ExportArgs),
        /// Benchmarks: `train` times the training step per resolution, `kernels` the conv and dense
        /// passes, `launches` the host's time per kernel launch.
        Bench {
            #[command(subcommand)]
            what: BenchWhat,
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

    #[derive(Subcommand)]
    enum Metric {
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

    #[derive(Subcommand)]
    enum BenchWhat {
        /// The host's time to record and to submit one kernel launch (a small one, so the GPU's
        /// time does not enter): the per-launch overhead that bounds the small levels' steps.
        Launches {
            /// Launches per round.
            #[arg(long, default_value_t = 2000)]
            launches: usize,
            /// Rounds; the first is not timed, the figures are the median of the others.
            #[arg(long, default_value_t = 16)]
            rounds: usize,
        },
        /// Images per second of the whole training step (D and G step, EMA) at each resolution.
        Train {
            /// The largest resolution; the networks are built for it.
            #[arg(long, default_value_t = 64)]
            resolution: usize,
            #[command(flatten)]
            size: NetSize,
            #[arg(long, default_value_t = 16)]
            minibatch: usize,
            /// Timed steps per resolution.
            #[arg(long, default_value_t = 10)]
            steps: usize,
            /// Untimed steps before them.
            #[arg(long, default_value_t = 2)]
            warmup: usize,
            /// Resolutions to time, comma-separated (default: every one up to --resolution).
            #[arg(long, value_delimiter = ',')]
            levels: Vec<usize>,
            /// Also time every kernel over one more step at each resolution (needs timestamp queries).
            #[arg(long)]
            profile: bool,
        },
        /// Quality at a fixed budget: trains a fixed small configuration on the emoji set through
        /// its whole schedule, then prints the time and the SWD of its EMA generator.
        Quality {
            /// Final resolution (SWD needs 16 or more).
            #[arg(long, default_value_t = 32)]
            resolution: usize,
            /// Thousands of real images per phase: the budget.
            #[arg(long, default_value_t = 10.0)]
            phase_kimg: f64,
            /// Images per side for the SWD.
            #[arg(long, default_value_t = 2048)]
            swd_images: usize,
            #[arg(long, default_value_t = 1)]
            seed: u64,
            /// Where the prepared emoji set is cached.
            #[arg(long, default_value = "runs/cache")]
            cache: PathBuf,
        },
        /// GFLOP/s of conv and dense passes beside a plain matmul of the same size.
        Kernels {
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
                options,
            } => Generator::load(&checkpoint, &gpu)
                .and_then(|g| pggan::generate::images(&g, count, seed, latents.as_deref(), &out, grid, &options))
                .map(|n| {
                    println!("wrote {n} images to {}", out.display());
                    ExitCode::SUCCESS
                }),
            Command::Metrics { metric } => match metric {
                Metric::Swd { real, fake, source } => {
                    metrics::swd_command(&real, fake.as_deref(), &source, &gpu).map(|()| ExitCode::SUCCESS)
                }
                Metric::Msssim { images, pairs, source } => {
                    metrics::msssim_command(images.as_deref(), pairs, &source, &gpu).map(|()| ExitCode::SUCCESS)
                }
            },
            Command::Interpolate {
                checkpoint,
                seed,
                frames,
                keys,
                fps,
                out,
                keys_from,
            } => Generator::load(&checkpoint, &gpu)
                .and_then(|g| pggan::generate::interpolate(&g, seed, frames, keys, fps, &out, &keys_from))
                .map(|()| {
                    println!("wrote {}", out.display());
                    ExitCode::SUCCESS
                }),
            Command::Export(args) => pggan::export::command(&args).map(|()| ExitCode::SUCCESS),
            Command::Bench { what, json } => bench(
                GpuOptions {
                    adapter: cli.adapter,
                    default_limits: false,
                },
                what,
                json,
            ),
            Command::Info {
                resolution,
                size,
                channels,
            } => {
                let cfg = size.net(resolution, channels);
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

    fn bench(opts: GpuOptions, what: BenchWhat, json: bool) -> anyhow::Result<ExitCode> {
        use pggan::bench;
        let gpu = pollster::block_on(Gpu::new(&opts))?;
        let adapter = serde_json::json!({
            "name": gpu.info.name,
            "backend": format!("{:?}", gpu.info.backend),
            "device_type": format!("{:?}", gpu.info.device_type),
        });
        if !json {
            println!("adapter: {}", gpu.describe());
        }
        let report = match what {
            BenchWhat::Launches { launches, rounds } => {
                let r = bench::launches(&gpu, launches, rounds)?;
                if !json {
                    println!(
                        "launches: {launches} per round, median of {} rounds: record {:.2} us, submit {:.2} us \
                         per launch ({} compute passes and {} new bind groups per round)",
                        rounds - 1,
                        r.record_us,
                        r.submit_us,
                        r.passes,
                        r.bind_groups
                    );
                }
                serde_json::json!({ "bench": "launches", "adapter": adapter, "result": r })
            }
            BenchWhat::Train {
                resolution,
                size,
                minibatch,
                steps,
                warmup,
                levels,
                profile,
            } => {
                let net = size.net(resolution, 3);
                let NetSize {
                    fmap_base,
                    fmap_max,
                    latent,
                } = size;
                net.validate()?;
                let resolutions = if levels.is_empty() {
                    (1..=net.levels()).map(pggan::nn::config::res_of).collect()
                } else {
                    levels
                };
                let b = bench::TrainBench {
                    net,
                    minibatch,
                    steps,
                    warmup,
                    resolutions,
                    profile,
                };
                b.validate()?;
                if !json {
                    println!(
                        "train: resolution {resolution}, fmap-base {fmap_base}, fmap-max {fmap_max}, latent {latent}, \
                         minibatch {minibatch}, {steps} steps after {warmup} warm-up"
                    );
                }
                let rows = bench::train(&gpu, &b)?;
                if !json {
                    print!("{}", bench::train_table(&rows));
                }
                serde_json::json!({
                    "bench": "train",
                    "adapter": adapter,
                    "config": {
                        "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max,
                        "latent": latent, "minibatch": minibatch, "steps": steps, "warmup": warmup,
                    },
                    "rows": rows,
                })
            }
            BenchWhat::Quality {
                resolution,
                phase_kimg,
                swd_images,
                seed,
                cache,
            } => {
                let cfg = bench::quality_config(resolution, phase_kimg, seed);
                cfg.validate()?;
                let data = commands::load_data("emoji", 3, resolution, &cache)?;
                let mut trainer = pggan::train::trainer::Trainer::new(gpu, cfg, data)?;
                let r = bench::quality(&mut trainer, swd_images)?;
                if !json {
                    println!(
                        "quality: emoji to {resolution}x{resolution}, {phase_kimg} kimg per phase ({} kimg): \
                         {:.1} s, {:.1} img/s",
                        r.kimg, r.seconds, r.images_per_second
                    );
                    match &r.swd {
                        Some(swd) => {
                            for (res, d) in &swd.levels {
                                println!("  SWD x1e3 {:>9} {d:10.3}", format!("{res}x{res}"));
                            }
                            println!("  SWD x1e3 {:>9} {:10.3}", "average", swd.average);
                        }
                        None => println!("  no SWD below 16x16"),
                    }
                }
                serde_json::json!({
                    "bench": "quality",
                    "adapter": adapter,
                    "config": trainer.cfg,
                    "result": r,
                })
            }
            BenchWhat::Kernels {
                batch,
                max_channels,
                reps,
                tiles,
            } => {
                let tiles = match tiles {
                    None => Vec::new(),
                    Some(names) if names.is_empty() => pggan::ops::conv::TILES.to_vec(),
                    Some(names) => names.iter().map(|n| n.parse()).collect::<anyhow::Result<_>>()?,
                };
                let mut rows = Vec::new();
                for shape in bench::pggan_shapes(batch, max_channels) {
                    eprintln!("benchmarking {shape:?}");
                    rows.extend(bench::run(&gpu, shape, reps.max(1), &tiles)?);
                }
                if !json {
                    print!("{}", bench::table(&rows));
                }
                serde_json::json!({
                    "bench": "kernels",
                    "adapter": adapter,
                    "config": { "batch": batch, "max_channels": max_channels, "reps": reps, "tiles": !tiles.is_empty() },
                    "rows": rows,
                })
            }
        };
        if json {
            println!("{report}");
        }
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
