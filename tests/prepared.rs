//! Prepared dataset files as a user meets them through `pggan dataset` and `pggan train --data
//! FILE`: private memory that does not grow with the dataset while preparing and training, the
//! summary, and the faults (a cut file, a flipped byte, a file of another shape).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{make_images, pggan, run_pggan, temp_dir};
use image::{Rgb, RgbImage};
use std::fs;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// The status line `field` (kB) of process `pid`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Runs `pggan args` to its end, sampling its private memory (`RssAnon`) every 2 ms: the peak
/// sampled, and the peak resident memory the kernel recorded (which no sample misses).
fn peak_memory(args: &[&str]) -> (u64, u64) {
    // Reaped by wait4 below, which also gives its peak memory; `Child::wait` would not.
    #[allow(clippy::zombie_processes)]
    let child = pggan(args).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut stderr = child.stderr.unwrap();
    let echo = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let mut anon = 0;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        anon = anon.max(status_bytes(pid, "RssAnon:").unwrap_or(0));
        let done = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid as i32 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let text = echo.join().unwrap();
    eprintln!("pggan {}\n{text}", args.join(" "));
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "pggan {} failed: {text}",
        args.join(" ")
    );
    (anon, usage.ru_maxrss as u64 * 1024)
}

/// `train` of a tiny network on `file` into `out`, to `max_res`, minibatches of 4, `phase_kimg`,
/// with `more` flags. (The schedule is evaluated every 4 minibatches, and a fade-in begins at the
/// first evaluation past its phase's start.)
fn train_args(file: &Path, out: &Path, max_res: usize, phase_kimg: &str, more: &[&str]) -> Vec<String> {
    // The smallest network of this resolution: fmap-base max_res gives 4 maps down to 2 at the top.
    let (res, base) = (max_res.to_string(), max_res.to_string());
    let flags = [
        "train",
        "--data",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--max-res",
        &res,
        "--fmap-base",
        &base,
        "--fmap-max",
        "4",
        "--latent",
        "4",
        "--minibatch",
        "4",
        "--phase-kimg",
        phase_kimg,
        "--tick-kimg",
        "1",
        "--swd-ticks",
        "0",
        "--grid",
        "2",
        "--no-tensorboard",
        "--quiet",
    ];
    flags.iter().chain(more).map(|s| s.to_string()).collect()
}

/// The private memory a process may need beyond what the same work on 8 images needs.
const BOUND: u64 = 16 << 20;
/// Images of the large set: an 82 MB file at 64x64, 5 times the bound.
const MANY: usize = 5000;

/// Preparing `MANY` images of 64x64 and training a tiny network on them take less than `BOUND` more
/// private memory than the same with 8 of the images: nothing holds the dataset.
#[test]
fn private_memory_does_not_grow_with_the_dataset() {
    let root = temp_dir("memory");
    let start = Instant::now();
    let (few, many) = (root.join("few"), root.join("many"));
    make_images(&many, MANY, 64, 1);
    fs::create_dir_all(&few).unwrap();
    for entry in fs::read_dir(&many).unwrap().take(8) {
        let entry = entry.unwrap();
        fs::copy(entry.path(), few.join(entry.file_name())).unwrap();
    }
    eprintln!("images made in {:?}", start.elapsed());
    let mut peaks = Vec::new();
    for (dir, n) in [(&few, 8), (&many, MANY)] {
        let file = root.join(format!("{n}.pggan"));
        let s = |p: &PathBuf| p.to_str().unwrap().to_string();
        let t = Instant::now();
        let prepared = peak_memory(&["dataset", "prepare", &s(dir), &s(&file), "--res", "64"]);
        let prepare_s = t.elapsed();
        let size = fs::metadata(&file).unwrap().len();
        // 4 steps at 4x4, 4 at 16x16, 4 at 64x64.
        let args = train_args(
            &file,
            &root.join(format!("runs-{n}")),
            64,
            "0.004",
            &["--total-kimg", "0.048"],
        );
        let t = Instant::now();
        let trained = peak_memory(&args.iter().map(String::as_str).collect::<Vec<_>>());
        eprintln!(
            "{n} images, {:.1} MB file: preparing {prepare_s:.1?} RssAnon {:.1} MB (peak RSS {:.1} MB); \
             training {:.1?} RssAnon {:.1} MB (peak RSS {:.1} MB)",
            size as f64 / 1e6,
            prepared.0 as f64 / 1e6,
            prepared.1 as f64 / 1e6,
            t.elapsed(),
            trained.0 as f64 / 1e6,
            trained.1 as f64 / 1e6
        );
        peaks.push((size, prepared, trained));
    }
    let [(_, p8, t8), (size, p, t)] = [peaks[0], peaks[1]];
    assert!(
        size > 4 * BOUND,
        "the file ({size} bytes) must be several times the bound"
    );
    for (what, small, large) in [
        ("preparing: RssAnon", p8.0, p.0),
        ("preparing: peak RSS", p8.1, p.1),
        ("training: RssAnon", t8.0, t.0),
        ("training: peak RSS", t8.1, t.1),
    ] {
        assert!(
            large < small + BOUND,
            "{what} {:.1} MB with {MANY} images, {:.1} MB with 8: more than {} MB more",
            large as f64 / 1e6,
            small as f64 / 1e6,
            BOUND >> 20
        );
    }
    eprintln!("in all {:?}", start.elapsed());
    fs::remove_dir_all(root).unwrap();
}

