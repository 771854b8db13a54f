//! Data-parallel training over MPI (the `mpi` feature): `mpirun -n 2 pggan train` on tiny runs of
//! the emoji set at 8x8, as a user runs it. K = 2 against K = 1 (the same draws, within f32
//! reduction order), one checkpoint written by rank 0 and resumed with K = 2 and K = 1, a refused
//! K, K = 1 under mpirun equal to a plain run bit for bit, a signal that stops every rank at one
//! step with a checkpoint, a killed rank and drifting parameters ending the run within a bound,
//! and an image folder prepared once by one rank while the other waits, each rank's memory printed.
//!
//! mpirun runs as root here (CI), so the tests pass Open MPI's allow-run-as-root option; a test
//! fails when mpirun is missing (tests/run.sh installs it).
#![cfg(all(feature = "mpi", not(target_arch = "wasm32")))]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::temp_dir;
use pggan::train::checkpoint::{self, Checkpoint};
use pggan::train::state::HistoryPoint;

/// The tiny run: 8x8, a tick (and a checkpoint) every 16 images. With --minibatch 8 and
/// 48 images per phase the schedule, evaluated every 4 steps (32 images), puts steps 1-8 at 4x4,
/// steps 9-12 in the fade-in to 8x8 at alpha 1/3, and from step 13 on 8x8.
fn tiny(cache: &Path, out: &Path) -> Vec<String> {
    let flags = "train --max-res 8 --fmap-base 16 --fmap-max 8 --latent 8 --minibatch 8 --phase-kimg 0.048 \
                 --tick-kimg 0.016 --checkpoint-ticks 1 --snapshot-ticks 0 --swd-ticks 0 --grid 2 --quiet";
    let mut v: Vec<String> = flags.split_whitespace().map(String::from).collect();
    v.extend(["--cache".into(), cache.display().to_string()]);
    v.extend(["--out".into(), out.display().to_string()]);
    v
}

/// `mpirun -n K pggan ARGS`, not started: as root (CI), with no core binding (two ranks share two
/// cores with lavapipe's threads), ranks that yield while they wait in MPI, and a grace period
/// (10 s, not 1) long enough for a stopping run's last step and checkpoint.
fn mpirun(k: usize, args: &[String]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n"])
        .arg(k.to_string())
        .arg(env!("CARGO_BIN_EXE_pggan"))
        .args(args)
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
        .env("OMPI_MCA_odls_base_sigkill_timeout", "10");
    cmd
}

fn plain(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pggan"));
    cmd.args(args);
    cmd
}

/// Runs `cmd` to the end within `limit`, echoing its stderr; fails when it cannot start (no mpirun).
fn finish(mut cmd: Command, limit: Duration) -> Output {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?} ({e}): tests/run.sh installs openmpi-bin"));
    let out = wait_bounded(child, limit);
    eprintln!(
        "{cmd:?}: {:?} in {:.1} s\n{}{}",
        out.status.code(),
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The child's output, or a failure (after killing it) when it runs past `limit`.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "failed: {err}");
    err
}

fn with(mut v: Vec<String>, more: &[&str]) -> Vec<String> {
    v.extend(more.iter().map(|s| s.to_string()));
    v
}

const LIMIT: Duration = Duration::from_secs(300);

