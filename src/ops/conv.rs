//! conv: 2-D convolution, stride 1, 'same' zero padding, K = 1 or 3, NCHW, with the
//! equalized-learning-rate scale `gain / sqrt(Cin*K*K)` applied inside the kernel and no bias
//! (`shaders/conv.wgsl`): forward, backward to the data, backward to the weights. Each pass is one
//! tiled implicit GEMM; see the shader for the mappings. The forward may also apply a layer's bias
//! and leaky ReLU as it stores its output (`forward_act`), saving act.wgsl's pass over the output.

use std::future::Future;
use std::pin::Pin;

use anyhow::{ensure, Result};

use crate::check::{compare, f64s, mixed_product_rows, Row, F32_UNIT_ROUNDOFF};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::ops::{act, reduce};
use crate::rng::Rng;

/// A kernel: the lines that declare its engine's types, the engine, then conv.wgsl.
macro_rules! conv_shader {
    ($name:literal, [$($types:tt)*], $engine:literal) => {
        Shader {
            name: $name,
            source: concat!(
                $($types)*,
                include_str!(concat!("../../shaders/", $engine)),
                include_str!("../../shaders/conv.wgsl")
            ),
        }
    };
}

/// The kernels: conv.wgsl (staging, storing) composed with an engine that multiplies the staged
/// slices (see the shader): conv_fma.wgsl with f32 slices, the f32 kernel; the same with f16 slices,
/// the mixed-precision kernel where the device has f16 arithmetic; conv_coop.wgsl, mixed precision
/// on cooperative matrices (tensor cores) of side 16 or 8.
pub const SHADER: Shader = conv_shader!("conv", ["alias Staged = f32;\n"], "conv_fma.wgsl");
pub const SHADER_F16: Shader = conv_shader!("conv+f16", ["enable f16;\nalias Staged = f16;\n"], "conv_fma.wgsl");
pub const SHADER_COOP_16: Shader = conv_shader!("conv+coop16", [crate::coop_prelude!(16)], "conv_coop.wgsl");
pub const SHADER_COOP_8: Shader = conv_shader!("conv+coop8", [crate::coop_prelude!(8)], "conv_coop.wgsl");

/// The kernel a pass runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// f32 throughout (`SHADER`).
    F32,
    /// f16 operands, f32 products and sums, in each invocation (`SHADER_F16`).
    F16,
    /// f16 operands, f32 accumulators, on cooperative matrices of side `n` in subgroups of `subgroup`
    /// invocations (`SHADER_COOP_16`, `SHADER_COOP_8`).
    Coop { n: usize, subgroup: usize },
}

impl Kernel {
    /// The kernel for a GEMM of `m` rows: the cooperative one only where m fills at least one row of
    /// blocks (a pass with fewer output rows, such as toRGB's 3, wastes less of an 8-row tile of the
    /// f16 kernel than of an N x N block), else this one.
    pub fn fit(self, m: usize) -> Kernel {
        match self {
            Kernel::Coop { n, .. } if m < n => Kernel::F16,
            kernel => kernel,
        }
    }

    /// The plan of a GEMM on this kernel: `plan` among the tiles it takes.
    pub fn plan(self, m: usize, ncol: usize, kdim: usize, tile: Option<Tile>) -> Plan {
        plan_among(&self.tiles(), m, ncol, kdim, tile)
    }

    /// Its shader's name: `conv`, `conv+f16`, `conv+coop16`, `conv+coop8`.
    pub fn name(self) -> &'static str {
        self.shader().name
    }

    fn shader(self) -> &'static Shader {
        match self {
            Kernel::F32 => &SHADER,
            Kernel::F16 => &SHADER_F16,
            Kernel::Coop { n: 16, .. } => &SHADER_COOP_16,
            Kernel::Coop { .. } => &SHADER_COOP_8,
        }
    }

    /// The tiles the kernel can take: all of `TILES`, or those that divide into N x N blocks shared
    /// evenly by their subgroups, up to 4 blocks each in one row of blocks, with each half of the
    /// rows whole blocks, within conv_coop.wgsl's workgroup memory.
    pub fn tiles(self) -> Vec<Tile> {
        let Kernel::Coop { n, subgroup } = self else {
            return TILES.to_vec();
        };
        TILES
            .into_iter()
            .filter(|t| {
                let (blocks, subgroups) = ((t.rows / n) * (t.cols / n), t.invocations() / subgroup);
                let per_subgroup = blocks / subgroups.max(1);
                [t.rows, t.cols, t.depth].iter().all(|d| d % n == 0)
                    && t.invocations() % subgroup == 0
                    && blocks % subgroups == 0
                    && (1..=4).contains(&per_subgroup)
                    && (t.cols / n) % per_subgroup == 0
                    && (t.rows / 2) % n == 0
                    && t.depth * (t.rows + 8) <= 1152
                    && t.depth * (t.cols + 8) <= 2176
                    && t.rows / 2 * (t.cols + 4) <= 2176
            })
            .collect()
    }
}

