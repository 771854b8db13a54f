//! A run's whole configuration: networks, growing schedule, loss and optimizer, data, seed. It is
//! saved with the run and inside every checkpoint, and read back from JSON with defaults for every
//! field left out.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use super::step::{check_batch, StepConfig};
use crate::gpu::PrecisionChoice;
use crate::nn::config::res_of;
use crate::nn::NetConfig;
use crate::ops::adam::AdamParams;

/// The default dataset's name in `TrainConfig::data`.
pub const EMOJI: &str = "emoji";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub net: NetConfig,
    pub schedule: Schedule,
    pub adam: Adam,
    /// WGAN-GP weight lambda, target norm gamma and drift epsilon (official loss.py `D_wgangp_acgan`).
    pub lambda: f32,
    pub gamma: f32,
    pub drift: f32,
    pub ema_beta: f32,
    /// Random horizontal flips of the real images.
    pub mirror: bool,
    pub seed: u64,
    /// `"emoji"` (the embedded set) or an image folder.
    pub data: String,
    /// Thousands of real images between log lines and sample grids.
    pub tick_kimg: f64,
    /// Ticks between checkpoints.
    pub checkpoint_ticks: usize,
    /// Ticks between sliced Wasserstein distances of the EMA generator's images to the data's
    /// (0: never; only from 16x16 on, the metric's coarsest level).
    pub swd_ticks: usize,
    /// Images per side for those distances.
    pub swd_images: usize,
    /// Ticks between snapshots, checkpoints kept under their own names
    /// (`snapshot-<images>.safetensors`) so that any of them can be sampled or resumed later
    /// (0: none).
    #[serde(default = "default_snapshot_ticks")]
    pub snapshot_ticks: usize,
    /// Snapshots kept: the newest ones (0: all).
    #[serde(default = "default_snapshots")]
    pub snapshots: usize,
    /// The layers' matrix products: `f32`, `mixed` (f16 operands, f32 sums) or `auto` (mixed where
    /// the device has f16 arithmetic), resolved against the device when the trainer opens the run.
    /// Left out of the JSON when f32, so f32 runs' configurations and checkpoints read as before.
    #[serde(default, skip_serializing_if = "PrecisionChoice::is_f32")]
    pub precision: PrecisionChoice,
}

fn default_snapshot_ticks() -> usize {
    10
}

fn default_snapshots() -> usize {
    10
}

/// The progressive-growing schedule (Karras et al. 2018, section 2 and appendix A.1; official train.py
/// `TrainingSchedule`), in thousands of real images (kimg).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Length of every fade-in and every stabilisation phase.
    pub phase_kimg: f64,
    /// Where training stops; `None`: at the end of the last stabilisation phase.
    pub total_kimg: Option<f64>,
    pub minibatch: usize,
    /// Minibatch per resolution where it differs from `minibatch`.
    pub minibatch_res: BTreeMap<usize, usize>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            phase_kimg: 20.0,
            total_kimg: None,
            minibatch: 16,
            minibatch_res: BTreeMap::new(),
        }
    }
}

/// Adam's settings, the same for G and D (official `G_opt` and `D_opt`, and the schedule's
/// learning rates `G_lrate_dict` and `D_lrate_dict`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    pub lr: f32,
    /// Learning rate per resolution where it differs from `lr`.
    pub lr_res: BTreeMap<usize, f32>,
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
}

impl Default for Adam {
    fn default() -> Self {
        let hp = AdamParams::default();
        Adam {
            lr: hp.lr,
            lr_res: BTreeMap::new(),
            beta1: hp.beta1,
            beta2: hp.beta2,
            epsilon: hp.eps,
        }
    }
}

