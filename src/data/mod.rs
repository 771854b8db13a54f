//! Datasets: the embedded emoji set, image folders, and the u8 image sets that training batches and
//! the metrics are drawn from.

use anyhow::{ensure, Result};

/// Same-size images as bytes, image-major then channel, row, column (NCHW), 0..=255.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub count: usize,
    pub channels: usize,
    pub res: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    pub fn new(count: usize, channels: usize, res: usize, pixels: Vec<u8>) -> Result<Images> {
        ensure!(
            pixels.len() == count * channels * res * res,
            "{count} images of {channels}x{res}x{res} need {} bytes, got {}",
            count * channels * res * res,
            pixels.len()
        );
        Ok(Images {
            count,
            channels,
            res,
            pixels,
        })
    }

    /// Bytes of one image (CHW).
    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.channels * self.res * self.res;
        &self.pixels[index * n..(index + 1) * n]
    }

    /// From floats in [-1, 1] (NCHW, as G produces), rounded and clipped as the official code does.
    pub fn from_f32(count: usize, channels: usize, res: usize, values: &[f32]) -> Result<Images> {
        let pixels = values
            .iter()
            .map(|&v| ((v as f64 + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
            .collect();
        Images::new(count, channels, res, pixels)
    }
}
