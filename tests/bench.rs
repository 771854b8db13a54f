//! `pggan bench train`, `pggan bench kernels`, `pggan bench quality` and `pggan bench launches` as a
//! user runs them, on tiny shapes: the JSON they print, the per-kernel profile, forced tiles, the
//! refusal of an unknown tile, `--precision` of train, kernels and quality, the per-launch host cost
//! with its counts, `pggan bench precision` (features and the mixed kernels), and `pggan bench
//! data` (reals made on the host and on the GPU).
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::run_pggan as run;

fn json(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert!(out.status.success(), "pggan {args:?} failed");
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// `bench kernels` at the smallest shapes, one timed run each.
const KERNELS: &[&str] = &[
    "bench",
    "kernels",
    "--batch",
    "1",
    "--max-channels",
    "8",
    "--reps",
    "1",
    "--json",
];

const TRAIN: &[&str] = &[
    "bench",
    "train",
    "--resolution",
    "8",
    "--fmap-base",
    "32",
    "--fmap-max",
    "16",
    "--latent",
    "16",
    "--minibatch",
    "4",
    "--steps",
    "1",
    "--warmup",
    "0",
    "--profile",
];

#[test]
fn bench_train_profiles_every_kernel_of_a_step() {
    let report = json(&[TRAIN, &["--json"]].concat());
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{report}");
    for (row, res) in rows.iter().zip([4, 8]) {
        assert_eq!(row["resolution"], res);
        assert!(row["images_per_s"].as_f64().unwrap() > 0.0, "{row}");
        let kernels = row["profile"]["kernels"].as_array().unwrap();
        let launches = |name: &str| -> u64 {
            kernels
                .iter()
                .filter(|k| k["kernel"].as_str().unwrap().starts_with(name))
                .map(|k| k["launches"].as_u64().unwrap())
                .sum()
        };
        // Every step runs convolutions and the dense layers; Adam once per network and the EMA once
        // (each network's parameters are one buffer).
        assert!(launches("conv.") > 0 && launches("dense.gemm") > 0, "{row}");
        assert_eq!((launches("adam.step"), launches("ema.update")), (2, 1), "{row}");
        let ms: Vec<f64> = kernels.iter().map(|k| k["ms"].as_f64().unwrap()).collect();
        assert!(
            ms.iter().all(|&t| t >= 0.0) && ms.windows(2).all(|w| w[0] >= w[1]),
            "{ms:?}"
        );
        assert!(ms.iter().sum::<f64>() > 0.0);
        // The trainer's finiteness check is timed beside the step.
        assert!(row["check_ms"].as_f64().unwrap() > 0.0, "{row}");
    }
    // The table form prints each profile.
    let out = run(TRAIN);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("kernels of one step at 8x8")
            && text.contains("the check that the model is finite"),
        "{text}"
    );
}

/// `--precision mixed` (lavapipe has shader-f16): the step's convolutions and dense layers run the
/// f16 kernels and no f32 GEMM; the report names the precision and the convolutions' kernel.
/// Anything else is refused by name.
#[test]
fn bench_train_in_mixed_precision_runs_only_the_f16_gemms() {
    let report = json(&[TRAIN, &["--precision", "mixed", "--json"]].concat());
    assert_eq!(report["precision"], "Mixed", "{report}");
    let layers = report["layers"].as_str().unwrap();
    assert!(layers.starts_with("Mixed, convolutions on conv+"), "{report}");
    for row in report["rows"].as_array().unwrap() {
        let launches = |name: &str| -> u64 {
            let kernels = row["profile"]["kernels"].as_array().unwrap();
            kernels
                .iter()
                .filter(|k| k["kernel"].as_str().unwrap().starts_with(name))
                .map(|k| k["launches"].as_u64().unwrap())
                .sum()
        };
        assert!(launches("conv+f16.") > 0 && launches("dense+f16.gemm") > 0, "{row}");
        assert_eq!((launches("conv."), launches("dense.gemm")), (0, 0), "{row}");
    }
    refuses_a_misspelt_precision(TRAIN);
}