impl Default for TrainConfig {
    /// The default run: the embedded emoji set at 64x64 with networks small enough to show
    /// recognisable shapes within minutes on a laptop GPU (docs/training.md, "Defaults and why").
    fn default() -> Self {
        let sc = StepConfig::default();
        TrainConfig {
            net: NetConfig {
                max_res: 64,
                fmap_base: 2048,
                fmap_max: 128,
                latent: 128,
                channels: 3,
            },
            schedule: Schedule::default(),
            adam: Adam::default(),
            lambda: sc.lambda,
            gamma: sc.gamma,
            drift: sc.drift,
            ema_beta: sc.ema_beta,
            mirror: true,
            seed: 1,
            data: EMOJI.into(),
            tick_kimg: 2.0,
            checkpoint_ticks: 5,
            swd_ticks: 10,
            swd_images: 1024,
            snapshot_ticks: default_snapshot_ticks(),
            snapshots: default_snapshots(),
            precision: PrecisionChoice::F32,
        }
    }
}

/// Thousands of images: the unit of the schedule, the logs and the plots.
pub fn kimg(images: u64) -> f64 {
    images as f64 / 1000.0
}

/// The official training loop evaluates the schedule (level of detail, minibatch size, learning
/// rate) once every this many minibatches and keeps it for all of them; so does the trainer.
pub const MINIBATCH_REPEATS: u64 = 4;

/// Where a number of real images puts training in the schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    /// 0: stabilising 4x4; then odd: fading in level `index / 2 + 2`, even: stabilising it.
    pub phase: usize,
    /// Level of detail (1 is 4x4) and its fade-in alpha (1 when stable).
    pub level: usize,
    pub alpha: f32,
}

impl Position {
    pub fn res(&self) -> usize {
        res_of(self.level)
    }

    /// Whether G and D blend in the previous level (the networks' own rule).
    pub fn fading(&self) -> bool {
        crate::nn::net::fading(self.level, self.alpha)
    }

    pub fn phase_name(&self) -> &'static str {
        if self.fading() {
            "fade-in"
        } else {
            "stabilise"
        }
    }
}

impl TrainConfig {
    /// A configuration from JSON (a config.json, a checkpoint's, the page's) in which every field
    /// left out, at any depth, keeps its default. One written before Adam's settings were a group
    /// reads as it did then (`upgrade`).
    pub fn from_json(text: &str) -> Result<TrainConfig> {
        let given: serde_json::Value = serde_json::from_str(text)?;
        let mut merged = serde_json::to_value(TrainConfig::default())?;
        merge(&mut merged, upgrade(given));
        Ok(serde_json::from_value(merged)?)
    }