/// The largest difference between two checkpoints' tensors relative to each tensor's largest
/// magnitude, with the tensor's name, and the same for the losses in their histories (over each
/// loss's points); the run states must be equal but for the training time and the losses' values.
fn difference(a: &Checkpoint, b: &Checkpoint) -> (f64, String) {
    let (mut sa, mut sb) = (a.state.clone(), b.state.clone());
    let (ha, hb) = (std::mem::take(&mut sa.history), std::mem::take(&mut sb.history));
    sa.seconds = 0.0;
    sb.seconds = 0.0;
    assert_eq!(sa, sb, "the run states differ");
    assert_eq!(ha.len(), hb.len(), "the histories differ in length");
    let losses = |h: &HistoryPoint| [h.d_loss, h.g_loss, h.penalty, h.wasserstein].map(f64::from);
    let mut worst = (0.0, String::new());
    for (k, loss) in ["d_loss", "g_loss", "penalty", "wasserstein"].into_iter().enumerate() {
        let scale = ha.iter().chain(&hb).map(|h| losses(h)[k].abs()).fold(1e-30, f64::max);
        for (i, (p, q)) in ha.iter().zip(&hb).enumerate() {
            assert_eq!(
                (p.kimg, p.resolution, p.alpha, p.swd),
                (q.kimg, q.resolution, q.alpha, q.swd)
            );
            let d = (losses(p)[k] - losses(q)[k]).abs() / scale;
            if d > worst.0 {
                worst = (d, format!("{loss} at history point {i}"));
            }
        }
    }
    for (name, (_, x)) in &a.tensors {
        let y = &b.tensors[name].1;
        let scale = x.iter().fold(0f64, |m, v| m.max(v.abs() as f64)).max(1e-30);
        let d = x.iter().zip(y).fold(0f64, |m, (p, q)| m.max((p - q).abs() as f64)) / scale;
        if d > worst.0 {
            worst = (d, name.clone());
        }
    }
    worst
}

fn tensors(ck: &Checkpoint) -> &BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    &ck.tensors
}

fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "cache")
        .collect();
    v.sort();
    v
}

fn load(run: &Path) -> Checkpoint {
    checkpoint::load(&run.join("checkpoint.safetensors")).unwrap()
}

/// The bound on K = 2 against K = 1 after 16 steps (D and G, through a fade-in), relative to each
/// tensor's largest magnitude: the processes' gradients are the single process's, summed in
/// another order (each rank's share over its samples, then the two shares), so the runs differ
/// by f32 rounding, which Adam's normalised steps carry on.
const K2_TOLERANCE: f64 = 1e-4;

/// The tiny run to `total` kimg in a new folder, once as a plain process and once under
/// `mpirun -n k`: the folder, its dataset cache, the two runs folders and mpirun's stderr.
fn plain_and_mpirun(tag: &str, k: usize, total: &str) -> (PathBuf, PathBuf, [PathBuf; 2], String) {
    let root = temp_dir(tag);
    let cache = root.join("cache");
    let (one, many) = (root.join("plain"), root.join("mpirun"));
    let total = ["--total-kimg", total];
    ok(&finish(plain(&with(tiny(&cache, &one), &total)), LIMIT));
    let err = ok(&finish(mpirun(k, &with(tiny(&cache, &many), &total)), LIMIT));
    (root, cache, [one, many], err)
}

