//! Datasets: the pyramid, minibatches (mirroring, fading), the area resampler, decoding, folders and
//! their cache, the embedded emoji set. CPU only.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::temp_dir;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use pggan::data::resize::{center_crop, resize};
use pggan::data::{
    cached, emoji, emoji_cache_key, folder, from_files, prepare, prepare_folder, Damaged, Dataset, Images, Loader,
    Transform,
};
use pggan::rng::Rng;
use std::fs;
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn random_images(count: usize, channels: usize, res: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let pixels = (0..count * channels * res * res)
        .map(|_| (rng.next_u64() % 256) as u8)
        .collect();
    Images::new(count, channels, res, pixels).unwrap()
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// An RGB image whose every pixel differs, so crops and orderings show.
fn gradient(w: u32, h: u32, seed: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x * 9 + seed) as u8,
            (y * 7 + seed * 3) as u8,
            ((x + y) * 5 + seed) as u8,
        ])
    }))
}

#[test]
fn pyramid_levels_are_box_averages() {
    let full = random_images(3, 3, 32, 1);
    let d = Dataset::from_images("random", full.clone(), vec![]).unwrap();
    assert_eq!(d.resolutions().collect::<Vec<_>>(), [4, 8, 16, 32]);
    assert_eq!((d.count(), d.channels(), d.max_res()), (3, 3, 32));
    assert_eq!(d.at(32).unwrap(), full);
    // Each level is the mean of its pixel's block of the full image (the unrounded chain of 2x2
    // means), rounded half to even.
    for r in d.resolutions() {
        let (level, k) = (d.at(r).unwrap(), 32 / r);
        for p in 0..3 * 3 {
            for y in 0..r {
                for x in 0..r {
                    let block: f64 = (0..k * k)
                        .map(|i| full.pixels[(p * 32 + y * k + i / k) * 32 + x * k + i % k] as f64)
                        .sum();
                    let want = (block / (k * k) as f64).round_ties_even() as u8;
                    assert_eq!(level.pixels[(p * r + y) * r + x], want, "{r}x{r} plane {p} ({y}, {x})");
                }
            }
        }
    }
    let e = Dataset::from_images("bad", random_images(1, 3, 12, 2), vec![]).unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
    assert!(Dataset::from_images("bad", random_images(1, 3, 2, 2), vec![]).is_err());
    let e = Dataset::from_images("none", Images::new(0, 3, 8, vec![]).unwrap(), vec![]).unwrap_err();
    assert!(e.to_string().contains("no images"), "{e}");
    assert!(d.at(64).is_err() && d.at(6).is_err());
}

/// A case derived by hand where the official pyramid (unrounded chain, halves to even) differs from
/// halving rounded levels with halves away from zero. A 16x16 plane whose 2x2 blocks have the 8x8
/// means below, tiled in 2x2 cells of four kinds:
/// - kind 0: means 1.75, 1.75, 1.75, 0.25 -> 8x8 rounds to 2, 2, 2, 0; 4x4 is rint(1.375) = 1
///   (from the rounded 8x8 it would be mean(2, 2, 2, 0) = 1.5 -> 2);
/// - kind 1: 2.5 everywhere -> 2 and 2 (away from zero: 3 and 3);
/// - kind 2: 0.5 everywhere -> 0 and 0 (away from zero: 1 and 1);
/// - kind 3: 3.5 everywhere -> 4 and 4 (halves to even round up too).
#[test]
fn pyramid_matches_a_case_derived_by_hand() {
    // Each 8x8 mean m as a 2x2 block of bytes summing to 4m.
    let block = |m4: u8| -> [u8; 4] {
        match m4 {
            7 => [2, 2, 2, 1],
            1 => [1, 0, 0, 0],
            10 => [3, 2, 2, 3],
            2 => [1, 0, 0, 1],
            14 => [4, 3, 3, 4],
            _ => unreachable!(),
        }
    };
    // 4 x the 8x8 means of each kind's cell, in the cell's order (top left, top right, ...).
    let kinds: [[u8; 4]; 4] = [[7, 7, 7, 1], [10; 4], [2; 4], [14; 4]];
    let (want8, want4): ([[u8; 4]; 4], [u8; 4]) = ([[2, 2, 2, 0], [2; 4], [0; 4], [4; 4]], [1, 2, 0, 4]);
    let kind = |cy: usize, cx: usize| (cy + cx) % 4;
    let mut plane = vec![0u8; 16 * 16];
    for y in 0..16 {
        for x in 0..16 {
            let (cell, within) = ((y / 4, x / 4), (y / 2 % 2) * 2 + x / 2 % 2);
            plane[y * 16 + x] = block(kinds[kind(cell.0, cell.1)][within])[(y % 2) * 2 + x % 2];
        }
    }
    let d = Dataset::from_images("hand", Images::new(1, 1, 16, plane).unwrap(), vec![]).unwrap();
    let (l8, l4) = (d.at(8).unwrap(), d.at(4).unwrap());
    for y in 0..8 {
        for x in 0..8 {
            let want = want8[kind(y / 2, x / 2)][(y % 2) * 2 + x % 2];
            assert_eq!(l8.pixels[y * 8 + x], want, "8x8 ({y}, {x})");
        }
    }
    for y in 0..4 {
        for x in 0..4 {
            assert_eq!(l4.pixels[y * 4 + x], want4[kind(y, x)], "4x4 ({y}, {x})");
        }
    }
}

