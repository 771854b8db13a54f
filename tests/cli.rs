//! `pggan train`, `generate` and `interpolate` end to end, as a user runs them: a generated image
//! folder with a corrupt PNG and a text file, a run interrupted with Ctrl-C (SIGINT) and resumed,
//! images and a GIF from its checkpoint, and refusals of damaged or mismatched checkpoints.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{pggan, run_pggan as run, temp_dir, TINY, TINY_16};
use pggan::train::run::utc_timestamp;

/// 200 small images in nested folders (PNG and BMP), a truncated PNG and a text file.
fn image_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    for i in 0..200u32 {
        let img = image::RgbImage::from_fn(12, 10, |x, y| {
            image::Rgb([(i * 6 % 256) as u8, (x * 20) as u8, (y * 25) as u8])
        });
        let (sub, ext) = if i % 2 == 0 { ("", "png") } else { ("nested", "bmp") };
        img.save(dir.join(sub).join(format!("{i}.{ext}"))).unwrap();
    }
    let good = std::fs::read(dir.join("0.png")).unwrap();
    std::fs::write(dir.join("broken.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
}

/// log.txt's lines without the UTC time each begins with.
fn untimed(log: &str) -> Vec<&str> {
    log.lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, text)| text))
        .collect()
}

fn log_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |s| s.lines().count())
}

