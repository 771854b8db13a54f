//! What training on one real image costs at each level, relative to the others: the time left of a
//! run (the CLI's progress bar and the page's ETA) counts the slower resolutions still to come.

use super::config::TrainConfig;
use crate::nn::arch::{self, forward_flops};

/// The relative cost of training on one real image at each level: the forward FLOPs of G plus
/// three times D's (the D step runs D on the real, fake and mixed images and the penalty's
/// tangents; G's step runs G once more and D once), so that the time left counts the slower
/// resolutions still to come, scaled by the speed measured so far.
pub struct Cost {
    per_level: Vec<f64>,
    cfg: TrainConfig,
}

impl Cost {
    pub fn new(cfg: &TrainConfig) -> Cost {
        let (g, d) = (arch::generator(&cfg.net), arch::discriminator(&cfg.net));
        let per_level = (1..=cfg.net.levels())
            .map(|l| forward_flops(&g, l) + 3.0 * forward_flops(&d, l))
            .collect();
        Cost {
            per_level,
            cfg: cfg.clone(),
        }
    }

    pub fn per_image(&self, level: usize) -> f64 {
        self.per_level[level - 1]
    }

    /// The cost of the images from `images` to the end of the run, phase by phase.
    pub fn remaining(&self, images: u64) -> f64 {
        let (total, phase) = (self.cfg.total_images(), self.cfg.schedule.phase_kimg * 1000.0);
        let mut at = images;
        let mut left = 0.0;
        while at < total {
            let pos = self.cfg.position(at);
            let last = pos.phase == 2 * self.cfg.net.levels() - 2;
            let end = match last {
                true => total,
                false => (((pos.phase + 1) as f64 * phase).ceil() as u64).clamp(at + 1, total),
            };
            left += (end - at) as f64 * self.per_image(pos.level);
            at = end;
        }
        left
    }
}
