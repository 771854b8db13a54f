//! Every op's GPU kernels against its CPU reference, on the native adapter (lavapipe in CI): one
//! test per op of the registry (`pggan::for_each_op!`), and the launcher's refusals.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::gpu::{Dispatch, Gpu, GpuOptions, Precision, PrecisionChoice};
use pggan::ops;
use pggan::ops::precision::LayerPrecision;

/// A test per registered op, named after it, and the list of their names.
macro_rules! op_checks {
    ($($op:ident),*) => {
        $(
            #[test]
            fn $op() {
                common::run_check(ops::$op::check);
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($op)),*];
    };
}

pggan::for_each_op!(op_checks);

/// The registry feeds the op modules, their shaders, their checks and the tests here (and, through
/// the same macro, the browser's in tests/web.rs): each registered op has its shader and check under
/// its own name, and a test.
#[test]
fn one_registration_per_op_feeds_shaders_checks_and_tests() {
    let checks: Vec<&str> = ops::CHECKS.iter().map(|(name, _)| *name).collect();
    let shaders: Vec<&str> = ops::SHADERS.iter().map(|s| s.name).collect();
    assert_eq!(checks, shaders);
    assert_eq!(checks, TESTED);
}

#[test]
fn launch_refuses_a_binding_over_the_limit() {
    let gpu = common::gpu();
    // One element past WebGPU's default 128 MiB storage binding limit.
    let limit = gpu.limits.max_storage_buffer_binding_size as usize;
    let big = gpu.zeros(&[limit / 4 + 1]).unwrap();
    let small = gpu.zeros(&[1]).unwrap();
    let err = ops::reduce::sum(
        &gpu,
        &big,
        ops::reduce::View::per_sample(&[1, limit / 4 + 1]),
        ops::reduce::Term::Square,
        false,
        &small,
    )
    .unwrap_err();
    assert!(err.to_string().contains("storage binding limit"), "{err}");
}

#[test]
fn launch_splits_large_dispatches_and_refuses_too_large_grids() {
    let gpu = common::gpu();
    // 70000 rows need 70000 workgroups: more than 65535 in one dimension, so the launcher splits.
    let rows = 70_000;
    let data: Vec<f32> = (0..rows).map(|i| (i % 7) as f32).collect();
    let x = gpu.upload(&data, &[rows, 1]).unwrap();
    let out = gpu.zeros(&[rows]).unwrap();
    ops::reduce::sum(
        &gpu,
        &x,
        ops::reduce::View::per_sample(&[rows, 1]),
        ops::reduce::Term::Value,
        false,
        &out,
    )
    .unwrap();
    assert_eq!(pollster::block_on(gpu.download(&out)).unwrap(), data);

    let err = gpu.launch(
        &ops::reduce::SHADER,
        "sum",
        &[1u32, 1, 1, 0, 0],
        &[&x, &out],
        Dispatch::Groups([70_000, 1, 1]),
    );
    assert!(err.unwrap_err().to_string().contains("exceeds"));
}

#[test]
fn launch_refuses_the_wrong_number_of_tensors() {
    let gpu = common::gpu();
    let x = gpu.zeros(&[4]).unwrap();
    let err = gpu
        .launch(&ops::reduce::SHADER, "sum", &[1, 4, 1, 0, 0], &[&x], Dispatch::Items(4))
        .unwrap_err();
    assert!(err.to_string().contains("binds 2 tensors but was given 1"), "{err}");
}

