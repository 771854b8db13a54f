//! mbstd: minibatch standard deviation (`shaders/mbstd.wgsl`), D's one nonlinear layer with a
//! second-order term: forward, backward, JVP and the reverse of the JVP.
//!
//! Group size G = min(4, N), and N must be a multiple of G: a batch that is not is refused with an
//! error rather than silently regrouped (a different grouping would change the statistic D sees).
//! With M = N / G, sample n belongs to group n % M, whose members are m, m+M, m+2M, .... x may also
//! stack `batches` minibatches of N / batches samples each (D's real and fake images, run as one
//! batch): each minibatch is then grouped on its own, exactly as if it ran alone. Per group,
//! for every activation (c, h, w) the population std over the members, sqrt(mean((x - mean)^2) + 1e-8),
//! averaged over C, H, W, gives one scalar s_m; y = concat(x, s_m broadcast as one extra map), of shape
//! [N, C+1, H, W].
//!
//! Each launcher allocates a small scratch tensor for its per-group scalars (one per launch:
//! acceptable at N / G floats; a caller-provided buffer would avoid it).
//!
//! The CPU references return `Vec<f64>` and take the shape explicitly; N must split into their
//! minibatches, and each minibatch pass [`group_size`] (they panic otherwise, as the launchers return
//! those errors first).

use anyhow::{bail, ensure, Result};

use crate::check::{compare, f64s, Row};
use crate::gpu::{Dispatch, Gpu, Shader, Tensor};
use crate::rng::Rng;

pub const SHADER: Shader = Shader {
    name: "mbstd",
    source: include_str!("../../shaders/mbstd.wgsl"),
};

/// Inside the square root of every std, as in the paper's code.
pub const EPS: f64 = 1e-8;

/// The group size for a batch of `n`: min(4, n). Errors when `n` is zero or not a multiple of it.
pub fn group_size(n: usize) -> Result<usize> {
    let g = n.min(4);
    if g == 0 || !n.is_multiple_of(g) {
        bail!(
            "mbstd: a batch of {n} is not a multiple of the group size {g} (min(4, batch)); \
             it is refused rather than regrouped"
        );
    }
    Ok(g)
}

/// The uniform words [N, C, HW, M, G] for x of `batches` minibatches, after checking x is
/// [N, C, H, W] and N splits into them.
/// `Params` of mbstd.wgsl.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    channels: u32,
    hw: u32,
    /// Groups per minibatch (M).
    groups: u32,
    /// Group size (G).
    gsize: u32,
}

fn params(x: &Tensor, batches: usize) -> Result<Params> {
    ensure!(x.shape.len() == 4, "mbstd: x must be [N, C, H, W], got {:?}", x.shape);
    let (n, c, hw) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3]);
    ensure!(
        batches > 0 && n.is_multiple_of(batches),
        "mbstd: a batch of {n} does not split into {batches} minibatches"
    );
    let g = group_size(n / batches)?;
    Ok(Params {
        n: n as u32,
        channels: c as u32,
        hw: hw as u32,
        groups: (n / batches / g) as u32,
        gsize: g as u32,
    })
}

fn ensure_shape(what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    ensure!(t.shape == shape, "mbstd: {what} must be {shape:?}, got {:?}", t.shape);
    Ok(())
}

/// The shape of y for x: one more channel.
fn y_shape(x: &Tensor) -> Vec<usize> {
    vec![x.shape[0], x.shape[1] + 1, x.shape[2], x.shape[3]]
}

