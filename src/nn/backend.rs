//! The ops the networks and the training step are written against, implemented twice: on the GPU
//! (the WGSL kernels) and on the CPU in f64 (each op's reference). The network code is written once,
//! so the CPU run is a reference of the whole step built from the kernels' references, and the GPU
//! run must agree with it.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::{ensure, Result};

use crate::gpu::{check_slice, Gpu, Tensor};
use crate::ops::precision::LayerPrecision;
use crate::ops::{act, adam, blas, conv, dense, ema, gp, lerp, loss, mbstd, pixelnorm, reduce, resample};

pub trait Backend {
    /// A tensor handle; cloning shares the storage.
    type T: Clone;
    fn zeros(&self, shape: &[usize]) -> Result<Self::T>;
    /// A tensor the next op writes in full before anything reads it (the output of every op but those
    /// that add to theirs). On the GPU a reused buffer is not cleared, so it costs no command and
    /// does not end the compute pass; the reference fills it with NaN, so that reading it before it
    /// is written shows in every comparison.
    fn scratch(&self, shape: &[usize]) -> Result<Self::T>;
    fn shape<'a>(&self, t: &'a Self::T) -> &'a [usize];
    /// A tensor of `shape` sharing `t`'s storage from element `offset` on, a multiple of
    /// [`SLICE_ALIGN`](crate::gpu::SLICE_ALIGN): one network's parameters are slices of one tensor.
    fn slice(&self, t: &Self::T, offset: usize, shape: &[usize]) -> Result<Self::T>;

    fn conv(&self, x: &Self::T, w: &Self::T, y: &Self::T, gain: f32) -> Result<()>;
    /// `conv` then `act` in one pass: y = lrelu(conv(x, w) + bias, slope).
    fn conv_act(&self, x: &Self::T, w: &Self::T, bias: &Self::T, y: &Self::T, gain: f32, slope: f32) -> Result<()>;
    fn conv_backward_data(&self, dy: &Self::T, w: &Self::T, dx: &Self::T, gain: f32) -> Result<()>;
    /// Adds to dw.
    fn conv_backward_weight(&self, x: &Self::T, dy: &Self::T, dw: &Self::T, gain: f32) -> Result<()>;
    fn dense(&self, x: &Self::T, w: &Self::T, y: &Self::T, gain: f32) -> Result<()>;
    fn dense_backward_data(&self, dy: &Self::T, w: &Self::T, dx: &Self::T, gain: f32) -> Result<()>;
    /// Adds to dw.
    fn dense_backward_weight(&self, x: &Self::T, dy: &Self::T, dw: &Self::T, gain: f32) -> Result<()>;
    fn act(&self, x: &Self::T, bias: &Self::T, y: &Self::T, slope: f32) -> Result<()>;
    fn act_mask(&self, y: &Self::T, v: &Self::T, out: &Self::T, slope: f32) -> Result<()>;
    /// `act_mask`, then adds the per-channel sums of its output ([N, C, ...]) to db: the backward
    /// pass through a layer's activation and its bias gradient.
    fn act_mask_bias_grad(&self, y: &Self::T, v: &Self::T, out: &Self::T, db: &Self::T, slope: f32) -> Result<()>;
    fn upsample(&self, x: &Self::T, y: &Self::T) -> Result<()>;
    fn upsample_backward(&self, dy: &Self::T, dx: &Self::T) -> Result<()>;
    fn downsample(&self, x: &Self::T, y: &Self::T) -> Result<()>;
    fn downsample_backward(&self, dy: &Self::T, dx: &Self::T) -> Result<()>;
    fn pixelnorm(&self, x: &Self::T, y: &Self::T) -> Result<()>;
    fn pixelnorm_backward(&self, x: &Self::T, dy: &Self::T, dx: &Self::T) -> Result<()>;
    fn lerp(&self, a: &Self::T, b: &Self::T, out: &Self::T, alpha: f32) -> Result<()>;
    fn lerp_backward(&self, dout: &Self::T, da: &Self::T, db: &Self::T, alpha: f32) -> Result<()>;
    /// Minibatch stddev of x holding `batches` minibatches, each grouped on its own.
    fn mbstd(&self, x: &Self::T, y: &Self::T, batches: usize) -> Result<()>;
    fn mbstd_backward(&self, x: &Self::T, dy: &Self::T, dx: &Self::T, batches: usize) -> Result<()>;
    fn mbstd_jvp(&self, x: &Self::T, tx: &Self::T, ty: &Self::T, batches: usize) -> Result<()>;
    fn mbstd_jvp_backward(&self, x: &Self::T, tx: &Self::T, dty: &Self::T, dx2: &Self::T, batches: usize)
        -> Result<()>;
    fn fill(&self, x: &Self::T, value: f32) -> Result<()>;
    /// out = a's elements, then b's (D's batch of real and fake images).
    fn concat(&self, a: &Self::T, b: &Self::T, out: &Self::T) -> Result<()>;
    /// y += a x
    fn axpy(&self, a: f32, x: &Self::T, y: &Self::T) -> Result<()>;
    /// Per-sample sums of squares of x ([B, ...]) into out [B].
    fn sum_squares(&self, x: &Self::T, out: &Self::T) -> Result<()>;
    fn gp_mix(&self, real: &Self::T, fake: &Self::T, u: &Self::T, xhat: &Self::T) -> Result<()>;
    fn gp_tangent(&self, g: &Self::T, sumsq: &Self::T, t: &Self::T, lambda: f32, gamma: f32) -> Result<()>;
    /// The gradients of L_D's score terms, from the D step's scores [2N] (real, then fake).
    fn d_score_grads(&self, scores: &Self::T, d_scores: &Self::T, drift: f32) -> Result<()>;
    fn g_score_grad(&self, d_fake: &Self::T) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn loss_stats(
        &self,
        scores: &Self::T,
        sumsq: &Self::T,
        g_fake: &Self::T,
        stats: &Self::T,
        lambda: f32,
        gamma: f32,
        drift: f32,
    ) -> Result<()>;
    fn adam(&self, p: &Self::T, g: &Self::T, m: &Self::T, v: &Self::T, hp: adam::AdamParams, t: u32) -> Result<()>;
    fn ema(&self, avg: &Self::T, src: &Self::T, beta: f32) -> Result<()>;
}

