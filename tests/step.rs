//! The networks and the exact WGAN-GP step: the f64 reference against finite differences of the whole
//! D loss (penalty included), the GPU step against the reference, and bad configurations.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::nn::backend::{Cpu, CpuTensor};
use pggan::nn::NetConfig;
use pggan::train::check::{models, tiny};
use pggan::train::step::{self, Model, StepConfig, StepInputs};

/// L_D on the reference backend: WGAN terms, drift and the penalty of the gradient at xhat.
fn d_loss(model: &Model<CpuTensor>, inputs: &StepInputs<CpuTensor>, sc: &StepConfig) -> f64 {
    let (_, _, level, alpha) = tiny();
    let out = step::d_gradients(&Cpu, model, inputs, level, alpha, sc).unwrap();
    let stats = CpuTensor::new(vec![0.0; 5], &[5]);
    use pggan::nn::backend::Backend;
    // L_D only: the G step's scores (for L_G) are any N values.
    Cpu.loss_stats(
        &out.scores,
        &out.grad_sumsq,
        &out.grad_sumsq,
        &stats,
        sc.lambda,
        sc.gamma,
        sc.drift,
    )
    .unwrap();
    stats.get()[0]
}

#[test]
fn d_gradient_with_the_penalty_matches_finite_differences() {
    let gpu = common::gpu();
    let (_, _, model, inputs) = models(&gpu, 11).unwrap();
    let (_, _, level, alpha) = tiny();
    let sc = StepConfig::default();
    step::d_gradients(&Cpu, &model, &inputs, level, alpha, &sc).unwrap();
    let h = 1e-6;
    let (mut checked, mut worst) = (0, 0.0f64);
    // Entries of every layer type of D: fromRGB (1x1 conv) at both levels, 3x3 convs, both dense
    // layers, and biases.
    for (i, layer) in model.d_layers.iter().enumerate() {
        for (kind, param, grad) in [
            ("w", &model.d.w[i], &model.d_grad.w[i]),
            ("b", &model.d.b[i], &model.d_grad.b[i]),
        ] {
            let g = grad.get();
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for k in [0, g.len() / 2, g.len() - 1] {
                let orig = param.get()[k];
                param.set_at(k, orig + h);
                let up = d_loss(&model, &inputs, &sc);
                param.set_at(k, orig - h);
                let down = d_loss(&model, &inputs, &sc);
                param.set_at(k, orig);
                let fd = (up - down) / (2.0 * h);
                // Relative to the larger of the entry and 1% of the tensor's largest gradient.
                let err = (fd - g[k]).abs() / g[k].abs().max(0.01 * scale).max(1e-12);
                assert!(
                    err <= 1e-4,
                    "{}.{kind}[{k}]: finite difference {fd}, gradient {}, rel error {err}",
                    layer.name,
                    g[k]
                );
                checked += 1;
                worst = worst.max(err);
            }
        }
    }
    assert!(checked >= 30, "only {checked} entries checked");
    eprintln!("{checked} entries of dL_D/dtheta agree with central differences (h = {h}): worst rel error {worst:.2e}");
}

#[test]
fn the_penalty_has_a_nonzero_weight_gradient_that_changes_the_step() {
    let gpu = common::gpu();
    let (_, _, model, inputs) = models(&gpu, 12).unwrap();
    let (_, _, level, alpha) = tiny();
    let with = StepConfig::default();
    let without = StepConfig { lambda: 0.0, ..with };
    let grads = |sc: &StepConfig| -> Vec<f64> {
        step::d_gradients(&Cpu, &model, &inputs, level, alpha, sc).unwrap();
        model.d_grad.tensors().flat_map(|t| t.get()).collect()
    };
    let (a, b) = (grads(&with), grads(&without));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    eprintln!("|grad with penalty - grad without| = {diff:.3e}, |grad without| = {norm:.3e}");
    assert!(
        diff > 1e-2 * norm,
        "the penalty barely changes D's gradient: {diff} vs {norm}"
    );
}

#[test]
fn gpu_step_matches_the_reference_step() {
    common::run_check(pggan::train::check::check);
}

/// The step's op outputs are scratch tensors, not cleared: with every scratch tensor starting as NaN,
/// a kernel that leaves part of its output unwritten (or a read before the write) fails the check.
#[test]
fn gpu_step_writes_every_scratch_tensor_before_reading_it() {
    let gpu = common::gpu();
    gpu.poison_scratch(true);
    common::run_check_on(&gpu, pggan::train::check::check);
}

/// Consecutive launches share a compute pass, and once the buffer pool holds every size a step needs
/// (after the first step), each step gets the same buffers as the last and reuses its bind groups.
#[test]
fn a_step_records_its_launches_in_three_passes_with_cached_bind_groups() {
    let gpu = common::gpu();
    let (mut model, inputs, _, _) = models(&gpu, 13).unwrap();
    let (_, _, level, alpha) = tiny();
    let stats = gpu.zeros(&[5]).unwrap();
    let mut step = || {
        let before = gpu.record_stats();
        step::step(&gpu, &mut model, &inputs, level, alpha, &StepConfig::default(), &stats).unwrap();
        gpu.flush();
        gpu.record_stats().since(before)
    };
    let steps = [step(), step(), step()];
    eprintln!("steps 1 to 3: {steps:?}");
    let [first, _, third] = steps;
    assert!(first.launches > 100, "{first:?}");
    assert!(first.bind_groups > first.launches / 2, "{first:?}");
    // The only commands between launches are the copies of the real and fake images into D's batch
    // (with the clear of D's gradients), then the clear of G's gradients.
    assert_eq!(third.passes, 3, "{third:?}");
    assert_eq!(third.bind_groups, 0, "{third:?}");
}

#[test]
fn bad_configurations_are_refused_naming_the_setting() {
    let gpu = common::gpu();
    let base = tiny().0;
    for (cfg, needle) in [
        (
            NetConfig {
                max_res: 12,
                ..base.clone()
            },
            "resolution 12",
        ),
        (
            NetConfig {
                channels: 0,
                ..base.clone()
            },
            "channels",
        ),
        (
            NetConfig {
                latent: 0,
                ..base.clone()
            },
            "latent",
        ),
        (
            NetConfig {
                fmap_base: 2,
                ..base.clone()
            },
            "fmap-base",
        ),
    ] {
        let err = Model::new(&gpu, &cfg, |s| gpu.zeros(s)).err().expect("refused");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let err = step::check_batch(6).unwrap_err();
    assert!(err.to_string().contains("minibatch 6"), "{err}");
    step::check_batch(8).unwrap();
}

#[test]
fn networks_over_one_storage_binding_are_refused_when_built() {
    // Each network's parameters are one buffer that Adam binds whole: a device whose binding limit
    // it exceeds refuses the model at once, saying why, not at the first step.
    let mut gpu = common::gpu();
    gpu.limits.max_storage_buffer_binding_size = 1024;
    let (cfg, _, _, _) = tiny();
    let err = Model::new(&gpu, &cfg, |s| gpu.zeros(s)).err().expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("parameters are kept in one buffer") && msg.contains("storage binding limit"),
        "{msg}"
    );
}
