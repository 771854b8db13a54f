//! The training step on the GPU against the same step on the f64 reference backend, on a tiny
//! configuration with fade-in alpha strictly between 0 and 1.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use super::step::{self, Model, StepConfig, StepInputs};
use crate::check::{compare, f64s, Row};
use crate::gpu::{Gpu, Precision, Tensor};
use crate::nn::backend::{Backend, Cpu, CpuTensor, GpuBackend};
use crate::nn::net::Params;
use crate::nn::NetConfig;
use crate::ops::adam;
use crate::ops::loss::STATS;
use crate::ops::precision::LayerPrecision;
use crate::rng::Rng;

/// 8x8 images, 8 and 4 feature maps, latent 6, batch 4, fading in 8x8 at alpha 0.6.
pub fn tiny() -> (NetConfig, usize, usize, f32) {
    (
        NetConfig {
            max_res: 8,
            fmap_base: 16,
            fmap_max: 8,
            latent: 6,
            channels: 3,
        },
        4,
        2,
        0.6,
    )
}

/// A model and step inputs on the GPU, and the same on the reference backend.
pub type Both = (
    Model<Tensor>,
    StepInputs<Tensor>,
    Model<CpuTensor>,
    StepInputs<CpuTensor>,
);

/// The same random model and inputs on both backends (the CPU gets the f32 values widened).
pub fn models(gpu: &Gpu, seed: u64) -> Result<Both> {
    let (cfg, n, level, _) = tiny();
    let r = crate::nn::config::res_of(level);
    let mut rng = Rng::new(seed);
    let mut values = Vec::new();
    let mut draw = |shape: &[usize]| {
        let v = rng.normals(shape.iter().product());
        values.push(v.clone());
        v
    };
    let gm = Model::new(&GpuBackend::f32(gpu), &cfg, |s| gpu.upload(&draw(s), s))?;
    let mut it = values.into_iter();
    let cm = Model::new(&Cpu, &cfg, |s| Ok(CpuTensor::new(f64s(&it.next().unwrap()), s)))?;
    let mut rng = Rng::new(seed + 1);
    let shapes = [vec![n, cfg.channels, r, r], vec![n, cfg.latent], vec![n, cfg.latent]];
    let data: Vec<Vec<f32>> = shapes.iter().map(|s| rng.normals(s.iter().product())).collect();
    let mix: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
    let gi = StepInputs {
        reals: gpu.upload(&data[0], &shapes[0])?,
        z_d: gpu.upload(&data[1], &shapes[1])?,
        z_g: gpu.upload(&data[2], &shapes[2])?,
        mix: gpu.upload(&mix, &[n])?,
    };
    let ci = StepInputs {
        reals: CpuTensor::new(f64s(&data[0]), &shapes[0]),
        z_d: CpuTensor::new(f64s(&data[1]), &shapes[1]),
        z_g: CpuTensor::new(f64s(&data[2]), &shapes[2]),
        mix: CpuTensor::new(f64s(&mix), &[n]),
    };
    Ok((gm, gi, cm, ci))
}

async fn compare_params(
    gpu: &Gpu,
    what: &str,
    names: &[String],
    g: &Params<Tensor>,
    c: &Params<CpuTensor>,
    tol: GradTol,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let (mut diff, mut norm, mut len) = (0.0f64, 0.0f64, 0);
    for (i, name) in names.iter().enumerate() {
        for (kind, gt, ct) in [("w", &g.w[i], &c.w[i]), ("b", &g.b[i], &c.b[i])] {
            let (got, reference) = (gpu.download(gt).await?, ct.get());
            match tol {
                GradTol::PerTensor(tol) => {
                    let label = format!("{what} {name}.{kind}");
                    rows.push(compare(&label, &gt.shape, &got, &reference, tol));
                }
                GradTol::Whole(_) => {
                    diff += got
                        .iter()
                        .zip(&reference)
                        .map(|(g, r)| (*g as f64 - r).powi(2))
                        .sum::<f64>();
                    norm += reference.iter().map(|r| r * r).sum::<f64>();
                    len += got.len();
                }
            }
        }
    }
    if let GradTol::Whole(tol) = tol {
        let (abs, rel) = (diff.sqrt(), diff.sqrt() / norm.sqrt());
        rows.push(Row {
            name: format!("{what} (all, L2)"),
            shape: format!("[{len}]"),
            max_abs: abs,
            max_rel: rel,
            tol,
            // A NaN must fail.
            pass: rel <= tol,
        });
    }
    Ok(())
}

