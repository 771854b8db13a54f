//! The training step on the GPU against the same step on the f64 reference backend, on a tiny
//! configuration with fade-in alpha strictly between 0 and 1.

use std::future::Future;
use std::pin::Pin;

use anyhow::Result;

use super::step::{self, Model, StepConfig, StepInputs};
use crate::check::{compare, f64s, Row};
use crate::gpu::{Gpu, Tensor};
use crate::nn::backend::{Backend, Cpu, CpuTensor};
use crate::nn::net::Params;
use crate::nn::NetConfig;
use crate::ops::adam;
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
    let gm = Model::new(gpu, &cfg, |s| gpu.upload(&draw(s), s))?;
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
    rows: &mut Vec<Row>,
) -> Result<()> {
    for (i, name) in names.iter().enumerate() {
        for (kind, gt, ct) in [("w", &g.w[i], &c.w[i]), ("b", &g.b[i], &c.b[i])] {
            let label = format!("{what} {name}.{kind}");
            rows.push(compare(&label, &gt.shape, &gpu.download(gt).await?, &ct.get(), 1e-3));
        }
    }
    Ok(())
}

/// D and G gradients (penalty included), and the Adam update of a full step, GPU vs reference.
pub fn check(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let (_, _, level, alpha) = tiny();
        let sc = StepConfig::default();
        let (mut gm, gi, cm, ci) = models(gpu, 7)?;
        let mut rows = Vec::new();
        let d_names: Vec<String> = gm.d.layers.iter().map(|l| l.name.clone()).collect();
        let g_names: Vec<String> = gm.g.layers.iter().map(|l| l.name.clone()).collect();

        let gd = step::d_gradients(gpu, &gm, &gi, level, alpha, &sc)?;
        let cd = step::d_gradients(&Cpu, &cm, &ci, level, alpha, &sc)?;
        compare_params(gpu, "dL_D/d", &d_names, &gm.d.grad, &cm.d.grad, &mut rows).await?;
        let g_scores = step::g_gradients(gpu, &gm, &gi.z_g, level, alpha)?;
        let c_scores = step::g_gradients(&Cpu, &cm, &ci.z_g, level, alpha)?;
        compare_params(gpu, "dL_G/d", &g_names, &gm.g.grad, &cm.g.grad, &mut rows).await?;
        // The losses: [L_D, L_G, penalty, drift term, Wasserstein estimate].
        let (gs, cs) = (gpu.zeros(&[5])?, Cpu.zeros(&[5])?);
        let (l, g, dr) = (sc.lambda, sc.gamma, sc.drift);
        gpu.loss_stats(&gd.scores, &gd.grad_sumsq, &g_scores, &gs, l, g, dr)?;
        Cpu.loss_stats(&cd.scores, &cd.grad_sumsq, &c_scores, &cs, l, g, dr)?;
        rows.push(compare(
            "losses and penalty",
            &[5],
            &gpu.download(&gs).await?,
            &cs.get(),
            1e-4,
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
        let stats = gpu.zeros(&[5])?;
        step::step(gpu, &mut gm, &gi, level, alpha, &sc, &stats)?;
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
    })
}