#[test]
fn bench_kernels_times_forced_tiles() {
    let report = json(&[KERNELS, &["--tiles", "64x64x16,8x512x4"]].concat());
    let rows = report["rows"].as_array().unwrap();
    // Six convolution shapes x four passes x two tiles, and the dense layer's three passes.
    assert_eq!(rows.len(), 6 * 4 * 2 + 3, "{report}");
    for row in rows {
        assert!(row["gflops"].as_f64().unwrap() > 0.0, "{row}");
        let dense = row["shape"]["k"] == 0;
        let tile = row["tile"].as_str();
        assert!(
            if dense {
                tile.is_none()
            } else {
                matches!(tile, Some("64x64x16" | "8x512x4"))
            },
            "{row}"
        );
    }
    let passes: Vec<&str> = rows[..8].iter().map(|r| r["pass"].as_str().unwrap()).collect();
    assert_eq!(
        passes,
        [
            "forward",
            "forward",
            "forward_act",
            "forward_act",
            "backward-data",
            "backward-data",
            "backward-weight",
            "backward-weight"
        ]
    );

    let out = run(&["bench", "kernels", "--tiles", "1x1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no tile 1x1; the tiles are 64x64x16, 32x128x16"),
        "{err}"
    );
}

/// `bench kernels --precision mixed` (lavapipe has shader-f16): every pass is timed and the report
/// names the choice and what it resolved to; f32 is the default; anything else is refused by name.
#[test]
fn bench_kernels_takes_a_precision() {
    let report = json(&[KERNELS, &["--precision", "mixed"]].concat());
    assert_eq!(report["precision"], "Mixed", "{report}");
    let layers = report["layers"].as_str().unwrap();
    assert!(layers.starts_with("Mixed, convolutions on conv+"), "{report}");
    assert_eq!(report["config"]["precision"], "mixed", "{report}");
    let rows = report["rows"].as_array().unwrap();
    // Six convolution shapes x four passes, and the dense layer's three passes.
    assert_eq!(rows.len(), 6 * 4 + 3, "{report}");
    assert!(rows.iter().all(|r| r["gflops"].as_f64().unwrap() > 0.0), "{report}");

    refuses_a_misspelt_precision(KERNELS);
}

/// `bench quality --precision` through the smallest schedule (4x4, one minibatch of 16), mixed and
/// f32: the report names what it resolved to (and its kernel), and the trainer's config the choice
/// (left out when f32, as in a run's config.json); a misspelling is refused.
#[test]
fn bench_quality_takes_a_precision() {
    let cache = common::temp_dir("quality-cache");
    let cache = cache.to_str().unwrap();
    let args = [
        "bench",
        "quality",
        "--resolution",
        "4",
        "--phase-kimg",
        "0.016",
        "--swd-images",
        "16",
        "--cache",
        cache,
        "--json",
    ];
    for (choice, resolved) in [("mixed", "Mixed"), ("f32", "F32")] {
        let report = json(&[&args[..], &["--precision", choice]].concat());
        assert_eq!(report["precision"], resolved, "{report}");
        let layers = report["layers"].as_str().unwrap();
        assert!(layers.starts_with(resolved), "{report}");
        let config = report["config"]["precision"].as_str();
        assert_eq!(config, (choice != "f32").then_some(choice), "{report}");
        assert!(report["result"]["kimg"].as_f64().unwrap() >= 0.016, "{report}");
    }

    refuses_a_misspelt_precision(&args);
}