    /// Refuses settings a run cannot start from, naming the setting.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        let s = &self.schedule;
        ensure!(
            s.phase_kimg > 0.0 && s.phase_kimg.is_finite(),
            "phase-kimg must be positive, not {}",
            s.phase_kimg
        );
        if let Some(t) = s.total_kimg {
            ensure!(t > 0.0 && t.is_finite(), "total-kimg must be positive, not {t}");
        }
        ensure!(
            self.tick_kimg > 0.0 && self.tick_kimg.is_finite(),
            "tick-kimg must be positive, not {}",
            self.tick_kimg
        );
        ensure!(self.checkpoint_ticks > 0, "checkpoint-ticks must be at least 1");
        ensure!(
            self.swd_ticks == 0 || self.swd_images >= 2,
            "swd-images must be at least 2 when swd-ticks is on"
        );
        for &r in s.minibatch_res.keys() {
            self.check_res(r, "minibatch")?;
        }
        for &r in self.adam.lr_res.keys() {
            self.check_res(r, "learning rate")?;
        }
        for level in 1..=self.net.levels() {
            let r = res_of(level);
            check_batch(self.minibatch(r)).map_err(|e| anyhow::anyhow!("at {r}x{r}: {e:#}"))?;
            let lr = self.lr(r);
            ensure!(
                lr > 0.0 && lr.is_finite(),
                "the learning rate at {r}x{r} must be positive, not {lr}"
            );
        }
        // Each loss and optimizer setting in its range (NaN fails every comparison), so that a
        // configuration pggan saved is one it loads back.
        let settings = [
            ("lambda", self.lambda, 0.0, f32::INFINITY, "at least 0"),
            ("gamma", self.gamma, f32::MIN_POSITIVE, f32::INFINITY, "positive"),
            ("drift", self.drift, 0.0, f32::INFINITY, "at least 0"),
            ("beta1", self.adam.beta1, 0.0, 1.0, "in [0, 1)"),
            ("beta2", self.adam.beta2, 0.0, 1.0, "in [0, 1)"),
            (
                "epsilon",
                self.adam.epsilon,
                f32::MIN_POSITIVE,
                f32::INFINITY,
                "positive",
            ),
            ("ema_beta", self.ema_beta, 0.0, 1.0, "in [0, 1)"),
        ];
        for (name, value, low, high, range) in settings {
            ensure!(
                value >= low && value < high,
                "{name} must be {range} and finite, not {value}"
            );
        }
        Ok(())
    }

    fn check_res(&self, r: usize, what: &str) -> Result<()> {
        if !(r.is_power_of_two() && (4..=self.net.max_res).contains(&r)) {
            bail!(
                "a {what} is set for {r}x{r}, which is not a resolution of this run (4 to {})",
                self.net.max_res
            );
        }
        Ok(())
    }

    pub fn minibatch(&self, res: usize) -> usize {
        *self
            .schedule
            .minibatch_res
            .get(&res)
            .unwrap_or(&self.schedule.minibatch)
    }

    pub fn lr(&self, res: usize) -> f32 {
        *self.adam.lr_res.get(&res).unwrap_or(&self.adam.lr)
    }

    /// Real images per tick (at least 1).
    pub fn tick_images(&self) -> u64 {
        ((self.tick_kimg * 1000.0).round() as u64).max(1)
    }

    /// Real images the whole run consumes.
    pub fn total_images(&self) -> u64 {
        let phases = 2 * self.net.levels() - 1;
        let kimg = self
            .schedule
            .total_kimg
            .unwrap_or(phases as f64 * self.schedule.phase_kimg);
        (kimg * 1000.0).round() as u64
    }

    /// The schedule position after `images` real images.
    pub fn position(&self, images: u64) -> Position {
        let last = 2 * self.net.levels() - 2;
        let phase_images = self.schedule.phase_kimg * 1000.0;
        let mut phase = ((images as f64 / phase_images).floor() as usize).min(last);
        // A fade-in's first image is still the previous level at alpha 1: the official level of
        // detail is an integer there, so its Adam reset comes one schedule evaluation later.
        if phase % 2 == 1 && images as f64 <= phase as f64 * phase_images {
            phase -= 1;
        }
        let level = phase.div_ceil(2) + 1;
        let alpha = if phase % 2 == 1 {
            ((images as f64 - phase as f64 * phase_images) / phase_images) as f32
        } else {
            1.0
        };
        Position { phase, level, alpha }
    }

    /// The step's loss and optimizer settings at a resolution.
    pub fn step_config(&self, res: usize) -> StepConfig {
        StepConfig {
            lambda: self.lambda,
            gamma: self.gamma,
            drift: self.drift,
            adam: AdamParams {
                lr: self.lr(res),
                beta1: self.adam.beta1,
                beta2: self.adam.beta2,
                eps: self.adam.epsilon,
            },
            ema_beta: self.ema_beta,
        }
    }
}

/// Where a phase of the schedule starts, for the plots: each fade-in, labelled with the resolution
/// it brings in, and each stabilisation after it, unlabelled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseMark {
    pub kimg: f64,
    pub label: String,
}

impl TrainConfig {
    /// The start of every phase after the first (4x4's stabilisation), to the end of the schedule's
    /// last phase.
    pub fn phase_marks(&self) -> Vec<PhaseMark> {
        (1..=2 * self.net.levels() - 2)
            .map(|phase| {
                let r = res_of(phase.div_ceil(2) + 1);
                PhaseMark {
                    kimg: phase as f64 * self.schedule.phase_kimg,
                    label: if phase % 2 == 1 {
                        format!("{r}x{r}")
                    } else {
                        String::new()
                    },
                }
            })
            .collect()
    }
}

