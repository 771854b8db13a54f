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
}
