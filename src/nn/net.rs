//! G and D forward and backward, written once against [`Backend`] (GPU kernels or f64 references).
//!
//! D also runs in forward mode: [`Net::d_tangent`] adds to a run the tangent of every value along an
//! input direction, so every value is a [`Stream`] of a primal and an optional tangent. Linear ops
//! apply themselves to the tangent (without bias), the leaky ReLU multiplies it by its slope mask, and
//! minibatch stddev uses its JVP; the primal values are the run's own, not computed again. Backward
//! through such a run takes adjoints of both streams (DESIGN.md: the exact gradient penalty).

use anyhow::{Context, Result};

use super::arch::{d_fromrgb, g_block, g_torgb, Kind, Layer, D_CONV, D_DENSE0, D_DENSE1};
use super::backend::Backend;
use super::config::{res_of, NetConfig};
use crate::gpu::SLICE_ALIGN;

/// One network's weights and biases (or their gradients, or Adam moments), layer by layer: slices of
/// one tensor, `all`, each starting at a multiple of [`SLICE_ALIGN`] elements (the gaps between them
/// stay zero). Layers are stored by level, so the layers in use at a level are a prefix of `all`, and
/// Adam, the EMA and the gradients' clear each cover them in one launch or command.
pub struct Params<T> {
    pub all: T,
    pub w: Vec<T>,
    pub b: Vec<T>,
    /// Where each layer's bias ends in `all`: layers 0..n span its first `ends[n - 1]` elements.
    ends: Vec<usize>,
}

impl<T: Clone> Params<T> {
    pub fn zeros<B: Backend<T = T>>(bk: &B, layers: &[Layer]) -> Result<Params<T>> {
        let (mut spans, mut ends, mut end) = (Vec::new(), Vec::new(), 0usize);
        for l in layers {
            let w = end.next_multiple_of(SLICE_ALIGN);
            let b = (w + l.weight_shape().iter().product::<usize>()).next_multiple_of(SLICE_ALIGN);
            end = b + l.bias;
            spans.push((w, b));
            ends.push(end);
        }
        let whole = || "a network's parameters are kept in one buffer, which Adam binds whole";
        let all = bk.zeros(&[end]).with_context(whole)?;
        // Refused here rather than at the first step's Adam update.
        bk.slice(&all, 0, &[end]).with_context(whole)?;
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for (l, (wo, bo)) in layers.iter().zip(spans) {
            w.push(bk.slice(&all, wo, &l.weight_shape())?);
            b.push(bk.slice(&all, bo, &[l.bias])?);
        }
        Ok(Params { all, w, b, ends })
    }

    /// The part of `all` that holds layers 0..n (n >= 1).
    pub fn first_layers<B: Backend<T = T>>(&self, bk: &B, n: usize) -> Result<T> {
        bk.slice(&self.all, 0, &[self.ends[n - 1]])
    }

    /// Weights and biases in one list, layer by layer: the order of checkpoints.
    pub fn tensors(&self) -> impl Iterator<Item = &T> {
        self.w.iter().zip(&self.b).flat_map(|(w, b)| [w, b])
    }
}

/// A primal value and, in forward mode, its tangent.
#[derive(Clone)]
pub struct Stream<T> {
    pub p: T,
    pub t: Option<T>,
}

/// Adjoints of a stream's primal and tangent; `None` where they are known to be zero.
pub struct Adjoint<T> {
    pub primal: Option<T>,
    pub tangent: Option<T>,
}

impl<T> Adjoint<T> {
    /// The adjoint of a primal value alone: ordinary backpropagation.
    pub fn of_primal(d: T) -> Self {
        Adjoint {
            primal: Some(d),
            tangent: None,
        }
    }

    /// The adjoint of a tangent alone: the reverse of a forward-mode run.
    pub fn of_tangent(d: T) -> Self {
        Adjoint {
            primal: None,
            tangent: Some(d),
        }
    }
}

/// Whether a backward pass returns its input's adjoints, or only adds parameter gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputAdjoint {
    Wanted,
    Unwanted,
}

