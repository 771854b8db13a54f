//! Training: the WGAN-GP step with the exact gradient penalty, Adam and the EMA generator.

pub mod check;
pub mod step;
