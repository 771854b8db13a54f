//! What a run survives, as a user meets it: SIGTERM and SIGHUP, kill -9 at random moments, a run
//! that diverges, a full disk (at a checkpoint, a sample grid, a log), resuming a copy of a
//! checkpoint, run folder numbering, an `--out` that cannot be written, a second run of one
//! folder, symbolic links planted at temporary and log names, a closed stderr, and checkpoints
//! that are no regular files. Tiny networks on the emoji set at 8x8 (a tick is two steps).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{pggan, run_pggan as run, temp_dir, TINY};
use pggan::files::write_atomic;
use pggan::rng::Rng;
use pggan::train::checkpoint::{self, Checkpoint};
use pggan::train::config::TrainConfig;
use pggan::train::run::new_run_dir;

/// A tiny run: checkpoints every tick of 8 images (two steps), 8x8 after 8 images per phase.
fn tiny(cache: &Path) -> Vec<String> {
    let more = [
        "--phase-kimg",
        "0.008",
        "--swd-ticks",
        "0",
        "--cache",
        cache.to_str().unwrap(),
    ];
    TINY.iter().chain(&more).map(|s| s.to_string()).collect()
}

/// A test's folders: `root`, the runs folder `out` in it and its first run's folder, and the tiny
/// run's flags with a dataset cache of the test's own.
struct Setup {
    root: PathBuf,
    out: PathBuf,
    run_dir: PathBuf,
    tiny: Vec<String>,
}

fn setup(tag: &str) -> Setup {
    let root = temp_dir(tag);
    let out = root.join("runs");
    Setup {
        run_dir: out.join("000-emoji-8"),
        tiny: tiny(&root.join("cache")),
        out,
        root,
    }
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    head.iter().copied().chain(tail.iter().map(String::as_str)).collect()
}

fn log_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).map_or(0, |s| s.lines().count())
}