/// conv_coop.wgsl's workgroup memory: the f16 slices, half a tile of C in f32, and conv.wgsl's 64
/// biases of `forward_act`.
const COOP_WORKGROUP_BYTES: u32 = (1152 + 2176) * 2 + 2176 * 4 + 64 * 4;

/// The cooperative kernel of this device: an error saying what it lacks where it has none (f16
/// arithmetic and an f16 x f16 + f32 cooperative product, as `coop_gemm` needs; one subgroup size;
/// the workgroup memory; a tile that divides among the subgroups), or that the environment variable
/// PGGAN_MIXED_CONV=f16 turns it off (to compare the f16 kernel with it on one device).
pub fn coop(gpu: &Gpu) -> Result<Kernel> {
    if std::env::var("PGGAN_MIXED_CONV").is_ok_and(|v| v == "f16") {
        anyhow::bail!("conv coop: turned off by PGGAN_MIXED_CONV=f16");
    }
    let (n, _) = crate::ops::coop_gemm::available(gpu).map_err(|e| anyhow::anyhow!("conv coop: {e}"))?;
    let subgroup = gpu.precision.subgroup_size.ok_or_else(|| {
        anyhow::anyhow!(
            "conv coop needs one subgroup size; this device ({}) has {}..{}",
            gpu.describe(),
            gpu.info.subgroup_min_size,
            gpu.info.subgroup_max_size
        )
    })? as usize;
    let memory = gpu.limits.max_compute_workgroup_storage_size;
    ensure!(
        memory >= COOP_WORKGROUP_BYTES,
        "conv coop needs {COOP_WORKGROUP_BYTES} bytes of workgroup memory; this device ({}) has {memory}",
        gpu.describe()
    );
    let kernel = Kernel::Coop { n, subgroup };
    ensure!(
        !kernel.tiles().is_empty(),
        "conv coop: no tile divides into {n}x{n} blocks among subgroups of {subgroup} on this device ({})",
        gpu.describe()
    );
    Ok(kernel)
}

/// A tile shape of the shader's GEMM (its override constants): `rows` x `cols` outputs per workgroup
/// of rows * cols / 16 invocations, reduced in slices of `depth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub rows: usize,
    pub cols: usize,
    pub depth: usize,
}

impl Tile {
    /// One invocation per 4x4 block of outputs.
    pub fn invocations(&self) -> usize {
        self.rows * self.cols / 16
    }
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.rows, self.cols, self.depth)
    }
}

impl std::str::FromStr for Tile {
    type Err = anyhow::Error;

    /// "ROWSxCOLSxDEPTH", one of `TILES`.
    fn from_str(s: &str) -> Result<Tile> {
        TILES
            .into_iter()
            .find(|t| t.to_string() == s)
            .ok_or_else(|| anyhow::anyhow!("no tile {s}; the tiles are {}", TILES.map(|t| t.to_string()).join(", ")))
    }
}

const fn tile(rows: usize, cols: usize, depth: usize) -> Tile {
    Tile { rows, cols, depth }
}

/// The tile shapes: 256 invocations, then 64. An invocation stages at most 8 values each of A and B
/// per slice, and the staged slices, depth x (rows + cols) values, fit the shader's 10.5 KiB of
/// workgroup memory. (128x128 tiles of 8x8 blocks per invocation were no faster on an H100.)
pub const TILES: [Tile; 7] = [
    tile(64, 64, 16),
    tile(32, 128, 16),
    tile(16, 256, 8),
    tile(8, 512, 4),
    tile(32, 32, 16),
    tile(16, 64, 8),
    tile(8, 128, 4),
];

/// The cost, in products, of staging one value (an im2col load with its bounds checks and a store
/// to workgroup memory) relative to one multiply-add of the inner loop.
const STAGE_COST: usize = 4;

/// Split the reduction (split-K) until about this many invocations run (1024 workgroups of 256, several
/// per core of a large GPU), when the output tiles alone are fewer:
/// small layers (4x4 and 8x8 maps, weight gradients, whose reduction spans batch x H x W) would
/// otherwise leave most of a GPU idle. Each split still reduces over at least `MIN_CHUNK` terms, so its
/// partial sums are worth their extra pass.
const TARGET_INVOCATIONS: usize = 256 * 1024;
const MIN_CHUNK: usize = 64;

