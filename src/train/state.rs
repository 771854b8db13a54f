//! Where a run is, besides its tensors: what a checkpoint's `state` entry holds.

use serde::{Deserialize, Serialize};

use super::config::{Position, TrainConfig};

/// Where a run is: everything besides the tensors that a resumed run needs to continue equal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Real images shown to D so far.
    pub images: u64,
    pub steps: u64,
    /// `images` when the schedule was last evaluated: at every
    /// [`MINIBATCH_REPEATS`](super::config::MINIBATCH_REPEATS)-th step.
    #[serde(default)]
    pub schedule_images: u64,
    /// The schedule phase of the last step (Adam is reset when it changes).
    pub phase: usize,
    /// The data / latent RNG's state after the last step.
    pub rng: u64,
    /// Training time so far, for img/s and the log.
    pub seconds: f64,
    /// The run's curves so far, for the page's plots: saved as the checkpoint's `history` entry,
    /// not in its `state`, and carried with the state through resume and checkpoint.
    #[serde(skip)]
    pub history: Vec<HistoryPoint>,
}

/// At most this many history points are kept: a long run's history is thinned, not cut.
pub const HISTORY_POINTS: usize = 2000;

/// One point of a run's curves: a tick of the CLI, or a batch of the page's steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub kimg: f64,
    pub d_loss: f32,
    pub g_loss: f32,
    pub penalty: f32,
    pub wasserstein: f32,
    /// The sliced Wasserstein distance (x1e3, average over levels), where it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swd: Option<f64>,
    pub resolution: usize,
    pub alpha: f32,
}

/// Each network's Adam step count since its last reset (its bias correction needs it): kept in the
/// model, saved beside the [`TrainState`] in a checkpoint's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdamSteps {
    pub g_t: u32,
    pub d_t: u32,
}

impl TrainState {
    /// The schedule position in effect: the one of the last evaluation.
    pub fn position(&self, cfg: &TrainConfig) -> Position {
        cfg.position(self.schedule_images)
    }

    /// Appends `point` to the history; when that holds [`HISTORY_POINTS`], drops every other point
    /// (counted from the newest, which stays; those with an SWD stay too while that still halves
    /// it), so the curves keep their whole span at half the density.
    pub fn record(&mut self, point: HistoryPoint) {
        let h = &mut self.history;
        h.push(point);
        let n = h.len();
        if n < HISTORY_POINTS {
            return;
        }
        let dropped = |i: usize| (n - 1 - i) % 2 == 1;
        let swd_dropped = (0..n).filter(|&i| dropped(i) && h[i].swd.is_some()).count();
        let keep_swd = swd_dropped < HISTORY_POINTS / 4;
        let mut i = 0;
        h.retain(|p| {
            i += 1;
            !dropped(i - 1) || (keep_swd && p.swd.is_some())
        });
    }
}
