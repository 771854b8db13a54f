//! One training step: D step (WGAN terms, the exact gradient penalty, drift, Adam) and the EMA of G,
//! then G step (Adam), in the official loop's order. Written once against [`Backend`]: on the GPU it records every kernel
//! into one submission with no readback; on the CPU it is the f64 reference of the same step.

use anyhow::{bail, Result};

use crate::nn::arch::{self, Layer};
use crate::nn::backend::Backend;
use crate::nn::net::{Adjoint, InputAdjoint, Net, Params};
use crate::nn::NetConfig;
use crate::ops::adam::AdamParams;
use crate::ops::mbstd;

/// The loss and optimizer settings (defaults: Karras et al. 2018, appendix A.1; official loss.py `D_wgangp_acgan`).
#[derive(Clone, Copy, Debug)]
pub struct StepConfig {
    pub lambda: f32,
    pub gamma: f32,
    pub drift: f32,
    pub adam: AdamParams,
    pub ema_beta: f32,
}

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            lambda: 10.0,
            gamma: 1.0,
            drift: 0.001,
            adam: AdamParams::default(),
            ema_beta: 0.999,
        }
    }
}

/// Adam's state for one network: the moments and the steps since their last reset.
pub struct Adam<T> {
    pub m: Params<T>,
    pub v: Params<T>,
    pub t: u32,
}

/// One network as it trains: its layers, parameters, gradients and Adam state.
pub struct Network<T> {
    pub layers: Vec<Layer>,
    pub params: Params<T>,
    pub grad: Params<T>,
    pub adam: Adam<T>,
}

impl<T: Clone> Network<T> {
    fn zeros<B: Backend<T = T>>(bk: &B, layers: Vec<Layer>) -> Result<Network<T>> {
        let zeros = || Params::zeros(bk, &layers);
        Ok(Network {
            params: zeros()?,
            grad: zeros()?,
            adam: Adam {
                m: zeros()?,
                v: zeros()?,
                t: 0,
            },
            layers,
        })
    }

    /// The network at `bk` with its current parameters.
    pub fn net<'a, B: Backend<T = T>>(&'a self, bk: &'a B, cfg: &'a NetConfig) -> Net<'a, B> {
        Net {
            bk,
            cfg,
            layers: &self.layers,
            params: &self.params,
        }
    }

    /// Adam on the first `layers` layers, in one launch (the gaps between the layers' slices are zero
    /// in all four tensors, and Adam keeps them zero).
    fn adam_update<B: Backend<T = T>>(&mut self, bk: &B, layers: usize, hp: AdamParams) -> Result<()> {
        self.adam.t += 1;
        let [p, grad, m, v] =
            [&self.params, &self.grad, &self.adam.m, &self.adam.v].map(|x| x.first_layers(bk, layers));
        bk.adam(&p?, &grad?, &m?, &v?, hp, self.adam.t)
    }
}

/// Everything a run trains: both networks and the EMA of G's parameters.
pub struct Model<T> {
    pub cfg: NetConfig,
    pub g: Network<T>,
    pub d: Network<T>,
    /// G's parameters averaged over the steps (samples and metrics use them); G's layers.
    pub g_ema: Params<T>,
}

/// Per-step inputs drawn by the caller's seeded RNG.
pub struct StepInputs<T> {
    /// Real images [N, C, R, R], already faded to the current alpha.
    pub reals: T,
    /// Latents for the D step and the G step, [N, latent] each.
    pub z_d: T,
    pub z_g: T,
    /// Penalty mixing factors [N], uniform in [0, 1).
    pub mix: T,
}

/// The scalars and tensors a D step leaves for the statistics.
pub struct DOut<T> {
    /// D's scores [2N, 1]: the real images', then the fake ones'.
    pub scores: T,
    pub grad_sumsq: T,
}

impl<T: Clone> Model<T> {
    /// A model with the given weights (usually N(0,1), see `trainer`), zero biases, gradients and
    /// moments, and the EMA generator equal to G.
    pub fn new<B: Backend<T = T>>(
        bk: &B,
        cfg: &NetConfig,
        mut weights: impl FnMut(&[usize]) -> Result<T>,
    ) -> Result<Model<T>> {
        let model = Model::zeros(bk, cfg)?;
        for n in [&model.g, &model.d] {
            for (l, w) in n.layers.iter().zip(&n.params.w) {
                bk.axpy(1.0, &weights(&l.weight_shape())?, w)?;
            }
        }
        bk.axpy(1.0, &model.g.params.all, &model.g_ema.all)?;
        Ok(model)
    }