/// How one GEMM pass runs: its tile, and the reduction split into `splits` chunks of `chunk` terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub tile: Tile,
    pub splits: usize,
    pub chunk: usize,
}

/// The plan of a GEMM of m x ncol outputs over kdim terms. The tile is the cheapest, counting the
/// products its tiles compute once m, ncol and kdim are rounded up to its rows, columns and depth (the
/// padding is wasted work) and the values they stage, `STAGE_COST` each; the first of `TILES` on a
/// tie. So 64x64 serves wide layers, and layers with few output rows or columns (8 to 32 channels,
/// toRGB's 3, the taps of a small weight gradient) take a narrower or smaller tile. `tile` forces one.
pub fn plan(m: usize, ncol: usize, kdim: usize, tile: Option<Tile>) -> Plan {
    plan_among(&TILES, m, ncol, kdim, tile)
}

/// `plan` with the tiles a kernel can take (`Kernel::tiles`).
fn plan_among(tiles: &[Tile], m: usize, ncol: usize, kdim: usize, tile: Option<Tile>) -> Plan {
    let cost = |t: &Tile| {
        let (pm, pn, pk) = (
            m.next_multiple_of(t.rows),
            ncol.next_multiple_of(t.cols),
            kdim.next_multiple_of(t.depth),
        );
        pm * pn * pk + STAGE_COST * (pm / t.rows) * (pn / t.cols) * (t.rows + t.cols) * pk
    };
    let tile = tile.unwrap_or_else(|| *tiles.iter().min_by_key(|t| cost(t)).unwrap());
    let invocations = m.div_ceil(tile.rows) * ncol.div_ceil(tile.cols) * tile.invocations();
    let (splits, chunk) = reduce::split_k(kdim, invocations, TARGET_INVOCATIONS, MIN_CHUNK, tile.depth);
    Plan { tile, splits, chunk }
}

/// The sizes of one convolution: batch, input and output channels, spatial size, kernel size.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}

impl ConvShape {
    /// gain / sqrt(fan-in).
    fn scale(&self, gain: f64) -> f64 {
        gain / ((self.cin * self.k * self.k) as f64).sqrt()
    }
}

/// x [N, Cin, H, W], w [Cout, Cin, K, K], y [N, Cout, H, W]; y = scale * conv(x, w). This and the
/// other layer passes below run on `kernel`, the run's (`ops::precision::LayerPrecision::conv`).
pub fn forward(gpu: &Gpu, kernel: Kernel, x: &Tensor, w: &Tensor, y: &Tensor, gain: f32) -> Result<()> {
    run(gpu, kernel, Pass::Forward { act: None }, [x, w, y], gain, None)
}

/// `forward` followed by `act::forward` in one pass: y = lrelu(scale * conv(x, w) + bias[co], slope),
/// bias [Cout]. The GEMM applies it as it stores y, or, when its reduction is split, the pass that sums
/// the splits does.
#[allow(clippy::too_many_arguments)]
pub fn forward_act(
    gpu: &Gpu,
    kernel: Kernel,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    y: &Tensor,
    gain: f32,
    slope: f32,
) -> Result<()> {
    let pass = Pass::Forward {
        act: Some((bias, slope)),
    };
    run(gpu, kernel, pass, [x, w, y], gain, None)
}

/// dx [N, Cin, H, W] = scale * conv_transpose(dy, w)  (overwritten).
pub fn backward_data(gpu: &Gpu, kernel: Kernel, dy: &Tensor, w: &Tensor, dx: &Tensor, gain: f32) -> Result<()> {
    run(gpu, kernel, Pass::BackwardData, [dx, w, dy], gain, None)
}

/// dw [Cout, Cin, K, K] = scale * sum_{n,h,w} dy * x-patch; `accumulate` adds to dw instead of overwriting
/// (the exact gradient penalty sums a primal and a tangent weight gradient).
#[allow(clippy::too_many_arguments)]
pub fn backward_weight(
    gpu: &Gpu,
    kernel: Kernel,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    gain: f32,
    accumulate: bool,
) -> Result<()> {
    run(gpu, kernel, Pass::BackwardWeight { accumulate }, [x, dw, dy], gain, None)
}

/// A pass; the forward with its epilogue's bias and slope, if any.
#[derive(Clone, Copy, Debug)]
pub enum Pass<'a> {
    Forward { act: Option<(&'a Tensor, f32)> },
    BackwardData,
    BackwardWeight { accumulate: bool },
}

impl Pass<'_> {
    /// The shader's entry point (without the epilogue), and whether it adds to the output.
    fn entry(self) -> (&'static str, bool) {
        match self {
            Pass::Forward { .. } => ("forward", false),
            Pass::BackwardData => ("backward_data", false),
            Pass::BackwardWeight { accumulate } => ("backward_weight", accumulate),
        }
    }
}

