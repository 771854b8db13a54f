//! The kernel checks and the training-step check of the native tests, in headless Chromium through
//! WebGPU (`wasm-pack test --headless --chrome -- --test web`).
#![cfg(target_arch = "wasm32")]

use pggan::check::{table, Check};
use pggan::gpu::{Gpu, GpuOptions};
use pggan::ops;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The browser's device at WebGPU's default limits; `f32_only`: opened without `shader-f16`.
async fn browser_gpu(f32_only: bool) -> Gpu {
    Gpu::new(&GpuOptions {
        adapter: None,
        default_limits: true,
        local_rank: None,
        f32_only,
    })
    .await
    .expect("a WebGPU adapter is required")
}

async fn run_check(check: Check) {
    let gpu = browser_gpu(false).await;
    web_sys::console::log_1(&format!("adapter: {}", gpu.describe()).into());
    let rows = check(&gpu).await.expect("the check could not run");
    web_sys::console::log_1(&table(&rows).into());
    assert!(!rows.is_empty(), "the check compared nothing");
    assert!(
        rows.iter().all(|r| r.pass),
        "GPU output differs from the CPU reference:\n{}",
        table(&rows)
    );
}

/// One browser test per registered op (`pggan::for_each_op!`), named after it, and their names.
macro_rules! op_tests {
    ($($op:ident),*) => {
        $(
            #[wasm_bindgen_test]
            async fn $op() {
                run_check(ops::$op::check).await;
            }
        )*
        const TESTED: &[&str] = &[$(stringify!($op)),*];
    };
}

pggan::for_each_op!(op_tests);

/// The registry that feeds the native tests (tests/kernels.rs) feeds these: every op's check runs here.
#[wasm_bindgen_test]
fn every_op_has_a_browser_test() {
    let names: Vec<&str> = ops::CHECKS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TESTED);
}

/// The browser's adapter: `auto` is mixed exactly where it offers `shader-f16`. Chromium's
/// SwiftShader, where this suite runs, offers none, so there `auto` is f32 and the f16 kernel is
/// refused; a browser with `shader-f16` runs the f16 kernel's check instead.
#[wasm_bindgen_test]
async fn precision_auto_follows_shader_f16_and_is_f32_without_it() {
    use pggan::gpu::{Precision, PrecisionChoice};
    let gpu = browser_gpu(false).await;
    web_sys::console::log_1(&format!("adapter: {}\n{}", gpu.describe(), gpu.precision.describe()).into());
    // Cooperative matrices are native only.
    assert!(gpu.precision.cooperative_matrix.is_empty());
    let auto = PrecisionChoice::Auto.resolve(&gpu.precision).unwrap();
    if gpu.precision.shader_f16 {
        assert_eq!(auto, Precision::Mixed);
        run_check(ops::dense::check_mixed).await;
    } else {
        assert_eq!(auto, Precision::F32);
        assert!(ops::dense::available_mixed(&gpu).is_err());
    }
}

/// The fallback, whatever the browser offers: on a device opened without `shader-f16`, `auto` is f32,
/// `mixed` is refused, the f16 and the cooperative kernels are refused naming what is missing, and
/// the f32 product runs (`ops::check_f32_fallback`, as natively).
#[wasm_bindgen_test]
async fn mixed_kernels_refuse_and_auto_is_f32_without_shader_f16() {
    let gpu = browser_gpu(true).await;
    pggan::ops::check_f32_fallback(&gpu).await.expect("the f32 fallback");
}

#[wasm_bindgen_test]
async fn train_step_matches_the_reference() {
    run_check(pggan::train::check::check).await;
}

#[wasm_bindgen_test]
async fn swd_matches_the_reference() {
    run_check(pggan::metrics::swd::check).await;
}

#[wasm_bindgen_test]
async fn selftest_passes_in_the_browser() {
    let table = pggan::web::selftest().await.expect("selftest could not run");
    assert!(table.contains(" 0 failed"), "{table}");
}

