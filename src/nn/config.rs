//! The network configuration (Karras et al. 2018, Table 2; official networks.py `G_paper`, `D_paper`) and its
//! validation.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The shape of a PG-GAN pair: every setting the paper fixes, as a setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Final resolution, a power of two from 4 to 1024.
    pub max_res: usize,
    pub fmap_base: usize,
    pub fmap_max: usize,
    /// Latent size; the paper uses nf(0) = min(fmap_base, fmap_max).
    pub latent: usize,
    /// Image channels, 1 or 3.
    pub channels: usize,
}

impl Default for NetConfig {
    /// The official configuration at 1024x1024.
    fn default() -> Self {
        NetConfig {
            max_res: 1024,
            fmap_base: 8192,
            fmap_max: 512,
            latent: 512,
            channels: 3,
        }
    }
}

impl NetConfig {
    /// Refuses settings the networks cannot be built from, naming the setting.
    pub fn validate(&self) -> Result<()> {
        if !(4..=1024).contains(&self.max_res) || !self.max_res.is_power_of_two() {
            bail!("resolution {} must be a power of two from 4 to 1024", self.max_res);
        }
        if self.channels != 1 && self.channels != 3 {
            bail!("image channels must be 1 or 3, not {}", self.channels);
        }
        if self.latent == 0 {
            bail!("the latent size must be at least 1");
        }
        if self.fmap_max == 0 || self.fmap_base == 0 {
            bail!("fmap-base and fmap-max must be at least 1");
        }
        for level in 1..=self.levels() {
            if self.nf(level) == 0 {
                bail!(
                    "fmap-base {} gives 0 feature maps at {}x{}; raise it to at least {}",
                    self.fmap_base,
                    res_of(level),
                    res_of(level),
                    1 << level
                );
            }
        }
        Ok(())
    }

    /// Number of resolution levels: level 1 is 4x4, level `levels()` is `max_res`.
    pub fn levels(&self) -> usize {
        self.max_res.trailing_zeros() as usize - 1
    }

    /// Feature maps of the official code's `nf(stage) = min(fmap_base / 2^stage, fmap_max)`.
    pub fn nf(&self, stage: usize) -> usize {
        (self.fmap_base >> stage).min(self.fmap_max)
    }

    /// Feature maps of the blocks at `level` (resolution 2^(level+1)): nf(level).
    pub fn maps(&self, level: usize) -> usize {
        self.nf(level)
    }
}

/// The resolution of a level: 4 at level 1.
pub fn res_of(level: usize) -> usize {
    2 << level
}