/// Records one pass on the tensors shaped as the input [N, Cin, H, W], weights [Cout, Cin, K, K] and
/// output [N, Cout, H, W] (the pass writes the gradient among them), on `kernel` fitted to the pass
/// (`Kernel::fit`; a reduced-precision kernel is refused on a device without SHADER_F16), with
/// `tile` or the planned one (`pggan bench kernels --tiles` times every tile).
pub fn run(gpu: &Gpu, kernel: Kernel, pass: Pass, tensors: [&Tensor; 3], gain: f32, tile: Option<Tile>) -> Result<()> {
    if kernel != Kernel::F32 {
        available_mixed(gpu)?;
    }
    let s = pass_shape(pass, tensors)?;
    record(gpu, kernel.fit(dims(pass, s)[0]), pass, s, tensors, gain, tile)
}

/// `run` on a given kernel (the checks test each one the device has).
pub fn run_on(gpu: &Gpu, kernel: Kernel, pass: Pass, tensors: [&Tensor; 3], gain: f32, tile: Option<Tile>) -> Result<()> {
    record(gpu, kernel, pass, pass_shape(pass, tensors)?, tensors, gain, tile)
}

/// The shape of a pass's tensors (`shape_of`), named after the pass in its errors.
fn pass_shape(pass: Pass, [x, w, y]: [&Tensor; 3]) -> Result<ConvShape> {
    shape_of(&format!("conv {}", pass.entry().0), x, w, y)
}

/// `run_on` with the tensors' shape `s` known.
fn record(
    gpu: &Gpu,
    kernel: Kernel,
    pass: Pass,
    s: ConvShape,
    [x, w, y]: [&Tensor; 3],
    gain: f32,
    tile: Option<Tile>,
) -> Result<()> {
    let (entry, accumulate) = pass.entry();
    // The operands and output; see the shader for the mappings.
    let (operands, out, act) = match pass {
        Pass::Forward { act } => ([w, x], y, act),
        Pass::BackwardData => ([w, y], x, None),
        Pass::BackwardWeight { .. } => ([y, x], w, None),
    };
    if let Some((bias, _)) = act {
        ensure!(
            bias.shape[..] == [s.cout],
            "conv forward_act: bias {:?} should be [{}] for weights {:?}",
            bias.shape,
            s.cout,
            w.shape
        );
    }
    gemm(gpu, kernel, entry, s, dims(pass, s), operands, out, gain, accumulate, act, tile)
}

/// The GEMM sizes (m, ncol, kdim) of a pass.
fn dims(pass: Pass, s: ConvShape) -> [usize; 3] {
    let (pixels, taps) = (s.n * s.h * s.w, s.k * s.k);
    match pass {
        Pass::Forward { .. } => [s.cout, pixels, s.cin * taps],
        Pass::BackwardData => [s.cin, pixels, s.cout * taps],
        Pass::BackwardWeight { .. } => [s.cout, s.cin * taps, pixels],
    }
}

/// The shape of a convolution from its input [N, Cin, H, W], weights [Cout, Cin, K, K] and output
/// [N, Cout, H, W] (in the backward passes: the gradients with those shapes).
fn shape_of(pass: &str, input: &Tensor, weight: &Tensor, output: &Tensor) -> Result<ConvShape> {
    for (what, t) in [("input", input), ("weights", weight), ("output", output)] {
        ensure!(t.shape.len() == 4, "{pass}: {what} {:?} is not 4-D", t.shape);
    }
    let (x, w, y) = (&input.shape, &weight.shape, &output.shape);
    ensure!(
        w[2] == w[3] && (w[2] == 1 || w[2] == 3),
        "{pass}: weights {w:?} are not [Cout, Cin, K, K] with K = 1 or 3"
    );
    ensure!(
        x[1] == w[1],
        "{pass}: input {x:?} has {} channels, weights {w:?} expect {}",
        x[1],
        w[1]
    );
    ensure!(
        y[..] == [x[0], w[0], x[2], x[3]],
        "{pass}: output {y:?} should be {:?} for input {x:?} and weights {w:?}",
        [x[0], w[0], x[2], x[3]]
    );
    Ok(ConvShape {
        n: x[0],
        cin: x[1],
        cout: w[0],
        h: x[2],
        w: x[3],
        k: w[2],
    })
}

/// `Params` of conv.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    ncol: u32,
    kdim: u32,
    chunk: u32,
    tiles_m: u32,
    tiles_n: u32,
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    /// Kernel size, 1 or 3.
    ks: u32,
    accumulate: u32,
    scale: f32,
    /// sum_splits_act: the number of slices.
    splits: u32,
    slope: f32,
}

