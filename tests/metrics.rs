//! The quality metrics: SWD and MS-SSIM rank image sets as they should (same distribution < blurred
//! < noise), the GPU SWD matches its f64 reference (also when tiny binding limits force every
//! chunking path), results are deterministic per seed, and bad inputs are refused.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::time::Instant;

use pggan::data::Images;
use pggan::metrics::swd::{synthetic, SWD_TOL};
use pggan::metrics::{ms_ssim, ms_ssim_pairs, swd, swd_ref, Swd, SwdConfig};
use pggan::rng::Rng;

/// Each image blurred `times` times by a 3x3 box (edges clamped), rounded back to bytes.
fn blurred(images: &Images, times: usize) -> Images {
    let r = images.res;
    let mut pixels: Vec<f64> = images.pixels.iter().map(|&v| v as f64).collect();
    for _ in 0..times {
        let src = pixels.clone();
        for plane in 0..images.count * images.channels {
            for y in 0..r {
                for x in 0..r {
                    let mut sum = 0.0;
                    for (dy, dx) in (0..9).map(|i| (i / 3, i % 3)) {
                        let yy = (y + dy).saturating_sub(1).min(r - 1);
                        let xx = (x + dx).saturating_sub(1).min(r - 1);
                        sum += src[plane * r * r + yy * r + xx];
                    }
                    pixels[plane * r * r + y * r + x] = sum / 9.0;
                }
            }
        }
    }
    let bytes = pixels.iter().map(|v| v.round() as u8).collect();
    Images::new(images.count, images.channels, r, bytes).unwrap()
}

/// Uniform noise images.
fn noise(count: usize, res: usize, seed: u64) -> Images {
    let mut rng = Rng::new(seed);
    let pixels = (0..count * 3 * res * res)
        .map(|_| (rng.uniform() * 256.0) as u8)
        .collect();
    Images::new(count, 3, res, pixels).unwrap()
}

/// Images first..first + count of a set.
fn slice(images: &Images, first: usize, count: usize) -> Images {
    let n = images.channels * images.res * images.res;
    let pixels = images.pixels[first * n..(first + count) * n].to_vec();
    Images::new(count, images.channels, images.res, pixels).unwrap()
}

fn show(name: &str, s: &Swd) {
    eprintln!("{name:<28} levels {:?}  average {:.3}", s.levels, s.average);
}

fn assert_close(gpu: &Swd, reference: &Swd) {
    assert_eq!(gpu.levels.len(), reference.levels.len());
    for ((res, g), (_, r)) in gpu.levels.iter().zip(&reference.levels) {
        let rel = (g - r).abs() / r.abs();
        eprintln!("level {res}: gpu {g:.6} reference {r:.6} relative difference {rel:.2e}");
        assert!(rel <= SWD_TOL, "level {res}: gpu {g} vs reference {r}");
    }
}

#[test]
fn swd_ranks_same_distribution_below_blurred_below_noise() {
    let all = synthetic(128, 32, 8.0, &mut Rng::new(1)).unwrap();
    let (a, b) = (slice(&all, 0, 64), slice(&all, 64, 64));
    let cfg = SwdConfig::default();
    let start = Instant::now();
    let same = swd_ref(&a, &b, &cfg, 7).unwrap();
    eprintln!("swd_ref of 2 x 64 images of 32x32: {:.2?}", start.elapsed());
    let blur = swd_ref(&a, &blurred(&b, 2), &cfg, 7).unwrap();
    let noisy = swd_ref(&a, &noise(64, 32, 3), &cfg, 7).unwrap();
    show("real A vs real B", &same);
    show("real A vs blurred real B", &blur);
    show("real A vs uniform noise", &noisy);
    assert_eq!(same.levels.iter().map(|l| l.0).collect::<Vec<_>>(), [32, 16]);
    assert!(same.average < blur.average && blur.average < noisy.average);
    // Blur removes detail: the finest level sees it most.
    assert!(same.levels[0].1 < blur.levels[0].1);
}

#[test]
fn swd_gpu_matches_the_reference() {
    common::run_check(pggan::metrics::swd::check);
}

#[test]
fn swd_gpu_matches_the_reference_in_chunks() {
    let mut gpu = common::gpu();
    // 64 KiB bindings: 800 descriptors padded to rows of 1024, 16 directions per chunk (32 chunks),
    // matmul blocks of 111 descriptors (8 blocks, the last one short).
    gpu.limits.max_storage_buffer_binding_size = 64 << 10;
    let mut rng = Rng::new(4);
    let real = synthetic(8, 32, 8.0, &mut rng).unwrap();
    let fake = blurred(&synthetic(8, 32, 8.0, &mut rng).unwrap(), 1);
    let cfg = SwdConfig {
        patches_per_image: 100,
        ..SwdConfig::default()
    };
    let start = Instant::now();
    let got = pollster::block_on(swd(&gpu, &real, &fake, &cfg, 9)).unwrap();
    eprintln!("chunked GPU swd of 2 x 8 images: {:.2?}", start.elapsed());
    assert_close(&got, &swd_ref(&real, &fake, &cfg, 9).unwrap());
}