/// The GPU as a [`Backend`]: its kernels, the layers' matrix products at the run's precision.
#[derive(Clone)]
pub struct GpuBackend<'a> {
    pub gpu: &'a Gpu,
    pub layers: LayerPrecision,
}

impl GpuBackend<'_> {
    pub fn new<'a>(gpu: &'a Gpu, layers: &LayerPrecision) -> GpuBackend<'a> {
        GpuBackend {
            gpu,
            layers: layers.clone(),
        }
    }

    /// Every layer in f32 (anything but a training run or a benchmark at another precision).
    pub fn f32(gpu: &Gpu) -> GpuBackend<'_> {
        GpuBackend {
            gpu,
            layers: LayerPrecision::F32,
        }
    }
}

impl Backend for GpuBackend<'_> {
    type T = Tensor;
    fn zeros(&self, shape: &[usize]) -> Result<Tensor> {
        Gpu::zeros(self.gpu, shape)
    }
    fn scratch(&self, shape: &[usize]) -> Result<Tensor> {
        Gpu::scratch(self.gpu, shape)
    }
    fn shape<'a>(&self, t: &'a Tensor) -> &'a [usize] {
        &t.shape
    }
    fn slice(&self, t: &Tensor, offset: usize, shape: &[usize]) -> Result<Tensor> {
        Gpu::slice(self.gpu, t, offset, shape)
    }
    fn conv(&self, x: &Tensor, w: &Tensor, y: &Tensor, gain: f32) -> Result<()> {
        conv::forward(self.gpu, self.layers.conv, x, w, y, gain)
    }
    fn conv_act(&self, x: &Tensor, w: &Tensor, bias: &Tensor, y: &Tensor, gain: f32, slope: f32) -> Result<()> {
        conv::forward_act(self.gpu, self.layers.conv, x, w, bias, y, gain, slope)
    }
    fn conv_backward_data(&self, dy: &Tensor, w: &Tensor, dx: &Tensor, gain: f32) -> Result<()> {
        conv::backward_data(self.gpu, self.layers.conv, dy, w, dx, gain)
    }
    fn conv_backward_weight(&self, x: &Tensor, dy: &Tensor, dw: &Tensor, gain: f32) -> Result<()> {
        conv::backward_weight(self.gpu, self.layers.conv, x, dy, dw, gain, true)
    }
    fn dense(&self, x: &Tensor, w: &Tensor, y: &Tensor, gain: f32) -> Result<()> {
        dense::forward(self.gpu, self.layers.precision, x, w, y, gain)
    }
    fn dense_backward_data(&self, dy: &Tensor, w: &Tensor, dx: &Tensor, gain: f32) -> Result<()> {
        dense::backward_data(self.gpu, self.layers.precision, dy, w, dx, gain)
    }
    fn dense_backward_weight(&self, x: &Tensor, dy: &Tensor, dw: &Tensor, gain: f32) -> Result<()> {
        dense::backward_weight(self.gpu, self.layers.precision, x, dy, dw, gain, true)
    }
    fn act(&self, x: &Tensor, bias: &Tensor, y: &Tensor, slope: f32) -> Result<()> {
        act::forward(self.gpu, x, bias, y, slope)
    }
    fn act_mask(&self, y: &Tensor, v: &Tensor, out: &Tensor, slope: f32) -> Result<()> {
        act::mask(self.gpu, y, v, out, slope)
    }
    fn act_mask_bias_grad(&self, y: &Tensor, v: &Tensor, out: &Tensor, db: &Tensor, slope: f32) -> Result<()> {
        act::mask_bias_grad(self.gpu, y, v, out, db, slope)
    }
    fn upsample(&self, x: &Tensor, y: &Tensor) -> Result<()> {
        resample::upsample(self.gpu, x, y)
    }
    fn upsample_backward(&self, dy: &Tensor, dx: &Tensor) -> Result<()> {
        resample::upsample_backward(self.gpu, dy, dx)
    }
    fn downsample(&self, x: &Tensor, y: &Tensor) -> Result<()> {
        resample::downsample(self.gpu, x, y)
    }
    fn downsample_backward(&self, dy: &Tensor, dx: &Tensor) -> Result<()> {
        resample::downsample_backward(self.gpu, dy, dx)
    }
    fn pixelnorm(&self, x: &Tensor, y: &Tensor) -> Result<()> {
        pixelnorm::forward(self.gpu, x, y)
    }
    fn pixelnorm_backward(&self, x: &Tensor, dy: &Tensor, dx: &Tensor) -> Result<()> {
        pixelnorm::backward(self.gpu, x, dy, dx)
    }
    fn lerp(&self, a: &Tensor, b: &Tensor, out: &Tensor, alpha: f32) -> Result<()> {
        lerp::forward(self.gpu, a, b, out, alpha)
    }
    fn lerp_backward(&self, dout: &Tensor, da: &Tensor, db: &Tensor, alpha: f32) -> Result<()> {
        lerp::backward(self.gpu, dout, da, db, alpha)
    }
    fn mbstd(&self, x: &Tensor, y: &Tensor, batches: usize) -> Result<()> {
        mbstd::forward(self.gpu, x, y, batches)
    }
    fn mbstd_backward(&self, x: &Tensor, dy: &Tensor, dx: &Tensor, batches: usize) -> Result<()> {
        mbstd::backward(self.gpu, x, dy, dx, batches)
    }
    fn mbstd_jvp(&self, x: &Tensor, tx: &Tensor, ty: &Tensor, batches: usize) -> Result<()> {
        mbstd::jvp(self.gpu, x, tx, ty, batches)
    }
    fn mbstd_jvp_backward(&self, x: &Tensor, tx: &Tensor, dty: &Tensor, dx2: &Tensor, batches: usize) -> Result<()> {
        mbstd::jvp_backward(self.gpu, x, tx, dty, dx2, batches)
    }
    fn fill(&self, x: &Tensor, value: f32) -> Result<()> {
        blas::fill(self.gpu, x, value)
    }
    fn concat(&self, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
        self.gpu.copy_into(&[a, b], out)
    }
    fn axpy(&self, a: f32, x: &Tensor, y: &Tensor) -> Result<()> {
        blas::axpy(self.gpu, a, x, y)
    }
    fn sum_squares(&self, x: &Tensor, out: &Tensor) -> Result<()> {
        reduce::sum(
            self.gpu,
            x,
            reduce::View::per_sample(&x.shape),
            reduce::Term::Square,
            false,
            out,
        )
    }
    fn gp_mix(&self, real: &Tensor, fake: &Tensor, u: &Tensor, xhat: &Tensor) -> Result<()> {
        gp::mix(self.gpu, real, fake, u, xhat)
    }
    fn gp_tangent(&self, g: &Tensor, sumsq: &Tensor, t: &Tensor, lambda: f32, gamma: f32) -> Result<()> {
        gp::tangent(self.gpu, g, sumsq, t, lambda, gamma)
    }
    fn d_score_grads(&self, scores: &Tensor, d_scores: &Tensor, drift: f32) -> Result<()> {
        loss::d_score_grads(self.gpu, scores, d_scores, drift)
    }
    fn g_score_grad(&self, d_fake: &Tensor) -> Result<()> {
        loss::g_score_grad(self.gpu, d_fake)
    }
    fn loss_stats(
        &self,
        scores: &Tensor,
        sumsq: &Tensor,
        g_fake: &Tensor,
        stats: &Tensor,
        lambda: f32,
        gamma: f32,
        drift: f32,
    ) -> Result<()> {
        loss::stats(self.gpu, scores, sumsq, g_fake, stats, lambda, gamma, drift)
    }
    fn adam(&self, p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, hp: adam::AdamParams, t: u32) -> Result<()> {
        adam::step(self.gpu, p, g, m, v, hp, t)
    }
    fn ema(&self, avg: &Tensor, src: &Tensor, beta: f32) -> Result<()> {
        ema::update(self.gpu, avg, src, beta)
    }
}