#[test]
fn train_interrupt_resume_generate() {
    let root = temp_dir("e2e");
    let (data, out) = (root.join("data"), root.join("runs"));
    image_folder(&data);

    // 40 images per phase but a long total, interrupted once the first ticks are logged.
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(TINY);
    args.extend(["--phase-kimg", "0.04", "--total-kimg", "10"]);
    let child = pggan(&args).stderr(Stdio::piped()).spawn().unwrap();
    let run_dir = out.join("000-data-8");
    let start = Instant::now();
    while log_lines(&run_dir) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no log lines after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let interrupted = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&interrupted.stderr);
    eprintln!("{stderr}");
    assert_eq!(interrupted.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("skipped 2 files"), "{stderr}");
    assert!(stderr.contains("interrupted; checkpoint written"), "{stderr}");
    for file in ["config.json", "checkpoint.safetensors", "samples/reals.png"] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }
    let fakes = std::fs::read_dir(run_dir.join("samples")).unwrap().count() - 1;
    assert!(fakes >= 2, "{fakes} sample grids");
    let lines_before = log_lines(&run_dir);

    // Resume to the schedule's end: it continues from the checkpoint, grows to 8x8 and finishes.
    let resumed = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--total-kimg",
        "0.12",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    let log = std::fs::read_to_string(run_dir.join("log.jsonl")).unwrap();
    assert!(log.lines().count() > lines_before);
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["kimg"].as_f64(), last["resolution"].as_u64()),
        (Some(0.12), Some(8)),
        "{last}"
    );
    // The checkpoint keeps the run's curves for the page: one point per log line, across the resume.
    let ck = pggan::train::checkpoint::load(&run_dir.join("checkpoint.safetensors")).unwrap();
    let logged: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ck.state.history.len(), logged.len());
    for (point, line) in ck.state.history.iter().zip(&logged) {
        assert_eq!(
            (Some(point.kimg), Some(point.resolution as u64), Some(point.d_loss)),
            (
                line["kimg"].as_f64(),
                line["resolution"].as_u64(),
                line["d_loss"].as_f64().map(|v| v as f32)
            ),
            "{line}"
        );
    }

    // Changing the networks of a run is refused, naming the setting.
    let other = run(&["train", "--resume", run_dir.to_str().unwrap(), "--fmap-max", "16"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && stderr.contains("net.fmap_max = 8"),
        "{stderr}"
    );
    // The checkpoint's f32 settings read as they were given, not widened to f64.
    let other = run(&["train", "--resume", run_dir.to_str().unwrap(), "--lr", "0.002"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && stderr.contains("adam.lr = 0.001; this run asks for 0.002:"),
        "{stderr}"
    );

    // Images and a latent walk from the checkpoint.
    let gen = root.join("gen");
    let ck = run_dir.join("checkpoint.safetensors");
    let out = run(&[
        "generate",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--count",
        "3",
        "--out",
        gen.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    for i in 0..3 {
        let img = image::open(gen.join(format!("{i:06}.png"))).unwrap();
        assert_eq!((img.width(), img.height()), (8, 8));
    }
    let gif = root.join("walk.gif");
    let out = run(&[
        "interpolate",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--frames",
        "5",
        "--out",
        gif.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let decoder =
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
    use image::AnimationDecoder;
    assert_eq!(decoder.into_frames().count(), 5);

    // A truncated checkpoint is refused with a message naming the problem.
    let bytes = std::fs::read(&ck).unwrap();
    let cut = root.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&[
        "generate",
        "--checkpoint",
        cut.to_str().unwrap(),
        "--out",
        gen.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("refusing checkpoint") && stderr.contains("damaged"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// `--precision`: a mixed run says so, with the kernel its convolutions run on, on stderr and in
/// log.txt, and keeps `"precision": "mixed"` in its config.json; a resume keeps the run's precision
/// unless given another; any other value is refused by name.
#[test]
fn precision_is_kept_in_config_json_and_on_resume() {
    let root = temp_dir("precision");
    let out = root.join("runs");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--out",
            out.to_str().unwrap(),
            "--cache",
            root.to_str().unwrap(),
        ];
        args.extend(TINY);
        args.extend(["--phase-kimg", "0.008"]);
        args.extend(extra);
        let result = run(&args);
        (
            result.status.success(),
            String::from_utf8_lossy(&result.stderr).into_owned(),
        )
    };
    let (ok, stderr) = train(&["--total-kimg", "0.008", "--precision", "mixed"]);
    assert!(
        ok && stderr.contains("precision: Mixed, convolutions on conv+"),
        "{stderr}"
    );
    let dir = out.join("000-emoji-8");
    let said = stderr.lines().find(|l| l.starts_with("precision: ")).unwrap();
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(untimed(&log).contains(&said), "{said:?} not in log.txt:\n{log}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["precision"], "mixed");
    let (ok, stderr) = train(&["--resume", dir.to_str().unwrap(), "--total-kimg", "0.016"]);
    assert!(ok && stderr.contains("precision: Mixed"), "{stderr}");
    // The resumed run's line follows the first in the same log.
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert_eq!(untimed(&log).iter().filter(|l| **l == said).count(), 2, "{log}");
    let (ok, stderr) = train(&[
        "--resume",
        dir.to_str().unwrap(),
        "--total-kimg",
        "0.024",
        "--precision",
        "f32",
    ]);
    assert!(ok && stderr.contains("precision: F32"), "{stderr}");
    let (ok, stderr) = train(&["--total-kimg", "0.008", "--precision", "f16"]);
    assert!(
        !ok && stderr.contains("precision \"f16\" is not one of f32, mixed, auto"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Without a terminal (a cluster job, nohup, a pipe) a run prints a line per tick, and every run
/// keeps them in log.txt, after a header (version and commit, command line, adapter, origin,
/// precision) and each line after its UTC time; a software adapter is named as one.
#[test]
fn a_run_without_a_terminal_prints_tick_lines() {
    let started = SystemTime::now();
    let root = temp_dir("ticks");
    let out = root.join("runs");
    let mut args = vec![
        "train",
        "--out",
        out.to_str().unwrap(),
        "--total-kimg",
        "0.024",
        "--phase-kimg",
        "0.008",
    ];
    // TINY without --quiet: stderr is a pipe here.
    args.extend(TINY.iter().filter(|a| **a != "--quiet"));
    args.extend(["--cache", root.to_str().unwrap()]);
    let result = run(&args);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let ticks: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tick ")).collect();
    assert_eq!(ticks.len(), 3, "{stderr}");
    assert!(ticks[2].starts_with("tick 3 kimg 0.024/0.024 | 8x8"), "{stderr}");
    assert!(
        ticks
            .iter()
            .all(|t| t.contains("img/s") && t.contains("ETA") && t.contains(" D ")),
        "{stderr}"
    );
    let text = std::fs::read_to_string(out.join("000-emoji-8/log.txt")).unwrap();
    let (first, last) = (utc_timestamp(started), utc_timestamp(SystemTime::now()));
    for line in text.lines() {
        let time = line.split(' ').next().unwrap();
        assert!(
            time.len() == first.len() && (first.as_str()..=last.as_str()).contains(&time),
            "{line:?} is not after a time from {first} to {last}"
        );
    }
    let lines = untimed(&text);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    let version = match commit {
        Some(o) => format!(
            "pggan {} (commit {})",
            env!("CARGO_PKG_VERSION"),
            String::from_utf8_lossy(&o.stdout).trim()
        ),
        None => format!("pggan {}", env!("CARGO_PKG_VERSION")),
    };
    let command = format!("command: {} {}", env!("CARGO_BIN_EXE_pggan"), args.join(" "));
    assert_eq!(lines[..2], [version.as_str(), command.as_str()], "{text}");
    assert!(
        lines[2].starts_with("adapter: ") && lines[3] == "new run" && lines[4].starts_with("precision: "),
        "{text}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("tick ")).count(), 3, "{text}");
    assert!(text.contains("finished at kimg 0.024"), "{text}");
    if stderr.contains(", Cpu)") {
        assert!(stderr.contains("is a software adapter"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_folders_are_clear_errors() {
    let root = temp_dir("bad");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("readme.txt"), "no images here").unwrap();
    let mut args = vec![
        "train",
        "--data",
        empty.to_str().unwrap(),
        "--out",
        root.to_str().unwrap(),
    ];
    args.extend(TINY);
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no image in the image folder"),
        "{stderr}"
    );

    // Two images cannot fill a minibatch of 4.
    let few = root.join("few");
    std::fs::create_dir_all(&few).unwrap();
    for i in 0..2u8 {
        image::RgbImage::from_pixel(8, 8, image::Rgb([i * 100, 0, 0]))
            .save(few.join(format!("{i}.png")))
            .unwrap();
    }
    args[2] = few.to_str().unwrap();
    let out = run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("fewer than a minibatch"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn metrics_commands() {
    let root = temp_dir("metrics");
    // Two folders of smooth random images and one of noise, 16x16.
    let mut rng = pggan::rng::Rng::new(5);
    for (name, noise) in [("a", false), ("b", false), ("noise", true)] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..16 {
            let (r, g) = ((rng.next_u64() % 200) as u32, (rng.next_u64() % 200) as u32);
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                let n = (rng.next_u64() % 256) as u8;
                if noise {
                    image::Rgb([n, n / 2, 255 - n])
                } else {
                    image::Rgb([(r + 3 * x) as u8, (g + 3 * y) as u8, 128])
                }
            });
            img.save(root.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
    let cache = root.join("cache");
    let swd = |fake: &str| -> f64 {
        let (a, f) = (root.join("a"), root.join(fake));
        let out = run(&[
            "metrics",
            "swd",
            "--real",
            a.to_str().unwrap(),
            "--fake",
            f.to_str().unwrap(),
            "--res",
            "16",
            "--count",
            "16",
            "--cache",
            cache.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["images"].as_u64(), v["swd"]["levels"][0][0].as_u64()),
            (Some(16), Some(16)),
            "{v}"
        );
        v["swd"]["average"].as_f64().unwrap()
    };
    let (similar, noise) = (swd("b"), swd("noise"));
    println!("SWD a-b {similar:.1}, a-noise {noise:.1}");
    assert!(similar < noise, "SWD a-b {similar} not below a-noise {noise}");

    let out = run(&[
        "metrics",
        "msssim",
        "--images",
        root.join("noise").to_str().unwrap(),
        "--pairs",
        "20",
        "--res",
        "16",
        "--count",
        "16",
        "--cache",
        cache.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = v["ms_ssim"].as_f64().unwrap();
    assert!((0.0..0.3).contains(&ms), "noise images should be dissimilar: {v}");

    let out = run(&["metrics", "swd", "--cache", cache.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fake DIR or as --checkpoint C"));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn huge_grid_and_res_are_refused() {
    // Both once aborted the process on an allocation of terabytes; now refused before any work.
    let root = temp_dir("bounds");
    let (runs, cache) = (root.join("runs"), root.join("cache"));
    let start = Instant::now();
    let out = run(&["train", "--grid", "100000", "--out", runs.to_str().unwrap(), "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && stderr.contains("--grid") && stderr.contains("1..=32"),
        "{stderr}"
    );
    let out = run(&[
        "metrics",
        "swd",
        "--fake",
        root.to_str().unwrap(),
        "--res",
        "1048576",
        "--cache",
        cache.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && stderr.contains("--res") && stderr.contains("4..=1024"),
        "{stderr}"
    );
    // generate and interpolate: each once looped forever (a truncation no draw meets) or aborted
    // on its allocation; refused as the flags are read, before the checkpoint is looked at.
    let ck = root.join("no-such-checkpoint.safetensors");
    for (command, flag, value, limit) in [
        ("generate", "--count", "100000000", "1..=100000"),
        ("generate", "--trunc", "1e-300", "at least 0.01"),
        ("interpolate", "--frames", "100000000", "2..=10000"),
        ("interpolate", "--keys", "100000000", "0..=10000"),
    ] {
        let out = run(&[command, "--checkpoint", ck.to_str().unwrap(), flag, value]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(2) && stderr.contains(flag) && stderr.contains(limit),
            "{command} {flag} {value}: {stderr}"
        );
    }
    assert!(!runs.exists() && !cache.exists());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let _ = std::fs::remove_dir_all(&root);
}

/// log.txt's times: UTC dates, leap days and the end of a century included.
#[test]
fn utc_timestamps_are_civil_dates() {
    for (secs, text) in [
        (0, "1970-01-01T00:00:00Z"),
        (951_782_400, "2000-02-29T00:00:00Z"),
        (1_796_626_800, "2026-12-07T07:00:00Z"),
        (4_102_444_799, "2099-12-31T23:59:59Z"),
    ] {
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs)), text);
    }
}

/// A negative number is a value (`--lr -1`, not only `--lr=-1`): it reaches the setting's check
/// and its message, before any dataset or GPU; a negative count is an invalid count.
#[test]
fn negative_values_reach_their_checks() {
    let root = temp_dir("negative");
    let runs = root.join("runs");
    let train = |flag: &str| {
        let out = run(&["train", "--out", runs.to_str().unwrap(), flag, "-1", "--quiet"]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (flag, message) in [
        ("--lr", "error: the learning rate at 4x4 must be positive, not -1\n"),
        ("--phase-kimg", "error: phase-kimg must be positive, not -1\n"),
        ("--total-kimg", "error: total-kimg must be positive, not -1\n"),
    ] {
        assert_eq!(train(flag), (Some(1), message.to_string()));
    }
    let (code, stderr) = train("--minibatch");
    assert!(
        code == Some(2) && stderr.contains("invalid value '-1' for '--minibatch <MINIBATCH>'"),
        "{stderr}"
    );
    assert!(!runs.exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// `--out` (or `--cache`) naming a file, where a folder is written, is refused by name; so is
/// `runs` for `pggan` alone.
#[test]
fn out_naming_a_file_is_refused() {
    let root = temp_dir("out-file");
    let file = root.join("notes.txt");
    std::fs::write(&file, "").unwrap();
    let f = file.to_str().unwrap();
    let runs = root.join("runs");
    for (flag, args) in [
        ("--out", vec!["train", "--out", f, "--quiet"]),
        (
            "--cache",
            vec!["train", "--out", runs.to_str().unwrap(), "--cache", f, "--quiet"],
        ),
        (
            "--out",
            vec!["generate", "--checkpoint", "runs/000-emoji-64", "--out", f],
        ),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr, format!("error: {flag} {f} is a file; give a folder\n"));
        assert_eq!(out.status.code(), Some(1));
    }
    // `pggan` alone is `pggan train`, into `runs` of the current folder.
    std::fs::write(root.join("runs"), "").unwrap();
    let out = pggan(&[]).current_dir(&root).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr, "error: --out runs is a file; give a folder\n");
    let _ = std::fs::remove_dir_all(&root);
}

/// A mistyped checkpoint is the only thing said: it is looked for before the GPU is opened (whose
/// driver may print its own lines first).
#[test]
fn a_mistyped_checkpoint_is_reported_before_the_gpu_is_opened() {
    let root = temp_dir("no-checkpoint");
    let missing = root.join("runs/000-emoji-46");
    let (m, onnx) = (missing.to_str().unwrap(), root.join("g.onnx"));
    for command in [
        vec!["generate"],
        vec!["interpolate"],
        vec!["metrics", "swd"],
        vec!["metrics", "msssim"],
        vec!["export", "--onnx", onnx.to_str().unwrap()],
    ] {
        let out = run(&[command.as_slice(), &["--checkpoint", m]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(1)
                && stderr.lines().count() == 1
                && stderr.starts_with(&format!("error: no checkpoint at {m} ")),
            "{command:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// `metrics swd --checkpoint C` compares C's images with the data C was trained on unless `--real`
/// names others; with `--fake` there is no such default, and `--real` is asked for.
#[test]
fn swd_compares_a_checkpoint_with_its_training_data() {
    let root = temp_dir("swd-real");
    let (data, runs, cache) = (root.join("data"), root.join("runs"), root.join("cache"));
    image_folder(&data);
    let d = data.to_str().unwrap();
    let mut args = vec!["train", "--data", d, "--out", runs.to_str().unwrap()];
    args.extend(["--cache", cache.to_str().unwrap()]);
    args.extend(TINY_16);
    assert!(run(&args).status.success());
    let ck = runs.join("000-data-16");
    let swd = |extra: &[&str]| {
        let mut args = vec!["metrics", "swd", "--count", "16", "--cache", cache.to_str().unwrap()];
        args.extend(extra);
        run(&args)
    };
    let out = swd(&["--checkpoint", ck.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["real"].as_str(), v["res"].as_u64()), (Some(d), Some(16)), "{v}");
    let out = swd(&["--checkpoint", ck.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(" against {d}, 16 images per side, 16x16:")),
        "{text}"
    );
    let out = swd(&["--fake", d, "--res", "16"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("give the real images with --real DIR|emoji"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// A closed stdout (`pggan info | head -1` once `head` has exited) is no panic: `info` and
/// `bench launches` print into it, do their work and exit with status 0.
#[test]
fn a_closed_stdout_is_no_panic() {
    for command in [
        &["info", "--resolution", "64"][..],
        &["bench", "launches", "--launches", "10", "--rounds", "2"],
    ] {
        let out = pggan(command).stdout(common::closed_pipe()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{command:?}: {stderr}"
        );
    }
}