/// Adjoints of a fade-in blend's inputs: the previous level's path and the new one.
struct Blend<T> {
    old: Option<T>,
    new: Option<T>,
}

/// One layer application kept for the backward pass.
#[derive(Clone)]
pub struct Saved<T> {
    layer: usize,
    input: Stream<T>,
    /// The activated output.
    out: Stream<T>,
}

/// A network: its configuration, layers and parameters.
pub struct Net<'a, B: Backend> {
    pub bk: &'a B,
    pub cfg: &'a NetConfig,
    pub layers: &'a [Layer],
    pub params: &'a Params<B::T>,
}

impl<B: Backend> Net<'_, B> {
    /// An output of `t`'s shape, for an op to write in full.
    fn new_like(&self, t: &B::T) -> Result<B::T> {
        self.bk.scratch(self.bk.shape(t))
    }

    /// The shape of layer `l`'s product before its pool (D's `conv1_down`), given its output shape.
    fn unpooled(l: &Layer, out: &[usize]) -> Vec<usize> {
        match l.down {
            true => vec![out[0], out[1], out[2] * 2, out[3] * 2],
            false => out.to_vec(),
        }
    }

    /// Layer `l`'s linear part without bias, of output shape `out`: its product, then its pool.
    fn linear(&self, l: &Layer, x: &B::T, w: &B::T, out: &[usize]) -> Result<B::T> {
        let y = self.bk.scratch(&Self::unpooled(l, out))?;
        match l.kind {
            Kind::Conv { .. } => self.bk.conv(x, w, &y, l.gain)?,
            Kind::Dense => self.bk.dense(x, w, &y, l.gain)?,
        }
        match l.down {
            true => self.downsample(&y),
            false => Ok(y),
        }
    }

    /// Layer `i` (linear, bias, leaky ReLU), output of shape `out`. A convolution without a pool
    /// applies the bias and leaky ReLU as it stores its output (one pass over it).
    fn layer(&self, i: usize, input: &B::T, out: &[usize]) -> Result<Saved<B::T>> {
        let (l, w, b) = (&self.layers[i], &self.params.w[i], &self.params.b[i]);
        let y = self.bk.scratch(out)?;
        match (l.kind, l.down) {
            (Kind::Conv { .. }, false) => self.bk.conv_act(input, w, b, &y, l.gain, l.slope)?,
            _ => self.bk.act(&self.linear(l, input, w, out)?, b, &y, l.slope)?,
        }
        Ok(Saved {
            layer: i,
            input: Stream {
                p: input.clone(),
                t: None,
            },
            out: Stream { p: y, t: None },
        })
    }

    /// A saved layer application with its input's tangent `tx`: the linear op without bias on the
    /// tangent, then the slope mask of the saved activated output.
    fn layer_tangent(&self, s: &Saved<B::T>, tx: &B::T) -> Result<Saved<B::T>> {
        let l = &self.layers[s.layer];
        let ta = self.linear(l, tx, &self.params.w[s.layer], self.bk.shape(&s.out.p))?;
        let ty = self.new_like(&s.out.p)?;
        self.bk.act_mask(&s.out.p, &ta, &ty, l.slope)?;
        Ok(Saved {
            layer: s.layer,
            input: Stream {
                p: s.input.p.clone(),
                t: Some(tx.clone()),
            },
            out: Stream {
                p: s.out.p.clone(),
                t: Some(ty),
            },
        })
    }

    /// Back through one layer: adds its weight and bias gradients to `grads` (when given) and returns
    /// the adjoints of its input streams (when wanted). The slope mask is piecewise constant, so the
    /// tangent adjoint adds nothing to the primal one here.
    fn layer_back(
        &self,
        s: &Saved<B::T>,
        d: Adjoint<B::T>,
        grads: Option<&Params<B::T>>,
        input: InputAdjoint,
    ) -> Result<Adjoint<B::T>> {
        let (l, w) = (&self.layers[s.layer], &self.params.w[s.layer]);
        // `x` is the stream's input; only the primal stream has a bias.
        let back = |d: Option<B::T>, x: Option<&B::T>, primal: bool| -> Result<Option<B::T>> {
            let Some(d) = d else { return Ok(None) };
            let da = self.new_like(&d)?;
            match grads.filter(|_| primal) {
                Some(g) => self.bk.act_mask_bias_grad(&s.out.p, &d, &da, &g.b[s.layer], l.slope)?,
                None => self.bk.act_mask(&s.out.p, &d, &da, l.slope)?,
            }
            let da = match l.down {
                true => {
                    let full = self.bk.scratch(&Self::unpooled(l, self.bk.shape(&da)))?;
                    self.bk.downsample_backward(&da, &full)?;
                    full
                }
                false => da,
            };
            if let Some(g) = grads {
                let x = x.expect("a tangent adjoint comes only from a forward-mode run");
                match l.kind {
                    Kind::Conv { .. } => self.bk.conv_backward_weight(x, &da, &g.w[s.layer], l.gain)?,
                    Kind::Dense => self.bk.dense_backward_weight(x, &da, &g.w[s.layer], l.gain)?,
                }
            }
            if input == InputAdjoint::Unwanted {
                return Ok(None);
            }
            let dx = self.new_like(&s.input.p)?;
            match l.kind {
                Kind::Conv { .. } => self.bk.conv_backward_data(&da, w, &dx, l.gain)?,
                Kind::Dense => self.bk.dense_backward_data(&da, w, &dx, l.gain)?,
            }
            Ok(Some(dx))
        };
        // The bias enters the primal only; the weight gradient is primal_adjoint x primal + tangent_adjoint x tangent.
        Ok(Adjoint {
            primal: back(d.primal, Some(&s.input.p), true)?,
            tangent: back(d.tangent, s.input.t.as_ref(), false)?,
        })
    }

    /// `x` [N, C, R, R] downsampled to [N, C, R/2, R/2].
    fn downsample(&self, x: &B::T) -> Result<B::T> {
        let s = self.bk.shape(x);
        let y = self.bk.scratch(&[s[0], s[1], s[2] / 2, s[3] / 2])?;
        self.bk.downsample(x, &y)?;
        Ok(y)
    }

    /// A linear, parameter-free op's adjoint on both adjoints.
    fn map_adj(
        &self,
        d: Adjoint<B::T>,
        out: &[usize],
        f: impl Fn(&B::T, &B::T) -> Result<()>,
    ) -> Result<Adjoint<B::T>> {
        let apply = |v: B::T| -> Result<B::T> {
            let y = self.bk.scratch(out)?;
            f(&v, &y)?;
            Ok(y)
        };
        Ok(Adjoint {
            primal: d.primal.map(apply).transpose()?,
            tangent: d.tangent.map(apply).transpose()?,
        })
    }

    fn add(&self, a: Option<B::T>, b: Option<B::T>) -> Result<Option<B::T>> {
        Ok(match (a, b) {
            (Some(a), Some(b)) => {
                self.bk.axpy(1.0, &b, &a)?;
                Some(a)
            }
            (a, b) => a.or(b),
        })
    }
}