/// A CPU tensor in f64: elements `offset..offset + len` of shared data (cloning shares them, like a
/// GPU buffer; a [`Backend::slice`] shares them at another offset).
#[derive(Clone, Debug)]
pub struct CpuTensor {
    pub shape: Vec<usize>,
    offset: usize,
    data: Rc<RefCell<Vec<f64>>>,
}

impl CpuTensor {
    pub fn new(data: Vec<f64>, shape: &[usize]) -> CpuTensor {
        CpuTensor {
            shape: shape.to_vec(),
            offset: 0,
            data: Rc::new(RefCell::new(data)),
        }
    }
    fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.shape.iter().product::<usize>()
    }
    pub fn get(&self) -> Vec<f64> {
        self.data.borrow()[self.range()].to_vec()
    }
    /// Sets element `k` (finite-difference tests perturb single parameters).
    pub fn set_at(&self, k: usize, value: f64) {
        let i = self.range().start + k;
        assert!(
            i < self.range().end,
            "cpu: element {k} of a tensor of shape {:?}",
            self.shape
        );
        self.data.borrow_mut()[i] = value;
    }
    fn set(&self, v: Vec<f64>) -> Result<()> {
        ensure!(
            v.len() == self.range().len(),
            "cpu: {} values into a tensor of shape {:?}",
            v.len(),
            self.shape
        );
        self.data.borrow_mut()[self.range()].copy_from_slice(&v);
        Ok(())
    }
    fn add(&self, v: Vec<f64>) -> Result<()> {
        ensure!(
            v.len() == self.range().len(),
            "cpu: adding {} values to a tensor of shape {:?}",
            v.len(),
            self.shape
        );
        let mut d = self.data.borrow_mut();
        d[self.range()].iter_mut().zip(v).for_each(|(a, b)| *a += b);
        Ok(())
    }
    fn n(&self) -> usize {
        self.shape[0]
    }
    fn hw(&self) -> usize {
        self.shape[2..].iter().product()
    }
}