    /// A model whose every tensor is zero: what a checkpoint is loaded into.
    pub fn zeros<B: Backend<T = T>>(bk: &B, cfg: &NetConfig) -> Result<Model<T>> {
        cfg.validate()?;
        let g_layers = arch::generator(cfg);
        Ok(Model {
            g_ema: Params::zeros(bk, &g_layers)?,
            g: Network::zeros(bk, g_layers)?,
            d: Network::zeros(bk, arch::discriminator(cfg))?,
            cfg: cfg.clone(),
        })
    }

    pub fn g_net<'a, B: Backend<T = T>>(&'a self, bk: &'a B) -> Net<'a, B> {
        self.g.net(bk, &self.cfg)
    }

    pub fn d_net<'a, B: Backend<T = T>>(&'a self, bk: &'a B) -> Net<'a, B> {
        self.d.net(bk, &self.cfg)
    }

    /// Forgets Adam's moments: at each change of level of detail (Karras et al. 2018, section 2;
    /// official `train.py`, `reset_opt_for_new_lod`).
    pub fn reset_adam<B: Backend<T = T>>(&mut self, bk: &B) -> Result<()> {
        for n in [&mut self.g, &mut self.d] {
            bk.fill(&n.adam.m.all, 0.0)?;
            bk.fill(&n.adam.v.all, 0.0)?;
            n.adam.t = 0;
        }
        Ok(())
    }
}

/// Refuses a batch the minibatch-stddev groups cannot split, naming the setting.
pub fn check_batch(batch: usize) -> Result<()> {
    if batch == 0 {
        bail!("the minibatch must hold at least one image");
    }
    mbstd::group_size(batch)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("minibatch {batch}: {e:#}"))
}

fn ones<B: Backend>(bk: &B, n: usize) -> Result<B::T> {
    let t = bk.scratch(&[n, 1])?;
    bk.fill(&t, 1.0)?;
    Ok(t)
}

/// D's gradient of L_D (WGAN terms, exact penalty, drift) into `model.d.grad`; no update.
pub fn d_gradients<B: Backend>(
    bk: &B,
    model: &Model<B::T>,
    inputs: &StepInputs<B::T>,
    level: usize,
    alpha: f32,
    sc: &StepConfig,
) -> Result<DOut<B::T>> {
    let (g, d) = (model.g_net(bk), model.d_net(bk));
    let n = bk.shape(&inputs.reals)[0];
    let fake = g.g_forward(&inputs.z_d, level, alpha)?.images;

    // WGAN terms and drift, E[D(fake)] - E[D(real)] + drift E[D(real)^2], from one run of D on the
    // real and fake images stacked as two minibatches: half the launches of two runs, twice the
    // columns per matrix product, and the same scores (the minibatch stddev groups each on its own).
    let mut stacked = bk.shape(&inputs.reals).to_vec();
    stacked[0] *= 2;
    let both = bk.scratch(&stacked)?;
    bk.concat(&inputs.reals, &fake, &both)?;
    // Here, beside the copies, the clear costs no extra compute pass.
    bk.fill(&model.d.grad.all, 0.0)?;
    let run = d.d_forward(&both, level, alpha, 2)?;
    let d_scores = bk.scratch(&[2 * n, 1])?;
    bk.d_score_grads(&run.score.p, &d_scores, sc.drift)?;
    d.d_backward(
        &run,
        Adjoint::of_primal(d_scores),
        Some(&model.d.grad),
        InputAdjoint::Unwanted,
    )?;

    // The penalty: g_b = d(sum D(xhat))/d(xhat_b), from one backward pass to the input.
    let xhat = bk.scratch(bk.shape(&inputs.reals))?;
    bk.gp_mix(&inputs.reals, &fake, &inputs.mix, &xhat)?;
    let mix_run = d.d_forward(&xhat, level, alpha, 1)?;
    let grad = d
        .d_backward(&mix_run, Adjoint::of_primal(ones(bk, n)?), None, InputAdjoint::Wanted)?
        .primal
        .expect("input adjoint");
    let sumsq = bk.scratch(&[n])?;
    bk.sum_squares(&grad, &sumsq)?;
    // Its exact weight gradient: d/dtheta <g(theta), u> with u_b = c_b g_b / ||g_b|| held constant,
    // the reverse of D's forward-mode run at xhat along u (the tangents added to mix_run).
    let u = bk.scratch(bk.shape(&grad))?;
    bk.gp_tangent(&grad, &sumsq, &u, sc.lambda, sc.gamma)?;
    let tangent_run = d.d_tangent(&mix_run, &u)?;
    d.d_backward(
        &tangent_run,
        Adjoint::of_tangent(ones(bk, n)?),
        Some(&model.d.grad),
        InputAdjoint::Unwanted,
    )?;
    Ok(DOut {
        scores: run.score.p,
        grad_sumsq: sumsq,
    })
}