/// Records one pass: C[m, ncol] = scale * A B over `kdim` terms, split over the reduction when the
/// output tiles are too few to fill the device; with `act` (forward only), lrelu(C + bias, slope).
#[allow(clippy::too_many_arguments)]
fn gemm(
    gpu: &Gpu,
    kernel: Kernel,
    entry: &'static str,
    s: ConvShape,
    [m, ncol, kdim]: [usize; 3],
    [a, b]: [&Tensor; 2],
    out: &Tensor,
    gain: f32,
    accumulate: bool,
    act: Option<(&Tensor, f32)>,
    tile: Option<Tile>,
) -> Result<()> {
    let tiles = kernel.tiles();
    if let Some(t) = tile {
        ensure!(
            tiles.contains(&t),
            "conv {entry}: the {kernel:?} kernel cannot take tile {t}; it takes {}",
            tiles.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    let Plan { tile, splits, chunk } = plan_among(&tiles, m, ncol, kdim, tile);
    let shader = kernel.shader();
    let (tiles_m, tiles_n) = (m.div_ceil(tile.rows), ncol.div_ceil(tile.cols));
    // Column tiles spread over x and y (the shader rebuilds their index), row tiles and splits over z.
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    let gx = tiles_n.min(max);
    let grid = [gx, tiles_n.div_ceil(gx), tiles_m * splits];
    ensure!(
        grid.iter().all(|&g| g <= max),
        "conv {entry}: {s:?} needs a grid of {grid:?} workgroups, over this device's limit of {max} per dimension"
    );
    let scale = s.scale(gain as f64) as f32;
    let params = |accumulate: bool| Params {
        m: m as u32,
        ncol: ncol as u32,
        kdim: kdim as u32,
        chunk: chunk as u32,
        tiles_m: tiles_m as u32,
        tiles_n: tiles_n as u32,
        cin: s.cin as u32,
        cout: s.cout as u32,
        h: s.h as u32,
        w: s.w as u32,
        ks: s.k as u32,
        accumulate: accumulate as u32,
        scale,
        splits: splits as u32,
        slope: act.map_or(1.0, |(_, slope)| slope),
    };
    let groups = Dispatch::Groups(grid.map(|g| g as u32));
    let mut constants = vec![("TM", tile.rows as u32), ("TN", tile.cols as u32), ("TK", tile.depth as u32)];
    if let Kernel::Coop { subgroup, .. } = kernel {
        constants.push(("SG", subgroup as u32));
    }
    if splits == 1 {
        // The epilogue's entry point takes the bias as its last tensor.
        return match act {
            Some((bias, _)) => gpu.launch_with(
                shader,
                "forward_act",
                &constants,
                &params(accumulate),
                &[a, b, out, bias],
                groups,
            ),
            None => gpu.launch_with(shader, entry, &constants, &params(accumulate), &[a, b, out], groups),
        };
    }
    // Each split writes its own slice; the slices are then summed into the output. The scratch
    // buffer may be dropped here: wgpu keeps it alive until the recorded commands have run.
    let slices = gpu.scratch(&[splits, m * ncol])?;
    gpu.launch_with(shader, entry, &constants, &params(false), &[a, b, &slices], groups)?;
    match act {
        Some((bias, _)) => gpu.launch(
            shader,
            "sum_splits_act",
            &params(accumulate),
            &[&slices, out, bias],
            Dispatch::Items(m * ncol),
        ),
        None => reduce::sum_slices(gpu, &slices, accumulate, out),
    }
}

/// Calls `f(x index, w index, y index)` for every product x * w that enters y in the forward pass.
fn for_each_tap(s: ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let pad = s.k / 2;
    for n in 0..s.n {
        for co in 0..s.cout {
            for h in 0..s.h {
                for w in 0..s.w {
                    let yi = ((n * s.cout + co) * s.h + h) * s.w + w;
                    for ci in 0..s.cin {
                        for ky in 0..s.k {
                            for kx in 0..s.k {
                                let (ih, iw) = ((h + ky).wrapping_sub(pad), (w + kx).wrapping_sub(pad));
                                if ih < s.h && iw < s.w {
                                    let xi = ((n * s.cin + ci) * s.h + ih) * s.w + iw;
                                    let wi = ((co * s.cin + ci) * s.k + ky) * s.k + kx;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// CPU reference of `forward`.
pub fn forward_ref(x: &[f64], w: &[f64], s: ConvShape, gain: f64) -> Vec<f64> {
    let mut y = vec![0.0; s.n * s.cout * s.h * s.w];
    for_each_tap(s, |xi, wi, yi| y[yi] += x[xi] * w[wi]);
    y.iter().map(|v| v * s.scale(gain)).collect()
}

/// CPU reference of `forward_act`: `forward_ref`, then `act::forward_ref`.
pub fn forward_act_ref(x: &[f64], w: &[f64], bias: &[f64], s: ConvShape, gain: f64, slope: f64) -> Vec<f64> {
    act::forward_ref(&forward_ref(x, w, s, gain), bias, s.h * s.w, slope)
}

/// CPU reference of `backward_data`: the adjoint of `forward_ref` in x.
pub fn backward_data_ref(dy: &[f64], w: &[f64], s: ConvShape, gain: f64) -> Vec<f64> {
    let mut dx = vec![0.0; s.n * s.cin * s.h * s.w];
    for_each_tap(s, |xi, wi, yi| dx[xi] += dy[yi] * w[wi]);
    dx.iter().map(|v| v * s.scale(gain)).collect()
}

/// CPU reference of `backward_weight` (overwriting): the adjoint of `forward_ref` in w.
pub fn backward_weight_ref(x: &[f64], dy: &[f64], s: ConvShape, gain: f64) -> Vec<f64> {
    let mut dw = vec![0.0; s.cout * s.cin * s.k * s.k];
    for_each_tap(s, |xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw.iter().map(|v| v * s.scale(gain)).collect()
}

/// All three passes (and the accumulating weight gradient, and the forward with its bias + leaky ReLU
/// epilogue) on awkward shapes, against the references, with the planned tile and with every tile of
/// `TILES` forced. Outputs start filled with noise, so overwriting is checked too. Each row names the
/// plan it ran; the shapes cover a single reduction (e.g. forward 3->17, K = 3: 27 terms, where the
/// GEMM applies the epilogue; weight gradients over 3 x 4 x 4 = 48 pixels) and split-K (most others,
/// where `sum_splits_act` applies it), and several row and column tiles (67 and 70 channels).
pub fn check(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        // f32 sums of up to 1024 products of normals: rounding stays near 1e-7 of the largest output.
        const TOL: f64 = 1e-5;
        let gain = std::f64::consts::SQRT_2;
        let mut rows = Vec::new();
        let mut rng = Rng::new(3);
        for (n, cin, cout, hw, k) in [
            (3, 3, 17, 8, 3),
            (4, 17, 5, 16, 3),
            (3, 13, 13, 4, 3),
            (4, 5, 3, 16, 1),
            (3, 13, 17, 8, 1),
            (3, 67, 70, 8, 3),
        ] {
            let case = Case::random(&mut rng, (n, cin, cout, hw, k));
            let [x, w, dy] = case.upload(gpu)?;
            let Case {
                s,
                xs_shape,
                ys_shape,
                ws_shape,
                xs,
                ws,
                dys,
            } = case;
            let len = |shape: &[usize]| shape.iter().product::<usize>();
            let prior = rng.normals(len(&ws_shape));
            let biases = rng.normals(cout);
            let (x64, w64, dy64) = (f64s(&xs), f64s(&ws), f64s(&dys));
            let dw_ref = backward_weight_ref(&x64, &dy64, s, gain);
            let dw_acc_ref: Vec<f64> = dw_ref.iter().zip(&prior).map(|(d, &p)| d + p as f64).collect();
            let expected = [
                forward_ref(&x64, &w64, s, gain),
                backward_data_ref(&dy64, &w64, s, gain),
                dw_ref,
                dw_acc_ref,
                forward_act_ref(&x64, &w64, &f64s(&biases), s, gain, act::SLOPE as f64),
            ];
            let bias = gpu.upload(&biases, &[cout])?;
            for tile in std::iter::once(None).chain(TILES.map(Some)) {
                let y = gpu.upload(&rng.normals(len(&ys_shape)), &ys_shape)?;
                let dx = gpu.upload(&rng.normals(len(&xs_shape)), &xs_shape)?;
                let dw = gpu.upload(&rng.normals(len(&ws_shape)), &ws_shape)?;
                let dw_acc = gpu.upload(&prior, &ws_shape)?;
                let y_act = gpu.upload(&rng.normals(len(&ys_shape)), &ys_shape)?;
                let passes = [
                    (Pass::Forward { act: None }, [&x, &w, &y], &y),
                    (Pass::BackwardData, [&dx, &w, &dy], &dx),
                    (Pass::BackwardWeight { accumulate: false }, [&x, &dw, &dy], &dw),
                    (Pass::BackwardWeight { accumulate: true }, [&x, &dw_acc, &dy], &dw_acc),
                    (
                        Pass::Forward {
                            act: Some((&bias, act::SLOPE)),
                        },
                        [&x, &w, &y_act],
                        &y_act,
                    ),
                ];
                for ((pass, tensors, out), r) in passes.into_iter().zip(&expected) {
                    run(gpu, Kernel::F32, pass, tensors, gain as f32, tile)?;
                    let [m, ncol, kdim] = dims(pass, s);
                    let Plan { tile: t, splits, .. } = plan(m, ncol, kdim, tile);
                    let (entry, accumulate) = pass.entry();
                    let name = format!(
                        "conv{k}x{k} {entry}{} {cin}->{cout}, {} {}x{}/{} in {splits}",
                        match pass {
                            Pass::Forward { act: Some(_) } => " act",
                            _ if accumulate => " acc",
                            _ => "",
                        },
                        if tile.is_some() { "forced" } else { "planned" },
                        t.rows,
                        t.cols,
                        t.depth
                    );
                    rows.push(compare(&name, &xs_shape, &gpu.download(out).await?, r, TOL));
                }
            }
        }
        Ok(rows)
    })
}

/// Whether the device can run the mixed-precision kernel (`conv+f16`): an error saying what it
/// lacks otherwise.
pub fn available_mixed(gpu: &Gpu) -> Result<()> {
    gpu.require_f16("conv mixed")
}

/// One case of the convolution checks: its shape, the shapes of x, y and w, and x, w and dy drawn
/// N(0, 1) in that order.
struct Case {
    s: ConvShape,
    xs_shape: [usize; 4],
    ys_shape: [usize; 4],
    ws_shape: [usize; 4],
    xs: Vec<f32>,
    ws: Vec<f32>,
    dys: Vec<f32>,
}

impl Case {
    /// x, w and dy on the device.
    fn upload(&self, gpu: &Gpu) -> Result<[Tensor; 3]> {
        Ok([
            gpu.upload(&self.xs, &self.xs_shape)?,
            gpu.upload(&self.ws, &self.ws_shape)?,
            gpu.upload(&self.dys, &self.ys_shape)?,
        ])
    }

    fn random(rng: &mut Rng, (n, cin, cout, hw, k): (usize, usize, usize, usize, usize)) -> Case {
        let (xs_shape, ys_shape, ws_shape) = ([n, cin, hw, hw], [n, cout, hw, hw], [cout, cin, k, k]);
        let len = |shape: &[usize]| shape.iter().product::<usize>();
        Case {
            s: ConvShape {
                n,
                cin,
                cout,
                h: hw,
                w: hw,
                k,
            },
            xs: rng.normals(len(&xs_shape)),
            ws: rng.normals(len(&ws_shape)),
            dys: rng.normals(len(&ys_shape)),
            xs_shape,
            ys_shape,
            ws_shape,
        }
    }
}

/// The three passes of the f16 kernel (`conv+f16`) against f64: `check_reduced`. Needs SHADER_F16.
pub fn check_mixed(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    let scope = Scope {
        force_tiles: false,
        ..Scope::FULL
    };
    Box::pin(check_reduced(gpu, Kernel::F16, "mixed", F32_UNIT_ROUNDOFF, &CASES, scope))
}

/// The three passes of the cooperative kernel (`conv+coop16` or `conv+coop8`) against f64:
/// `check_reduced` with the tensor cores' accumulation bound (`coop_gemm::ACC_UNIT`), with the
/// planned tile and every tile the kernel takes forced. Needs cooperative matrices (`coop`).
pub fn check_coop(gpu: &Gpu) -> Pin<Box<dyn Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let kernel = coop(gpu)?;
        check_reduced(gpu, kernel, "coop", crate::ops::coop_gemm::ACC_UNIT, &CASES, Scope::FULL).await
    })
}

/// Before mixed precision trains on the cooperative kernel `kernel` of a device: its three passes on
/// one case (3x3, 67 -> 70 channels, split and unsplit) against f64, as in `check_coop`, with the
/// accumulator's unit roundoff `acc_unit` (`coop_gemm::ACC_UNIT`; the tests shrink it to make the check
/// fail). None where they pass; else what failed, "failed its check on this device (...)". About a
/// second on lavapipe. `ops::precision::LayerPrecision::verified` decides what follows.
pub async fn verify_coop(gpu: &Gpu, kernel: Kernel, acc_unit: f64) -> Result<Option<String>> {
    // Against f64 only: the question is whether the kernel is right, not whether it rounds to f16.
    let scope = Scope {
        force_tiles: false,
        against_f32: false,
    };
    let rows = check_reduced(gpu, kernel, "coop", acc_unit, &CASES[2..], scope).await?;
    Ok(rows.iter().find(|r| !r.pass).map(|bad| {
        format!(
            "failed its check on this device ({}: {:.2e} against a tolerance of {:.0e})",
            bad.name, bad.max_rel, bad.tol
        )
    }))
}

/// Whether the device can run the cooperative kernel: an error saying what it lacks otherwise.
pub fn available_coop(gpu: &Gpu) -> Result<()> {
    coop(gpu).map(drop)
}

/// What `check_reduced` covers beyond the planned tile and f64.
#[derive(Clone, Copy)]
struct Scope {
    /// Every tile the kernel takes, forced, too.
    force_tiles: bool,
    /// Where the reduction is short enough, that the result differs from the f32 kernel's.
    against_f32: bool,
}

impl Scope {
    const FULL: Scope = Scope {
        force_tiles: true,
        against_f32: true,
    };
}

/// The cases (batch, input and output channels, size, kernel size) of the reduced-precision checks.
const CASES: [(usize, usize, usize, usize, usize); 3] = [(2, 5, 7, 8, 3), (3, 13, 17, 8, 1), (3, 67, 70, 8, 3)];

/// The three passes of a reduced-precision kernel against f64 on `cases`, inputs drawn N(0, 1) in
/// f32 (none of which f16 holds exactly), with the bounds of `check::mixed_product_rows` over the pass's
/// reduction length plus 2 (the scale's rounding to f32 and its product), sums at `acc_unit`: K = 3
/// and K = 1, split and unsplit reductions, several row and column tiles (`Scope::force_tiles`:
/// every tile the kernel takes, forced, too). With `Scope::against_f32`, where the reduction is short
/// enough for f16's rounding to stand out of the accumulation's (at most 208 terms at f32's roundoff, as in dense's; 52 at the
/// cooperative kernels'), the result must also differ from the f32 kernel's by more than both
/// kernels' bounds.
async fn check_reduced(
    gpu: &Gpu,
    kernel: Kernel,
    label: &str,
    acc_unit: f64,
    cases: &[(usize, usize, usize, usize, usize)],
    Scope { force_tiles, against_f32 }: Scope,
) -> Result<Vec<Row>> {
    let gain = std::f64::consts::SQRT_2;
    let mut rows = Vec::new();
    let mut rng = Rng::new(13);
    let forced = if force_tiles { kernel.tiles() } else { Vec::new() };
    for &(n, cin, cout, hw, k) in cases {
        let case = Case::random(&mut rng, (n, cin, cout, hw, k));
        let [x, w, dy] = case.upload(gpu)?;
        let (y, dx, dw) = (gpu.zeros(&case.ys_shape)?, gpu.zeros(&case.xs_shape)?, gpu.zeros(&case.ws_shape)?);
        // Each pass: its tensors, output, operands and reference as a product of the operands.
        type Reference = fn(&[f64], &[f64], ConvShape, f64) -> Vec<f64>;
        let passes = [
            (Pass::Forward { act: None }, [&x, &w, &y], &y, [&case.xs, &case.ws], forward_ref as Reference),
            (Pass::BackwardData, [&dx, &w, &dy], &dx, [&case.dys, &case.ws], backward_data_ref),
            (
                Pass::BackwardWeight { accumulate: false },
                [&x, &dw, &dy],
                &dw,
                [&case.xs, &case.dys],
                backward_weight_ref,
            ),
        ];
        for (pass, tensors, out, [a, b], reference) in passes {
            run_on(gpu, Kernel::F32, pass, tensors, gain as f32, None)?;
            let single = gpu.download(out).await?;
            let [m, ncol, kdim] = dims(pass, case.s);
            // As long as f16's rounding stands out of the accumulation bound: 208 terms at f32's.
            let short = against_f32 && kdim as f64 * acc_unit <= 208.0 * F32_UNIT_ROUNDOFF;
            for tile in std::iter::once(None).chain(forced.iter().copied().map(Some)) {
                run_on(gpu, kernel, pass, tensors, gain as f32, tile)?;
                let got = gpu.download(out).await?;
                let Plan { tile: t, splits, .. } = kernel.plan(m, ncol, kdim, tile);
                rows.extend(mixed_product_rows(
                    &format!(
                        "conv{k}x{k} {label} {} {cin}->{cout} {}{t} in {splits}",
                        pass.entry().0,
                        if tile.is_some() { "forced " } else { "" }
                    ),
                    &case.xs_shape,
                    kdim + 2,
                    a,
                    b,
                    &|a, b| reference(a, b, case.s, gain),
                    &got,
                    short.then_some(single.as_slice()),
                    acc_unit,
                    short,
                )?);
            }
        }
    }
    Ok(rows)
}
