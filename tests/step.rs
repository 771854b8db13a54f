//! The networks and the exact WGAN-GP step: the f64 reference against finite differences of the whole
//! D loss (penalty included), the GPU step against the reference, and bad configurations.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use pggan::nn::backend::{Cpu, CpuTensor, GpuBackend};
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
    for (i, layer) in model.d.layers.iter().enumerate() {
        for (kind, param, grad) in [
            ("w", &model.d.params.w[i], &model.d.grad.w[i]),
            ("b", &model.d.params.b[i], &model.d.grad.b[i]),
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
        model.d.grad.tensors().flat_map(|t| t.get()).collect()
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

/// The step with the layers' GEMMs in mixed precision (f16 operands, f32 sums; lavapipe has
/// SHADER_F16) against the f64 reference (`check::MIXED_TOL`): G's gradient (L2) and the losses
/// within 2e-2 (about 20 chained GEMMs, each within 2^-10), D's within 1e-1 (its real and fake
/// terms nearly cancel), Adam on its gradients within 1e-5, and D's gradient differing from the
/// f32 step's, so that a step that silently stayed f32 fails.
#[test]
fn gpu_step_in_mixed_precision_matches_the_reference_step() {
    let gpu = common::gpu();
    common::run_check_on(&gpu, pggan::train::check::check_mixed);
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
        step::step(
            &GpuBackend::f32(&gpu),
            &mut model,
            &inputs,
            level,
            alpha,
            &StepConfig::default(),
            &stats,
        )
        .unwrap();
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
        let err = Model::new(&GpuBackend::f32(&gpu), &cfg, |s| gpu.zeros(s))
            .err()
            .expect("refused");
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
    let err = Model::new(&GpuBackend::f32(&gpu), &cfg, |s| gpu.zeros(s))
        .err()
        .expect("refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("parameters are kept in one buffer") && msg.contains("storage binding limit"),
        "{msg}"
    );
}

/// D's downsampling layer in the official order, `lrelu(avgpool(conv(x)) + b)`, against a closed
/// form derived here: one channel everywhere, every 3x3 kernel a single centre tap, so D's 8x8 block
/// turns a checkerboard into a checkerboard of +-1 whose 2x2 means are 0. The official layer then gives
/// lrelu(0 + b) = b at every pixel; the paper's Table 2 order, avgpool(lrelu(conv(x) + b)), would give
/// (lrelu(1 + b) + lrelu(-1 + b)) / 2 (0.58 for b = 0.3). The 4x4 tail is set to average that map into
/// the score, so the score is the official layer's value.
#[test]
fn d_downsampling_layer_pools_before_the_bias_and_activation_as_the_official_code() {
    use pggan::nn::arch::{discriminator, Layer};
    use pggan::nn::net::{Net, Params};

    let cfg = NetConfig {
        max_res: 8,
        fmap_base: 4,
        fmap_max: 1,
        latent: 1,
        channels: 1,
    };
    let layers = discriminator(&cfg);
    let lrelu = |v: f64| if v < 0.0 { 0.2 * v } else { v };
    let bias = 0.3;
    // Each layer's stored weight so that its effective (equalized-LR) weight is `effective` at the
    // 3x3 centre (or everywhere, for 1x1 and dense layers); the minibatch-stddev channel gets 0.
    let weights = |l: &Layer, effective: f64| -> Vec<f64> {
        let shape = l.weight_shape();
        let fan_in: usize = shape[1..].iter().product();
        let stored = effective / (l.gain as f64 / (fan_in as f64).sqrt());
        let mut w = vec![0.0; shape.iter().product()];
        match shape.len() {
            4 if shape[2] == 3 => w[4] = stored, // input channel 0, centre tap
            _ => w.iter_mut().for_each(|v| *v = stored),
        }
        w
    };
    let effective = |name: &str| match name {
        "8x8/fromRGB" | "8x8/conv0" | "8x8/conv1_down" | "4x4/conv" | "4x4/dense1" => 1.0,
        "4x4/dense0" => 1.0 / 16.0, // the mean of the 4x4 map
        _ => 0.0,                   // 4x4/fromRGB: unused at alpha 1
    };
    // +1 / -25 survives two leaky ReLUs (fromRGB, conv0) as +1 / -1.
    let (n, r) = (4, 8);
    let image: Vec<f64> = (0..r * r)
        .map(|i| if (i / r + i % r) % 2 == 0 { 1.0 } else { -25.0 })
        .collect();
    let x: Vec<f64> = (0..n).flat_map(|_| image.clone()).collect();

    // The official layer on conv0's output, with straight loops: the 3x3 centre tap is the identity,
    // then each 2x2 window's mean, then the bias and the leaky ReLU.
    let conv0_out: Vec<f64> = image.iter().map(|&v| lrelu(lrelu(v))).collect();
    let mut official = Vec::new();
    for oy in 0..r / 2 {
        for ox in 0..r / 2 {
            let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| conv0_out[(2 * oy + dy) * r + 2 * ox + dx]);
            official.push(lrelu(window.iter().sum::<f64>() / 4.0 + bias));
        }
    }
    let expected = official.iter().sum::<f64>() / official.len() as f64;
    let table2_order = (lrelu(1.0 + bias) + lrelu(-1.0 + bias)) / 2.0;
    assert!((expected - bias).abs() < 1e-12 && (table2_order - expected).abs() > 0.2);

    // The reference backend (f64).
    let params = Params::zeros(&Cpu, &layers).unwrap();
    for (i, l) in layers.iter().enumerate() {
        for (k, v) in weights(l, effective(&l.name)).into_iter().enumerate() {
            params.w[i].set_at(k, v);
        }
        if l.name == "8x8/conv1_down" {
            params.b[i].set_at(0, bias);
        }
    }
    let net = Net {
        bk: &Cpu,
        cfg: &cfg,
        layers: &layers,
        params: &params,
    };
    let score = net
        .d_forward(&CpuTensor::new(x.clone(), &[n, 1, r, r]), 2, 1.0, 1)
        .unwrap()
        .score
        .p
        .get();
    // (The layers' gains and slope are f32 constants, so the f64 reference agrees to about 1e-8.)
    for s in &score {
        assert!(
            (s - expected).abs() < 1e-7,
            "reference backend: score {s}, official {expected}"
        );
    }

    // The GPU kernels (f32).
    let gpu = common::gpu();
    let bk = GpuBackend::f32(&gpu);
    let params = Params::zeros(&bk, &layers).unwrap();
    for (i, l) in layers.iter().enumerate() {
        let w: Vec<f32> = weights(l, effective(&l.name)).iter().map(|&v| v as f32).collect();
        gpu.write(&params.w[i], &w).unwrap();
        if l.name == "8x8/conv1_down" {
            gpu.write(&params.b[i], &[bias as f32]).unwrap();
        }
    }
    let net = Net {
        bk: &bk,
        cfg: &cfg,
        layers: &layers,
        params: &params,
    };
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let input = gpu.upload(&xs, &[n, 1, r, r]).unwrap();
    let run = net.d_forward(&input, 2, 1.0, 1).unwrap();
    let score = pollster::block_on(gpu.download(&run.score.p)).unwrap();
    for s in &score {
        assert!(
            (*s as f64 - expected).abs() < 1e-5,
            "GPU: score {s}, official {expected}"
        );
    }
}
