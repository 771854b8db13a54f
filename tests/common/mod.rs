//! Native test helpers: a device on whatever adapter exists (a test fails when there is none) with
//! WebGPU's default limits, a runner that asserts every row of an op's check, the `pggan` binary as a
//! user runs it, fresh temporary folders, image folders to prepare, and the project's Python environment. Not every test
//! binary uses each of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use image::{ImageFormat, Rgb, RgbImage};
use pggan::check::{table, Check};
use pggan::gpu::{Gpu, GpuOptions};
use pggan::rng::Rng;

pub fn gpu() -> Gpu {
    let gpu = pollster::block_on(Gpu::new(&GpuOptions::for_tests())).expect("a GPU adapter is required for this test");
    eprintln!("adapter: {}", gpu.describe());
    gpu
}

pub fn run_check(check: Check) {
    run_check_on(&gpu(), check)
}

/// `run_check` on a device the caller set up.
pub fn run_check_on(gpu: &Gpu, check: Check) {
    let rows = pollster::block_on(check(gpu)).expect("the check could not run");
    eprint!("{}", table(&rows));
    assert!(!rows.is_empty(), "the check compared nothing");
    assert!(
        rows.iter().all(|r| r.pass),
        "GPU output differs from the CPU reference:\n{}",
        table(&rows)
    );
}

/// The flags of a tiny run (8x8, 8 feature maps, minibatch 4) that ticks and checkpoints every 8
/// images, for the tests that train through the binary.
pub const TINY: &[&str] = &[
    "--max-res",
    "8",
    "--fmap-base",
    "16",
    "--fmap-max",
    "8",
    "--latent",
    "8",
    "--minibatch",
    "4",
    "--tick-kimg",
    "0.008",
    "--checkpoint-ticks",
    "1",
    "--grid",
    "2",
    "--quiet",
];

/// The flags of a tiny run through 16x16 (the sliced Wasserstein distance's smallest size): 8 feature
/// maps, minibatch 4, one minibatch per phase, 20 images in all, one tick.
pub const TINY_16: &[&str] = &[
    "--max-res",
    "16",
    "--fmap-base",
    "16",
    "--fmap-max",
    "8",
    "--latent",
    "8",
    "--minibatch",
    "4",
    "--phase-kimg",
    "0.004",
    "--total-kimg",
    "0.02",
    "--tick-kimg",
    "0.02",
    "--swd-ticks",
    "0",
    "--grid",
    "2",
    "--quiet",
];

/// The `pggan` binary with `args`, not yet started.
pub fn pggan(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pggan"));
    cmd.args(args);
    cmd
}

/// Runs `pggan args` to completion; its stderr is echoed for the test's log.
pub fn run_pggan(args: &[&str]) -> Output {
    let out = pggan(args).output().unwrap();
    eprintln!("pggan {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

/// A new empty folder under the system's temporary folder, unique to this process and call.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("pggan-test-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python of the project's virtual environment, `target/pyenv` (onnxruntime, onnx, tensorboard,
/// numpy at the versions tests/run.sh pins); a test that needs it fails without it.
pub fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run.sh, which installs the Python packages this test runs \
         (onnxruntime, onnx, tensorboard) into target/pyenv",
        python.display()
    );
    python
}

/// Runs `python script args` (a script in tests/) and parses the one JSON object it prints.
pub fn python_json(script: &str, args: &[&Path]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script);
    let out = Command::new(python()).arg(&script).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no JSON ({e}):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A pipe whose reading end is already closed, for a child's stdout or stderr: every write to it
/// fails (EPIPE), as under `| head -1` once `head` has exited, or a `tee` that died.
pub fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// `bytes`, a checkpoint, rewritten as an older format `version` wrote it: no history, and a CRC of
/// the tensors (version 1) or of the tensors, the configuration and the state (version 2).
pub fn as_version(bytes: &[u8], version: u32) -> Vec<u8> {
    use safetensors::SafeTensors;
    let file = SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut tensors = file.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut crc = crc32fast::Hasher::new();
    for (name, view) in &tensors {
        crc.update(name.as_bytes());
        crc.update(view.data());
    }
    if version == 2 {
        crc.update(meta["config"].as_bytes());
        crc.update(meta["state"].as_bytes());
    }
    meta.remove("history");
    meta.insert("version".into(), version.to_string());
    meta.insert("crc32".into(), format!("{:08x}", crc.finalize()));
    safetensors::serialize(tensors, Some(meta)).unwrap()
}

/// `count` images of `side` x `side`: smooth gradients plus noise, every third a JPEG, the rest
/// PNGs, written into `dir`.
pub fn make_images(dir: &Path, count: usize, side: u32, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::new(seed);
    for i in 0..count {
        let (a, b) = (rng.next_u64() % 200, rng.next_u64() % 200);
        let image = RgbImage::from_fn(side, side, |x, y| {
            let noise = (rng.next_u64() % 24) as u32;
            Rgb([
                ((x * 255 / side) + noise).min(255) as u8,
                ((y * 255 / side) as u64 + a).min(255) as u8,
                ((x + y) as u64 % 56 + b + noise as u64).min(255) as u8,
            ])
        });
        let (name, format) = match i % 3 {
            0 => (format!("{i:05}.jpg"), ImageFormat::Jpeg),
            _ => (format!("{i:05}.png"), ImageFormat::Png),
        };
        image.save_with_format(dir.join(name), format).unwrap();
    }
}
