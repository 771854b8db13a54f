#![cfg(not(target_arch = "wasm32"))]
//! conv (GPU check: tests/kernels.rs): the backward references against finite
//! differences of the forward reference, and the launchers' refusal of bad shapes.

mod common;

use pggan::check::{self, f64s, finite_difference_error};
use pggan::ops::conv::{self, plan, ConvShape, Kernel::F32, Plan, TILES};
use pggan::rng::Rng;

/// The forward is linear, so central differences in f64 are exact up to rounding (about 1e-9 here).
const FD_TOL: f64 = 1e-6;

fn fd_shape(k: usize) -> ConvShape {
    ConvShape {
        n: 2,
        cin: 3,
        cout: 5,
        h: 4,
        w: 4,
        k,
    }
}

#[test]
fn backward_references_are_the_gradients_of_forward_ref() {
    let gain = std::f64::consts::SQRT_2;
    let mut rng = Rng::new(20);
    for k in [3, 1] {
        let s = fd_shape(k);
        let x = f64s(&rng.normals(s.n * s.cin * s.h * s.w));
        let w = f64s(&rng.normals(s.cout * s.cin * k * k));
        let dy = f64s(&rng.normals(s.n * s.cout * s.h * s.w));
        let dx = conv::backward_data_ref(&dy, &w, s, gain);
        let err = finite_difference_error(|x| conv::forward_ref(x, &w, s, gain), &x, &dy, &dx);
        assert!(err < FD_TOL, "K = {k}: backward_data_ref error {err}");
        let dw = conv::backward_weight_ref(&x, &dy, s, gain);
        let err = finite_difference_error(|w| conv::forward_ref(&x, w, s, gain), &w, &dy, &dw);
        assert!(err < FD_TOL, "K = {k}: backward_weight_ref error {err}");
    }
}

#[test]
fn launchers_refuse_bad_shapes() {
    let gpu = common::gpu();
    let t = |shape: &[usize]| gpu.zeros(shape).unwrap();
    let (x, y) = (t(&[2, 3, 4, 4]), t(&[2, 5, 4, 4]));
    let expect = |r: anyhow::Result<()>, says: &str| {
        let e = r.expect_err("a bad shape was accepted").to_string();
        assert!(e.contains(says), "{e:?} does not say {says:?}");
    };
    // Kernel sizes other than 1 and 3, and non-square kernels.
    expect(conv::forward(&gpu, F32, &x, &t(&[5, 3, 5, 5]), &y, 1.0), "K = 1 or 3");
    expect(conv::forward(&gpu, F32, &x, &t(&[5, 3, 3, 1]), &y, 1.0), "K = 1 or 3");
    // Weights that expect another number of input channels.
    let w4 = t(&[5, 4, 3, 3]);
    expect(conv::forward(&gpu, F32, &x, &w4, &y, 1.0), "channels");
    expect(conv::backward_data(&gpu, F32, &y, &w4, &x, 1.0), "channels");
    expect(conv::backward_weight(&gpu, F32, &x, &y, &w4, 1.0, false), "channels");
    // Outputs of the wrong batch, channel count or size; tensors that are not 4-D.
    let w = t(&[5, 3, 3, 3]);
    expect(
        conv::forward(&gpu, F32, &x, &w, &t(&[1, 5, 4, 4]), 1.0),
        "should be [2, 5, 4, 4]",
    );
    expect(conv::forward(&gpu, F32, &x, &w, &t(&[2, 5, 4, 8]), 1.0), "should be");
    expect(
        conv::backward_data(&gpu, F32, &t(&[2, 3, 4, 4]), &w, &x, 1.0),
        "should be",
    );
    expect(
        conv::backward_weight(&gpu, F32, &x, &t(&[2, 4, 4, 4]), &w, 1.0, true),
        "should be",
    );
    expect(conv::forward(&gpu, F32, &t(&[2, 3, 16]), &w, &y, 1.0), "not 4-D");
    expect(
        conv::backward_weight(&gpu, F32, &x, &y, &t(&[5, 27]), 1.0, false),
        "not 4-D",
    );
    // A bias of another length than the output channels.
    expect(
        conv::forward_act(&gpu, F32, &x, &w, &t(&[3]), &y, 1.0, 0.2),
        "bias [3] should be [5]",
    );
    expect(
        conv::forward_act(&gpu, F32, &x, &t(&[5, 3, 5, 5]), &t(&[5]), &y, 1.0, 0.2),
        "K = 1 or 3",
    );
    // The right shapes pass.
    conv::forward(&gpu, F32, &x, &w, &y, 1.0).unwrap();
    conv::forward_act(&gpu, F32, &x, &w, &t(&[5]), &y, 1.0, 0.2).unwrap();
    conv::backward_data(&gpu, F32, &y, &w, &x, 1.0).unwrap();
    conv::backward_weight(&gpu, F32, &x, &y, &w, 1.0, true).unwrap();
}

