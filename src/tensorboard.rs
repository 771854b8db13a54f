//! TensorBoard event files for native runs, so that `tensorboard --logdir runs` shows every run:
//! per tick, the losses, the Wasserstein estimate, SWD per level and average when measured, img/s,
//! resolution and alpha as scalars, and the tick's sample grid as an image, at step = real images
//! shown.
//!
//! The format is TensorFlow's record file: each record is its length (u64, little-endian), the
//! masked CRC-32C of those 8 bytes, the data, and the masked CRC-32C of the data; the data is a
//! protobuf `Event` ([`crate::proto::tensorboard`]). The first event of a file holds only its
//! version. A resumed run adds a new file to the folder; TensorBoard reads them all.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use prost::Message;
use serde_json::Value as Json;

use crate::proto::tensorboard::{Event, Image, Summary, Value};

/// The scalars of a tick: (field of the `log.jsonl` line, TensorBoard tag).
const SCALARS: [(&str, &str); 8] = [
    ("d_loss", "loss/D"),
    ("g_loss", "loss/G"),
    ("penalty", "loss/gradient_penalty"),
    ("drift", "loss/drift"),
    ("wasserstein", "loss/wasserstein_estimate"),
    ("images_per_second", "progress/images_per_second"),
    ("resolution", "progress/resolution"),
    ("alpha", "progress/alpha"),
];
/// The sample grid's tag.
pub const GRID: &str = "samples/fakes";

/// An open event file of a run folder.
pub struct EventWriter {
    file: File,
    path: PathBuf,
}

impl EventWriter {
    /// A new file `events.out.tfevents.<seconds>.pggan.<pid>` in `dir` (TensorBoard reads every
    /// file whose name holds "tfevents"), starting with the version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        let now = wall_time();
        let path = dir.join(format!(
            "events.out.tfevents.{}.pggan.{}",
            now as u64,
            std::process::id()
        ));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = EventWriter { file, path };
        w.write(&Event {
            wall_time: now,
            file_version: Some("brain.Event:2".into()),
            ..Event::default()
        })?;
        Ok(w)
    }

    /// One tick at `step` (real images shown): the scalars of its `log.jsonl` line `line` (and its
    /// `swd` when there is one), and the sample grid `png` when there is one.
    pub fn tick(&mut self, step: u64, line: &Json, png: Option<&[u8]>) -> Result<()> {
        let mut values = Vec::new();
        for (field, tag) in SCALARS {
            let v = line[field]
                .as_f64()
                .ok_or_else(|| anyhow!("the tick has no number {field}"))?;
            values.push(scalar(tag, v));
        }
        if let Some(swd) = line.get("swd") {
            for level in swd["levels"].as_array().into_iter().flatten() {
                if let (Some(res), Some(d)) = (level[0].as_u64(), level[1].as_f64()) {
                    values.push(scalar(&format!("swd/{res}x{res}"), d));
                }
            }
            let average = swd["average"]
                .as_f64()
                .ok_or_else(|| anyhow!("the SWD has no average"))?;
            values.push(scalar("swd/average", average));
        }
        if let Some(png) = png {
            let (width, height) = png_size(png)?;
            values.push(Value {
                tag: GRID.into(),
                image: Some(Image {
                    height,
                    width,
                    // RGB: `Picture::png` writes RGB, grayscale runs included.
                    colorspace: 3,
                    encoded_image_string: png.to_vec(),
                }),
                ..Value::default()
            });
        }
        let summary = Summary { value: values };
        self.write(&Event {
            wall_time: wall_time(),
            step: step as i64,
            summary: Some(summary),
            ..Event::default()
        })
    }

    /// Appends `event` as one record in one write, so that a reader never sees half a tick.
    fn write(&mut self, event: &Event) -> Result<()> {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let mut bytes = Vec::with_capacity(data.len() + 16);
        bytes.extend(len);
        bytes.extend(masked_crc(&len).to_le_bytes());
        bytes.extend(&data);
        bytes.extend(masked_crc(&data).to_le_bytes());
        self.file
            .write_all(&bytes)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

fn scalar(tag: &str, v: f64) -> Value {
    Value {
        tag: tag.into(),
        simple_value: Some(v as f32),
        ..Value::default()
    }
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Width and height from a PNG's IHDR chunk, which always comes first.
fn png_size(png: &[u8]) -> Result<(i32, i32)> {
    let be = |at: usize| {
        png.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()) as i32)
    };
    match (png.starts_with(b"\x89PNG\r\n\x1a\n"), be(16), be(20)) {
        (true, Some(w), Some(h)) => Ok((w, h)),
        _ => Err(anyhow!("the sample grid is not a PNG")),
    }
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), one table lookup per byte.
const CRC32C: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub fn crc32c(data: &[u8]) -> u32 {
    !data
        .iter()
        .fold(!0u32, |c, &b| CRC32C[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8))
}

/// TensorFlow's masked CRC: rotated and offset, so that a CRC stored inside CRC'd data does not
/// weaken the outer one.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_values() {
        // The standard check value of CRC-32C, and RFC 3720's (iSCSI) 32 zero bytes.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }
}