/// G's gradient of L_G = -E[D(G(z))] into `model.g.grad`; returns the scores D gave the fakes.
pub fn g_gradients<B: Backend>(bk: &B, model: &Model<B::T>, z: &B::T, level: usize, alpha: f32) -> Result<B::T> {
    bk.fill(&model.g.grad.all, 0.0)?;
    let (g, d) = (model.g_net(bk), model.d_net(bk));
    let run = g.g_forward(z, level, alpha)?;
    let d_run = d.d_forward(&run.images, level, alpha, 1)?;
    let d_fake = bk.scratch(bk.shape(&d_run.score.p))?;
    bk.g_score_grad(&d_fake)?;
    let d_images = d
        .d_backward(&d_run, Adjoint::of_primal(d_fake), None, InputAdjoint::Wanted)?
        .primal
        .expect("input adjoint");
    g.g_backward(&run, &d_images, &model.g.grad)?;
    Ok(d_run.score.p)
}

/// One full step; `stats` [`crate::ops::loss::STATS`] receives [L_D, L_G, penalty, drift term, Wasserstein estimate].
/// Nothing is read back.
pub fn step<B: Backend>(
    bk: &B,
    model: &mut Model<B::T>,
    inputs: &StepInputs<B::T>,
    level: usize,
    alpha: f32,
    sc: &StepConfig,
    stats: &B::T,
) -> Result<()> {
    step_synced(bk, model, inputs, level, alpha, sc, stats, &mut |_, _, _| Ok(()))
}

/// What [`step_synced`] calls with each network's gradient.
pub type SyncHook<'a, B> = dyn FnMut(&B, &<B as Backend>::T, Grad) -> Result<()> + 'a;

/// Which network's gradient a [`step_synced`] hook is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    D,
    G,
}

/// [`step`], calling `sync` with each network's gradient (its active layers, one tensor) between
/// its backward pass and its Adam update: a data-parallel run replaces it there by its mean over
/// the processes (`train::dist`). D's comes first; G's step reads D after D's update.
#[allow(clippy::too_many_arguments)]
pub fn step_synced<B: Backend>(
    bk: &B,
    model: &mut Model<B::T>,
    inputs: &StepInputs<B::T>,
    level: usize,
    alpha: f32,
    sc: &StepConfig,
    stats: &B::T,
    sync: &mut SyncHook<B>,
) -> Result<()> {
    let (g_layers, d_layers) = arch::layers_in_use(level);
    let dout = d_gradients(bk, model, inputs, level, alpha, sc)?;
    sync(bk, &model.d.grad.first_layers(bk, d_layers)?, Grad::D)?;
    model.d.adam_update(bk, d_layers, sc.adam)?;
    // The EMA follows G as it was before this step's G update: the official loop updates it together
    // with the D step.
    bk.ema(
        &model.g_ema.first_layers(bk, g_layers)?,
        &model.g.params.first_layers(bk, g_layers)?,
        sc.ema_beta,
    )?;
    let g_scores = g_gradients(bk, model, &inputs.z_g, level, alpha)?;
    sync(bk, &model.g.grad.first_layers(bk, g_layers)?, Grad::G)?;
    model.g.adam_update(bk, g_layers, sc.adam)?;
    bk.loss_stats(
        &dout.scores,
        &dout.grad_sumsq,
        &g_scores,
        stats,
        sc.lambda,
        sc.gamma,
        sc.drift,
    )
}