/// `dataset prepare` then `dataset info`: progress lines, the summary (images, skipped by reason
/// with their paths, upscaled images), the grid, a file of another shape refused by `train` with
/// both shapes, and the metrics reading a smaller level of the file.
#[test]
fn prepare_info_and_a_shape_mismatch() {
    let root = temp_dir("prepare");
    let photos = root.join("photos");
    make_images(&photos, 6, 16, 2);
    RgbImage::from_pixel(4, 4, Rgb([9, 9, 9]))
        .save(photos.join("small.png"))
        .unwrap();
    fs::write(photos.join("notes.txt"), "not an image").unwrap();
    fs::write(
        photos.join("cut.png"),
        &fs::read(photos.join("00001.png")).unwrap()[..40],
    )
    .unwrap();
    let file = root.join("photos.pggan");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = run_pggan(&["dataset", "prepare", &s(&photos), &s(&file), "--res", "8"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    // Without a terminal, progress is a line (the first image's, then one every 5 s).
    for want in [
        "of 9 images (",
        "dataset photos: 7 images, 8x8, 3 channels",
        "1 images were smaller than 8x8 and upscaled",
        "skipped 2 files:",
        "unsupported or corrupt image (2): cut.png, notes.txt",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    let grid = root.join("grid.png");
    let out = run_pggan(&["dataset", "info", &s(&file), "--grid", &s(&grid)]);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{info}");
    let size = fs::metadata(&file).unwrap().len();
    assert!(
        info.contains("7 images, 8x8, 3 channels") && info.contains("center-crop") && info.contains("skipped 2"),
        "{info}"
    );
    eprintln!("{info}({size} bytes)");
    // 7 images drawn: a grid of 3 x 3 cells of 8x8 pixels.
    let picture = image::open(&grid).unwrap();
    assert_eq!((picture.width(), picture.height()), (24, 24));

    let runs = root.join("runs");
    for (flags, want) in [
        (
            ["--max-res", "16", "--channels", "3"],
            "is 8x8 with 3 channels; this run needs 16x16 with 3",
        ),
        (
            ["--max-res", "8", "--channels", "1"],
            "is 8x8 with 3 channels; this run needs 8x8 with 1",
        ),
    ] {
        let mut args = vec![
            "train",
            "--data",
            file.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
        ];
        args.extend(flags);
        let out = run_pggan(&args);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(1) && e.contains(want), "{e}");
    }
    assert!(
        !runs.exists() || fs::read_dir(&runs).unwrap().next().is_none(),
        "a run folder was made"
    );
    // The metrics read any level a file holds (SWD from 16x16 on), and refuse one it does not.
    let file32 = root.join("photos-32.pggan");
    let out = run_pggan(&["dataset", "prepare", &s(&photos), &s(&file32), "--res", "32"]);
    assert!(out.status.success());
    let metrics = |res: &str| {
        let f = s(&file32);
        run_pggan(&[
            "metrics", "swd", "--real", &f, "--fake", &f, "--res", res, "--count", "4", "--json",
        ])
    };
    for res in ["16", "32"] {
        let out = metrics(res);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let e = String::from_utf8_lossy(&metrics("64").stderr).into_owned();
    assert!(
        e.contains("holds 32x32 images with 3 channels; 64x64 with 3 are asked for"),
        "{e}"
    );
    fs::remove_dir_all(root).unwrap();
}

/// A cut file is refused when opened, by `dataset info` and by `train`, with its length and the
/// one its header gives; a flipped byte among the images is refused with the images it damages
/// when their chunk is first read: by `dataset info --grid`, and mid-run by `train`, which stops
/// with its checkpoint written.
#[test]
fn cut_and_flipped_files_are_refused() {
    let root = temp_dir("damaged");
    let photos = root.join("photos");
    make_images(&photos, 8, 16, 3);
    let file = root.join("photos.pggan");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    assert!(
        run_pggan(&["dataset", "prepare", &s(&photos), &s(&file), "--res", "16"])
            .status
            .success()
    );
    let whole = fs::read(&file).unwrap();
    let runs = root.join("runs");
    // 8 steps at 4x4, then 4 of the 8x8 fade-in.
    let args = train_args(&file, &runs, 16, "0.016", &["--total-kimg", "0.048"]);
    let train = || run_pggan(&args.iter().map(String::as_str).collect::<Vec<_>>());

    fs::write(&file, &whole[..whole.len() - 100]).unwrap();
    let cut = format!("is {} bytes, but its header gives {}", whole.len() - 100, whole.len());
    let out = run_pggan(&["dataset", "info", &s(&file)]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && e.contains(&cut), "{e}");
    let out = train();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(1) && e.contains(&cut), "{e}");
    assert!(
        !runs.exists() || fs::read_dir(&runs).unwrap().next().is_none(),
        "a run folder was made"
    );

    // A file of another format version, or not a prepared file at all, is refused by what it is.
    let mut older = whole.clone();
    older[8..12].copy_from_slice(&1u32.to_le_bytes());
    fs::write(&file, &older).unwrap();
    let out = run_pggan(&["dataset", "info", &s(&file)]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && e.contains("was prepared in format version 1"),
        "{e}"
    );
    fs::copy(photos.join("00001.png"), &file).unwrap();
    let out = train();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && e.contains("is not a prepared dataset"),
        "{e}"
    );

    // After the 64-byte header, the levels' sections: 8 images of 48 bytes at 4x4, of 192 at 8x8,
    // of 768 at 16x16; each level's 8 images are one chunk. `info` alone reads no image; its grid
    // reads the 16x16 ones.
    let (at8, at16) = (64 + 8 * 48, 64 + 8 * 48 + 8 * 192);
    let mut flipped = whole.clone();
    flipped[at16 + 5 * 768] ^= 1;
    fs::write(&file, &flipped).unwrap();
    let out = run_pggan(&["dataset", "info", &s(&file)]);
    assert!(out.status.success());
    let out = run_pggan(&["dataset", "info", &s(&file), "--grid", &s(&root.join("grid.png"))]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && e.contains("is damaged: images 0 to 7 at 16x16 do not match their CRC-32"),
        "{e}"
    );
    // A run reads the 8x8 images first when 8x8 fades in, after the steps at 4x4: it stops there,
    // with the model of its last step saved.
    let mut flipped = whole.clone();
    flipped[at8 + 5 * 192] ^= 1;
    fs::write(&file, &flipped).unwrap();
    let out = train();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1)
            && e.contains("is damaged: images 0 to 7 at 8x8")
            && e.contains("the run stopped after writing its checkpoint"),
        "{e}"
    );
    let run = runs.join("000-photos-16");
    let ck = pggan::train::checkpoint::load(&run.join("checkpoint.safetensors")).unwrap();
    assert!(ck.state.steps > 0, "the checkpoint is of step {}", ck.state.steps);
    fs::remove_dir_all(root).unwrap();
}