/// Waits until `run`'s log has more than `lines` lines.
fn wait_for_log(child: &mut Child, run: &Path, lines: usize) {
    let start = Instant::now();
    while log_lines(run) <= lines {
        assert!(child.try_wait().unwrap().is_none(), "pggan exited early");
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no new log line in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn stderr_of(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{err}");
    (out.status.code(), err)
}

/// The kimg of the last line of `run`'s log.
fn last_logged_images(run: &Path) -> u64 {
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    (line["kimg"].as_f64().unwrap() * 1000.0).round() as u64
}

#[test]
fn sigterm_and_sighup_write_a_checkpoint() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("signals");
    let mut images = 0;
    for (i, sig) in ["-TERM", "-HUP"].into_iter().enumerate() {
        let mut cmd = match i {
            0 => pggan(&args(
                &["train", "--out", out.to_str().unwrap(), "--total-kimg", "10"],
                &tiny,
            )),
            _ => pggan(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]),
        };
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        wait_for_log(&mut child, &run_dir, log_lines(&run_dir) + 1);
        signal(&child, sig);
        let (code, err) = stderr_of(child);
        assert_eq!(code, Some(130), "{sig}: {err}");
        assert!(err.contains("checkpoint written"), "{sig}: {err}");
        let ck = checkpoint::load(&run_dir.join("checkpoint.safetensors")).unwrap();
        assert!(ck.state.images > images, "{sig}: the checkpoint did not move on");
        assert!(
            ck.state.images >= last_logged_images(&run_dir),
            "{sig}: the stop wrote no checkpoint"
        );
        images = ck.state.images;
    }
    let text = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert_eq!(text.matches("stopped by a signal").count(), 2, "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn kill_9_at_random_moments_loses_at_most_a_tick() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("kill9");
    let mut rng = Rng::new(9);
    let mut images = 0;
    for round in 0..10 {
        let mut cmd = match round {
            0 => pggan(&args(
                &["train", "--out", out.to_str().unwrap(), "--total-kimg", "100"],
                &tiny,
            )),
            _ => pggan(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]),
        };
        let mut child = cmd.stderr(Stdio::null()).spawn().unwrap();
        // After the run's first checkpoint and a new log line, at a random moment of a tick or two:
        // inside a step, a sample grid or a checkpoint write.
        wait_for_log(&mut child, &run_dir, log_lines(&run_dir).max(1));
        std::thread::sleep(Duration::from_millis(rng.next_u64() % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        let ck = checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap_or_else(|e| panic!("round {round}: the checkpoint is unreadable after kill -9: {e:#}"));
        // Loading refuses non-finite tensors, so this checkpoint is finite too.
        let logged = last_logged_images(&run_dir);
        assert!(
            ck.state.images + 8 >= logged && ck.state.images >= images,
            "round {round}: checkpoint at {} images, log at {logged}, previous checkpoint at {images}",
            ck.state.images
        );
        images = ck.state.images;
    }
    assert!(images > 8, "10 rounds made no progress");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("diverge");
    // A sane learning rate at 4x4 (one checkpoint per tick), 1000 from 8x8 on.
    let train = args(
        &[
            "train",
            "--out",
            out.to_str().unwrap(),
            "--lr-res",
            "8=1000",
            "--total-kimg",
            "1",
        ],
        &tiny,
    );
    let result = run(&train);
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "a diverged run must fail: {err}");
    assert!(
        err.contains("diverged at kimg") && err.contains("NaN or infinite"),
        "{err}"
    );
    let ck = checkpoint::load(&run_dir.join("checkpoint.safetensors")).expect("the last good checkpoint loads");
    assert!(
        ck.state.images <= 16,
        "a checkpoint after the divergence: {} images",
        ck.state.images
    );
    let text = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(text.contains("error: training diverged"), "{text}");
    assert!(std::fs::read_dir(&run_dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn resuming_a_copy_starts_a_new_run_and_leaves_the_original() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("copy");
    assert!(run(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.016"],
        &tiny
    ))
    .status
    .success());
    let backup = run_dir.join("backup.safetensors");
    std::fs::copy(run_dir.join("checkpoint.safetensors"), &backup).unwrap();
    let before: Vec<Vec<u8>> = ["checkpoint.safetensors", "config.json", "log.jsonl"]
        .iter()
        .map(|f| std::fs::read(run_dir.join(f)).unwrap())
        .collect();
    let resumed = run(&[
        "train",
        "--resume",
        backup.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--total-kimg",
        "0.032",
        "--quiet",
    ]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    for (f, bytes) in ["checkpoint.safetensors", "config.json", "log.jsonl"]
        .iter()
        .zip(before)
    {
        assert!(
            std::fs::read(run_dir.join(f)).unwrap() == bytes,
            "{f} of the original run changed"
        );
    }
    let new_run = out.join("001-emoji-8");
    let ck = checkpoint::load(&new_run.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.state.images, 32);
    let text = std::fs::read_to_string(new_run.join("log.txt")).unwrap();
    // The fourth line, after the version, command line and adapter, says where the run came from
    // (each line after its time).
    let origin = text.lines().nth(3).and_then(|l| l.split_once(' '));
    assert!(
        origin.is_some_and(|(_, o)| o.starts_with("new run resumed from") && o.contains("backup.safetensors")),
        "{text}"
    );

    // The run's own checkpoint file continues the run in place.
    let again = run(&[
        "train",
        "--resume",
        new_run.join("checkpoint.safetensors").to_str().unwrap(),
        "--total-kimg",
        "0.04",
        "--quiet",
    ]);
    assert!(again.status.success());
    assert_eq!(
        checkpoint::load(&new_run.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        40
    );
    assert!(!out.join("002-emoji-8").exists());

    // A run folder killed before its first checkpoint has nothing to resume.
    let empty = out.join("003-emoji-8");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(run_dir.join("config.json"), empty.join("config.json")).unwrap();
    let refused = run(&["train", "--resume", empty.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("has no checkpoint yet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn snapshots_are_kept_by_images_seen_and_pruned() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("snapshots");
    let train = args(
        &[
            "train",
            "--out",
            out.to_str().unwrap(),
            "--total-kimg",
            "0.04",
            "--snapshot-ticks",
            "2",
            "--snapshots",
            "2",
        ],
        &tiny,
    );
    assert!(run(&train).status.success());
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    names.sort();
    // Ticks at 8, 16, ..., 40 images: snapshots at 16 and 32, both kept.
    assert_eq!(
        names,
        ["snapshot-000000016.safetensors", "snapshot-000000032.safetensors"]
    );
    assert_eq!(checkpoint::load(&run_dir.join(&names[0])).unwrap().state.images, 16);
    // Any snapshot serves generate.
    let gen = root.join("gen");
    let snap = run_dir.join(&names[0]);
    let generated = run(&[
        "generate",
        "--checkpoint",
        snap.to_str().unwrap(),
        "--count",
        "1",
        "--out",
        gen.to_str().unwrap(),
    ]);
    assert!(generated.status.success());
    // Two more ticks of snapshots: the oldest goes.
    let more = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--total-kimg",
        "0.064",
        "--quiet",
    ]);
    assert!(more.status.success());
    let mut names: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["snapshot-000000048.safetensors", "snapshot-000000064.safetensors"]
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn run_folders_are_numbered_past_999() {
    let out = temp_dir("numbers");
    std::fs::create_dir_all(out.join("999-emoji-64")).unwrap();
    std::fs::create_dir_all(out.join("cache")).unwrap();
    let cfg = TrainConfig::default();
    assert_eq!(new_run_dir(&out, &cfg).unwrap(), out.join("1000-emoji-64"));
    assert_eq!(new_run_dir(&out, &cfg).unwrap(), out.join("1001-emoji-64"));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_unwritable_out_is_refused_before_the_data_and_the_gpu() {
    let root = temp_dir("out");
    let file = root.join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let out = file.join("runs");
    let start = Instant::now();
    let result = run(&["train", "--out", out.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success() && err.contains(out.to_str().unwrap()), "{err}");
    assert!(
        !err.contains("dataset") && !err.contains("adapter"),
        "checked too late: {err}"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&root);
}

/// The temporary files left in `dir` (none should be).
fn temporary_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_full_disk_names_the_file_keeps_the_old_one_and_leaves_no_temporary_file() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("full");
    // A write that fails (here: a folder holds the name, so the rename fails) names the file and
    // leaves no temporary file.
    let target = root.join("checkpoint.safetensors");
    std::fs::create_dir(&target).unwrap();
    let e = format!("{:#}", write_atomic(&target, &[7u8; 4096]).unwrap_err());
    assert!(e.contains("checkpoint.safetensors"), "{e}");
    assert!(temporary_files(&root).is_empty(), "{:?}", temporary_files(&root));
    assert!(target.is_dir());

    // In a run: a sample grid that cannot be written is named in the log, and the tick's
    // checkpoint is still written.
    assert!(run(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.008"],
        &tiny
    ))
    .status
    .success());
    let grid = run_dir.join("samples/fakes-000000016.png");
    std::fs::create_dir(&grid).unwrap();
    let resumed = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--total-kimg",
        "0.016",
        "--quiet",
    ]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let text = std::fs::read_to_string(run_dir.join("log.txt")).unwrap();
    assert!(
        text.contains("no sample grid this tick") && text.contains("fakes-000000016.png"),
        "{text}"
    );
    assert!(grid.is_dir() && temporary_files(&run_dir.join("samples")).is_empty());
    assert_eq!(
        checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        16
    );

    // A checkpoint larger than the space left (here: the file size limit): the run fails naming
    // it, with no temporary file left and the samples of the tick written.
    let limited = format!(
        "trap '' XFSZ; ulimit -f 16; exec {} train --resume {} --total-kimg 0.024 --quiet",
        env!("CARGO_BIN_EXE_pggan"),
        run_dir.display()
    );
    let result = Command::new("bash").args(["-c", &limited]).output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    eprintln!("{err}");
    assert!(
        !result.status.success() && err.contains("checkpoint.safetensors"),
        "{err}"
    );
    assert!(temporary_files(&run_dir).is_empty(), "{:?}", temporary_files(&run_dir));
    assert!(run_dir.join("samples/fakes-000000024.png").exists());
    assert_eq!(
        checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        16
    );

    // A log that cannot be written (log.jsonl already over the file size limit) stops the run at
    // its next tick, after writing the checkpoint: the run is not lost with its log.
    let log = run_dir.join("log.jsonl");
    let mut padded = std::fs::read(&log).unwrap();
    padded.resize(4 << 20, b'\n');
    std::fs::write(&log, padded).unwrap();
    let limited = format!(
        "trap '' XFSZ; ulimit -f 2048; exec {} train --resume {} --total-kimg 0.04 --quiet",
        env!("CARGO_BIN_EXE_pggan"),
        run_dir.display()
    );
    let result = Command::new("bash").args(["-c", &limited]).output().unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    eprintln!("{err}");
    assert!(
        !result.status.success()
            && err.contains("cannot write log.jsonl")
            && err.contains("after writing its checkpoint"),
        "{err}"
    );
    assert_eq!(
        checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        24
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Loading refuses a checkpoint holding a NaN, naming the tensor.
#[test]
fn a_checkpoint_with_a_nan_is_refused_by_name() {
    let Setup { root, out, tiny, .. } = setup("nan");
    assert!(run(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.008"],
        &tiny
    ))
    .status
    .success());
    let path = out.join("000-emoji-8/checkpoint.safetensors");
    let mut ck = checkpoint::load(&path).unwrap();
    ck.tensors.get_mut("d/4x4/dense1/w").unwrap().1[0] = f32::NAN;
    let e = format!("{:#}", Checkpoint::from_bytes(&ck.to_bytes().unwrap()).unwrap_err());
    assert!(e.contains("d/4x4/dense1/w") && e.contains("NaN"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}

/// The kimg of every line of `run`'s log, in order.
fn logged_kimg(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kimg"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

/// One run per folder: a second `train --resume` of a folder in training is refused at once,
/// naming the first's process id, and the first trains on undisturbed (its log's ticks strictly
/// increase). After kill -9 the folder resumes at once (the kernel released the lock), and a
/// temporary file the kill left is removed. Two new runs started together into one `--out`, both
/// preparing the dataset, get different folders.
#[test]
fn one_run_at_a_time_per_folder() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("lock");
    let mut first = pggan(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "10"],
        &tiny,
    ))
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_log(&mut first, &run_dir, 0);
    let second = run(&["train", "--resume", run_dir.to_str().unwrap(), "--quiet"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("is in use") && err.contains(&format!("process {}", first.id())),
        "{err}"
    );
    wait_for_log(&mut first, &run_dir, log_lines(&run_dir) + 1);
    signal(&first, "-KILL");
    first.wait().unwrap();
    let kimg = logged_kimg(&run_dir);
    assert!(kimg.windows(2).all(|w| w[0] < w[1]), "ticks out of order: {kimg:?}");

    // What a write cut short by kill -9 leaves behind is removed by the next run of the folder.
    let stale = run_dir.join("checkpoint.safetensors.99999-0.tmp");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let images = checkpoint::load(&run_dir.join("checkpoint.safetensors"))
        .unwrap()
        .state
        .images;
    let total = format!("{}", (images + 8) as f64 / 1000.0);
    let resumed = run(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--total-kimg",
        &total,
        "--quiet",
    ]);
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(!stale.exists(), "a stale temporary file was left");

    let (together, cache) = (root.join("together"), root.join("fresh-cache"));
    let mut both = tiny.clone();
    let at = both.iter().position(|a| a == "--cache").unwrap();
    both[at + 1] = cache.to_str().unwrap().to_string();
    let runs: Vec<Child> = (0..2)
        .map(|_| {
            pggan(&args(
                &["train", "--out", together.to_str().unwrap(), "--total-kimg", "0.008"],
                &both,
            ))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in runs {
        let (code, err) = stderr_of(child);
        assert_eq!(code, Some(0), "{err}");
    }
    for n in ["000", "001"] {
        let ck = together.join(format!("{n}-emoji-8/checkpoint.safetensors"));
        assert_eq!(checkpoint::load(&ck).unwrap().state.images, 8, "{}", ck.display());
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// No write follows a symbolic link planted at a temporary name, neither the fixed name earlier
/// builds used nor the names this process's next writes take; the atomic writes succeed beside
/// them. A log (log.txt, log.jsonl) that is a link is refused, not appended through.
#[test]
fn no_write_follows_a_planted_link() {
    use std::os::unix::fs::symlink;
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("links");
    let victim = root.join("victim");
    std::fs::write(&victim, b"victim").unwrap();
    let target = root.join("file.bin");
    let mut links = vec![root.join("file.bin.tmp")];
    links.extend((0..64).map(|n| root.join(format!("file.bin.{}-{n}.tmp", std::process::id()))));
    for link in &links {
        symlink(&victim, link).unwrap();
    }
    for round in 0..3 {
        write_atomic(&target, format!("round {round}").as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), format!("round {round}"));
    }
    for link in &links {
        assert_eq!(std::fs::read_link(link).unwrap(), victim);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");

    // A run with links at the fixed temporary names of its checkpoint, configuration and grid.
    assert!(run(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.008"],
        &tiny
    ))
    .status
    .success());
    let planted = [
        "checkpoint.safetensors.tmp",
        "config.json.tmp",
        "samples/fakes-000000016.png.tmp",
    ];
    for name in planted {
        symlink(&victim, run_dir.join(name)).unwrap();
    }
    let resume = |total: &str| {
        run(&[
            "train",
            "--resume",
            run_dir.to_str().unwrap(),
            "--total-kimg",
            total,
            "--quiet",
        ])
    };
    assert!(resume("0.016").status.success());
    assert_eq!(
        checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        16
    );
    for name in planted {
        assert_eq!(std::fs::read_link(run_dir.join(name)).unwrap(), victim, "{name}");
    }
    for log in ["log.txt", "log.jsonl"] {
        let kept = run_dir.join(format!("{log}.kept"));
        std::fs::rename(run_dir.join(log), &kept).unwrap();
        symlink(&victim, run_dir.join(log)).unwrap();
        let refused = resume("0.024");
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success() && err.contains(log), "{log}: {err}");
        std::fs::remove_file(run_dir.join(log)).unwrap();
        std::fs::rename(&kept, run_dir.join(log)).unwrap();
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
    let _ = std::fs::remove_dir_all(&root);
}

/// A closed stderr (a `tee` or log shipper that died) does not stop a run that prints a line per
/// tick there: it trains to its end, writes its checkpoint and exits with status 0, no panic.
#[test]
fn a_closed_stderr_does_not_stop_the_run() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("stderr");
    let loud: Vec<String> = tiny.into_iter().filter(|a| a != "--quiet").collect();
    let status = pggan(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.016"],
        &loud,
    ))
    .stderr(common::closed_pipe())
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(
        checkpoint::load(&run_dir.join("checkpoint.safetensors"))
            .unwrap()
            .state
            .images,
        16
    );
    assert_eq!(log_lines(&run_dir), 2);
    let _ = std::fs::remove_dir_all(&root);
}

/// `train --resume RUN` without `--out` caches its dataset beside the run folder (in the folder
/// that holds it), not under `runs/` of wherever it was started.
#[test]
fn a_resumed_run_caches_its_dataset_beside_it() {
    let Setup {
        root,
        out,
        run_dir,
        tiny,
    } = setup("cache");
    let mut no_cache = tiny.clone();
    let at = no_cache.iter().position(|a| a == "--cache").unwrap();
    no_cache.drain(at..at + 2);
    assert!(run(&args(
        &["train", "--out", out.to_str().unwrap(), "--total-kimg", "0.008"],
        &no_cache
    ))
    .status
    .success());
    std::fs::remove_dir_all(out.join("cache")).unwrap();
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let resumed = pggan(&[
        "train",
        "--resume",
        run_dir.to_str().unwrap(),
        "--total-kimg",
        "0.016",
        "--quiet",
    ])
    .current_dir(&elsewhere)
    .output()
    .unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(out.join("cache").is_dir(), "no cache beside the run");
    assert!(!elsewhere.join("runs").exists(), "a cache in the current folder");
    let _ = std::fs::remove_dir_all(&root);
}

/// A checkpoint that is not a regular file is refused at once, unread, by `train --resume` and
/// `generate --checkpoint`: `/dev/zero` (read whole, it never ends) and a FIFO (opening it waits
/// for a writer). Each command is killed if it has not ended after 20 s.
#[test]
fn a_checkpoint_that_is_no_regular_file_is_refused() {
    let root = temp_dir("fifo");
    let fifo = root.join("checkpoint.safetensors");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = root.join("generated");
    for path in [Path::new("/dev/zero"), &fifo] {
        let path = path.to_str().unwrap();
        for command in [
            vec!["train", "--resume", path, "--quiet"],
            vec!["generate", "--checkpoint", path, "--out", out.to_str().unwrap()],
        ] {
            let mut child = pggan(&command).stderr(Stdio::piped()).spawn().unwrap();
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let (code, err) = stderr_of(child);
            assert!(
                code == Some(1) && err.contains("not a regular file"),
                "{command:?}: {code:?} {err}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