#[test]
fn swd_is_deterministic_per_seed() {
    let gpu = common::gpu();
    let mut rng = Rng::new(6);
    let real = synthetic(4, 16, 8.0, &mut rng).unwrap();
    let fake = synthetic(4, 16, 8.0, &mut rng).unwrap();
    let cfg = SwdConfig::default();
    let first = swd_ref(&real, &fake, &cfg, 11).unwrap();
    assert_eq!(first, swd_ref(&real, &fake, &cfg, 11).unwrap());
    assert_ne!(first, swd_ref(&real, &fake, &cfg, 12).unwrap());
    let g = pollster::block_on(swd(&gpu, &real, &fake, &cfg, 11)).unwrap();
    assert_eq!(g, pollster::block_on(swd(&gpu, &real, &fake, &cfg, 11)).unwrap());
    assert_close(&g, &first);
}

#[test]
fn swd_refuses_mismatched_or_small_sets() {
    let gpu = common::gpu();
    let cfg = SwdConfig::default();
    let mut rng = Rng::new(8);
    let a = synthetic(4, 32, 10.0, &mut rng).unwrap();
    for (other, message) in [
        (synthetic(5, 32, 10.0, &mut rng).unwrap(), "same shape"),
        (synthetic(4, 16, 10.0, &mut rng).unwrap(), "same shape"),
    ] {
        let err = swd_ref(&a, &other, &cfg, 1).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
        let err = pollster::block_on(swd(&gpu, &a, &other, &cfg, 1)).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
    let small = synthetic(4, 8, 10.0, &mut rng).unwrap();
    let err = swd_ref(&small, &small, &cfg, 1).unwrap_err();
    assert!(err.to_string().contains("at least 16x16"), "{err}");
    let odd = synthetic(2, 33, 10.0, &mut rng).unwrap();
    let err = swd_ref(&odd, &odd, &cfg, 1).unwrap_err();
    assert!(err.to_string().contains("multiple of 2"), "{err}");
}

#[test]
fn ms_ssim_is_one_for_identical_images_and_near_zero_for_noise() {
    let images = synthetic(4, 32, 8.0, &mut Rng::new(3)).unwrap();
    for i in 0..images.count {
        let s = ms_ssim(&images, i, &images, i).unwrap();
        assert!((s - 1.0).abs() < 1e-9, "identical pair: {s}");
    }
    let noisy = noise(20, 32, 4);
    let start = Instant::now();
    let s = ms_ssim_pairs(&noisy, 100, 1).unwrap();
    eprintln!(
        "MS-SSIM of uniform noise over 100 pairs: {s:.4} ({:.2?})",
        start.elapsed()
    );
    assert!(s < 0.1, "{s}");
    // A collapsed set, one image with a little noise per copy, scores high.
    let one = synthetic(1, 32, 0.0, &mut Rng::new(5)).unwrap();
    let mut rng = Rng::new(6);
    let copies: Vec<u8> = (0..8)
        .flat_map(|_| {
            one.pixels
                .iter()
                .map(|&v| v.saturating_add((rng.uniform() * 8.0) as u8))
                .collect::<Vec<_>>()
        })
        .collect();
    let collapsed = Images::new(8, 3, 32, copies).unwrap();
    let s_collapsed = ms_ssim_pairs(&collapsed, 10, 1).unwrap();
    let s_real = ms_ssim_pairs(&images, 10, 1).unwrap();
    eprintln!("MS-SSIM over 10 pairs: synthetic images {s_real:.4}, copies of one image {s_collapsed:.4}");
    assert!(s_collapsed > 0.5 && s_collapsed > s_real);
    assert_eq!(s_real, ms_ssim_pairs(&images, 10, 1).unwrap());
}

#[test]
fn ms_ssim_falls_with_blur() {
    let images = synthetic(1, 64, 60.0, &mut Rng::new(9)).unwrap();
    let light = ms_ssim(&images, 0, &blurred(&images, 1), 0).unwrap();
    let heavy = ms_ssim(&images, 0, &blurred(&images, 4), 0).unwrap();
    let unrelated = ms_ssim(&images, 0, &noise(1, 64, 2), 0).unwrap();
    eprintln!("MS-SSIM vs blurred once {light:.4}, blurred 4 times {heavy:.4}, noise {unrelated:.4}");
    assert!(1.0 > light && light > heavy && heavy > unrelated);
}

#[test]
fn ms_ssim_refuses_bad_inputs() {
    let mut rng = Rng::new(10);
    let a = synthetic(2, 32, 10.0, &mut rng).unwrap();
    let b = synthetic(2, 16, 10.0, &mut rng).unwrap();
    let err = ms_ssim(&a, 0, &b, 0).unwrap_err();
    assert!(err.to_string().contains("one shape"), "{err}");
    let err = ms_ssim(&a, 2, &a, 0).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let small = synthetic(2, 8, 10.0, &mut rng).unwrap();
    let err = ms_ssim(&small, 0, &small, 1).unwrap_err();
    assert!(err.to_string().contains("at least 16x16"), "{err}");
    let err = ms_ssim_pairs(&slice(&a, 0, 1), 4, 1).unwrap_err();
    assert!(err.to_string().contains("at least 2 images"), "{err}");
}

#[test]
fn sampling_draws_distinct_indices_reproducibly() {
    let a = Rng::new(5).sample(100, 40);
    assert_eq!(a.len(), 40);
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 40, "repeats in {a:?}");
    assert!(a.iter().all(|&i| i < 100));
    assert_eq!(a, Rng::new(5).sample(100, 40));
    assert_ne!(a, Rng::new(6).sample(100, 40));
    // Asking for more than there are gives every index once.
    let mut all = Rng::new(5).sample(10, 25);
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<_>>());
    assert!(Rng::new(5).sample(0, 3).is_empty());
}