#[test]
fn batch_mirrors_and_fades_like_the_reference() {
    let d = Dataset::from_images("random", random_images(4, 3, 16, 3), vec![]).unwrap();
    let (indices, mirror) = ([2, 0, 3, 2], [false, true, false, true]);
    let mut worst = 0f64;
    for res in [4, 8, 16] {
        let level = d.at(res).unwrap();
        let r = res;
        for alpha in [0.0f32, 0.3, 0.75, 1.0] {
            let got = d.batch(&indices, &mirror, res, alpha).unwrap();
            assert_eq!(got.len(), 4 * 3 * r * r);
            // x: the image (mirrored where asked) in [-1, 1]; low: its 2x2 mean, upsampled (none at 4x4).
            let x = |n: usize, c: usize, y: usize, col: usize| {
                let col = if mirror[n] { r - 1 - col } else { col };
                level.pixels[((indices[n] * 3 + c) * r + y) * r + col] as f64 / 127.5 - 1.0
            };
            for n in 0..4 {
                for c in 0..3 {
                    for y in 0..r {
                        for col in 0..r {
                            let v = x(n, c, y, col);
                            let want = if r == 4 {
                                v
                            } else {
                                let (y0, x0) = (y / 2 * 2, col / 2 * 2);
                                let low = (x(n, c, y0, x0)
                                    + x(n, c, y0, x0 + 1)
                                    + x(n, c, y0 + 1, x0)
                                    + x(n, c, y0 + 1, x0 + 1))
                                    / 4.0;
                                low + (v - low) * alpha as f64
                            };
                            let g = got[((n * 3 + c) * r + y) * r + col];
                            assert!((-1.0..=1.0).contains(&g), "value {g} outside [-1, 1]");
                            worst = worst.max((g as f64 - want).abs());
                        }
                    }
                }
            }
        }
    }
    eprintln!("batch: worst |batch - reference| = {worst:.2e}");
    assert!(worst <= 1e-6, "batch differs from the reference by {worst}");

    // Mirroring reverses every row; alpha = 1 is the plain image.
    let plain = d.batch(&[1], &[false], 16, 1.0).unwrap();
    let flipped = d.batch(&[1], &[true], 16, 1.0).unwrap();
    for (a, b) in plain.chunks(16).zip(flipped.chunks(16)) {
        assert_eq!(a.iter().rev().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
    }
    let level = d.at(16).unwrap();
    assert!(plain
        .iter()
        .zip(level.image(1))
        .all(|(&v, &p)| v == (p as f64 / 127.5 - 1.0) as f32));

    for (indices, mirror, res, alpha, msg) in [
        (&[4usize][..], &[false][..], 16, 1.0, "out of range"),
        (&[0, 1][..], &[false][..], 16, 1.0, "mirror flags"),
        (&[0][..], &[false][..], 32, 1.0, "not 32"),
        (&[0][..], &[false][..], 16, 1.5, "alpha"),
    ] {
        let e = d.batch(indices, mirror, res, alpha).unwrap_err();
        assert!(e.to_string().contains(msg), "{e}");
    }
}

/// Brute-force area resample: each output pixel's footprint integrated over the input pixels in f64.
fn area_reference(plane: &[f64], w: usize, h: usize, dw: usize, dh: usize) -> Vec<f64> {
    let overlap = |a0: f64, a1: f64, b0: f64, b1: f64| (a1.min(b1) - a0.max(b0)).max(0.0);
    let (sx, sy) = (w as f64 / dw as f64, h as f64 / dh as f64);
    let mut out = vec![0.0; dw * dh];
    for j in 0..dh {
        for i in 0..dw {
            let mut sum = 0.0;
            for y in 0..h {
                for x in 0..w {
                    let area = overlap(i as f64 * sx, (i + 1) as f64 * sx, x as f64, x as f64 + 1.0)
                        * overlap(j as f64 * sy, (j + 1) as f64 * sy, y as f64, y as f64 + 1.0);
                    sum += area * plane[y * w + x];
                }
            }
            out[j * dw + i] = sum / (sx * sy);
        }
    }
    out
}

#[test]
fn area_resize_matches_the_area_integral() {
    let mut rng = Rng::new(5);
    let mut worst = 0f64;
    for (w, h, dw, dh) in [
        (72, 72, 64, 64),
        (37, 37, 16, 16),
        (5, 5, 8, 8),
        (37, 21, 16, 9),
        (3, 7, 5, 2),
        (1, 1, 3, 3),
    ] {
        let plane: Vec<f64> = (0..w * h).map(|_| rng.uniform() * 255.0).collect();
        let want = area_reference(&plane, w, h, dw, dh);
        let got = resize(&plane, w, h, dw, dh).unwrap();
        let got32 = resize(&plane.iter().map(|&v| v as f32).collect::<Vec<_>>(), w, h, dw, dh).unwrap();
        for ((g, g32), r) in got.iter().zip(&got32).zip(&want) {
            worst = worst.max((g - r).abs());
            assert!((*g32 as f64 - r).abs() < 1e-3, "f32 {g32} vs {r}");
        }
        eprintln!("area resize {w}x{h} -> {dw}x{dh}: worst error so far {worst:.2e}");
    }
    assert!(worst < 1e-9, "area resize differs from the integral by {worst}");

    // An integer ratio is exactly the plain box average.
    let plane: Vec<f64> = (0..24 * 12).map(|_| (rng.next_u64() % 256) as f64).collect();
    let got = resize(&plane, 24, 12, 6, 3).unwrap();
    for j in 0..3 {
        for i in 0..6 {
            let block: f64 = (0..4)
                .flat_map(|y| (0..4).map(move |x| (y, x)))
                .map(|(y, x)| plane[(4 * j + y) * 24 + 4 * i + x])
                .sum();
            assert_eq!(got[j * 6 + i], block / 16.0);
        }
    }
    let (square, side) = center_crop(&(0..15).collect::<Vec<u32>>(), 5, 3).unwrap();
    assert_eq!((square, side), (vec![1, 2, 3, 6, 7, 8, 11, 12, 13], 3));
    assert!(resize(&[0.0f64; 4], 2, 2, 0, 1).is_err() && resize(&[0.0f64; 3], 2, 2, 1, 1).is_err());
}

#[test]
fn prepare_composites_converts_and_crops() {
    // RGBA on white: c a + 255 (1 - a), transparent pixels white.
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(8, 8, |x, _| {
        if x < 4 {
            Rgba([200, 100, 0, 128])
        } else {
            Rgba([10, 20, 30, 0])
        }
    }));
    let out = prepare(&encode(rgba, ImageFormat::Png), 3, 2).unwrap();
    let on_white = |c: f64| (c * 128.0 / 255.0 + 255.0 * 127.0 / 255.0).round() as u8;
    assert_eq!(
        out,
        [
            on_white(200.0),
            255,
            on_white(200.0),
            255,
            on_white(100.0),
            255,
            on_white(100.0),
            255,
            on_white(0.0),
            255,
            on_white(0.0),
            255
        ]
    );

    // Grayscale (with alpha too) expands to RGB; 16-bit gray scales to bytes.
    let gray = DynamicImage::ImageLuma8(ImageBuffer::from_fn(4, 4, |x, y| Luma([(x * 60 + y) as u8])));
    let out = prepare(&encode(gray.clone(), ImageFormat::Png), 3, 4).unwrap();
    let want: Vec<u8> = (0..16).map(|i| ((i % 4) * 60 + i / 4) as u8).collect();
    assert_eq!(out, [want.clone(), want.clone(), want.clone()].concat());
    assert_eq!(prepare(&encode(gray, ImageFormat::Png), 1, 4).unwrap(), want);
    let gray_alpha = DynamicImage::ImageLumaA8(ImageBuffer::from_fn(4, 4, |_, _| LumaA([0, 51])));
    assert_eq!(prepare(&encode(gray_alpha, ImageFormat::Png), 1, 4).unwrap(), [204; 16]);
    let deep = DynamicImage::ImageLuma16(ImageBuffer::from_fn(4, 4, |_, _| Luma([257 * 77])));
    assert_eq!(prepare(&encode(deep, ImageFormat::Png), 1, 4).unwrap(), [77; 16]);

    // A non-square image keeps its centered square: columns 1..5 of 6, rows 2..6 of 8.
    let wide = gradient(6, 4, 1);
    let out = prepare(&encode(wide.clone(), ImageFormat::Png), 3, 4).unwrap();
    let rgb = wide.to_rgb8();
    let want: Vec<u8> = (0..3)
        .flat_map(|c| (0..4).flat_map(move |y| (1..5).map(move |x| (c, x, y))))
        .map(|(c, x, y)| rgb.get_pixel(x, y)[c])
        .collect();
    assert_eq!(out, want);
    let tall = gradient(4, 8, 2);
    let out = prepare(&encode(tall.clone(), ImageFormat::Bmp), 3, 4).unwrap();
    let rgb = tall.to_rgb8();
    assert_eq!(
        out[..4],
        [
            rgb.get_pixel(0, 2)[0],
            rgb.get_pixel(1, 2)[0],
            rgb.get_pixel(2, 2)[0],
            rgb.get_pixel(3, 2)[0]
        ]
    );

    // RGB to one channel: BT.601 luma.
    let color = DynamicImage::ImageRgb8(ImageBuffer::from_fn(4, 4, |_, _| Rgb([200, 100, 50])));
    let luma = (0.299 * 200.0 + 0.587 * 100.0 + 0.114 * 50.0f64).round() as u8;
    assert_eq!(prepare(&encode(color, ImageFormat::Png), 1, 4).unwrap(), [luma; 16]);

    let e = prepare(b"just some text", 3, 4).unwrap_err();
    assert!(format!("{e:#}").contains("unsupported or corrupt image"), "{e:#}");
    assert!(prepare(&encode(gradient(4, 4, 0), ImageFormat::Png), 2, 4).is_err());

    // from_files: the same images, the bad one skipped by name with the decoder's reason.
    let files = vec![
        ("a.png".to_string(), encode(gradient(9, 9, 3), ImageFormat::Png)),
        ("b.txt".to_string(), b"text".to_vec()),
        ("c.jpg".to_string(), encode(gradient(12, 9, 4), ImageFormat::Jpeg)),
    ];
    let d = from_files("dropped", files.clone(), 3, 8).unwrap();
    assert_eq!((d.name.as_str(), d.count(), d.max_res()), ("dropped", 2, 8));
    assert_eq!(d.skipped.len(), 1);
    assert_eq!(d.skipped[0].path, "b.txt");
    assert!(
        d.skipped[0].reason.contains("unsupported or corrupt image"),
        "{}",
        d.skipped[0].reason
    );
    assert_eq!(
        d.at(8).unwrap().pixels,
        [prepare(&files[0].1, 3, 8).unwrap(), prepare(&files[2].1, 3, 8).unwrap()].concat()
    );
    let e = from_files("none", vec![("x".to_string(), vec![1, 2, 3])], 3, 8).unwrap_err();
    assert!(e.to_string().contains("all 1 files were skipped"), "{e}");
    assert!(from_files("bad res", files, 3, 6).is_err());
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn folders_load_skip_and_cache() {
    let dir = temp_dir("folder");
    let cache = temp_dir("cache");
    let rgba = DynamicImage::ImageRgba8(ImageBuffer::from_fn(16, 16, |x, y| {
        Rgba([x as u8 * 16, y as u8 * 16, 90, 200])
    }));
    let png = encode(gradient(20, 20, 1), ImageFormat::Png);
    let good: Vec<(&str, Vec<u8>)> = vec![
        ("a.png", png.clone()),
        ("deep/er/b.jpg", encode(gradient(24, 16, 2), ImageFormat::Jpeg)),
        ("deep/c.bmp", encode(gradient(10, 14, 3), ImageFormat::Bmp)),
        ("deep/d.webp", encode(rgba, ImageFormat::WebP)),
        ("e.gif", encode(gradient(12, 12, 4), ImageFormat::Gif)),
    ];
    for (rel, bytes) in &good {
        write(&dir, rel, bytes);
    }
    write(&dir, "deep/er/corrupt.png", &png[..png.len() / 2]);
    write(&dir, "notes.txt", b"not an image");
    write(&dir, ".hidden.png", &png);
    write(&dir, ".git/x.png", &png);

    let mut calls = vec![];
    let start = Instant::now();
    let d = folder(&dir, 3, 8, Some(&cache), &mut |done, total| calls.push((done, total))).unwrap();
    eprintln!(
        "folder: {} images, {} skipped, {:?} cold",
        d.count(),
        d.skipped.len(),
        start.elapsed()
    );
    assert_eq!(calls, (1..=7).map(|i| (i, 7)).collect::<Vec<_>>());
    assert_eq!((d.count(), d.channels(), d.max_res()), (5, 3, 8));
    assert!(d.name.starts_with("pggan-test-folder"), "{}", d.name);
    eprintln!("folder: skipped {:?}", d.skipped);
    let skipped: Vec<&str> = d.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(skipped, ["deep/er/corrupt.png", "notes.txt"]);
    assert!(
        d.skipped
            .iter()
            .all(|s| s.reason.contains("unsupported or corrupt image")),
        "{:?}",
        d.skipped
    );
    // Path order: a.png, deep/c.bmp, deep/d.webp, deep/er/b.jpg, e.gif.
    let order = [0, 2, 3, 1, 4];
    let want: Vec<u8> = order.iter().flat_map(|&i| prepare(&good[i].1, 3, 8).unwrap()).collect();
    assert_eq!(d.at(8).unwrap().pixels, want);

    // The cache file holds the set; a reload returns it, reporting one finished progress step.
    // (Beside it is the lock file taken while it was prepared.)
    let cache_files = || {
        fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() != Some("lock".as_ref()))
            .collect::<Vec<_>>()
    };
    let files = cache_files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".bin"));
    let mut calls = vec![];
    let start = Instant::now();
    assert_eq!(
        folder(&dir, 3, 8, Some(&cache), &mut |d, t| calls.push((d, t))).unwrap(),
        d
    );
    eprintln!("folder: cached reload {:?}", start.elapsed());
    assert_eq!(calls, [(7, 7)]);

    // A cache file whose header or length is damaged (a flipped byte, then cut short) is rebuilt
    // when it is opened, without an error.
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes[20] ^= 0x55;
    fs::write(&files[0], &bytes).unwrap();
    let mut calls = 0;
    assert_eq!(folder(&dir, 3, 8, Some(&cache), &mut |_, _| calls += 1).unwrap(), d);
    assert_eq!(calls, 7, "a damaged header must be rebuilt by decoding");
    let bytes = fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    fs::write(&files[0], &bytes[..mid]).unwrap();
    let mut calls = 0;
    assert_eq!(folder(&dir, 3, 8, Some(&cache), &mut |_, _| calls += 1).unwrap(), d);
    assert_eq!(calls, 7, "a truncated cache must be rebuilt by decoding");
    // A flipped byte among the images is found when its chunk is first read (opening reads only the
    // header and the lists): refused with the images it damages, and the entry removed, so that the
    // next load prepares the folder again. The 5 images at 8x8 (192 bytes each) are one chunk; the
    // byte is the 4x4 level's last.
    let mut bytes = fs::read(&files[0]).unwrap();
    bytes[64 + 5 * 48 - 1] ^= 1;
    fs::write(&files[0], &bytes).unwrap();
    let damaged = folder(&dir, 3, 8, Some(&cache), &mut |_, _| {}).unwrap();
    assert_eq!(damaged.images(8, &[4]).unwrap(), d.images(8, &[4]).unwrap());
    let e = damaged.images(4, &[1]).unwrap_err();
    let damage = e.downcast_ref::<Damaged>().expect("a Damaged error");
    assert_eq!((damage.res, damage.first, damage.last, damage.removed), (4, 0, 4, true));
    assert!(e.to_string().contains("images 0 to 4 at 4x4"), "{e}");
    assert!(!files[0].exists());
    let mut calls = 0;
    assert_eq!(folder(&dir, 3, 8, Some(&cache), &mut |_, _| calls += 1).unwrap(), d);
    assert_eq!(calls, 7, "a damaged entry must be prepared again");

    // The cache is what is read: a file changed in place with its size and time kept is not seen...
    let a = dir.join("a.png");
    let stamp = fs::metadata(&a).unwrap().modified().unwrap();
    let mut garbage = png.clone();
    garbage[..16].fill(0);
    fs::write(&a, &garbage).unwrap();
    set_mtime(&a, stamp);
    assert_eq!(folder(&dir, 3, 8, Some(&cache), &mut |_, _| {}).unwrap(), d);
    // ...until its time changes, and a new file is seen too.
    set_mtime(&a, stamp + Duration::from_secs(5));
    let touched = folder(&dir, 3, 8, Some(&cache), &mut |_, _| {}).unwrap();
    assert_eq!((touched.count(), touched.skipped.len()), (4, 3));
    write(&dir, "f.png", &png);
    let added = folder(&dir, 3, 8, Some(&cache), &mut |_, _| {}).unwrap();
    assert_eq!((added.count(), added.skipped.len()), (5, 3));
    // Other shapes are other cache entries; no cache folder means no cache.
    assert_eq!(folder(&dir, 1, 4, Some(&cache), &mut |_, _| {}).unwrap().channels(), 1);
    assert_eq!(folder(&dir, 3, 8, None, &mut |_, _| {}).unwrap(), added);
    // The folder's changes replaced its entry each time; the other shape has its own.
    assert_eq!(cache_files().len(), 2, "{:?}", cache_files());

    // A cache folder that cannot be made (here: below a file) is reported; the set is prepared in
    // memory, and the emoji set's cache likewise.
    let blocked = dir.join("notes.txt").join("cache");
    assert_eq!(folder(&dir, 3, 8, Some(&blocked), &mut |_, _| {}).unwrap(), added);
    let small = emoji(3, 4).unwrap();
    assert_eq!(
        cached(Some(&blocked), &emoji_cache_key(3, 4), || emoji(3, 4)).unwrap(),
        small
    );

    // Errors name the folder and why.
    let empty = temp_dir("empty");
    write(&empty, ".only-hidden", b"x");
    let e = folder(&empty, 3, 8, None, &mut |_, _| {}).unwrap_err().to_string();
    assert!(
        e.contains("holds no files") && e.contains(&empty.display().to_string()),
        "{e}"
    );
    let text = temp_dir("text");
    write(&text, "readme.txt", b"hello");
    let e = folder(&text, 3, 8, None, &mut |_, _| {}).unwrap_err().to_string();
    assert!(
        e.contains("all 1 files were skipped") && e.contains("readme.txt: unsupported or corrupt image"),
        "{e}"
    );
    let e = folder(&dir.join("missing"), 3, 8, None, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    let e = folder(&dir.join("notes.txt"), 3, 8, None, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a folder"), "{e}");
    assert!(folder(&dir, 3, 12, None, &mut |_, _| {}).is_err());
    for d in [dir, cache, empty, text] {
        fs::remove_dir_all(d).unwrap();
    }
}

/// How a non-square image becomes square, into prepared files: its centered square, the whole image
/// centered on black, or the whole image resized; an image smaller than the resolution is upscaled
/// and counted.
#[test]
fn transforms_make_images_square() {
    let dir = temp_dir("transforms");
    let flat = |w, h, v| {
        encode(
            DynamicImage::ImageRgb8(ImageBuffer::from_pixel(w, h, Rgb([v; 3]))),
            ImageFormat::Png,
        )
    };
    write(&dir, "images/small.png", &flat(2, 2, 100));
    write(&dir, "images/wide.png", &flat(8, 4, 255));
    // The wide image at 4x4: on an 8x8 black square when padded, rows 0-1 and 6-7 black.
    let padded = [[0; 4], [255; 4], [255; 4], [0; 4]].concat();
    for (transform, wide) in [
        (Transform::CenterCrop, vec![255; 16]),
        (Transform::Pad, padded),
        (Transform::Stretch, vec![255; 16]),
    ] {
        let file = dir.join(format!("{}.pggan", transform.name()));
        let d = prepare_folder(&dir.join("images"), &file, 1, 4, transform, &mut |_, _| {}).unwrap();
        assert_eq!(d.file().unwrap().transform, transform.name());
        assert_eq!((d.count(), d.upscaled), (2, 1));
        let level = d.at(4).unwrap();
        assert_eq!(
            (level.image(0), level.image(1)),
            (&[100; 16][..], &wide[..]),
            "{transform:?}"
        );
        assert_eq!(Dataset::open(&file).unwrap(), d);
    }
    let e = "crop".parse::<Transform>().unwrap_err().to_string();
    assert!(e.contains("center-crop, pad, stretch"), "{e}");
    fs::remove_dir_all(dir).unwrap();
}

/// The first offset of JPEG marker `code` (0xFF, code) in `jpeg`.
fn marker(jpeg: &[u8], code: u8) -> usize {
    jpeg.windows(2).position(|w| w == [0xFF, code]).unwrap()
}

#[test]
fn truncated_and_oversized_images_are_refused() {
    let jpeg = encode(gradient(40, 32, 5), ImageFormat::Jpeg);
    let whole = prepare(&jpeg, 3, 8).unwrap();
    // The decoder fills a truncated JPEG's missing rows with grey instead of failing: cut halfway
    // through the image data, or just before the end marker.
    let half = (marker(&jpeg, 0xDA) + jpeg.len()) / 2;
    for cut in [half, jpeg.len() - 2] {
        let e = prepare(&jpeg[..cut], 3, 8).unwrap_err();
        assert!(format!("{e:#}").contains("truncated JPEG"), "{e:#}");
    }
    // An APP1 segment holding an end-of-image marker (as an EXIF thumbnail does) does not make a
    // truncated file whole; data after the end marker (as some cameras append) is not damage.
    let app1 = [&[0xFF, 0xE1, 0, 8][..], b"Ex", &[0xFF, 0xD9, 0xFF, 0xD9]].concat();
    let with_thumb = [&jpeg[..2], &app1, &jpeg[2..]].concat();
    assert_eq!(prepare(&with_thumb, 3, 8).unwrap(), whole);
    let e = prepare(&with_thumb[..half + app1.len()], 3, 8).unwrap_err();
    assert!(format!("{e:#}").contains("truncated JPEG"), "{e:#}");
    assert_eq!(prepare(&[&jpeg[..], b"trailer"].concat(), 3, 8).unwrap(), whole);
    // Headers that claim 60000x60000 or 40000x8 pixels (over 512 MiB; over 32768 a side) are
    // refused before anything that size is allocated.
    let sof = marker(&jpeg, 0xC0);
    let claim = |height_width: [u8; 4]| {
        let mut patched = jpeg.clone();
        patched[sof + 5..sof + 9].copy_from_slice(&height_width);
        patched
    };
    let huge = claim([0xEA, 0x60, 0xEA, 0x60]);
    for image in [&huge, &claim([0, 8, 0x9C, 0x40])] {
        let e = prepare(image, 3, 8).unwrap_err();
        assert!(format!("{e:#}").contains("too large to decode"), "{e:#}");
    }

    // In a folder: both skipped with their reasons, beside 2 GiB files (sparse: no disk, no
    // writing) that a decoder would read whole, one with a JPEG's first bytes. They are refused
    // by their size, unread: reading them took 2 GiB of memory each, and seconds.
    let dir = temp_dir("hostile");
    write(&dir, "a.jpg", &jpeg);
    write(&dir, "half.jpg", &jpeg[..half]);
    write(&dir, "huge.jpg", &huge);
    for (name, head) in [("big.jpg", &jpeg[..20]), ("big.bin", &[0u8; 20][..])] {
        let file = fs::File::create(dir.join(name)).unwrap();
        std::io::Write::write_all(&mut &file, head).unwrap();
        file.set_len(2 << 30).unwrap();
    }
    let start = Instant::now();
    let d = folder(&dir, 3, 8, None, &mut |_, _| {}).unwrap();
    eprintln!("hostile folder: {:?}, skipped {:?}", start.elapsed(), d.skipped);
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert_eq!(d.at(8).unwrap().pixels, whole);
    let skipped: Vec<(&str, &str)> = d.skipped.iter().map(|s| (s.path.as_str(), s.reason.as_str())).collect();
    assert_eq!(
        skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        ["big.bin", "big.jpg", "half.jpg", "huge.jpg"]
    );
    for (path, reason) in &skipped {
        let want = if *path == "half.jpg" {
            "truncated JPEG"
        } else {
            "too large"
        };
        assert!(reason.contains(want), "{path}: {reason}");
    }
    fs::remove_dir_all(dir).unwrap();
}

/// Set (to anything) in the copy of `unreadable_subfolders_are_skipped` that runs without root's
/// right to read any folder.
const UNPRIVILEGED: &str = "PGGAN_TEST_UNPRIVILEGED";

#[test]
fn unreadable_subfolders_are_skipped() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("locked");
    let png = encode(gradient(8, 8, 6), ImageFormat::Png);
    write(&dir, "a.png", &png);
    write(&dir, "locked/b.png", &png);
    write(&dir, "open/c.png", &png);
    let locked = dir.join("locked");
    let mode = |m| fs::set_permissions(&locked, fs::Permissions::from_mode(m)).unwrap();
    mode(0o000);
    if fs::read_dir(&locked).is_ok() {
        // Root lists any folder whatever its mode: run this test again in a process without the
        // capabilities that allow it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
        mode(0o755);
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            std::env::var_os(UNPRIVILEGED).is_none(),
            "a folder of mode 000 is still readable without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH"
        );
        let out = std::process::Command::new("setpriv")
            .args(["--bounding-set", "-dac_override,-dac_read_search", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "unreadable_subfolders_are_skipped", "--nocapture"])
            .env(UNPRIVILEGED, "1")
            .output()
            .expect("setpriv (util-linux) runs this test without root's capabilities");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let d = folder(&dir, 3, 8, None, &mut |_, _| {});
    mode(0o755);
    let d = d.unwrap();
    assert_eq!(d.count(), 2);
    assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    assert_eq!(d.skipped[0].path, "locked/");
    assert!(
        d.skipped[0].reason.contains("cannot list the folder"),
        "{}",
        d.skipped[0].reason
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn emoji_set() {
    let d = emoji(3, 16).unwrap();
    let r = 16;
    let level = d.at(r).unwrap();
    let corners: Vec<f64> = (0..d.count())
        .flat_map(|n| {
            (0..3).flat_map(move |c| [(0, 0), (0, r - 1), (r - 1, 0), (r - 1, r - 1)].map(|(y, x)| (n, c, y, x)))
        })
        .map(|(n, c, y, x)| level.pixels[((n * 3 + c) * r + y) * r + x] as f64)
        .collect();
    let corner_mean = corners.iter().sum::<f64>() / corners.len() as f64;
    eprintln!(
        "emoji(3, 16): {} images, {} skipped, corner mean {corner_mean:.1}",
        d.count(),
        d.skipped.len()
    );
    assert!(d.count() > 3000 && d.skipped.is_empty() && d.name == "emoji");
    assert!(corner_mean > 240.0, "corners should be white, mean {corner_mean}");
    let e = emoji(3, 128).unwrap_err().to_string();
    assert!(e.contains("folder"), "{e}");

    let start = Instant::now();
    let full = emoji(3, 64).unwrap();
    eprintln!("emoji(3, 64): {} images in {:?}", full.count(), start.elapsed());
    assert_eq!((full.count(), full.at(16).unwrap().res), (d.count(), 16));
    let gray = emoji(1, 8).unwrap();
    assert_eq!((gray.count(), gray.channels()), (d.count(), 1));

    let cache = temp_dir("emoji-cache");
    let key = emoji_cache_key(3, 64);
    assert_eq!(cached(Some(&cache), &key, || Ok(full.clone())).unwrap(), full);
    let start = Instant::now();
    let reloaded = cached(Some(&cache), &key, || {
        anyhow::bail!("the cached set must not be rebuilt")
    })
    .unwrap();
    eprintln!("emoji(3, 64): cached reload in {:?}", start.elapsed());
    assert_eq!(reloaded, full);
    assert!(cached(Some(&cache), "../escape", || Ok(full.clone())).is_err());
    fs::remove_dir_all(cache).unwrap();
}

/// A cache entry that cannot be written (here a folder has its name, so the finished file cannot be
/// renamed into place): the set is returned from memory with a warning, and no temporary file is
/// left.
#[test]
fn an_unwritable_cache_entry_keeps_the_set_in_memory() {
    let cache = temp_dir("entry");
    let key = emoji_cache_key(3, 4);
    fs::create_dir_all(cache.join(format!("{key}.bin"))).unwrap();
    let d = cached(Some(&cache), &key, || emoji(3, 4)).unwrap();
    assert!(d.file().is_none());
    assert_eq!(d, emoji(3, 4).unwrap());
    let names: Vec<String> = fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    fs::remove_dir_all(cache).unwrap();
}

#[test]
fn loader_in_chunks() {
    // 30 files in three formats and sizes, every seventh unreadable, so chunks straddle skipped ones.
    let files: Vec<(String, Vec<u8>)> = (0..30u32)
        .map(|i| {
            let bytes = match i % 7 {
                3 => b"not an image".to_vec(),
                k => {
                    let format = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp][k as usize % 3];
                    encode(gradient(9 + i % 5, 8 + i % 3, i), format)
                }
            };
            (format!("{i:02}"), bytes)
        })
        .collect();
    let mut loader = Loader::files("chunks", files.clone(), 3, 8).unwrap();
    assert_eq!((loader.total(), loader.done()), (30, 0));
    let mut progress = vec![];
    while loader.done() < loader.total() {
        progress.push(loader.prepare(7));
        if progress.len() == 1 {
            let e = Loader::files("early", files.clone(), 3, 8).unwrap();
            assert!(e.finish().unwrap_err().to_string().contains("0 of 30"));
        }
    }
    assert_eq!(progress, [7, 14, 21, 28, 30]);
    assert_eq!(loader.prepare(7), 30);
    let chunked = loader.finish().unwrap();
    assert_eq!(chunked, from_files("chunks", files.clone(), 3, 8).unwrap());
    // And what each file alone prepares to, the unreadable ones skipped by name in order.
    let good: Vec<&(String, Vec<u8>)> = files.iter().filter(|(_, b)| b != b"not an image").collect();
    let pixels: Vec<u8> = good.iter().flat_map(|(_, b)| prepare(b, 3, 8).unwrap()).collect();
    assert_eq!(chunked.at(8).unwrap().pixels, pixels);
    let skipped: Vec<&str> = chunked.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(skipped, ["03", "10", "17", "24"]);
    assert!(Loader::files("bad res", files, 3, 6).is_err());

    // The emoji set in chunks of 700 is emoji(3, 8); the same shapes are refused.
    let mut loader = Loader::emoji(3, 8).unwrap();
    let total = loader.total();
    while loader.prepare(700) < total {}
    assert_eq!(loader.finish().unwrap(), emoji(3, 8).unwrap());
    assert!(Loader::emoji(3, 128).err().unwrap().to_string().contains("folder"));
    assert!(Loader::emoji(2, 8).is_err());
}

/// One process (here: one thread) prepares a cached dataset at a time: a second that asks for the
/// same key meanwhile waits on the key's lock, then reads what the first stored instead of
/// decoding it again.
#[test]
fn a_dataset_is_prepared_once_while_another_waits() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = temp_dir("cache-lock");
    let builds = AtomicUsize::new(0);
    let build = || {
        builds.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        Dataset::from_images("slow", random_images(4, 3, 8, 1), vec![])
    };
    let sets: Vec<Dataset> = std::thread::scope(|s| {
        let both: Vec<_> = (0..2)
            .map(|_| s.spawn(|| cached(Some(&dir), "slow-8", build).unwrap()))
            .collect();
        both.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(builds.load(Ordering::SeqCst), 1, "the dataset was prepared twice");
    assert_eq!(sets[0].at(8).unwrap().pixels, sets[1].at(8).unwrap().pixels);
    fs::remove_dir_all(dir).unwrap();
}

/// Several cores decoding decompression bombs at once hold one image's decoding limit between
/// them, not one each: `pggan train` reading a folder of four PNGs that decode to 363 MB each
/// (about 360 KB on disk, each cut short so that it is refused once decoded) peaks at the memory
/// of about one of them, not of one per core.
#[test]
fn decompression_bombs_are_decoded_within_one_limit() {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let dir = temp_dir("bombs");
    let side = 11_000u32;
    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::NoFilter)
        .write_image(
            &vec![0; (side * side * 3) as usize],
            side,
            side,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    png.truncate(png.len() * 9 / 10);
    for i in 0..4 {
        write(&dir, &format!("data/bomb{i}.png"), &png);
    }
    // Reaped by wait4 below, which also gives its peak memory; `Child::wait` would not.
    #[allow(clippy::zombie_processes)]
    let child = common::pggan(&[
        "train",
        "--data",
        dir.join("data").to_str().unwrap(),
        "--out",
        dir.join("runs").to_str().unwrap(),
        "--cache",
        dir.join("cache").to_str().unwrap(),
        "--max-res",
        "8",
        "--quiet",
    ])
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    // wait4 reaps the child with its resource usage: the peak resident memory, in KiB.
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let peak_mb = usage.ru_maxrss as f64 * 1024.0 / 1e6;
    eprintln!("peak {peak_mb:.0} MB decoding 4 bombs of 363 MB");
    // Every file is refused: the command fails (status 1) after decoding them all.
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 1,
        "status {status}"
    );
    assert!(
        peak_mb < 550.0,
        "peak {peak_mb:.0} MB: more than one bomb decoded at once"
    );
    fs::remove_dir_all(dir).unwrap();
}
