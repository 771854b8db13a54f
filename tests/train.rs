//! The trainer: schedule arithmetic, exact resume, checkpoints refused when damaged or foreign,
//! learning on a trivially learnable dataset, and the run driver's collective calls, the same on
//! every rank (all on the test adapter, tiny shapes).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::atomic::AtomicBool;

use common::as_version;
use pggan::data::{Dataset, Images};
use pggan::gpu::{Gpu, Tensor};
use pggan::rng::Rng;
use pggan::train::checkpoint::Checkpoint;
use pggan::train::config::{parse_res_map, TrainConfig};
use pggan::train::dist::Replicas;
use pggan::train::driver::{Cadence, Driver, Follower, Outcome};
use pggan::train::run::{self, RunOptions};
use pggan::train::step::Grad;
use pggan::train::trainer::Trainer;
use pollster::block_on;

/// 8x8 RGB, 8 and 4 feature maps, latent 8, minibatch 4, 20 images per phase: 3 phases, 15 steps.
fn tiny() -> TrainConfig {
    let mut cfg = TrainConfig::default();
    cfg.net.max_res = 8;
    cfg.net.fmap_base = 16;
    cfg.net.fmap_max = 8;
    cfg.net.latent = 8;
    cfg.schedule.minibatch = 4;
    cfg.schedule.phase_kimg = 0.02;
    cfg
}

/// `count` images of `res` x `res`, each flat in one of `colours`, alternating.
fn flat(count: usize, res: usize, colours: &[[u8; 3]]) -> Dataset {
    let mut pixels = Vec::new();
    for i in 0..count {
        for c in colours[i % colours.len()] {
            pixels.extend(std::iter::repeat_n(c, res * res));
        }
    }
    Dataset::from_images("flat", Images::new(count, 3, res, pixels).unwrap(), vec![]).unwrap()
}

fn random_data(count: usize, res: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let pixels = (0..count * 3 * res * res)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    Dataset::from_images("random", Images::new(count, 3, res, pixels).unwrap(), vec![]).unwrap()
}

#[test]
fn schedule_positions() {
    let cfg = tiny(); // levels 4x4 and 8x8: stabilise 4, fade-in 8, stabilise 8
    assert_eq!(cfg.total_images(), 60);
    let p = cfg.position(0);
    assert_eq!((p.phase, p.level, p.alpha, p.res()), (0, 1, 1.0, 4));
    // A fade-in's first image is still the previous level at alpha 1, as in the official schedule.
    let p = cfg.position(20);
    assert_eq!((p.phase, p.level, p.alpha), (0, 1, 1.0));
    let p = cfg.position(21);
    assert_eq!((p.phase, p.level, p.phase_name()), (1, 2, "fade-in"));
    let p = cfg.position(25);
    assert_eq!((p.phase, p.level, p.phase_name()), (1, 2, "fade-in"));
    assert!((p.alpha - 0.25).abs() < 1e-6, "alpha {}", p.alpha);
    let p = cfg.position(45);
    assert_eq!((p.phase, p.level, p.alpha), (2, 2, 1.0));
    // Past the schedule's end the last stabilisation goes on.
    assert_eq!(cfg.position(1000).phase, 2);
    let mut longer = cfg.clone();
    longer.schedule.total_kimg = Some(0.1);
    assert_eq!(longer.total_images(), 100);
}

