//! Sample grids, RGBA/PNG/GIF output, latent walks and `.npy` latents (CPU only).
#![cfg(not(target_arch = "wasm32"))]

use image::AnimationDecoder;
use pggan::data::Images;
use pggan::rng::Rng;
use pggan::samples::{gif, grid, latent_walk, read_npy};

#[test]
fn grid_places_and_scales_images() {
    // Three 2x2 RGB images, each flat in channel c = 10 * (image + 1): a 2-column grid at 4x4.
    let pixels: Vec<u8> = (0..3).flat_map(|i| std::iter::repeat_n(10 * (i + 1), 12)).collect();
    let g = grid(&Images::new(3, 3, 2, pixels).unwrap(), 2, 4).unwrap();
    assert_eq!((g.width, g.height, g.channels), (8, 8, 3));
    let at = |c: usize, x: usize, y: usize| g.pixels[(c * 8 + y) * 8 + x];
    assert_eq!(
        [at(0, 0, 0), at(1, 3, 3), at(2, 4, 0), at(0, 7, 3), at(0, 0, 4)],
        [10, 10, 20, 20, 30]
    );
    assert_eq!(at(0, 4, 4), 0, "the missing fourth cell is black");
    let rgba = g.rgba();
    assert_eq!(rgba.len(), 8 * 8 * 4);
    assert_eq!(&rgba[..4], &[10, 10, 10, 255]);
    let png = image::load_from_memory(&g.png().unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (8, 8));
    assert!(
        grid(&Images::new(1, 3, 2, vec![0; 12]).unwrap(), 1, 3).is_err(),
        "3 is no multiple of 2"
    );
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

#[test]
fn npy_latents() {
    let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
    let f4: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(read_npy(&npy("<f4", "(2, 3)", &f4), 3).unwrap(), values);
    let f8: Vec<u8> = values.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
    assert_eq!(read_npy(&npy("<f8", "(2, 3)", &f8), 3).unwrap(), values);
    let e = format!("{:#}", read_npy(&npy("<f4", "(3, 2)", &f4), 3).unwrap_err());
    assert!(e.contains("[3, 2]") && e.contains("[N, 3]"), "{e}");
    let e = format!("{:#}", read_npy(&npy("<i4", "(2, 3)", &f4), 3).unwrap_err());
    assert!(e.contains("float32 or float64"), "{e}");
    let e = format!("{:#}", read_npy(&npy("<f4", "(2, 3)", &f4[..20]), 3).unwrap_err());
    assert!(e.contains("needs 24"), "{e}");
    assert!(read_npy(b"PK\x03\x04 not numpy", 3).is_err());
}

#[test]
fn latent_walk_passes_through_its_keyframes() {
    let (latent, keys, frames) = (16, 3, 12);
    let walk = latent_walk(latent, keys, frames, 7);
    assert_eq!(walk.len(), latent * frames);
    let mut rng = Rng::new(7);
    let keyframes: Vec<Vec<f32>> = (0..keys).map(|_| rng.normals(latent)).collect();
    for k in 0..keys {
        let frame = &walk[k * 4 * latent..(k * 4 + 1) * latent];
        let err = frame
            .iter()
            .zip(&keyframes[k])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "frame {} is keyframe {k} (error {err})", k * 4);
    }
    // Spherical interpolation keeps norms between the keyframes' norms.
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let (lo, hi) = keyframes
        .iter()
        .map(|k| norm(k))
        .fold((f32::MAX, 0.0f32), |(a, b), n| (a.min(n), b.max(n)));
    for f in walk.chunks(latent) {
        assert!(
            norm(f) >= lo - 1e-3 && norm(f) <= hi + 1e-3,
            "norm {} outside [{lo}, {hi}]",
            norm(f)
        );
    }
}

#[test]
fn gif_has_every_frame() {
    let images = Images::new(3, 3, 4, (0..3 * 48).map(|i| i as u8).collect()).unwrap();
    let frames: Vec<_> = (0..3).map(|i| images.picture(i)).collect();
    let bytes = gif(&frames, 10).unwrap();
    let decoder = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(decoder.into_frames().count(), 3);
}