#[test]
fn forward_refuses_a_grid_over_the_limit() {
    let gpu = common::gpu();
    // 65536 * 64 + 1 output channels of a 1x1 image: over 65536 row tiles of any height (at most 64),
    // more than a grid dimension allows. (Pixel tiles never overflow: they spread over x and y.)
    let cout = 65536 * 64 + 1;
    let (x, w, y) = (
        gpu.zeros(&[1, 1, 1, 1]).unwrap(),
        gpu.zeros(&[cout, 1, 1, 1]).unwrap(),
        gpu.zeros(&[1, cout, 1, 1]).unwrap(),
    );
    let e = conv::forward(&gpu, F32, &x, &w, &y, 1.0).unwrap_err().to_string();
    assert!(e.contains("over this device's limit"), "{e}");
}

#[test]
fn tiles_fit_webgpu_default_limits() {
    for t in TILES {
        let wg = t.invocations();
        assert!(t.rows % 4 == 0 && t.cols % 4 == 0 && wg <= 256, "{t:?}");
        assert!(t.rows <= 64, "{t:?}: the shader holds 64 biases per tile");
        // An invocation stages at most 8 values each of A and B per slice (the shader's `ra` and `rb`);
        // A's rows are a whole number of staging groups, or fewer than one. The slices, padded by a
        // vec4 per row, fit its 672 vec4s of workgroup memory.
        assert!(wg % t.depth == 0, "{t:?}");
        let group = wg / t.depth;
        assert!(t.cols % group == 0 && t.cols / group <= 8, "{t:?}");
        assert!(t.rows < group || (t.rows % group == 0 && t.rows / group <= 8), "{t:?}");
        assert!(t.depth * (t.rows / 4 + 1 + t.cols / 4 + 1) <= 672, "{t:?}");
    }
}

#[test]
fn plans_pick_tiles_and_splits_by_shape() {
    // A wide layer (128->128 3x3 at 64x64, forward): square tiles.
    assert_eq!(plan(128, 4096, 1152, None).tile, TILES[0]);
    // toRGB forward (3 rows) and a small layer's forward (8->8 at 16x16, batch 8): 8-row tiles.
    assert_eq!(plan(3, 2048, 8, None).tile.rows, 8);
    assert_eq!(plan(8, 2048, 72, None).tile.rows, 8);
    // Its weight gradient: an 8 x 72 output over 2048 pixels takes a 64-invocation tile, split.
    let p = plan(8, 72, 2048, None);
    assert_eq!(p.tile.invocations(), 64, "{p:?}");
    assert!(p.splits > 1, "{p:?}");
    // 512->512 forward at 32x32, batch 16: 2048 square tiles, no split; its weight gradient (576
    // tiles) is split in two.
    assert_eq!(
        plan(512, 16384, 4608, None),
        Plan {
            tile: TILES[0],
            splits: 1,
            chunk: 4608
        }
    );
    assert_eq!(plan(512, 4608, 16384, None).splits, 2);
    // Under two chunks of reduction: no split.
    assert_eq!(plan(3, 27, 100, None).splits, 1);
    for (m, ncol, kdim) in [(8, 72, 2048), (128, 1152, 65536), (3, 3, 5), (70, 603, 192)] {
        for tile in std::iter::once(None).chain(TILES.map(Some)) {
            let Plan { tile: t, splits, chunk } = plan(m, ncol, kdim, tile);
            assert!(tile.is_none() || tile == Some(t));
            // Chunks are whole slices, cover the reduction and none is empty.
            assert!(
                chunk % t.depth == 0 && chunk >= 64.min(kdim),
                "{m} {ncol} {kdim}: {t:?} {chunk}"
            );
            assert!(
                splits * chunk >= kdim && (splits - 1) * chunk < kdim,
                "{splits} x {chunk} for {kdim}"
            );
        }
    }
}