/// The tangent of a stream of a forward-mode run (`Net::d_tangent` sets every one).
fn tangent<T>(s: &Stream<T>) -> &T {
    s.t.as_ref().expect("a forward-mode run has every tangent")
}

/// Whether a network at `level` with fade-in `alpha` blends in the previous level.
pub fn fading(level: usize, alpha: f32) -> bool {
    level > 1 && alpha < 1.0
}

/// What G's forward pass keeps for its backward pass.
pub struct GRun<T> {
    /// The two layers of every level's block, in order.
    blocks: Vec<Saved<T>>,
    rgb: Saved<T>,
    /// The previous level's toRGB while fading in.
    rgb_old: Option<Saved<T>>,
    pub images: T,
    level: usize,
    alpha: f32,
}

impl<B: Backend> Net<'_, B> {
    /// G at `level` (resolution 4 * 2^(level-1)) with fade-in `alpha`: latents [N, latent] -> images.
    pub fn g_forward(&self, z: &B::T, level: usize, alpha: f32) -> Result<GRun<B::T>> {
        let (bk, n) = (self.bk, self.bk.shape(z)[0]);
        let mut h = self.new_like(z)?;
        bk.pixelnorm(z, &h)?;
        let (mut blocks, mut h_prev) = (Vec::new(), None);
        for lev in 1..=level {
            let (r, maps) = (res_of(lev), self.cfg.maps(lev));
            let mut input = h.clone();
            if lev > 1 {
                input = bk.scratch(&[n, self.cfg.maps(lev - 1), r, r])?;
                bk.upsample(&h, &input)?;
            }
            h_prev = Some(h);
            for j in 0..2 {
                let s = self.layer(g_block(lev) + j, &input, &[n, maps, r, r])?;
                input = self.new_like(&s.out.p)?;
                bk.pixelnorm(&s.out.p, &input)?;
                blocks.push(s);
            }
            h = input;
        }
        let (r, c) = (res_of(level), self.cfg.channels);
        let rgb = self.layer(g_torgb(level), &h, &[n, c, r, r])?;
        let (images, rgb_old) = if fading(level, alpha) {
            let old = self.layer(g_torgb(level - 1), &h_prev.unwrap(), &[n, c, r / 2, r / 2])?;
            let up = bk.scratch(&[n, c, r, r])?;
            bk.upsample(&old.out.p, &up)?;
            let images = bk.scratch(&[n, c, r, r])?;
            bk.lerp(&up, &rgb.out.p, &images, alpha)?;
            (images, Some(old))
        } else {
            (rgb.out.p.clone(), None)
        };
        Ok(GRun {
            blocks,
            rgb,
            rgb_old,
            images,
            level,
            alpha,
        })
    }

    /// Adds G's parameter gradients for the image adjoint `d_images` to `grads`.
    pub fn g_backward(&self, run: &GRun<B::T>, d_images: &B::T, grads: &Params<B::T>) -> Result<()> {
        let bk = self.bk;
        let (mut d_new, mut d_prev) = (d_images.clone(), None);
        if let Some(old) = &run.rgb_old {
            let (d_up, d_rgb) = (self.new_like(d_images)?, self.new_like(d_images)?);
            bk.lerp_backward(d_images, &d_up, &d_rgb, run.alpha)?;
            let d_old = self.new_like(&old.out.p)?;
            bk.upsample_backward(&d_up, &d_old)?;
            d_prev = self
                .layer_back(old, Adjoint::of_primal(d_old), Some(grads), InputAdjoint::Wanted)?
                .primal;
            d_new = d_rgb;
        }
        let mut dh = self
            .layer_back(&run.rgb, Adjoint::of_primal(d_new), Some(grads), InputAdjoint::Wanted)?
            .primal
            .expect("wanted");
        for lev in (1..=run.level).rev() {
            for j in (0..2).rev() {
                let s = &run.blocks[2 * (lev - 1) + j];
                let dy = self.new_like(&dh)?;
                bk.pixelnorm_backward(&s.out.p, &dh, &dy)?;
                // The latent's gradient is never needed.
                let input = match lev == 1 && j == 0 {
                    true => InputAdjoint::Unwanted,
                    false => InputAdjoint::Wanted,
                };
                match self.layer_back(s, Adjoint::of_primal(dy), Some(grads), input)?.primal {
                    Some(d) => dh = d,
                    None => return Ok(()),
                }
            }
            // dh is now the adjoint of the upsampled input of this level's block.
            let h_prev = bk.scratch(&[
                bk.shape(&dh)[0],
                self.cfg.maps(lev - 1),
                res_of(lev - 1),
                res_of(lev - 1),
            ])?;
            bk.upsample_backward(&dh, &h_prev)?;
            dh = self
                .add(Some(h_prev), if lev == run.level { d_prev.take() } else { None })?
                .unwrap();
        }
        Ok(())
    }
}