/// `args --precision f16` fails, naming the choices.
fn refuses_a_misspelt_precision(args: &[&str]) {
    let out = run(&[args, &["--precision", "f16"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("precision \"f16\" is not one of f32, mixed, auto"),
        "{err}"
    );
}

#[test]
fn bench_launches_reuses_one_pass_and_its_bind_groups() {
    let report = json(&["bench", "launches", "--launches", "300", "--rounds", "3", "--json"]);
    let r = &report["result"];
    assert!(
        r["record_us"].as_f64().unwrap() > 0.0 && r["submit_us"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    // 300 launches with no other command between them: one compute pass, and after the first round
    // every bind group comes from the cache.
    assert_eq!(r["passes"].as_f64(), Some(1.0), "{r}");
    assert_eq!(r["bind_groups"].as_f64(), Some(0.0), "{r}");

    let out = run(&["bench", "launches", "--rounds", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--rounds at least 2"), "{err}");
}

/// On lavapipe (shader-f16, no cooperative matrices): the features listed, `auto` mixed, the f16
/// convolution passes and dense product checked, the cooperative ones refused with what is missing
/// (or, with PGGAN_MIXED_CONV=f16, the cooperative convolution as turned off), and so a failing exit
/// status, since the tensor-core path was not proven.
#[test]
fn bench_precision_checks_f16_and_refuses_cooperative_matrices_on_lavapipe() {
    let out = run(&["bench", "precision"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("shader-f16: yes\ncooperative matrices: no\n"), "{text}");
    assert!(text.contains("precision auto: Mixed"), "{text}");
    // 8 rows of dense's 3 products; 25 of the convolution's 3 passes at 3 shapes (the f32
    // comparison only on the 7 short reductions).
    for (start, count) in [("dense mixed", 8), ("conv", 25)] {
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(start) && l.contains(" mixed "))
            .collect();
        assert!(
            rows.len() == count && rows.iter().all(|l| l.ends_with("pass")),
            "{start}: {text}"
        );
    }
    assert!(
        text.contains("coop_gemm: refused: coop_gemm needs cooperative matrices (EXPERIMENTAL_COOPERATIVE_MATRIX)"),
        "{text}"
    );
    assert!(!out.status.success());

    let out = run(&["bench", "precision", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(report["auto"], "Mixed");
    assert_eq!(report["shader_f16"], true);
    assert_eq!(report["cooperative_matrix"].as_array().map(Vec::len), Some(0));
    assert_eq!(report["refused"][0]["check"], "coop_gemm");
    assert_eq!(report["refused"][1]["check"], "conv coop");
    let why = report["refused"][1]["error"].as_str().unwrap();
    assert!(
        why.starts_with("conv coop: coop_gemm needs cooperative matrices"),
        "{why}"
    );
    assert_eq!(report["failed"].as_array().map(Vec::len), Some(0), "{report}");
    assert!(
        report["rows"].as_array().unwrap().iter().all(|r| r["pass"] == true),
        "{report}"
    );
    assert_eq!(report["ok"], false);
    assert!(!out.status.success());

    // PGGAN_MIXED_CONV=f16 turns the cooperative convolution off, and the report says so.
    let out = common::pggan(&["bench", "precision", "--json"])
        .env("PGGAN_MIXED_CONV", "f16")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    let why = report["refused"][1]["error"].as_str().unwrap();
    assert_eq!(why, "conv coop: turned off by PGGAN_MIXED_CONV=f16", "{report}");
}

/// `bench data` on a prepared file of 64x64 images (so only its 64x64 row): both ways timed, and
/// the process's memory reported.
#[test]
fn bench_data_times_both_ways_of_making_reals() {
    let dir = common::temp_dir("bench-data");
    let images = dir.join("images");
    common::make_images(&images, 8, 64, 1);
    let file = dir.join("set.pggan");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let out = run(&["dataset", "prepare", &s(&images), &s(&file), "--res", "64"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&["bench", "data", "--data", &s(&file), "--steps", "2", "--json"]);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(
        (rows[0]["resolution"].as_u64(), rows[0]["minibatch"].as_u64()),
        (Some(64), Some(16))
    );
    for key in ["f64_ms", "read_ms", "bytes_ms"] {
        assert!(rows[0][key].as_f64().unwrap() > 0.0, "{key}: {report}");
    }
    assert!(report["peak_resident_bytes"].as_u64().unwrap() >= report["private_bytes"].as_u64().unwrap());
    assert!(report["private_bytes"].as_u64().unwrap() > 0, "{report}");
}