/// Split-K slices come from `Gpu::scratch`, without a clear, so every split must write its whole
/// slice: the pool hands them a buffer left full of NaN, which must not reach the output.
#[test]
fn split_slices_are_written_in_full() {
    let gpu = common::gpu();
    let s = ConvShape {
        n: 3,
        cin: 17,
        cout: 13,
        h: 4,
        w: 4,
        k: 3,
    };
    let (m, ncol) = (s.cout, s.n * s.h * s.w);
    let Plan { splits, .. } = plan(m, ncol, s.cin * 9, None);
    assert!(splits > 1, "the shape should split its reduction, plan: {splits}");
    let mut rng = Rng::new(21);
    let (xs, ws) = (rng.normals(s.n * s.cin * 16), rng.normals(s.cout * s.cin * 9));
    let x = gpu.upload(&xs, &[s.n, s.cin, 4, 4]).unwrap();
    let w = gpu.upload(&ws, &[s.cout, s.cin, 3, 3]).unwrap();
    let y = gpu.zeros(&[s.n, s.cout, 4, 4]).unwrap();
    drop(
        gpu.upload(&vec![f32::NAN; splits * m * ncol], &[splits, m * ncol])
            .unwrap(),
    );
    let created = gpu.pool_stats().created;
    conv::forward(&gpu, F32, &x, &w, &y, 1.0).unwrap();
    assert_eq!(
        gpu.pool_stats().created,
        created,
        "the slices should reuse the NaN buffer"
    );
    let got = pollster::block_on(gpu.download(&y)).unwrap();
    let row = check::compare(
        "split forward",
        &[s.n, s.cout, 4, 4],
        &got,
        &conv::forward_ref(&f64s(&xs), &f64s(&ws), s, 1.0),
        1e-5,
    );
    assert!(row.pass, "{row:?}");
}

/// The cooperative kernel takes the tiles that divide into N x N blocks shared evenly by the
/// subgroups, at most 4 each in one row of blocks, each half of the rows whole blocks: on tensor cores
/// (16x16, subgroups of 32), on lavapipe 26 (8x8, subgroups of 8) and with AMD's wave64 (16x16,
/// subgroups of 64, where a 32x32 tile's one subgroup would hold its 4 blocks in two rows). A pass
/// with fewer rows than one block runs on the f16 kernel instead.
#[test]
fn cooperative_tiles_divide_among_subgroups() {
    let names = |n, subgroup| {
        conv::Kernel::Coop { n, subgroup }
            .tiles()
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(16, 32), ["64x64x16", "32x128x16", "32x32x16"]);
    assert_eq!(
        names(8, 8),
        ["64x64x16", "32x128x16", "16x256x8", "32x32x16", "16x64x8"]
    );
    assert_eq!(names(16, 64), ["64x64x16", "32x128x16"]);
    assert_eq!(conv::Kernel::F32.tiles(), TILES);
    // The planned tile of a wide layer on tensor cores; toRGB's 3 rows go to the f16 kernel.
    let coop = conv::Kernel::Coop { n: 16, subgroup: 32 };
    assert_eq!(coop.plan(512, 16 * 64 * 64, 512 * 9, None).tile.to_string(), "64x64x16");
    assert_eq!(coop.fit(16), coop);
    assert_eq!(coop.fit(3), conv::Kernel::F16);
}