/// Parses per-resolution overrides such as `"64=8,128=4"`.
pub fn parse_res_map<V: std::str::FromStr>(text: &str) -> Result<BTreeMap<usize, V>> {
    let mut map = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item
            .split_once('=')
            .and_then(|(r, v)| Some((r.trim().parse().ok()?, v.trim().parse().ok()?)));
        match parsed {
            Some((r, v)) => {
                map.insert(r, v);
            }
            None => bail!("cannot read {item:?}: write resolution=value, e.g. 64=8"),
        }
    }
    Ok(map)
}

impl TrainConfig {
    /// A resumed run may change only how long it runs, how often it reports and where its data
    /// lives; any other difference from the checkpoint's configuration is refused, naming it.
    pub fn check_resumable_as(&self, requested: &TrainConfig) -> Result<()> {
        let free = [
            "total_kimg",
            "tick_kimg",
            "checkpoint_ticks",
            "data",
            "swd_ticks",
            "swd_images",
            "snapshot_ticks",
            "snapshots",
            "precision",
        ];
        let strip = |c: &TrainConfig| -> Result<serde_json::Value> {
            // Through JSON text, where each f32 is written as its shortest decimal: a setting then
            // reads as it was given (0.001), not widened to f64 (0.0010000000474974513).
            let mut v: serde_json::Value = serde_json::from_str(&serde_json::to_string(c)?)?;
            for key in free {
                v.as_object_mut().map(|o| o.remove(key));
                v["schedule"].as_object_mut().map(|o| o.remove(key));
            }
            Ok(v)
        };
        match first_difference("", &strip(self)?, &strip(requested)?) {
            Some((path, have, want)) => bail!(
                "the checkpoint was trained with {path} = {have}; this run asks for {want}: \
                 drop that setting to resume, or start a new run"
            ),
            None => Ok(()),
        }
    }
}

/// A configuration as JSON written before Adam's settings were one group (`beta1`, `beta2` and
/// `epsilon` at the top, `lr` and `lr_res` in `schedule`), with them moved into `adam`; any other
/// value as it is.
fn upgrade(mut config: serde_json::Value) -> serde_json::Value {
    let Some(top) = config.as_object_mut() else {
        return config;
    };
    let mut moved: Vec<(&str, serde_json::Value)> = ["beta1", "beta2", "epsilon"]
        .into_iter()
        .filter_map(|k| Some((k, top.remove(k)?)))
        .collect();
    if let Some(schedule) = top.get_mut("schedule").and_then(|s| s.as_object_mut()) {
        moved.extend(
            ["lr", "lr_res"]
                .into_iter()
                .filter_map(|k| Some((k, schedule.remove(k)?))),
        );
    }
    if !moved.is_empty() {
        let adam = top.entry("adam").or_insert_with(|| serde_json::json!({}));
        if let Some(adam) = adam.as_object_mut() {
            for (k, v) in moved {
                adam.entry(k).or_insert(v);
            }
        }
    }
    config
}

/// Overwrites `base` with `given`, object by object.
fn merge(base: &mut serde_json::Value, given: serde_json::Value) {
    match (base, given) {
        (serde_json::Value::Object(b), serde_json::Value::Object(g)) => {
            for (k, v) in g {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, g) => *b = g,
    }
}

/// The first leaf where two JSON values differ: (dotted path, left, right).
fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<(String, String, String)> {
    use serde_json::Value::Object;
    match (a, b) {
        (Object(x), Object(y)) => x.keys().chain(y.keys()).find_map(|k| {
            let null = serde_json::Value::Null;
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            first_difference(&sub, x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null))
        }),
        _ if a != b => Some((path.to_string(), a.to_string(), b.to_string())),
        _ => None,
    }
}