/// The f64 reference backend: every op is the kernel's CPU reference.
pub struct Cpu;

fn conv_shape(x: &CpuTensor, w: &CpuTensor) -> conv::ConvShape {
    conv::ConvShape {
        n: x.shape[0],
        cin: w.shape[1],
        cout: w.shape[0],
        h: x.shape[2],
        w: x.shape[3],
        k: w.shape[2],
    }
}

fn dense_shape(x: &CpuTensor, w: &CpuTensor) -> dense::DenseShape {
    dense::DenseShape {
        n: x.shape[0],
        inputs: w.shape[1],
        outputs: w.shape[0],
    }
}

/// (N*C, H, W, factor) of a resampling between a small [N, C, h, w] and a big [N, C, h*f, w*f] tensor.
fn resample_dims(small: &CpuTensor, big: &CpuTensor) -> (usize, usize, usize, usize) {
    (
        small.shape[0] * small.shape[1],
        small.shape[2],
        small.shape[3],
        big.shape[2] / small.shape[2],
    )
}

impl Backend for Cpu {
    type T = CpuTensor;
    fn zeros(&self, shape: &[usize]) -> Result<CpuTensor> {
        Ok(CpuTensor::new(vec![0.0; shape.iter().product()], shape))
    }
    fn scratch(&self, shape: &[usize]) -> Result<CpuTensor> {
        Ok(CpuTensor::new(vec![f64::NAN; shape.iter().product()], shape))
    }
    fn shape<'a>(&self, t: &'a CpuTensor) -> &'a [usize] {
        &t.shape
    }
    fn slice(&self, t: &CpuTensor, offset: usize, shape: &[usize]) -> Result<CpuTensor> {
        check_slice(&t.shape, offset, shape)?;
        Ok(CpuTensor {
            shape: shape.to_vec(),
            offset: t.offset + offset,
            data: t.data.clone(),
        })
    }
    fn conv(&self, x: &CpuTensor, w: &CpuTensor, y: &CpuTensor, gain: f32) -> Result<()> {
        y.set(conv::forward_ref(&x.get(), &w.get(), conv_shape(x, w), gain as f64))
    }
    fn conv_act(
        &self,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: &CpuTensor,
        y: &CpuTensor,
        gain: f32,
        slope: f32,
    ) -> Result<()> {
        y.set(conv::forward_act_ref(
            &x.get(),
            &w.get(),
            &bias.get(),
            conv_shape(x, w),
            gain as f64,
            slope as f64,
        ))
    }
    fn conv_backward_data(&self, dy: &CpuTensor, w: &CpuTensor, dx: &CpuTensor, gain: f32) -> Result<()> {
        dx.set(conv::backward_data_ref(
            &dy.get(),
            &w.get(),
            conv_shape(dx, w),
            gain as f64,
        ))
    }
    fn conv_backward_weight(&self, x: &CpuTensor, dy: &CpuTensor, dw: &CpuTensor, gain: f32) -> Result<()> {
        dw.add(conv::backward_weight_ref(
            &x.get(),
            &dy.get(),
            conv_shape(x, dw),
            gain as f64,
        ))
    }
    fn dense(&self, x: &CpuTensor, w: &CpuTensor, y: &CpuTensor, gain: f32) -> Result<()> {
        y.set(dense::forward_ref(&x.get(), &w.get(), dense_shape(x, w), gain as f64))
    }
    fn dense_backward_data(&self, dy: &CpuTensor, w: &CpuTensor, dx: &CpuTensor, gain: f32) -> Result<()> {
        dx.set(dense::backward_data_ref(
            &dy.get(),
            &w.get(),
            dense_shape(dx, w),
            gain as f64,
        ))
    }
    fn dense_backward_weight(&self, x: &CpuTensor, dy: &CpuTensor, dw: &CpuTensor, gain: f32) -> Result<()> {
        dw.add(dense::backward_weight_ref(
            &x.get(),
            &dy.get(),
            dense_shape(x, dw),
            gain as f64,
        ))
    }
    fn act(&self, x: &CpuTensor, bias: &CpuTensor, y: &CpuTensor, slope: f32) -> Result<()> {
        y.set(act::forward_ref(&x.get(), &bias.get(), x.hw(), slope as f64))
    }
    fn act_mask(&self, y: &CpuTensor, v: &CpuTensor, out: &CpuTensor, slope: f32) -> Result<()> {
        out.set(act::mask_ref(&y.get(), &v.get(), slope as f64))
    }
    fn act_mask_bias_grad(
        &self,
        y: &CpuTensor,
        v: &CpuTensor,
        out: &CpuTensor,
        db: &CpuTensor,
        slope: f32,
    ) -> Result<()> {
        let (masked, sums) = act::mask_bias_grad_ref(&y.get(), &v.get(), &db.get(), &y.shape, slope as f64);
        out.set(masked)?;
        db.set(sums)
    }
    fn upsample(&self, x: &CpuTensor, y: &CpuTensor) -> Result<()> {
        let (nc, h, w, f) = resample_dims(x, y);
        y.set(resample::upsample_ref(&x.get(), nc, h, w, f))
    }
    fn upsample_backward(&self, dy: &CpuTensor, dx: &CpuTensor) -> Result<()> {
        let (nc, h, w, f) = resample_dims(dx, dy);
        dx.set(resample::upsample_backward_ref(&dy.get(), nc, h, w, f))
    }
    fn downsample(&self, x: &CpuTensor, y: &CpuTensor) -> Result<()> {
        let (nc, _, _, f) = resample_dims(y, x);
        y.set(resample::downsample_ref(&x.get(), nc, x.shape[2], x.shape[3], f))
    }
    fn downsample_backward(&self, dy: &CpuTensor, dx: &CpuTensor) -> Result<()> {
        let (nc, _, _, f) = resample_dims(dy, dx);
        dx.set(resample::downsample_backward_ref(
            &dy.get(),
            nc,
            dx.shape[2],
            dx.shape[3],
            f,
        ))
    }
    fn pixelnorm(&self, x: &CpuTensor, y: &CpuTensor) -> Result<()> {
        y.set(pixelnorm::forward_ref(&x.get(), x.n(), x.shape[1], x.hw()))
    }
    fn pixelnorm_backward(&self, x: &CpuTensor, dy: &CpuTensor, dx: &CpuTensor) -> Result<()> {
        dx.set(pixelnorm::backward_ref(&x.get(), &dy.get(), x.n(), x.shape[1], x.hw()))
    }
    fn lerp(&self, a: &CpuTensor, b: &CpuTensor, out: &CpuTensor, alpha: f32) -> Result<()> {
        out.set(lerp::forward_ref(&a.get(), &b.get(), alpha as f64))
    }
    fn lerp_backward(&self, dout: &CpuTensor, da: &CpuTensor, db: &CpuTensor, alpha: f32) -> Result<()> {
        let (a, b) = lerp::backward_ref(&dout.get(), alpha as f64);
        da.set(a)?;
        db.set(b)
    }
    fn mbstd(&self, x: &CpuTensor, y: &CpuTensor, batches: usize) -> Result<()> {
        y.set(mbstd::forward_ref(&x.get(), x.n(), x.shape[1], x.hw(), batches))
    }
    fn mbstd_backward(&self, x: &CpuTensor, dy: &CpuTensor, dx: &CpuTensor, batches: usize) -> Result<()> {
        dx.set(mbstd::backward_ref(
            &x.get(),
            &dy.get(),
            x.n(),
            x.shape[1],
            x.hw(),
            batches,
        ))
    }
    fn mbstd_jvp(&self, x: &CpuTensor, tx: &CpuTensor, ty: &CpuTensor, batches: usize) -> Result<()> {
        ty.set(mbstd::jvp_ref(&x.get(), &tx.get(), x.n(), x.shape[1], x.hw(), batches))
    }
    fn mbstd_jvp_backward(
        &self,
        x: &CpuTensor,
        tx: &CpuTensor,
        dty: &CpuTensor,
        dx2: &CpuTensor,
        batches: usize,
    ) -> Result<()> {
        dx2.set(mbstd::jvp_backward_ref(
            &x.get(),
            &tx.get(),
            &dty.get(),
            x.n(),
            x.shape[1],
            x.hw(),
            batches,
        ))
    }
    fn fill(&self, x: &CpuTensor, value: f32) -> Result<()> {
        x.data.borrow_mut()[x.range()].fill(value as f64);
        Ok(())
    }
    fn concat(&self, a: &CpuTensor, b: &CpuTensor, out: &CpuTensor) -> Result<()> {
        out.set([a.get(), b.get()].concat())
    }
    fn axpy(&self, a: f32, x: &CpuTensor, y: &CpuTensor) -> Result<()> {
        y.add(x.get().iter().map(|v| a as f64 * v).collect())
    }
    fn sum_squares(&self, x: &CpuTensor, out: &CpuTensor) -> Result<()> {
        out.set(reduce::sum_ref(
            &x.get(),
            reduce::View::per_sample(&x.shape),
            reduce::Term::Square,
        ))
    }
    fn gp_mix(&self, real: &CpuTensor, fake: &CpuTensor, u: &CpuTensor, xhat: &CpuTensor) -> Result<()> {
        xhat.set(gp::mix_ref(&real.get(), &fake.get(), &u.get(), real.n()))
    }
    fn gp_tangent(&self, g: &CpuTensor, _sumsq: &CpuTensor, t: &CpuTensor, lambda: f32, gamma: f32) -> Result<()> {
        t.set(gp::tangent_ref(&g.get(), g.n(), lambda as f64, gamma as f64))
    }
    fn d_score_grads(&self, scores: &CpuTensor, d_scores: &CpuTensor, drift: f32) -> Result<()> {
        d_scores.set(loss::d_score_grads_ref(&scores.get(), drift as f64))
    }
    fn g_score_grad(&self, d_fake: &CpuTensor) -> Result<()> {
        d_fake.set(loss::g_score_grad_ref(d_fake.n()))
    }
    fn loss_stats(
        &self,
        scores: &CpuTensor,
        sumsq: &CpuTensor,
        g_fake: &CpuTensor,
        stats: &CpuTensor,
        lambda: f32,
        gamma: f32,
        drift: f32,
    ) -> Result<()> {
        let s = loss::stats_ref(
            &scores.get(),
            &sumsq.get(),
            &g_fake.get(),
            lambda as f64,
            gamma as f64,
            drift as f64,
        );
        stats.set(s.to_vec())
    }
    fn adam(
        &self,
        p: &CpuTensor,
        g: &CpuTensor,
        m: &CpuTensor,
        v: &CpuTensor,
        hp: adam::AdamParams,
        t: u32,
    ) -> Result<()> {
        let (mut pd, mut md, mut vd) = (p.get(), m.get(), v.get());
        adam::step_ref(&mut pd, &g.get(), &mut md, &mut vd, hp, t);
        p.set(pd)?;
        m.set(md)?;
        v.set(vd)
    }
    fn ema(&self, avg: &CpuTensor, src: &CpuTensor, beta: f32) -> Result<()> {
        let mut a = avg.get();
        ema::update_ref(&mut a, &src.get(), beta as f64);
        avg.set(a)
    }
}