#[test]
fn launch_refuses_parameters_that_do_not_match_the_shader() {
    let gpu = common::gpu();
    let (x, out) = (gpu.zeros(&[4]).unwrap(), gpu.zeros(&[1]).unwrap());
    // reduce.wgsl's Params has five 32-bit fields: four (a field left out on the Rust side) or six
    // are refused, naming the shader, instead of the missing field reading 0.
    let four = gpu.launch(
        &ops::reduce::SHADER,
        "sum",
        &[1u32, 1, 4, 0],
        &[&x, &out],
        Dispatch::Items(256),
    );
    let six = gpu.launch(
        &ops::reduce::SHADER,
        "sum",
        &[1u32, 1, 4, 0, 0, 0],
        &[&x, &out],
        Dispatch::Items(256),
    );
    for err in [four.unwrap_err(), six.unwrap_err()] {
        assert!(
            err.to_string()
                .contains("shaders/reduce.wgsl's parameters take 20 bytes"),
            "{err}"
        );
    }
}

#[test]
fn download_many_reads_every_tensor_in_order() {
    let mut gpu = common::gpu();
    let values: Vec<Vec<f32>> = (0..5)
        .map(|i| (0..3 + 7 * i).map(|j| (10 * i + j) as f32).collect())
        .collect();
    let tensors: Vec<_> = values.iter().map(|v| gpu.upload(v, &[v.len()]).unwrap()).collect();
    let refs: Vec<_> = tensors.iter().collect();
    assert_eq!(pollster::block_on(gpu.download_many(&refs)).unwrap(), values);
    // A buffer limit of 100 bytes (25 values) forces several staging buffers, one tensor over it alone.
    gpu.limits.max_buffer_size = 100;
    assert_eq!(pollster::block_on(gpu.download_many(&refs)).unwrap(), values);
    assert_eq!(pollster::block_on(gpu.download(&tensors[4])).unwrap(), values[4]);
}

#[test]
fn profile_times_every_pass_by_kernel() {
    let gpu = common::gpu();
    let err = pollster::block_on(gpu.profile_finish()).unwrap_err();
    assert!(err.to_string().contains("no profile was started"), "{err}");
    let x = gpu.zeros(&[1000]).unwrap();
    let y = gpu.zeros(&[1000]).unwrap();
    gpu.profile_start().unwrap();
    for _ in 0..3 {
        ops::blas::fill(&gpu, &x, 1.0).unwrap();
    }
    ops::blas::axpy(&gpu, 2.0, &x, &y).unwrap();
    let p = pollster::block_on(gpu.profile_finish()).unwrap();
    eprintln!("{p:?}");
    let launches: Vec<(&str, usize)> = p.kernels.iter().map(|k| (k.kernel.as_str(), k.launches)).collect();
    assert_eq!(launches.len(), 2, "{launches:?}");
    assert!(
        launches.contains(&("blas.fill", 3)) && launches.contains(&("blas.axpy", 1)),
        "{launches:?}"
    );
    assert!(p.kernels.iter().all(|k| k.ms >= 0.0) && p.total_ms() > 0.0, "{p:?}");
    assert_eq!(p.untimed_passes, 0);
    // The kernels ran: y = 2 x with x filled with ones.
    assert_eq!(pollster::block_on(gpu.download(&y)).unwrap(), vec![2.0; 1000]);
    // Recording stopped: the next launch is not timed and a second finish has nothing to report.
    ops::blas::fill(&gpu, &x, 3.0).unwrap();
    assert!(pollster::block_on(gpu.profile_finish()).is_err());
}

#[test]
fn launches_keep_their_parameters_across_arenas_and_submissions() {
    let gpu = common::gpu();
    let x = gpu.upload(&[1.0; 8], &[8]).unwrap();
    let y = gpu.zeros(&[8]).unwrap();
    // 700 launches, each with its own scale, fill three 256-launch parameter arenas; a submission in
    // the middle retires one half-full.
    let mut expected = 0.0f64;
    for i in 0..700 {
        let a = (i % 7) as f32 * 0.25;
        ops::blas::axpy(&gpu, a, &x, &y).unwrap();
        expected += a as f64;
        if i == 300 {
            gpu.flush();
        }
    }
    let got = pollster::block_on(gpu.download(&y)).unwrap();
    assert!(got.iter().all(|&v| v as f64 == expected), "{got:?} != {expected}");
}