#[test]
fn settings_are_validated_by_name() {
    let mut cfg = tiny();
    cfg.schedule.minibatch_res = parse_res_map("8=6").unwrap();
    let e = format!("{:#}", cfg.validate().unwrap_err());
    assert!(e.contains("8x8") && e.contains("minibatch 6"), "{e}");
    cfg.schedule.minibatch_res = parse_res_map("16=4").unwrap();
    let e = format!("{:#}", cfg.validate().unwrap_err());
    assert!(e.contains("16x16"), "{e}");
    assert!(parse_res_map::<usize>("64:8").is_err());
    assert_eq!(parse_res_map::<f32>("4=0.5, 8=0.25").unwrap().len(), 2);
    let e = format!(
        "{:#}",
        TrainConfig::from_json(r#"{"net": {"max_res": 8}, "speed": 3}"#).unwrap_err()
    );
    assert!(e.contains("speed"), "{e}");
    // Every loss and optimizer setting is checked by name, so that a saved configuration (where an
    // infinity would be written as null) always loads back.
    for (json, field) in [
        (r#"{"adam": {"beta1": 1e39}}"#, "beta1"),
        (r#"{"adam": {"beta2": 1.0}}"#, "beta2"),
        (r#"{"lambda": -1}"#, "lambda"),
        (r#"{"gamma": 0}"#, "gamma"),
        (r#"{"drift": -0.5}"#, "drift"),
        (r#"{"adam": {"epsilon": 0}}"#, "epsilon"),
        (r#"{"ema_beta": 1.5}"#, "ema_beta"),
    ] {
        let e = format!("{:#}", TrainConfig::from_json(json).unwrap().validate().unwrap_err());
        assert!(e.starts_with(field), "{json}: {e}");
    }
    let saved = serde_json::to_string(&tiny()).unwrap();
    assert_eq!(TrainConfig::from_json(&saved).unwrap(), tiny());
    let partial = TrainConfig::from_json(r#"{"net": {"max_res": 32}, "schedule": {"minibatch": 8}}"#).unwrap();
    let mut want = TrainConfig::default();
    want.net.max_res = 32;
    want.schedule.minibatch = 8;
    assert_eq!(partial, want);
    // The layout before Adam's settings were one group, given in part, reads into the group.
    let old = r#"{"beta1": 0.5, "epsilon": 1e-6, "schedule": {"lr": 0.002, "lr_res": {"16": 0.003}, "minibatch": 8}}"#;
    let mut want = TrainConfig::default();
    (want.adam.beta1, want.adam.epsilon, want.adam.lr) = (0.5, 1e-6, 0.002);
    want.adam.lr_res.insert(16, 0.003);
    want.schedule.minibatch = 8;
    assert_eq!(TrainConfig::from_json(old).unwrap(), want);
}

#[test]
fn the_time_left_counts_the_resolutions_to_come() {
    use pggan::train::cost::Cost;
    let cfg = TrainConfig::default(); // 4x4 to 64x64, 20k images per phase
    let cost = Cost::new(&cfg);
    let per = |level| cost.per_image(level);
    // Each resolution costs more per image than the one before it.
    assert!(
        (2..=5).all(|l| per(l) > 1.5 * per(l - 1)),
        "{:?}",
        (1..=5).map(per).collect::<Vec<_>>()
    );
    // From the start: 20k images at 4x4, then a fade-in and a stabilisation at each level.
    let phases: f64 = per(1) + (2..=5).map(|l| 2.0 * per(l)).sum::<f64>();
    let want = 20_000.0 * phases;
    // (Up to a few images: a fade-in's first image belongs to the level before it.)
    assert!((cost.remaining(0) - want).abs() < 1e-3 * want);
    // Halfway through the last phase: only 64x64 is left.
    let last = cfg.total_images() - 10_000;
    assert!((cost.remaining(last) - 10_000.0 * per(5)).abs() < 1e-9 * want);
    assert_eq!(cost.remaining(cfg.total_images()), 0.0);
}

fn run_steps(trainer: &mut Trainer, steps: usize) {
    for _ in 0..steps {
        trainer.step().unwrap();
    }
}

#[test]
fn the_schedule_is_evaluated_every_four_minibatches() {
    // Minibatch 4, 20 images per phase: the evaluations at 0 and 16 images are 4x4; the one at 32
    // is the fade-in at alpha 0.6, kept for steps 8 to 11 and starting Adam over (as the official
    // loop does it, a whole evaluation after the fade-in's first image).
    let mut t = Trainer::new(common::gpu(), tiny(), random_data(16, 8, 3)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..12 {
        t.step().unwrap();
        let p = t.position();
        seen.push((t.state().schedule_images, p.level, p.alpha, t.model().d.adam.t));
    }
    assert!(seen[..8].iter().all(|s| s.1 == 1 && s.2 == 1.0), "{seen:?}");
    assert_eq!(seen[7].0, 16);
    assert!(
        seen[8..]
            .iter()
            .all(|s| s.0 == 32 && s.1 == 2 && (s.2 - 0.6).abs() < 1e-6),
        "{seen:?}"
    );
    // Adam's count: 8 steps since the start, then 1..4 after the reset.
    assert_eq!(
        seen.iter().map(|s| s.3).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4]
    );
}

#[test]
fn resume_continues_exactly() {
    let cfg = tiny();
    let data = || random_data(16, 8, 3);
    let mut straight = Trainer::new(common::gpu(), cfg.clone(), data()).unwrap();
    run_steps(&mut straight, 15);
    let want = block_on(straight.checkpoint()).unwrap();

    // Stop at step 7 (inside the fade-in), through the byte format, then on across the next phase.
    let mut first = Trainer::new(common::gpu(), cfg, data()).unwrap();
    run_steps(&mut first, 7);
    let bytes = block_on(first.checkpoint()).unwrap().to_bytes().unwrap();
    let ck = Checkpoint::from_bytes(&bytes).unwrap();
    // The resumed run reads its images from a prepared file, each minibatch drawn a step ahead and
    // read on a thread of its own: the same draws and images, so the same model.
    let dir = common::temp_dir("resume-file");
    let file = pggan::data::cached(Some(&dir), "random-8", || Ok(data())).unwrap();
    assert!(file.file().is_some());
    let mut resumed = Trainer::resume(common::gpu(), &ck, file).unwrap();
    run_steps(&mut resumed, 8);
    assert!(resumed.finished());
    let mut got = block_on(resumed.checkpoint()).unwrap();
    got.state.seconds = want.state.seconds;
    assert_eq!((&got.state, got.adam), (&want.state, want.adam));
    assert_eq!(got.tensors.len(), want.tensors.len());
    for (name, (shape, values)) in &want.tensors {
        assert_eq!(
            &got.tensors[name],
            &(shape.clone(), values.clone()),
            "{name} differs after resume"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damaged_and_foreign_checkpoints_are_refused() {
    let mut t = Trainer::new(common::gpu(), tiny(), random_data(8, 8, 4)).unwrap();
    run_steps(&mut t, 1);
    let bytes = block_on(t.checkpoint()).unwrap().to_bytes().unwrap();

    let e = format!("{:#}", Checkpoint::from_bytes(&bytes[..bytes.len() - 100]).unwrap_err());
    assert!(e.contains("damaged"), "truncated: {e}");
    let mut flipped = bytes.clone();
    let at = flipped.len() - 7;
    flipped[at] ^= 0x40;
    let e = format!("{:#}", Checkpoint::from_bytes(&flipped).unwrap_err());
    assert!(e.contains("checksum"), "flipped byte: {e}");
    // A flipped byte in the header's configuration still parses (0.02 -> 0.03) but is refused.
    // (The configuration is a JSON string inside the header's JSON: its quotes are escaped.)
    let needle = br#"\"phase_kimg\":0.02"#;
    let at = find(&bytes, needle).expect("phase_kimg in the header") + needle.len() - 1;
    let mut flipped = bytes.clone();
    flipped[at] ^= 0x01;
    let e = format!("{:#}", Checkpoint::from_bytes(&flipped).unwrap_err());
    assert!(e.contains("checksum"), "flipped config byte: {e}");
    let e = format!("{:#}", Checkpoint::from_bytes(b"{\"hello\": 1}").unwrap_err());
    assert!(e.contains("not a pggan checkpoint"), "foreign file: {e}");

    // A checkpoint whose tensors do not fit its configuration (another fmap-max) is refused by name.
    let mut ck = Checkpoint::from_bytes(&bytes).unwrap();
    ck.config.net.fmap_max = 16;
    let e = format!(
        "{:#}",
        Trainer::resume(common::gpu(), &ck, random_data(8, 8, 4)).err().unwrap()
    );
    assert!(e.contains("shape"), "{e}");
    // Resuming with a different setting is refused, naming it; run length may change.
    let ck = Checkpoint::from_bytes(&bytes).unwrap();
    let mut other = ck.config.clone();
    other.schedule.total_kimg = Some(1.0);
    ck.config.check_resumable_as(&other).unwrap();
    other.net.latent = 16;
    let e = format!("{:#}", ck.config.check_resumable_as(&other).unwrap_err());
    assert!(e.contains("net.latent = 8") && e.contains("16"), "{e}");
}

#[test]
fn the_history_is_saved_under_the_checksum_and_thinned() {
    use pggan::train::state::{HistoryPoint, HISTORY_POINTS};
    let mut t = Trainer::new(common::gpu(), tiny(), random_data(8, 8, 4)).unwrap();
    run_steps(&mut t, 1);
    let point = |i: usize| HistoryPoint {
        kimg: i as f64 / 1000.0,
        d_loss: -(i as f32),
        swd: i.is_multiple_of(100).then_some(i as f64),
        resolution: 4,
        alpha: 1.0,
        ..HistoryPoint::default()
    };
    for i in 0..3 {
        t.record(point(i));
    }
    let ck = block_on(t.checkpoint()).unwrap();
    let bytes = ck.to_bytes().unwrap();
    assert_eq!(Checkpoint::from_bytes(&bytes).unwrap().state.history, ck.state.history);
    assert_eq!(ck.state.history.len(), 3);
    // A changed point is refused (-1 -> -7; the history is a JSON string in the header's JSON).
    let needle = br#"\"d_loss\":-1.0"#;
    let at = find(&bytes, needle).expect("the second point in the header") + needle.len() - 3;
    let mut flipped = bytes.clone();
    flipped[at] = b'7';
    let e = format!("{:#}", Checkpoint::from_bytes(&flipped).unwrap_err());
    assert!(e.contains("checksum"), "changed history: {e}");
    // A version 2 file (no history entry, a CRC of the tensors, configuration and state) loads
    // with an empty history.
    let old = Checkpoint::from_bytes(&as_version(&bytes, 2)).unwrap();
    assert_eq!(
        (old.version, old.state.history.len(), &old.tensors),
        (2, 0, &ck.tensors)
    );

    // A long run's history stays bounded and keeps its span, its newest point and its SWDs.
    let mut state = pggan::train::state::TrainState::default();
    for i in 0..10 * HISTORY_POINTS {
        state.record(point(i));
    }
    let h = &state.history;
    assert!(
        h.len() < HISTORY_POINTS && h.len() > HISTORY_POINTS / 4,
        "{} points",
        h.len()
    );
    assert_eq!(h.last(), Some(&point(10 * HISTORY_POINTS - 1)));
    assert!(h[0].kimg < 0.05, "the history starts at {} kimg", h[0].kimg);
    assert_eq!(h.iter().filter(|p| p.swd.is_some()).count(), 10 * HISTORY_POINTS / 100);
    assert!(h.windows(2).all(|w| w[0].kimg < w[1].kimg));
}

#[test]
fn a_nonfinite_tensor_is_found_by_name() {
    let mut t = Trainer::new(common::gpu(), tiny(), random_data(8, 8, 4)).unwrap();
    run_steps(&mut t, 2);
    assert_eq!(block_on(t.first_nonfinite()).unwrap(), None);
    let w = &t.model().g.adam.v.w[4];
    let mut values = block_on(t.gpu().download(w)).unwrap();
    let last = values.len() - 1;
    values[last] = f32::INFINITY;
    t.gpu().write(w, &values).unwrap();
    assert_eq!(
        block_on(t.first_nonfinite()).unwrap().as_deref(),
        Some("g_v/8x8/conv1/w")
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn version_1_checkpoints_sample_but_do_not_resume() {
    let mut t = Trainer::new(common::gpu(), tiny(), random_data(8, 8, 4)).unwrap();
    run_steps(&mut t, 6);
    let ck = block_on(t.checkpoint()).unwrap();
    let old = Checkpoint::from_bytes(&as_version(&ck.to_bytes().unwrap(), 1)).unwrap();
    assert_eq!((old.version, &old.tensors), (1, &ck.tensors));
    // Version 1 evaluated the schedule at every step.
    assert_eq!(old.state.schedule_images, old.state.images);
    let e = format!(
        "{:#}",
        Trainer::resume(common::gpu(), &old, random_data(8, 8, 4))
            .err()
            .unwrap()
    );
    assert!(
        e.contains("earlier discriminator block") && e.contains("generate"),
        "{e}"
    );
    let sampler = pggan::train::sample::Sampler::new(common::gpu(), old).unwrap();
    let images = block_on(sampler.run(&[0.5; 2 * 8])).unwrap();
    assert_eq!(images.count, 2);
}

#[test]
fn data_must_fit_the_networks() {
    let e = format!(
        "{:#}",
        Trainer::new(common::gpu(), tiny(), random_data(3, 8, 5)).err().unwrap()
    );
    assert!(e.contains("3 images") && e.contains("minibatch of 4"), "{e}");
    let e = format!(
        "{:#}",
        Trainer::new(common::gpu(), tiny(), random_data(8, 16, 5))
            .err()
            .unwrap()
    );
    assert!(e.contains("16x16"), "{e}");
}

/// Per image: its mean colour's distance to the nearest of `colours`, and its pixel variance;
/// both averaged over the images, in 0..255 units.
fn colour_stats(images: &Images, colours: &[[u8; 3]]) -> (f64, f64) {
    let n = images.res * images.res;
    let (mut dist, mut var) = (0.0, 0.0);
    for i in 0..images.count {
        let img = images.image(i);
        let mut mean = [0.0; 3];
        for (c, m) in mean.iter_mut().enumerate() {
            let px = &img[c * n..(c + 1) * n];
            *m = px.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            var += px.iter().map(|&v| (v as f64 - *m).powi(2)).sum::<f64>() / (3 * n) as f64;
        }
        let d = |col: &[u8; 3]| (0..3).map(|c| (mean[c] - col[c] as f64).powi(2)).sum::<f64>().sqrt();
        dist += colours.iter().map(d).fold(f64::INFINITY, f64::min);
    }
    (dist / images.count as f64, var / images.count as f64)
}

/// Trains a tiny 4x4 model on flat red and flat blue images at `precision`: the samples' colours must
/// move toward the data's and the samples become flatter.
fn learns_two_flat_colours_at(precision: &str) {
    // 4x4 only; every data image is flat red or flat blue: colour distance 0, variance 0.
    let colours = [[200, 40, 40], [40, 40, 200]];
    let mut cfg = TrainConfig::default();
    cfg.net.max_res = 4;
    cfg.net.fmap_base = 32;
    cfg.net.fmap_max = 16;
    cfg.net.latent = 8;
    cfg.schedule.minibatch = 8;
    cfg.schedule.phase_kimg = 1.6;
    cfg.adam.lr = 0.002;
    cfg.ema_beta = 0.9;
    cfg.precision = precision.parse().unwrap();
    let mut t = Trainer::new(common::gpu(), cfg, flat(64, 4, &colours)).unwrap();
    let z = Rng::new(9).normals(64 * 8);
    let (d0, v0) = colour_stats(&block_on(t.samples(&z)).unwrap(), &colours);
    while !t.finished() {
        t.step().unwrap();
    }
    let (d1, v1) = colour_stats(&block_on(t.samples(&z)).unwrap(), &colours);
    println!(
        "{precision}: distance to the nearest data colour {d0:.1} -> {d1:.1}; per-image variance {v0:.1} -> {v1:.1}"
    );
    assert!(d1 < 0.5 * d0, "the samples' colours did not move toward the data's");
    assert!(v1 < 0.5 * v0, "the samples did not become flatter");
}

#[test]
fn learns_two_flat_colours() {
    learns_two_flat_colours_at("f32");
}

/// The same with the layers' GEMMs in f16 (lavapipe has SHADER_F16, so `mixed` is not refused).
#[test]
fn learns_two_flat_colours_in_mixed_precision() {
    learns_two_flat_colours_at("mixed");
}

/// One rank of a two-rank run inside this process: it records every collective call it makes, and
/// answers as the other rank would if it held the same values (the mean of equal gradients is each
/// one, a gather holds the value twice). After `stop_after` reductions of D's gradient it reports
/// a stop request, as a signal on any rank would.
struct Recorder {
    rank: usize,
    calls: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    d_reductions: u64,
    stop_after: u64,
}

impl Replicas for Recorder {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        2
    }

    fn average(&mut self, _gpu: &Gpu, grad: &Tensor, which: Grad) -> anyhow::Result<()> {
        self.d_reductions += u64::from(which == Grad::D);
        self.calls
            .borrow_mut()
            .push(format!("average {which:?} {:?}", grad.shape));
        Ok(())
    }

    fn stop_agreed(&self) -> bool {
        self.d_reductions >= self.stop_after
    }

    fn all_gather(&mut self, value: u64) -> anyhow::Result<Vec<u64>> {
        self.calls.borrow_mut().push("all_gather".into());
        Ok(vec![value; 2])
    }

    fn broadcast(&mut self, bytes: &mut Vec<u8>) -> anyhow::Result<()> {
        self.calls.borrow_mut().push(format!("broadcast {}", bytes.len()));
        Ok(())
    }

    fn reduce_seconds(&self) -> f64 {
        0.0
    }
}

/// The collective calls rank `rank` of a two-rank run makes, from `distribute` to the run's end:
/// rank 0 through the native run folder ([`run::train`]: logs, samples, SWD, checkpoints and
/// snapshots), rank 1 through the follower's sink, as `train::mpi::follow` runs it. A stop
/// request after `stop_after` steps ends the run early.
fn collective_calls(rank: usize, cfg: &TrainConfig, stop_after: u64) -> (Outcome, Vec<String>) {
    let calls = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut trainer = Trainer::new(common::gpu(), cfg.clone(), random_data(16, 8, 3)).unwrap();
    let recorder = Recorder {
        rank,
        calls: calls.clone(),
        d_reductions: 0,
        stop_after,
    };
    block_on(trainer.distribute(Box::new(recorder))).unwrap();
    let mut driver = Driver::new(trainer, Cadence::Ticks);
    let outcome = match rank {
        0 => {
            let dir = common::temp_dir("collectives");
            let never = AtomicBool::new(false);
            let opts = RunOptions {
                grid: 2,
                stop: &never,
                progress: false,
                tick_lines: false,
                tensorboard: true,
            };
            run::train(&mut driver, &dir, &opts, "new run").unwrap()
        }
        _ => block_on(driver.run(&mut Follower { rank, ranks: 2 }, &|| false)).unwrap(),
    };
    let calls = calls.borrow().clone();
    (outcome, calls)
}

#[test]
fn every_rank_makes_the_same_collective_calls() {
    // Minibatch 8 (4 per rank), a tick every 2 steps with a checkpoint, a snapshot and an SWD at
    // each: 15 steps through two phase changes; then the same stopped by a request at step 7.
    let mut cfg = tiny();
    cfg.schedule.minibatch = 8;
    cfg.schedule.phase_kimg = 0.04;
    cfg.tick_kimg = 0.016;
    (cfg.checkpoint_ticks, cfg.snapshot_ticks, cfg.swd_ticks, cfg.swd_images) = (1, 1, 1, 8);
    for (stop_after, want) in [(u64::MAX, Outcome::Finished), (6, Outcome::Interrupted)] {
        let (lead, leader_calls) = collective_calls(0, &cfg, stop_after);
        let (follow, follower_calls) = collective_calls(1, &cfg, stop_after);
        assert_eq!((&lead, &follow), (&want, &want));
        // distribute's checks and broadcasts, two reductions per step, and at each tick the model's
        // check and the five mean losses.
        let reductions = leader_calls.iter().filter(|c| c.starts_with("average")).count();
        let gathers = leader_calls.iter().filter(|c| *c == "all_gather").count();
        eprintln!(
            "{want:?}: {} calls, {reductions} reductions, {gathers} gathers",
            leader_calls.len()
        );
        assert!(reductions >= 12 && gathers > 6, "{leader_calls:?}");
        assert_eq!(leader_calls, follower_calls);
    }
}

/// A run folder written by pggan before the run driver and the typed precision (`pggan train` on
/// the emoji set at 8x8 with `--precision auto`, 2 steps, before Adam's settings were one group):
/// its config.json reads back and is written again in today's layout, and its checkpoint loads and
/// resumes.
#[test]
fn a_run_saved_before_the_driver_loads_and_resumes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/before-driver");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let cfg = TrainConfig::from_json(&text).unwrap();
    assert_eq!(cfg.precision, pggan::gpu::PrecisionChoice::Auto);
    // Adam's settings, then at the top and in `schedule`, are read into their group; the rest
    // is written back as it was.
    let written = serde_json::to_string_pretty(&cfg).unwrap();
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    let (mut old, mut new) = (parse(&text), parse(&written));
    for k in ["beta1", "beta2", "epsilon"] {
        old.as_object_mut().unwrap().remove(k);
    }
    for k in ["lr", "lr_res"] {
        old["schedule"].as_object_mut().unwrap().remove(k);
    }
    let adam = new.as_object_mut().unwrap().remove("adam").unwrap();
    assert_eq!(new, old);
    let expected = serde_json::json!({"lr": 0.001, "lr_res": {}, "beta1": 0.0, "beta2": 0.99, "epsilon": 1e-8});
    assert_eq!(adam, expected);
    assert_eq!(TrainConfig::from_json(&written).unwrap(), cfg);
    let ck = pggan::train::checkpoint::load(&dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!((ck.config.clone(), ck.state.steps, ck.state.history.len()), (cfg, 2, 1));
    let mut t = Trainer::resume(common::gpu(), &ck, random_data(16, 8, 3)).unwrap();
    run_steps(&mut t, 2);
    assert_eq!(t.state().steps, 4);
}