#[test]
fn two_processes_train_as_one_and_resume_with_any_share() {
    let (root, cache, [one, two], err) = plain_and_mpirun("mpi-exact", 2, "0.128");
    assert!(
        err.contains("rank 1 of 2: adapter") && err.contains(", precision F32"),
        "{err}"
    );
    // Rank 0 alone writes: one run folder, with the files of a single-process run.
    let dirs = run_dirs(&two);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("events.out.tfevents"))
            .collect();
        v.sort();
        v
    };
    let single = run_dirs(&one);
    assert_eq!(names(&dirs[0]), names(&single[0]));
    let (a, b) = (load(&single[0]), load(&dirs[0]));
    assert_eq!(a.state.images, 128);
    assert_eq!(a.config, b.config);
    let (d, name) = difference(&a, &b);
    eprintln!("K = 2 against K = 1 after 16 steps: largest relative difference {d:.3e} ({name})");
    assert!(d <= K2_TOLERANCE, "{name} differs by {d:.3e} of its largest magnitude");
    assert!(d > 0.0 || tensors(&a) == tensors(&b));

    // The K = 2 checkpoint resumes with K = 2 and with K = 1, from the same draws.
    let copy = root.join("copy.safetensors");
    std::fs::copy(dirs[0].join("checkpoint.safetensors"), &copy).unwrap();
    let resume = |out: &Path| {
        let mut v = with(Vec::new(), &["train", "--resume", copy.to_str().unwrap(), "--quiet"]);
        v.extend(with(
            Vec::new(),
            &["--total-kimg", "0.176", "--cache", cache.to_str().unwrap()],
        ));
        v.extend(["--out".into(), out.display().to_string()]);
        v
    };
    let (r1, r2) = (root.join("r1"), root.join("r2"));
    ok(&finish(mpirun(2, &resume(&r2)), LIMIT));
    ok(&finish(plain(&resume(&r1)), LIMIT));
    let (c1, c2) = (load(&run_dirs(&r1)[0]), load(&run_dirs(&r2)[0]));
    assert_eq!(c1.state.images, 176);
    let (d, name) = difference(&c1, &c2);
    eprintln!("resumed with K = 2 against K = 1, 6 more steps: {d:.3e} ({name})");
    assert!(d <= K2_TOLERANCE, "{name} differs by {d:.3e}");

    // Three processes cannot share a minibatch of 8: refused, saying why.
    let out = finish(mpirun(3, &resume(&root.join("r3"))), LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot be shared equally by 3 processes") && err.contains("minibatch of 8"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn one_process_under_mpirun_is_a_plain_run() {
    let (root, _, [plain_out, mpi_out], err) = plain_and_mpirun("mpi-one", 1, "0.032");
    assert!(err.contains("adapter: "), "{err}");
    let (a, b) = (load(&run_dirs(&plain_out)[0]), load(&run_dirs(&mpi_out)[0]));
    assert_eq!(difference(&a, &b).0, 0.0);
    assert!(
        tensors(&a) == tensors(&b),
        "K = 1 under mpirun is not bit for bit a plain run"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Waits until `run`'s log has a line (the first tick).
fn wait_for_tick(child: &mut Child, run: &Path) {
    let start = Instant::now();
    while std::fs::read_to_string(run.join("log.jsonl")).map_or(true, |s| s.is_empty()) {
        assert!(child.try_wait().unwrap().is_none(), "mpirun exited early");
        assert!(start.elapsed() < LIMIT, "no tick in {} s", LIMIT.as_secs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ranks' process ids, by rank: mpirun's children, each with its OMPI_COMM_WORLD_RANK.
fn ranks(mpirun: &Child) -> BTreeMap<usize, u32> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap() {
        let path = entry.unwrap().path();
        let Ok(pid) = path.file_name().unwrap().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1));
        if ppid != Some(&mpirun.id().to_string()) {
            continue;
        }
        let env = std::fs::read(path.join("environ")).unwrap_or_default();
        let rank = env
            .split(|&b| b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok()?.strip_prefix("OMPI_COMM_WORLD_RANK="))
            .find_map(|r| r.parse().ok());
        if let Some(rank) = rank {
            found.insert(rank, pid);
        }
    }
    found
}

fn kill(sig: &str, pid: u32) {
    assert!(Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// A long tiny run under `mpirun -n 2` in a new folder, after its first tick: the folder, the run
/// folder and mpirun.
fn long_run_at_first_tick(tag: &str) -> (PathBuf, PathBuf, Child) {
    let root = temp_dir(tag);
    let out = root.join("runs");
    let mut child = mpirun(2, &with(tiny(&root.join("cache"), &out), &["--total-kimg", "10"]))
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (tests/run.sh installs openmpi-bin)");
    let run = out.join("000-emoji-8");
    wait_for_tick(&mut child, &run);
    (root, run, child)
}

#[test]
fn a_signal_stops_every_rank_at_one_step_with_a_checkpoint() {
    let (root, run, child) = long_run_at_first_tick("mpi-signal");
    kill("-TERM", child.id());
    let start = Instant::now();
    let result = wait_bounded(child, LIMIT);
    let err = String::from_utf8_lossy(&result.stderr);
    eprintln!(
        "stopped in {:.1} s: {:?}\n{err}",
        start.elapsed().as_secs_f64(),
        result.status
    );
    assert!(!result.status.success(), "{err}");
    assert!(err.contains("checkpoint written"), "rank 0 wrote no checkpoint: {err}");
    let text = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(text.contains("stopped by a signal"), "{text}");
    let ck = load(&run);
    assert!(ck.state.images >= 16 && ck.state.images < 10_000, "{}", ck.state.images);
    // Rank 1 stopped at the checkpoint's step.
    let line = format!(
        "rank 1 of 2: stopped at kimg {:.3} (step {})",
        ck.state.images as f64 / 1000.0,
        ck.state.steps
    );
    assert!(err.contains(&line), "{line:?} not in {err}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_killed_rank_ends_the_run_within_a_bound() {
    let (root, _, child) = long_run_at_first_tick("mpi-kill");
    let pids = ranks(&child);
    assert_eq!(pids.len(), 2, "the ranks' processes: {pids:?}");
    kill("-KILL", pids[&1]);
    let start = Instant::now();
    let result = wait_bounded(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&result.stderr);
    eprintln!(
        "ended in {:.1} s: {:?}\n{err}",
        start.elapsed().as_secs_f64(),
        result.status
    );
    assert!(!result.status.success());
    // Open MPI's own words (every rank prints "rank R of K" at its start, so that alone proves nothing).
    assert!(
        err.contains("process rank 1") && err.contains("signal 9"),
        "the launcher did not name the dead rank: {err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn drifting_parameters_stop_the_run_at_the_next_tick() {
    let root = temp_dir("mpi-drift");
    let out = root.join("runs");
    let mut cmd = mpirun(2, &with(tiny(&root.join("cache"), &out), &["--total-kimg", "10"]));
    cmd.env(pggan::train::mpi::FAULT_TEST_ENV, "drift:1");
    let result = finish(cmd, LIMIT);
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        err.contains("the processes' models differ at kimg 0.016 (step 2)"),
        "{err}"
    );
    assert!(err.contains("rank 0 ") && err.contains("rank 1 "), "{err}");
    // Nothing after the drift was saved: no checkpoint at its tick.
    assert!(!out.join("000-emoji-8/checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// A panic (a GPU out of memory under wgpu's default error handler, a bug) unwinds into MPI_Abort,
/// not into MPI_Finalize, which would wait for the other rank while it waits in the next reduction.
#[test]
fn a_panicking_rank_ends_the_run_within_a_bound() {
    let root = temp_dir("mpi-panic");
    let out = root.join("runs");
    let mut cmd = mpirun(2, &with(tiny(&root.join("cache"), &out), &["--total-kimg", "10"]));
    cmd.env(pggan::train::mpi::FAULT_TEST_ENV, "panic:1");
    let result = finish(cmd, Duration::from_secs(120));
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        err.contains("a panic injected by PGGAN_TEST_FAULT") && err.contains("error: rank 1 of 2: panicked"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Processes that read different configurations (here seeds; on a cluster, a file missing on one
/// host) are refused at the start instead of training on different draws unnoticed.
#[test]
fn processes_with_different_configurations_are_refused() {
    let root = temp_dir("mpi-mismatch");
    let args = tiny(&root.join("cache"), &root.join("runs"));
    // One application context per rank (Open MPI's `A : B`), each with its own seed.
    let mut cmd = mpirun(1, &with(args.clone(), &["--seed", "1"]));
    cmd.args([":", "-n", "1", env!("CARGO_BIN_EXE_pggan")])
        .args(with(args, &["--seed", "2"]));
    let result = finish(cmd, LIMIT);
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        err.contains("the processes' configurations or datasets differ") && err.contains("rank 1 "),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// Two processes on one host and an image folder not yet prepared: one prepares it into the
/// cache while the other waits for it, both train on that one file, and each reports its memory.
#[test]
fn two_processes_prepare_a_folder_once_and_report_their_memory() {
    let root = temp_dir("mpi-data");
    let images = root.join("images");
    common::make_images(&images, 8, 16, 1);
    let args = with(
        tiny(&root.join("cache"), &root.join("runs")),
        &["--data", images.to_str().unwrap(), "--total-kimg", "0.032"],
    );
    let err = ok(&finish(mpirun(2, &args), LIMIT));
    let preparing = format!("preparing {}: ", images.display());
    assert_eq!(err.matches(&preparing).count(), 1, "{err}");
    assert_eq!(err.matches("1 prepared sets").count(), 1, "{err}");
    for rank in 0..2 {
        let line = format!("rank {rank} of 2: peak memory ");
        let at = err
            .find(&line)
            .unwrap_or_else(|| panic!("no memory line of rank {rank}: {err}"));
        let mb: f64 = err[at + line.len()..].split(' ').next().unwrap().parse().unwrap();
        eprintln!("rank {rank}: peak memory {mb} MB");
        assert!(mb > 1.0 && mb < 4000.0, "{err}");
    }
}