/// The mixed-precision product against f64 (`dense::check_mixed`: tolerances from f16's unit
/// roundoff 2^-11 and the reduction length, and a row that fails if the operands silently stayed
/// f32). Needs SHADER_F16, which lavapipe has; a native adapter without it fails here.
#[test]
fn dense_mixed_on_an_adapter_with_shader_f16() {
    run_f16_check(ops::dense::check_mixed);
}

/// The convolution's mixed-precision passes against f64 (`conv::check_mixed`: the same bounds as
/// dense's, over each pass's reduction length, and the row that fails if they silently ran in f32).
/// Needs SHADER_F16, which lavapipe has; a native adapter without it fails here.
#[test]
fn conv_mixed_on_an_adapter_with_shader_f16() {
    run_f16_check(ops::conv::check_mixed);
}

/// Runs a mixed-precision check on the native adapter, which must have SHADER_F16.
fn run_f16_check(check: pggan::check::Check) {
    let gpu = common::gpu();
    assert!(
        gpu.precision.shader_f16,
        "{} has no SHADER_F16:\n{}",
        gpu.describe(),
        gpu.precision.describe()
    );
    common::run_check_on(&gpu, check);
}

/// `auto` is mixed where the adapter has f16 arithmetic: on lavapipe (shaderFloat16) it is.
#[test]
fn precision_auto_is_mixed_on_an_adapter_with_shader_f16() {
    let gpu = common::gpu();
    eprint!("{}", gpu.precision.describe());
    assert!(gpu.precision.shader_f16, "{} has no SHADER_F16", gpu.describe());
    for (choice, precision) in [
        ("auto", Precision::Mixed),
        ("mixed", Precision::Mixed),
        ("f32", Precision::F32),
    ] {
        let choice: PrecisionChoice = choice.parse().unwrap();
        assert_eq!(choice.resolve(&gpu.precision).unwrap(), precision);
    }
}

/// A device opened without SHADER_F16 (what a browser without `shader-f16` gives): `auto` is f32,
/// `mixed` and the feature kernels are refused naming the feature, f32 still runs
/// (`ops::check_f32_fallback`, which the browser suite runs too); and the launcher itself refuses
/// the f16 shader.
#[test]
fn precision_falls_back_to_f32_on_a_device_without_shader_f16() {
    let gpu = pollster::block_on(Gpu::new(&GpuOptions {
        f32_only: true,
        ..GpuOptions::for_tests()
    }))
    .unwrap();
    assert!(!gpu.precision.shader_f16 && gpu.precision.cooperative_matrix.is_empty());
    pollster::block_on(ops::check_f32_fallback(&gpu)).unwrap();
    let a = gpu.zeros(&[2, 2]).unwrap();
    let c = gpu.zeros(&[2, 2]).unwrap();
    // Past the op's own test, the launcher refuses a shader whose features the device lacks.
    let err = gpu
        .launch(
            &ops::dense::SHADER_F16,
            "gemm",
            &[0u32; 8],
            &[&a, &a, &c],
            Dispatch::Groups([1, 1, 1]),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("dense+f16 needs SHADER_F16, which this device"),
        "{err}"
    );
}

#[test]
fn precision_parse_refuses_other_strings() {
    for bad in ["f16", "F32", "", "mixed "] {
        let err = bad.parse::<PrecisionChoice>().unwrap_err().to_string();
        assert!(err.contains("is not one of f32, mixed, auto"), "{bad:?}: {err}");
    }
}