/// One workgroup per group into `scratch`, then one invocation per element of `out`.
fn run(
    gpu: &Gpu,
    params: &Params,
    reduce: (&'static str, &[&Tensor]),
    apply: (&'static str, &[&Tensor]),
    out: &Tensor,
) -> Result<()> {
    let groups = (params.n / params.gsize) as usize;
    let scratch = gpu.scratch(&[groups])?;
    let mut tensors = reduce.1.to_vec();
    tensors.push(&scratch);
    gpu.launch(&SHADER, reduce.0, params, &tensors, Dispatch::Items(groups * 256))?;
    let mut tensors = apply.1.to_vec();
    tensors.extend([&scratch, out]);
    gpu.launch(&SHADER, apply.0, params, &tensors, Dispatch::Items(out.len()))
}

/// y = concat(x, s broadcast), y of shape [N, C+1, H, W], x of `batches` minibatches.
pub fn forward(gpu: &Gpu, x: &Tensor, y: &Tensor, batches: usize) -> Result<()> {
    let p = params(x, batches)?;
    ensure_shape("y", y, &y_shape(x))?;
    run(gpu, &p, ("std_mean", &[x]), ("concat", &[x]), y)
}

/// dx = J(x)^T dy (overwritten), dy of y's shape and dx of x's.
pub fn backward(gpu: &Gpu, x: &Tensor, dy: &Tensor, dx: &Tensor, batches: usize) -> Result<()> {
    let p = params(x, batches)?;
    ensure_shape("dy", dy, &y_shape(x))?;
    ensure_shape("dx", dx, &x.shape)?;
    run(gpu, &p, ("map_sum", &[dy]), ("backward", &[x, dy]), dx)
}

/// ty = J(x) tx, tx of x's shape and ty of y's.
pub fn jvp(gpu: &Gpu, x: &Tensor, tx: &Tensor, ty: &Tensor, batches: usize) -> Result<()> {
    let p = params(x, batches)?;
    ensure_shape("tx", tx, &x.shape)?;
    ensure_shape("ty", ty, &y_shape(x))?;
    run(gpu, &p, ("tangent_mean", &[x, tx]), ("concat", &[tx]), ty)
}

/// The reverse of jvp with respect to x: dx2 = d< dty, J(x) tx >/dx, the second-order term (overwritten).
/// (The reverse with respect to tx is J(x)^T dty = backward(x, dty).)
pub fn jvp_backward(gpu: &Gpu, x: &Tensor, tx: &Tensor, dty: &Tensor, dx2: &Tensor, batches: usize) -> Result<()> {
    let p = params(x, batches)?;
    ensure_shape("tx", tx, &x.shape)?;
    ensure_shape("dty", dty, &y_shape(x))?;
    ensure_shape("dx2", dx2, &x.shape)?;
    run(gpu, &p, ("map_sum", &[dty]), ("jvp_backward", &[x, tx]), dx2)
}

/// Group size G and group count M of a reference's batch.
fn groups(n: usize) -> (usize, usize) {
    let g = group_size(n).unwrap_or_else(|e| panic!("{e}"));
    (g, n / g)
}

/// Mean and std over the members of group `m` at activation `k`, for x of K = `len` activations a sample.
fn moments(x: &[f64], g: usize, groups: usize, len: usize, m: usize, k: usize) -> (f64, f64) {
    let mut mean = 0.0;
    for j in 0..g {
        mean += x[(m + j * groups) * len + k];
    }
    mean /= g as f64;
    let mut var = 0.0;
    for j in 0..g {
        let d = x[(m + j * groups) * len + k] - mean;
        var += d * d;
    }
    (mean, (var / g as f64 + EPS).sqrt())
}

/// concat(v, per-group scalars broadcast) as [N, C+1, HW].
fn concat_ref(v: &[f64], per_group: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(n * (c + 1) * hw);
    for s in 0..n {
        y.extend_from_slice(&v[s * c * hw..(s + 1) * c * hw]);
        y.extend(std::iter::repeat_n(per_group[s % per_group.len()], hw));
    }
    y
}

/// Per group, the sum of the extra map of `dy` ([N, C+1, HW]) over members and pixels.
fn map_sum_ref(dy: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let (g, groups) = groups(n);
    let mut out = vec![0.0; groups];
    for (m, o) in out.iter_mut().enumerate() {
        for j in 0..g {
            for q in 0..hw {
                *o += dy[((m + j * groups) * (c + 1) + c) * hw + q];
            }
        }
    }
    out
}

/// `f` on each of `batches` minibatches of a batch of `n` (every input split evenly along N, `f`
/// given the parts and their N), outputs concatenated.
fn per_batch(n: usize, batches: usize, inputs: &[&[f64]], f: impl Fn(&[&[f64]], usize) -> Vec<f64>) -> Vec<f64> {
    assert!(
        batches > 0 && n.is_multiple_of(batches),
        "mbstd: a batch of {n} does not split into {batches} minibatches"
    );
    (0..batches)
        .flat_map(|b| {
            let parts: Vec<&[f64]> = inputs
                .iter()
                .map(|v| &v[b * v.len() / batches..(b + 1) * v.len() / batches])
                .collect();
            f(&parts, n / batches)
        })
        .collect()
}

/// CPU reference of `forward`: x [N, C, HW] of `batches` minibatches -> [N, C+1, HW].
pub fn forward_ref(x: &[f64], n: usize, c: usize, hw: usize, batches: usize) -> Vec<f64> {
    per_batch(n, batches, &[x], |v, nb| forward_one(v[0], nb, c, hw))
}

/// CPU reference of `backward`.
pub fn backward_ref(x: &[f64], dy: &[f64], n: usize, c: usize, hw: usize, batches: usize) -> Vec<f64> {
    per_batch(n, batches, &[x, dy], |v, nb| backward_one(v[0], v[1], nb, c, hw))
}

/// CPU reference of `jvp`.
pub fn jvp_ref(x: &[f64], tx: &[f64], n: usize, c: usize, hw: usize, batches: usize) -> Vec<f64> {
    per_batch(n, batches, &[x, tx], |v, nb| jvp_one(v[0], v[1], nb, c, hw))
}

/// CPU reference of `jvp_backward`.
pub fn jvp_backward_ref(x: &[f64], tx: &[f64], dty: &[f64], n: usize, c: usize, hw: usize, batches: usize) -> Vec<f64> {
    per_batch(n, batches, &[x, tx, dty], |v, nb| {
        jvp_backward_one(v[0], v[1], v[2], nb, c, hw)
    })
}

/// `forward` of one minibatch: x [N, C, HW] -> [N, C+1, HW].
fn forward_one(x: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let (g, groups) = groups(n);
    let len = c * hw;
    let mut s = vec![0.0; groups];
    for (m, sm) in s.iter_mut().enumerate() {
        for k in 0..len {
            *sm += moments(x, g, groups, len, m, k).1;
        }
        *sm /= len as f64;
    }
    concat_ref(x, &s, n, c, hw)
}

/// `backward` of one minibatch: dx = dy's first C channels + S_m d_k / (G K sigma_k).
fn backward_one(x: &[f64], dy: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let (g, groups) = groups(n);
    let len = c * hw;
    let total = map_sum_ref(dy, n, c, hw);
    let mut dx = vec![0.0; n * len];
    for (i, d) in dx.iter_mut().enumerate() {
        let (s, k) = (i / len, i % len);
        let (mean, sigma) = moments(x, g, groups, len, s % groups, k);
        *d = dy[s * (len + hw) + k] + total[s % groups] * (x[i] - mean) / ((g * len) as f64 * sigma);
    }
    dx
}

/// `jvp` of one minibatch: ty = concat(tx, ts), ts_m = sum_jk d_jk tx_jk / (G K sigma_k).
fn jvp_one(x: &[f64], tx: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let (g, groups) = groups(n);
    let len = c * hw;
    let mut ts = vec![0.0; groups];
    for (m, t) in ts.iter_mut().enumerate() {
        for k in 0..len {
            let (mean, sigma) = moments(x, g, groups, len, m, k);
            for j in 0..g {
                let i = (m + j * groups) * len + k;
                *t += (x[i] - mean) * tx[i] / sigma;
            }
        }
        *t /= (g * len) as f64;
    }
    concat_ref(tx, &ts, n, c, hw)
}

/// `jvp_backward` of one minibatch: T_m / (G K) * (tc_ik / sigma_k - a_k d_ik / (G sigma_k^3)).
fn jvp_backward_one(x: &[f64], tx: &[f64], dty: &[f64], n: usize, c: usize, hw: usize) -> Vec<f64> {
    let (g, groups) = groups(n);
    let len = c * hw;
    let total = map_sum_ref(dty, n, c, hw);
    let gf = g as f64;
    let mut dx2 = vec![0.0; n * len];
    for (i, out) in dx2.iter_mut().enumerate() {
        let (s, k) = (i / len, i % len);
        let m = s % groups;
        let (mean, sigma) = moments(x, g, groups, len, m, k);
        let (mut a, mut tmean) = (0.0, 0.0);
        for j in 0..g {
            let l = (m + j * groups) * len + k;
            a += (x[l] - mean) * tx[l];
            tmean += tx[l] / gf;
        }
        let (tc, d) = (tx[i] - tmean, x[i] - mean);
        *out = total[m] / (gf * len as f64) * (tc / sigma - a * d / (gf * sigma.powi(3)));
    }
    dx2
}

/// Inputs [N, len] of `batches` minibatches whose group members are well spread (N / batches must
/// pass [`group_size`]): member j of each group is offset by 1.5 j and jittered in [-0.5, 0.5), so
/// every per-activation std is at least 0.4. Near-equal members would make sigma a tiny difference of
/// f32 values and the 1/sigma^3 term ill-conditioned.
pub fn spread_inputs(rng: &mut Rng, n: usize, len: usize, batches: usize) -> Vec<f32> {
    let nb = n / batches;
    let (_, groups) = groups(nb);
    (0..n * len)
        .map(|i| (1.5 * ((i / len % nb) / groups) as f64 + rng.uniform() - 0.5) as f32)
        .collect()
}

/// Every pass at N = 4, 8, 12 (G = 4) and N = 3 (G = 3), C from 3 to 17, spatial 4x4 (its real use)
/// and 8x8; and on two stacked minibatches (D's real and fake images) of 4, 8 and 3 (G = 4 with one
/// and two groups each, G = 3). Tolerance 1e-5 of the largest reference magnitude: each output is an
/// f32 sum over a group's C*H*W activations.
pub fn check(gpu: &Gpu) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Row>>> + '_>> {
    Box::pin(async move {
        let mut rows = Vec::new();
        let mut rng = Rng::new(3);
        for (shape, batches) in [
            ([4usize, 17, 4, 4], 1),
            ([8, 5, 8, 8], 1),
            ([12, 13, 4, 4], 1),
            ([3, 3, 8, 8], 1),
            ([8, 9, 4, 4], 2),
            ([16, 5, 4, 4], 2),
            ([6, 3, 8, 8], 2),
        ] {
            let [n, c, h, w] = shape;
            let hw = h * w;
            let y_shape = [n, c + 1, h, w];
            let xs = spread_inputs(&mut rng, n, c * hw, batches);
            let (txs, dys) = (rng.normals(n * c * hw), rng.normals(n * (c + 1) * hw));
            let x = gpu.upload(&xs, &shape)?;
            let tx = gpu.upload(&txs, &shape)?;
            let dy = gpu.upload(&dys, &y_shape)?;
            let (y, ty) = (gpu.zeros(&y_shape)?, gpu.zeros(&y_shape)?);
            let (dx, dx2) = (gpu.zeros(&shape)?, gpu.zeros(&shape)?);
            forward(gpu, &x, &y, batches)?;
            backward(gpu, &x, &dy, &dx, batches)?;
            jvp(gpu, &x, &tx, &ty, batches)?;
            jvp_backward(gpu, &x, &tx, &dy, &dx2, batches)?;
            let (x64, tx64, dy64) = (f64s(&xs), f64s(&txs), f64s(&dys));
            for (name, out, reference) in [
                ("mbstd forward", &y, forward_ref(&x64, n, c, hw, batches)),
                ("mbstd backward", &dx, backward_ref(&x64, &dy64, n, c, hw, batches)),
                ("mbstd jvp", &ty, jvp_ref(&x64, &tx64, n, c, hw, batches)),
                (
                    "mbstd jvp_backward",
                    &dx2,
                    jvp_backward_ref(&x64, &tx64, &dy64, n, c, hw, batches),
                ),
            ] {
                let name = format!("{name}, {batches} minibatch(es)");
                rows.push(compare(&name, &shape, &gpu.download(out).await?, &reference, 1e-5));
            }
        }
        Ok(rows)
    })
}