/// How a network's gradients are compared with the reference.
#[derive(Clone, Copy)]
enum GradTol {
    /// Each tensor, its largest error relative to its largest magnitude.
    PerTensor(f64),
    /// All of them as one vector, the L2 norm of the error relative to the gradient's.
    Whole(f64),
}

/// D and G gradients (penalty included), and the Adam update of a full step, GPU vs reference.
pub fn check(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move { step_rows(&GpuBackend::f32(gpu), F32_TOL).await })
}

/// The bounds of one step's outputs relative to their largest magnitude: the gradients, then the
/// losses (Adam's update of the GPU's own gradients is held to 1e-5 at either precision).
struct Tolerances {
    d_grads: GradTol,
    g_grads: GradTol,
    losses: f64,
}

/// f32 throughout: gradients through a dozen layers and the penalty's double backward within 1e-3,
/// the losses within 1e-4.
const F32_TOL: Tolerances = Tolerances {
    d_grads: GradTol::PerTensor(1e-3),
    g_grads: GradTol::PerTensor(1e-3),
    losses: 1e-4,
};

/// The layers' GEMMs mixed: each rounds its operands to f16, a relative error of up to about
/// 2u = 2^-10 of its output's scale (0.3e-3 measured in the kernels' checks); the longest chain
/// of GEMMs through the step (G's layers, D's, then back through both with the penalty's tangent
/// run) has about 20, so G's gradient (as one vector, in L2) and the losses are held to
/// 20 * 2^-10 = 2e-2 (measured: 1.9e-3 and 1.6e-4). D's gradient is the difference of its
/// gradients at the reals and at the fakes, which nearly cancel here (random reals, a random G),
/// so its error relative to the result is larger, the same with or without the penalty (measured:
/// 3.4e-2, and 7e-2 in absolute terms either way): held to 1e-1.
const MIXED_TOL: Tolerances = Tolerances {
    d_grads: GradTol::Whole(1e-1),
    g_grads: GradTol::Whole(2e-2),
    losses: 2e-2,
};

/// `check` with the layers' GEMMs in mixed precision (`LayerPrecision::of`, needs SHADER_F16),
/// within `MIXED_TOL` of the f64 reference; and a row that fails unless the mixed step's D
/// gradients differ from the f32 step's by more than 1e-5 of their scale (the f32 step's own error
/// against f64 is about 1e-6), so a step that silently stayed f32 fails.
pub fn check_mixed(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let (_, _, level, alpha) = tiny();
        let sc = StepConfig::default();
        let (gm, gi, _, _) = models(gpu, 7)?;
        step::d_gradients(&GpuBackend::f32(gpu), &gm, &gi, level, alpha, &sc)?;
        let single = download_params(gpu, &gm.d.grad).await?;
        let bk = GpuBackend::new(gpu, &LayerPrecision::of(gpu, Precision::Mixed)?);
        step::d_gradients(&bk, &gm, &gi, level, alpha, &sc)?;
        let mixed = download_params(gpu, &gm.d.grad).await?;
        let mut rows = step_rows(&bk, MIXED_TOL).await?;
        let scale = single.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
        let diff = mixed
            .iter()
            .zip(&single)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs() as f64));
        rows.push(Row {
            name: "step: mixed dL_D/d != f32 (> tol)".into(),
            shape: format!("[{}]", single.len()),
            max_abs: diff,
            max_rel: diff / scale,
            tol: 1e-5,
            pass: diff / scale > 1e-5,
        });
        Ok(rows)
    })
}

/// Every tensor of `p`, concatenated.
async fn download_params(gpu: &Gpu, p: &Params<Tensor>) -> Result<Vec<f32>> {
    let mut all = Vec::new();
    for t in p.tensors() {
        all.extend(gpu.download(t).await?);
    }
    Ok(all)
}