#[wasm_bindgen_test]
async fn the_training_benchmark_runs_in_the_browser() {
    let settings = r#"{"resolution": 8, "fmap_base": 32, "fmap_max": 16, "latent": 16, "minibatch": 4,
                       "steps": 2, "warmup": 1}"#;
    let report = pggan::web::bench_train(settings.into())
        .await
        .expect("the benchmark could not run");
    let report: serde_json::Value =
        serde_json::from_str(&String::from(js_sys::JSON::stringify(&report).unwrap())).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!((report["bench"].as_str(), rows.len()), (Some("train"), 2), "{report}");
    for (row, res) in rows.iter().zip([4, 8]) {
        assert_eq!(row["resolution"], res, "{row}");
        assert!(row["images_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["launches_per_step"].as_f64().unwrap() > 100.0, "{row}");
        assert_eq!(row["buffers_per_step"].as_f64(), Some(0.0), "{row}");
    }
    let e = pggan::web::bench_train(r#"{"resolution": 6}"#.into())
        .await
        .unwrap_err();
    let e: String = e.dyn_into::<js_sys::Error>().unwrap().message().into();
    assert!(e.contains("6"), "{e}");
}

// The page's API (src/web.rs) on a tiny run: 8x8 RGB, 8 feature maps, latent 8, minibatch 4,
// 20 images per phase; datasets decoded in chunks as the page does.
mod session {
    use pggan::train::checkpoint::Checkpoint;
    use pggan::web::{DatasetLoader, Files, Frame, Session};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_test::*;

    const TINY: &str = r#"{"net": {"max_res": 8, "fmap_base": 16, "fmap_max": 8, "latent": 8},
                           "schedule": {"minibatch": 4, "phase_kimg": 0.02}, "seed": 3}"#;

    /// 12 PNGs of 10x12 pixels in different colours and a file that is not an image.
    fn files() -> Files {
        let mut files = Files::new("synthetic".into());
        for i in 0..12u32 {
            let img = image::RgbImage::from_fn(10, 12, |x, y| {
                image::Rgb([(i * 20) as u8, (x * 25) as u8, (y * 20) as u8])
            });
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png).unwrap();
            files.add(format!("{i}.png"), png.into_inner());
        }
        files.add("notes.txt".into(), b"not an image".to_vec());
        files
    }

    fn get(obj: &JsValue, path: &str) -> JsValue {
        path.split('.')
            .fold(obj.clone(), |o, key| js_sys::Reflect::get(&o, &key.into()).unwrap())
    }

    fn num(obj: &JsValue, path: &str) -> f64 {
        get(obj, path)
            .as_f64()
            .unwrap_or_else(|| panic!("{path} is not a number"))
    }

    fn message(e: JsValue) -> String {
        e.dyn_into::<js_sys::Error>()
            .expect("errors are JS Error objects")
            .message()
            .into()
    }

    /// Decodes every image in chunks of `chunk`, checking the progress after each.
    fn decode(mut loader: DatasetLoader, chunk: usize) -> DatasetLoader {
        let total = loader.total();
        while loader.done() < total {
            let before = loader.done();
            let done = loader.prepare(chunk);
            assert_eq!((done, loader.done()), ((before + chunk).min(total), done));
        }
        loader
    }

    /// A new run as the page starts one: a loader for `config` on `files` (the emoji set when none),
    /// decoded in chunks of 5, then the session.
    async fn create(config: &str, files: Option<Files>) -> Result<Session, JsValue> {
        let loader = decode(DatasetLoader::for_run(config.into(), files)?, 5);
        Session::create(config.into(), loader).await
    }

    /// A checkpoint resumed as the page does it.
    async fn resume(checkpoint: &[u8], files: Option<Files>) -> Result<Session, JsValue> {
        let loader = decode(DatasetLoader::for_checkpoint(checkpoint.to_vec(), files)?, 5);
        Session::resume(checkpoint.to_vec(), loader).await
    }

    async fn pixels(s: &Session) -> Vec<u8> {
        s.samples(2).await.unwrap().rgba()
    }

    #[wasm_bindgen_test]
    async fn create_step_sample_checkpoint_resume() {
        let mut s = create(TINY, Some(files())).await.unwrap();
        let st = s.status().unwrap();
        assert_eq!(get(&st, "training"), JsValue::TRUE);
        assert_eq!(
            (num(&st, "resolution"), num(&st, "max_resolution"), num(&st, "steps")),
            (4.0, 8.0, 0.0)
        );
        assert_eq!((num(&st, "dataset.images"), num(&st, "dataset.skipped")), (12.0, 1.0));
        assert_eq!(get(&st, "dataset.name").as_string().unwrap(), "synthetic");
        assert!(get(&st, "dataset.first_skipped")
            .as_string()
            .unwrap()
            .starts_with("notes.txt"));
        assert_eq!(num(&st, "total_kimg"), 0.06);

        let first = pixels(&s).await;
        let stats = s.step(9).await.unwrap();
        for key in ["d_loss", "g_loss", "penalty", "drift", "wasserstein"] {
            assert!(num(&stats, key).is_finite(), "{key} is not finite");
        }
        let st = s.status().unwrap();
        // 9 steps of 4 images: 36 images. The schedule, evaluated every 4 steps, was last evaluated at
        // 32 images: fading in 8x8 (phase 1) with alpha 0.6.
        assert_eq!(
            (num(&st, "steps"), num(&st, "kimg"), num(&st, "resolution")),
            (9.0, 0.036, 8.0)
        );
        assert_eq!(get(&st, "phase").as_string().unwrap(), "fade-in");
        assert!((num(&st, "alpha") - 0.6).abs() < 1e-6);
        // The time left counts the 24 images still to come at the speed measured.
        assert!(num(&st, "eta_seconds") > 0.0, "no ETA");
        // One history point per step call, with its losses and position.
        let history = s.history().unwrap();
        let point = js_sys::Reflect::get_u32(&history, 0).unwrap();
        assert_eq!(js_sys::Array::from(&history).length(), 1);
        assert_eq!(
            (num(&point, "kimg"), num(&point, "resolution"), num(&point, "d_loss")),
            (0.036, 8.0, num(&stats, "d_loss"))
        );

        // The sliced Wasserstein distance needs 16x16; at 8x8 the history has none.
        assert!(get(&point, "swd").is_undefined());
        // The speed and the time left as the command line writes them, and the schedule's phases.
        assert!(num(&st, "images_per_second") > 0.0);
        assert!(get(&st, "eta").as_string().unwrap().ends_with('s'));
        let marks = get(&st, "phase_marks");
        assert_eq!(
            js_sys::JSON::stringify(&marks).unwrap(),
            r#"[{"kimg":0.02,"label":"8x8"},{"kimg":0.04,"label":""}]"#
        );

        let grid: Frame = s.samples(2).await.unwrap();
        assert_eq!((grid.width, grid.height, grid.rgba().len()), (16, 16, 16 * 16 * 4));
        assert_ne!(grid.rgba(), first, "training did not change the samples");
        let walk = s.walk(5).await.unwrap();
        assert_eq!((walk.width, walk.height, walk.rgba().len()), (40, 8, 40 * 8 * 4));

        // The checkpoint is the native format and resumes exactly: same samples, same next steps.
        let bytes = s.checkpoint().await.unwrap();
        let ck = Checkpoint::from_bytes(&bytes).unwrap();
        assert_eq!((ck.state.steps, ck.config.data.as_str()), (9, "synthetic"));
        for group in ["g", "d", "g_ema", "g_m", "g_v", "d_m", "d_v"] {
            assert!(
                ck.tensors.keys().any(|k| k.starts_with(&format!("{group}/"))),
                "no {group}"
            );
        }
        let mut resumed = resume(&bytes, Some(files())).await.unwrap();
        assert_eq!(num(&resumed.status().unwrap(), "steps"), 9.0);
        assert!(
            pixels(&resumed).await == pixels(&s).await,
            "the resumed run samples differently"
        );
        let (a, b) = (s.step(3).await.unwrap(), resumed.step(3).await.unwrap());
        assert_eq!(
            js_sys::JSON::stringify(&a).unwrap(),
            js_sys::JSON::stringify(&b).unwrap()
        );
        // The history came with the checkpoint and went on alike.
        let history = |s: &Session| js_sys::JSON::stringify(&s.history().unwrap()).unwrap();
        assert_eq!(history(&resumed), history(&s));
        assert_eq!(js_sys::Array::from(&s.history().unwrap()).length(), 2);
        assert!(
            pixels(&resumed).await == pixels(&s).await,
            "the runs differ after 3 more steps"
        );

        // Past the schedule's end, step does nothing and the run is finished.
        s.step(100).await.unwrap();
        let st = s.status().unwrap();
        assert_eq!((num(&st, "kimg"), get(&st, "finished")), (0.06, JsValue::TRUE));
    }

    #[wasm_bindgen_test]
    async fn export_and_sample_only() {
        let mut s = create(TINY, Some(files())).await.unwrap();
        s.step(2).await.unwrap();
        let export = s.export_generator().await.unwrap();
        let ck = Checkpoint::from_bytes(&export).unwrap();
        assert!(!ck.tensors.is_empty() && ck.tensors.keys().all(|k| k.starts_with("g_ema/")));
        assert_eq!(ck.state.steps, 2);

        let mut only = Session::load(export.clone()).await.unwrap();
        let st = only.status().unwrap();
        assert_eq!(
            (get(&st, "training"), get(&st, "dataset")),
            (JsValue::FALSE, JsValue::NULL)
        );
        assert_eq!(num(&st, "steps"), 2.0);
        assert!(
            pixels(&only).await == pixels(&s).await,
            "the export samples differently"
        );
        assert!(message(only.step(1).await.unwrap_err()).contains("sample only"));
        // A sampling session hands back what it loaded.
        assert!(Checkpoint::from_bytes(&only.checkpoint().await.unwrap()).unwrap() == ck);
        let err = message(resume(&export, Some(files())).await.err().unwrap());
        assert!(err.contains("only a generator"), "{err}");

        // A full checkpoint loads to sample too.
        let full = Session::load(s.checkpoint().await.unwrap()).await.unwrap();
        assert!(
            pixels(&full).await == pixels(&s).await,
            "the loaded checkpoint samples differently"
        );
    }

    /// A run's `precision` on the page: `auto` trains wherever the page runs; `mixed` trains where
    /// the browser offers `shader-f16` and is refused, naming it, where it does not (SwiftShader).
    #[wasm_bindgen_test]
    async fn precision_auto_trains_and_mixed_needs_shader_f16() {
        let with = |p: &str| TINY.replace(r#""seed": 3"#, &format!(r#""seed": 3, "precision": "{p}""#));
        let mut s = create(&with("auto"), Some(files())).await.unwrap();
        s.step(1).await.unwrap();
        let f16 = super::browser_gpu(false).await.precision.shader_f16;
        match create(&with("mixed"), Some(files())).await {
            Ok(mut s) => {
                assert!(f16, "mixed ran without shader-f16");
                s.step(1).await.unwrap();
            }
            Err(e) => {
                let e = message(e);
                assert!(
                    !f16 && e.contains("precision mixed needs f16 arithmetic (the shader-f16 feature)"),
                    "{e}"
                );
            }
        }
    }

    #[wasm_bindgen_test]
    async fn refusals_name_the_problem() {
        let err = |r: Result<Session, JsValue>| message(r.err().expect("should be refused"));
        let e = err(create("{not json", Some(files())).await);
        assert!(e.starts_with("the configuration:"), "{e}");
        let e = err(create(r#"{"lerning_rate": 1}"#, Some(files())).await);
        assert!(e.contains("lerning_rate"), "{e}");
        let e = err(create(r#"{"net": {"max_res": 6}}"#, Some(files())).await);
        assert!(e.contains("6"), "{e}");
        // 12 images cannot fill a minibatch of 16.
        let tiny_16 = TINY.replace("\"minibatch\": 4", "\"minibatch\": 16");
        let e = err(create(&tiny_16, Some(files())).await);
        assert!(e.contains("fewer than a minibatch"), "{e}");
        let mut bad = Files::new("bad".into());
        bad.add("a.png".into(), vec![1, 2, 3]);
        let e = err(create(TINY, Some(bad)).await);
        assert!(e.contains("no image"), "{e}");

        // A run on the person's files needs them again to resume, not the emoji set: refused before
        // decoding, and by resume itself when handed an emoji loader.
        let s = create(TINY, Some(files())).await.unwrap();
        let ck = s.checkpoint().await.unwrap();
        let e = err(resume(&ck, None).await);
        assert!(e.contains("synthetic") && e.contains("sample only"), "{e}");
        let emoji = DatasetLoader::for_run(TINY.into(), None).unwrap();
        let e = err(Session::resume(ck, emoji).await);
        assert!(e.contains("synthetic") && e.contains("sample only"), "{e}");
        let e = err(Session::load(b"garbage".to_vec()).await);
        assert!(e.contains("not a pggan checkpoint"), "{e}");
    }

    /// A run that diverges stops with a message naming where and what, and the page cannot save it.
    #[wasm_bindgen_test]
    async fn a_diverging_run_stops_and_is_not_saved() {
        let lr_1000 = TINY.replace("\"minibatch\": 4", "\"minibatch\": 4, \"lr\": 1000");
        let mut s = create(&lr_1000, Some(files())).await.unwrap();
        let mut error = None;
        for _ in 0..20 {
            if let Err(e) = s.step(2).await {
                error = Some(message(e));
                break;
            }
        }
        let e = error.expect("a learning rate of 1000 should diverge within 40 steps");
        assert!(
            e.contains("training diverged at kimg") && e.contains("NaN or infinite"),
            "{e}"
        );
        let e = message(s.checkpoint().await.expect_err("a diverged model must not be saved"));
        assert!(e.contains("NaN or infinite"), "{e}");
    }

    #[wasm_bindgen_test]
    async fn datasets_decode_in_chunks() {
        let err = |r: Result<Session, JsValue>| message(r.err().expect("should be refused"));
        // 13 files (one unreadable) in chunks: progress, and prepare past the end does nothing.
        let mut loader = DatasetLoader::for_run(TINY.into(), Some(files())).unwrap();
        assert_eq!((loader.total(), loader.done()), (13, 0));
        assert_eq!((loader.prepare(5), loader.prepare(7), loader.done()), (5, 12, 12));
        let e = err(Session::create(TINY.into(), loader).await);
        assert!(e.contains("12 of 13"), "{e}");
        let mut loader = DatasetLoader::for_run(TINY.into(), Some(files())).unwrap();
        assert_eq!(
            (
                loader.prepare(6),
                loader.prepare(6),
                loader.prepare(6),
                loader.prepare(6)
            ),
            (6, 12, 13, 13)
        );
        let e = err(Session::create("{not json".into(), loader).await);
        assert!(e.starts_with("the configuration:"), "{e}");

        // Images of another shape than the run's are refused.
        let gray = TINY.replace("\"max_res\": 8", "\"max_res\": 8, \"channels\": 1");
        let loader = decode(DatasetLoader::for_run(gray, Some(files())).unwrap(), 13);
        let e = err(Session::create(TINY.into(), loader).await);
        assert!(e.contains("1 channels at 8x8") && e.contains("needs 3 at 8x8"), "{e}");

        // The emoji set: every embedded image, in chunks of 500, as the native set.
        let loader = DatasetLoader::for_run(TINY.into(), None).unwrap();
        let total = pggan::data::Loader::emoji(3, 8).unwrap().total();
        assert!(total > 3000 && loader.total() == total, "{} emoji", loader.total());
        let s = Session::create(TINY.into(), decode(loader, 500)).await.unwrap();
        let st = s.status().unwrap();
        let native = pggan::data::emoji(3, 8).unwrap();
        assert_eq!(get(&st, "dataset.name").as_string().unwrap(), "emoji");
        assert_eq!(
            (num(&st, "dataset.images"), num(&st, "dataset.skipped")),
            (native.count() as f64, native.skipped.len() as f64)
        );
    }
}
