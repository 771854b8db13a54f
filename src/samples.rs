//! Turning generated images into things people look at: grids, RGBA for a canvas, PNG, a GIF latent
//! walk, and latents from a NumPy `.npy` file.

use anyhow::{bail, ensure, Context, Result};

use crate::data::Images;
use crate::rng::Rng;

/// One image tiling `images` in rows of `cols`, each scaled up (nearest) to `res` so that grids of
/// every resolution of a run have the same size; missing cells stay black.
pub fn grid(images: &Images, cols: usize, res: usize) -> Result<Picture> {
    ensure!(
        cols > 0 && images.count > 0,
        "a grid needs at least one image and one column"
    );
    ensure!(
        res >= images.res && res.is_multiple_of(images.res),
        "cannot scale {}x{} images to {res}x{res}",
        images.res,
        images.res
    );
    let (c, rows, k) = (images.channels, images.count.div_ceil(cols), res / images.res);
    let (w, h) = (cols * res, rows * res);
    let mut out = vec![0u8; c * w * h];
    for i in 0..images.count {
        let (x0, y0, src) = ((i % cols) * res, (i / cols) * res, images.image(i));
        for ch in 0..c {
            for y in 0..res {
                for x in 0..res {
                    let v = src[(ch * images.res + y / k) * images.res + x / k];
                    out[(ch * h + y0 + y) * w + x0 + x] = v;
                }
            }
        }
    }
    Ok(Picture {
        channels: c,
        width: w,
        height: h,
        pixels: out,
    })
}

/// A planar (CHW) picture of any aspect, as grids are.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub channels: usize,
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl Images {
    /// Image `index` as a picture.
    pub fn picture(&self, index: usize) -> Picture {
        Picture {
            channels: self.channels,
            width: self.res,
            height: self.res,
            pixels: self.image(index).to_vec(),
        }
    }
}

impl Picture {
    /// Interleaved RGBA, what a canvas's ImageData and the image encoders take.
    pub fn rgba(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = Vec::with_capacity(4 * n);
        for i in 0..n {
            let ch = |c: usize| self.pixels[c.min(self.channels - 1) * n + i];
            out.extend_from_slice(&[ch(0), ch(1), ch(2), 255]);
        }
        out
    }

    pub fn png(&self) -> Result<Vec<u8>> {
        let img = image::RgbaImage::from_raw(self.width as u32, self.height as u32, self.rgba())
            .context("picture size does not match its pixels")?;
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img)
            .to_rgb8()
            .write_to(&mut bytes, image::ImageFormat::Png)?;
        Ok(bytes.into_inner())
    }
}

/// An animated GIF of `frames` at `fps`, looping forever.
pub fn gif(frames: &[Picture], fps: u32) -> Result<Vec<u8>> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)?;
        let delay = image::Delay::from_numer_denom_ms(1000, fps.max(1));
        for f in frames {
            let img = image::RgbaImage::from_raw(f.width as u32, f.height as u32, f.rgba())
                .context("frame size does not match its pixels")?;
            enc.encode_frame(image::Frame::from_parts(img, 0, 0, delay))?;
        }
    }
    Ok(bytes)
}

/// A latent walk: `frames` latents passing through `keys` random keyframes and back to the first,
/// spherically interpolated (the latents are normalised by G, so the walk keeps their norm).
pub fn latent_walk(latent: usize, keys: usize, frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let keyframes: Vec<Vec<f64>> = (0..keys.max(2))
        .map(|_| (0..latent).map(|_| rng.normal()).collect())
        .collect();
    walk_through(&keyframes, frames)
}

/// `frames` latents passing through `keyframes` (two or more) in order and back to the first,
/// spherically interpolated, the keyframes spread evenly over the frames.
pub fn walk_through(keyframes: &[Vec<f64>], frames: usize) -> Vec<f32> {
    let latent = keyframes[0].len();
    let mut out = Vec::with_capacity(frames * latent);
    for f in 0..frames {
        let pos = f as f64 * keyframes.len() as f64 / frames as f64;
        let (i, t) = (pos.floor() as usize, pos.fract());
        let (a, b) = (&keyframes[i], &keyframes[(i + 1) % keyframes.len()]);
        out.extend(slerp(a, b, t).into_iter().map(|v| v as f32));
    }
    out
}

fn slerp(a: &[f64], b: &[f64], t: f64) -> Vec<f64> {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    let cos = (a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    if omega.sin().abs() < 1e-9 {
        return a.iter().zip(b).map(|(x, y)| x + t * (y - x)).collect();
    }
    let (wa, wb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
    a.iter().zip(b).map(|(x, y)| wa * x + wb * y).collect()
}

/// A NumPy `.npy` file (version 1.0) of little-endian float32 `values` in C order, of `shape`.
pub fn npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    // A 1-D shape needs the trailing comma of a Python tuple.
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    // Magic (6) + version (2) + length (2) + header + newline is a multiple of 64 bytes.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    header.extend(std::iter::repeat_n(' ', total - 10 - header.len() - 1));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Latents from a NumPy `.npy` file: a 2-D little-endian float32 or float64 array [N, latent] in C order.
pub fn read_npy(bytes: &[u8], latent: usize) -> Result<Vec<f32>> {
    ensure!(
        bytes.len() > 10 && &bytes[..6] == b"\x93NUMPY",
        "not a .npy file (no NUMPY magic)"
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() > 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => bail!("unsupported .npy version {v}"),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .context("truncated or unreadable .npy header")?;
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'")).map(|i| i + key.len() + 2);
        at.map(|i| header[i..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr").context(".npy header has no descr")?;
    let size = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        bail!(
            ".npy latents must be little-endian float32 or float64, not {}",
            descr.split(',').next().unwrap_or("")
        )
    };
    ensure!(
        field("fortran_order").is_some_and(|v| v.starts_with("False")),
        ".npy latents must be in C order"
    );
    let shape: Vec<usize> = field("shape")
        .and_then(|s| s.strip_prefix('(').and_then(|s| s.split(')').next()))
        .context(".npy header has no shape")?
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().context("unreadable .npy shape"))
        .collect::<Result<_>>()?;
    ensure!(
        shape.len() == 2 && shape[1] == latent && shape[0] > 0,
        ".npy latents have shape {shape:?}; this generator needs [N, {latent}]"
    );
    let data = &bytes[start + header_len..];
    ensure!(
        data.len() == shape[0] * latent * size,
        ".npy data holds {} bytes, its shape needs {}",
        data.len(),
        shape[0] * latent * size
    );
    Ok(if size == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect()
    })
}