/// The rows of `check` on `bk`, at `tol`.
async fn step_rows(bk: &GpuBackend<'_>, tol: Tolerances) -> Result<Vec<Row>> {
    let gpu = bk.gpu;
    {
        let (_, _, level, alpha) = tiny();
        let sc = StepConfig::default();
        let (mut gm, gi, cm, ci) = models(gpu, 7)?;
        let mut rows = Vec::new();
        let d_names: Vec<String> = gm.d.layers.iter().map(|l| l.name.clone()).collect();
        let g_names: Vec<String> = gm.g.layers.iter().map(|l| l.name.clone()).collect();

        let gd = step::d_gradients(bk, &gm, &gi, level, alpha, &sc)?;
        let cd = step::d_gradients(&Cpu, &cm, &ci, level, alpha, &sc)?;
        compare_params(gpu, "dL_D/d", &d_names, &gm.d.grad, &cm.d.grad, tol.d_grads, &mut rows).await?;
        let g_scores = step::g_gradients(bk, &gm, &gi.z_g, level, alpha)?;
        let c_scores = step::g_gradients(&Cpu, &cm, &ci.z_g, level, alpha)?;
        compare_params(gpu, "dL_G/d", &g_names, &gm.g.grad, &cm.g.grad, tol.g_grads, &mut rows).await?;
        // The losses: [L_D, L_G, penalty, drift term, Wasserstein estimate].
        let (gs, cs) = (gpu.zeros(&[STATS])?, Cpu.zeros(&[STATS])?);
        let (l, g, dr) = (sc.lambda, sc.gamma, sc.drift);
        bk.loss_stats(&gd.scores, &gd.grad_sumsq, &g_scores, &gs, l, g, dr)?;
        Cpu.loss_stats(&cd.scores, &cd.grad_sumsq, &c_scores, &cs, l, g, dr)?;
        rows.push(compare(
            "losses and penalty",
            &[STATS],
            &gpu.download(&gs).await?,
            &cs.get(),
            tol.losses,
        ));

        // A full step on the GPU; its parameters and moments must be the reference Adam update of
        // the gradients the GPU computed inside the step.
        let before: Vec<Vec<f32>> = {
            let mut v = Vec::new();
            for t in gm.d.params.tensors().chain(gm.g.params.tensors()) {
                v.push(gpu.download(t).await?);
            }
            v
        };
        let stats = gpu.zeros(&[STATS])?;
        step::step(bk, &mut gm, &gi, level, alpha, &sc, &stats)?;
        let triples = [&gm.d, &gm.g].into_iter().flat_map(|n| {
            n.params
                .tensors()
                .zip(n.grad.tensors())
                .zip(n.adam.m.tensors().zip(n.adam.v.tensors()))
        });
        let mut worst: [Option<Row>; 3] = Default::default();
        for (((p, g), (m, v)), p0) in triples.zip(&before) {
            let grad = f64s(&gpu.download(g).await?);
            let (mut pr, mut mr, mut vr) = (f64s(p0), vec![0.0; grad.len()], vec![0.0; grad.len()]);
            // Layers above the current level take no step (their gradient is zero, and so is Adam's).
            adam::step_ref(&mut pr, &grad, &mut mr, &mut vr, sc.adam, 1);
            let after = [
                compare(
                    "step: parameters after Adam",
                    &p.shape,
                    &gpu.download(p).await?,
                    &pr,
                    1e-5,
                ),
                compare("step: Adam moment m", &m.shape, &gpu.download(m).await?, &mr, 1e-5),
                compare("step: Adam moment v", &v.shape, &gpu.download(v).await?, &vr, 1e-5),
            ];
            // One row each: the worst tensor.
            for (w, r) in worst.iter_mut().zip(after) {
                if w.as_ref().is_none_or(|w| r.max_rel > w.max_rel) {
                    *w = Some(r);
                }
            }
        }
        rows.extend(worst.into_iter().flatten());
        Ok(rows)
    }
}