/// What D's forward pass keeps for its backward pass.
pub struct DRun<T> {
    input: Stream<T>,
    top: Saved<T>,
    /// Each level's two block layers, from the current level down to level 2.
    blocks: Vec<[Saved<T>; 2]>,
    /// The previous level's fromRGB on the downsampled input, while fading in.
    old: Option<Saved<T>>,
    mbstd_in: Stream<T>,
    /// The 4x4 conv, dense0, dense1.
    tail: [Saved<T>; 3],
    /// Scores [N, 1] (and their tangents in forward mode).
    pub score: Stream<T>,
    alpha: f32,
    /// The minibatches stacked in the input, for the minibatch stddev.
    batches: usize,
}

impl<B: Backend> Net<'_, B> {
    /// D at `level` with fade-in `alpha` on images [N, C, R, R] that stack `batches` minibatches
    /// (the D step runs the real and the fake images as one batch): every layer works per sample but
    /// the minibatch stddev, which groups each minibatch on its own, so the scores are those of
    /// separate runs.
    pub fn d_forward(&self, x: &B::T, level: usize, alpha: f32, batches: usize) -> Result<DRun<B::T>> {
        let (bk, cfg) = (self.bk, self.cfg);
        let n = bk.shape(x)[0];
        let r = res_of(level);
        let top = self.layer(d_fromrgb(level), x, &[n, cfg.maps(level), r, r])?;
        let (mut h, mut blocks, mut old) = (top.out.p.clone(), Vec::new(), None);
        for lev in (2..=level).rev() {
            let (r, first) = (res_of(lev), d_fromrgb(lev));
            let s0 = self.layer(first + 1, &h, &[n, cfg.maps(lev), r, r])?;
            let s1 = self.layer(first + 2, &s0.out.p, &[n, cfg.maps(lev - 1), r / 2, r / 2])?;
            h = s1.out.p.clone();
            if lev == level && fading(level, alpha) {
                let o = self.layer(d_fromrgb(lev - 1), &self.downsample(x)?, bk.shape(&h))?;
                h = self.blend(&o.out.p, &h, alpha)?;
                old = Some(o);
            }
            blocks.push([s0, s1]);
        }
        let m = bk.scratch(&[n, cfg.maps(1) + 1, 4, 4])?;
        bk.mbstd(&h, &m, batches)?;
        let conv = self.layer(D_CONV, &m, &[n, cfg.maps(1), 4, 4])?;
        let dense0 = self.layer(D_DENSE0, &conv.out.p, &[n, cfg.nf(0)])?;
        let dense1 = self.layer(D_DENSE1, &dense0.out.p, &[n, 1])?;
        let primal = |p: B::T| Stream { p, t: None };
        Ok(DRun {
            input: primal(x.clone()),
            top,
            blocks,
            old,
            mbstd_in: primal(h),
            score: dense1.out.clone(),
            tail: [conv, dense0, dense1],
            alpha,
            batches,
        })
    }

    /// `run` in forward mode along `u` (a tangent of its input images): the same primal values, now
    /// with the tangent of every value, computed in the order `d_forward` computed the primals.
    pub fn d_tangent(&self, run: &DRun<B::T>, u: &B::T) -> Result<DRun<B::T>> {
        let top = self.layer_tangent(&run.top, u)?;
        let (mut h, mut blocks, mut old) = (tangent(&top.out).clone(), Vec::new(), None);
        for (i, [s0, s1]) in run.blocks.iter().enumerate() {
            let s0 = self.layer_tangent(s0, &h)?;
            let s1 = self.layer_tangent(s1, tangent(&s0.out))?;
            h = tangent(&s1.out).clone();
            // Only the first block (the current level) may fade in.
            if let (0, Some(o)) = (i, &run.old) {
                let o = self.layer_tangent(o, &self.downsample(u)?)?;
                h = self.blend(tangent(&o.out), &h, run.alpha)?;
                old = Some(o);
            }
            blocks.push([s0, s1]);
        }
        let [conv, dense0, dense1] = &run.tail;
        let m = self.new_like(&conv.input.p)?;
        self.bk.mbstd_jvp(&run.mbstd_in.p, &h, &m, run.batches)?;
        let conv = self.layer_tangent(conv, &m)?;
        let dense0 = self.layer_tangent(dense0, tangent(&conv.out))?;
        let dense1 = self.layer_tangent(dense1, tangent(&dense0.out))?;
        Ok(DRun {
            input: Stream {
                p: run.input.p.clone(),
                t: Some(u.clone()),
            },
            top,
            blocks,
            old,
            mbstd_in: Stream {
                p: run.mbstd_in.p.clone(),
                t: Some(h),
            },
            score: dense1.out.clone(),
            tail: [conv, dense0, dense1],
            alpha: run.alpha,
            batches: run.batches,
        })
    }

    fn blend(&self, a: &B::T, b: &B::T, alpha: f32) -> Result<B::T> {
        let out = self.new_like(a)?;
        self.bk.lerp(a, b, &out, alpha)?;
        Ok(out)
    }

    /// Back through D from the adjoints of the scores' primal and tangent. Adds D's parameter
    /// gradients to `grads` when given; returns the input's adjoints when wanted.
    pub fn d_backward(
        &self,
        run: &DRun<B::T>,
        d_score: Adjoint<B::T>,
        grads: Option<&Params<B::T>>,
        input: InputAdjoint,
    ) -> Result<Adjoint<B::T>> {
        let bk = self.bk;
        let mut d = d_score;
        for s in run.tail.iter().rev() {
            d = self.layer_back(s, d, grads, InputAdjoint::Wanted)?;
        }
        // Minibatch stddev: the primal adjoint gets J^T dy plus, in forward mode, the second-order
        // term d<dty, J(x) tx>/dx; the tangent adjoint gets J^T dty.
        let h = &run.mbstd_in;
        let back = |dy: &B::T| -> Result<B::T> {
            let dx = self.new_like(&h.p)?;
            bk.mbstd_backward(&h.p, dy, &dx, run.batches)?;
            Ok(dx)
        };
        let second = match (&d.tangent, &h.t) {
            (Some(dty), Some(tx)) => {
                let dx2 = self.new_like(&h.p)?;
                bk.mbstd_jvp_backward(&h.p, tx, dty, &dx2, run.batches)?;
                Some(dx2)
            }
            _ => None,
        };
        let primal = d.primal.as_ref().map(back).transpose()?;
        d = Adjoint {
            primal: self.add(primal, second)?,
            tangent: d.tangent.as_ref().map(back).transpose()?,
        };

        // While fading in, the input also reached level - 1's fromRGB through a downsampling.
        let mut d_input_old = Adjoint {
            primal: None,
            tangent: None,
        };
        for (i, [s0, s1]) in run.blocks.iter().enumerate().rev() {
            if let (0, Some(old)) = (i, &run.old) {
                let (p, t) = (self.split(d.primal, run.alpha)?, self.split(d.tangent, run.alpha)?);
                let d_old = Adjoint {
                    primal: p.old,
                    tangent: t.old,
                };
                let d_small = self.layer_back(old, d_old, grads, input)?;
                let big = self.bk.shape(&run.input.p).to_vec();
                d_input_old = self.map_adj(d_small, &big, |a, b| bk.downsample_backward(a, b))?;
                d = Adjoint {
                    primal: p.new,
                    tangent: t.new,
                };
            }
            d = self.layer_back(s1, d, grads, InputAdjoint::Wanted)?;
            d = self.layer_back(s0, d, grads, InputAdjoint::Wanted)?;
        }
        let dx = self.layer_back(&run.top, d, grads, input)?;
        Ok(Adjoint {
            primal: self.add(dx.primal, d_input_old.primal)?,
            tangent: self.add(dx.tangent, d_input_old.tangent)?,
        })
    }

    /// The adjoints of a fade-in blend's two inputs from its output's adjoint.
    fn split(&self, d: Option<B::T>, alpha: f32) -> Result<Blend<B::T>> {
        let Some(d) = d else {
            return Ok(Blend { old: None, new: None });
        };
        let (d_old, d_new) = (self.new_like(&d)?, self.new_like(&d)?);
        self.bk.lerp_backward(&d, &d_old, &d_new, alpha)?;
        Ok(Blend {
            old: Some(d_old),
            new: Some(d_new),
        })
    }
}