/// The cooperative-matrix kernels (coop_gemm, and conv's three passes on them) run against their
/// references where the adapter lists an f16 x f16 + f32 configuration; on every other adapter
/// (the system's lavapipe, Mesa 22: no cooperative matrices) the ops and the launcher refuse them,
/// naming the feature. tests/run.sh runs this test a second time on a lavapipe that has them (Mesa
/// 26, 8x8x8, in target/lavapipe-coop) with PGGAN_EXPECT_COOP=1, under which refusing fails.
#[test]
fn cooperative_kernels_run_where_the_adapter_lists_them_else_refuse() {
    let gpu = common::gpu();
    eprint!("{}", gpu.precision.describe());
    if ops::coop_gemm::available(&gpu).is_ok() {
        common::run_check_on(&gpu, ops::coop_gemm::check);
        common::run_check_on(&gpu, ops::conv::check_coop);
        assert!(matches!(
            LayerPrecision::of(&gpu, Precision::Mixed).unwrap().conv,
            ops::conv::Kernel::Coop { .. }
        ));
        return;
    }
    expect_no_coop(&gpu);
    let t = gpu.zeros(&[16, 16]).unwrap();
    let err = ops::coop_gemm::gemm(&gpu, &t, &t, &t).unwrap_err().to_string();
    assert!(
        err.starts_with("coop_gemm needs cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX)"),
        "{err}"
    );
    let err = ops::conv::available_coop(&gpu).unwrap_err().to_string();
    assert!(
        err.starts_with("conv coop: coop_gemm needs cooperative matrices"),
        "{err}"
    );
    if !gpu
        .device
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        for shader in [&ops::coop_gemm::SHADER_8, &ops::conv::SHADER_COOP_8] {
            let entry = if shader.name.starts_with("conv") {
                "forward"
            } else {
                "gemm"
            };
            let err = gpu
                .launch(shader, entry, &(), &[&t, &t, &t], Dispatch::Groups([1, 1, 1]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("needs") && err.contains("EXPERIMENTAL_COOPERATIVE_MATRIX"),
                "{err}"
            );
        }
    }
}

/// On an adapter without cooperative matrices: fails where tests/run.sh expects them
/// (PGGAN_EXPECT_COOP, set on Mesa 26's lavapipe), so that the cooperative tests cannot pass by
/// refusing.
fn expect_no_coop(gpu: &Gpu) {
    assert!(
        std::env::var_os("PGGAN_EXPECT_COOP").is_none(),
        "PGGAN_EXPECT_COOP is set, but this adapter ({}) has no cooperative matrices",
        gpu.describe()
    );
}

/// A cooperative convolution that fails its check before training (`LayerPrecision::verified`;
/// made to fail here by shrinking the accumulator's roundoff to nothing) is replaced: the warning
/// names it, the run's convolutions take the f16 kernel, and the run reports why. On an adapter
/// without cooperative matrices mixed precision is f16 arithmetic with nothing to check
/// (PGGAN_EXPECT_COOP, as for the test above, makes that a failure).
#[test]
fn cooperative_convolution_that_fails_its_check_gives_way_to_f16() {
    let gpu = common::gpu();
    let mixed = LayerPrecision::of(&gpu, Precision::Mixed).unwrap();
    let (checked, warning) = pollster::block_on(mixed.clone().verified(&gpu)).unwrap();
    assert_eq!((&checked, warning), (&mixed, None));
    let ops::conv::Kernel::Coop { .. } = mixed.conv else {
        expect_no_coop(&gpu);
        assert_eq!(mixed.conv, ops::conv::Kernel::F16);
        return;
    };
    assert_eq!(
        mixed.describe(),
        format!("Mixed, convolutions on {}", mixed.conv.name())
    );
    let (f16, warning) = pollster::block_on(mixed.clone().verified_within(&gpu, 0.0)).unwrap();
    let warning = warning.expect("a check with no room for rounding passed");
    assert!(
        warning.starts_with("the convolution on cooperative matrices (conv+coop")
            && warning.contains("failed its check on this device (conv3x3 coop"),
        "{warning}"
    );
    assert_eq!((f16.precision, f16.conv), (Precision::Mixed, ops::conv::Kernel::F16));
    // What a run prints and keeps in log.txt.
    let described = f16.describe();
    assert!(
        described
            .starts_with("Mixed, convolutions on conv+f16 (conv coop: failed its check on this device (conv3x3 coop"),
        "{described}"
    );
}
