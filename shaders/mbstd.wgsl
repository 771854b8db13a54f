// mbstd: minibatch standard deviation. x [N, C, H, W] -> y [N, C+1, H, W].
// x may stack several minibatches of NB samples along N (D's real and fake images run as one batch);
// each is grouped on its own. Groups of G samples: with M = NB / G, group m of a minibatch holds its
// samples m, m+M, m+2M, ...; the groups are numbered across the minibatches. For each activation
// k = (c, h, w) of group m, sigma_k = sqrt(mean_j (x_jk - mean_k)^2 + 1e-8) over the members j;
// s_m = mean_k sigma_k is broadcast as the extra map of every member.
//
// With d_jk = x_jk - mean_k and K = C*H*W, the derivatives are (the passthrough channels are identity):
//   ds/dx_jk = d_jk / (G K sigma_k)
//   jvp:            ts_m = sum_jk d_jk tx_jk / (G K sigma_k)
//   reverse of jvp: d(T_m ts_m)/dx_ik = T_m / (G K) * (tc_ik / sigma_k - a_k d_ik / (G sigma_k^3)),
//                   tc = tx minus its group mean, a_k = sum_j d_jk tx_jk,
//                   T_m = sum of dty's extra map over the group's members and pixels.
// Each pass is two launches: a per-group reduction into `scratch` (one workgroup per group, 256
// invocations striding over the group's terms, then a tree in workgroup memory), then one
// invocation per output element. The element passes recompute mean_k and sigma_k from the G <= 4
// members rather than storing them: a few reads instead of a tensor of x's size.

struct Params {
    n: u32,         // N
    channels: u32,  // C of x
    hw: u32,        // H * W
    groups: u32,    // M = NB / G, per minibatch
    gsize: u32,     // G
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;             // x, tx, dy or dty, per entry
@group(0) @binding(3) var<storage, read_write> scratch: array<f32>; // [N / G] per-group scalars
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const EPS: f32 = 1e-8;

// The sample that is member j of group m.
fn member_sample(m: u32, j: u32) -> u32 {
    return m / p.groups * (p.gsize * p.groups) + m % p.groups + j * p.groups;
}

// Index in an x-shaped tensor of activation k of member j of group m.
fn member(m: u32, j: u32, k: u32) -> u32 {
    return member_sample(m, j) * p.channels * p.hw + k;
}

// The group of sample n.
fn group_of(n: u32) -> u32 {
    return n / (p.gsize * p.groups) * p.groups + n % p.groups;
}

fn group_mean_x(m: u32, k: u32) -> f32 {
    var acc = 0.0;
    for (var j = 0u; j < p.gsize; j++) {
        acc += x[member(m, j, k)];
    }
    return acc / f32(p.gsize);
}

fn group_mean_v(m: u32, k: u32) -> f32 {
    var acc = 0.0;
    for (var j = 0u; j < p.gsize; j++) {
        acc += v[member(m, j, k)];
    }
    return acc / f32(p.gsize);
}

fn group_sigma(m: u32, k: u32, mean: f32) -> f32 {
    var acc = 0.0;
    for (var j = 0u; j < p.gsize; j++) {
        let d = x[member(m, j, k)] - mean;
        acc += d * d;
    }
    return sqrt(acc / f32(p.gsize) + EPS);
}

// a_k = sum_j d_jk tx_jk, with tx in v.
fn group_dot(m: u32, k: u32, mean: f32) -> f32 {
    var acc = 0.0;
    for (var j = 0u; j < p.gsize; j++) {
        let i = member(m, j, k);
        acc += (x[i] - mean) * v[i];
    }
    return acc;
}

// scratch[m] = s_m.
@compute @workgroup_size(256)
fn std_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let m = wid.y * nwg.x + wid.x;
    if (m >= p.n / p.gsize) { return; }
    let len = p.channels * p.hw;
    var acc = 0.0;
    for (var k = lid; k < len; k += 256u) {
        acc += group_sigma(m, k, group_mean_x(m, k));
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        scratch[m] = total / f32(len);
    }
}

// scratch[m] = ts_m, the tangent of s_m along tx (in v).
@compute @workgroup_size(256)
fn tangent_mean(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let m = wid.y * nwg.x + wid.x;
    if (m >= p.n / p.gsize) { return; }
    let len = p.channels * p.hw;
    var acc = 0.0;
    for (var k = lid; k < len; k += 256u) {
        let mean = group_mean_x(m, k);
        acc += group_dot(m, k, mean) / group_sigma(m, k, mean);
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        scratch[m] = total / f32(p.gsize * len);
    }
}

// scratch[m] = the sum of the extra map of v ([N, C+1, H, W]) over group m's members and pixels.
@compute @workgroup_size(256)
fn map_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let m = wid.y * nwg.x + wid.x;
    if (m >= p.n / p.gsize) { return; }
    var acc = 0.0;
    for (var t = lid; t < p.gsize * p.hw; t += 256u) {
        let j = t / p.hw;
        let q = t - j * p.hw;
        acc += v[(member_sample(m, j) * (p.channels + 1u) + p.channels) * p.hw + q];
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        scratch[m] = total;
    }
}

// out [N, C+1, H, W] = concat(v, scratch broadcast): the forward pass (v = x, scratch = s) and the
// JVP (v = tx, scratch = ts).
@compute @workgroup_size(256)
fn concat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let per = (p.channels + 1u) * p.hw;
    if (i >= p.n * per) { return; }
    let n = i / per;
    let r = i - n * per;
    if (r < p.channels * p.hw) {
        out[i] = v[n * p.channels * p.hw + r];
    } else {
        out[i] = scratch[group_of(n)];
    }
}

// out = dx [N, C, H, W] from dy (in v, [N, C+1, H, W]) and scratch = S_m (map_sum of dy).
@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let len = p.channels * p.hw;
    if (i >= p.n * len) { return; }
    let n = i / len;
    let k = i - n * len;
    let m = group_of(n);
    let mean = group_mean_x(m, k);
    let sigma = group_sigma(m, k, mean);
    let ds = (x[i] - mean) / (f32(p.gsize * len) * sigma);
    out[i] = v[n * (len + p.hw) + k] + scratch[m] * ds;
}

// out = dx2 [N, C, H, W], the reverse of the JVP w.r.t. x, from tx (in v) and scratch = T_m
// (map_sum of dty).
@compute @workgroup_size(256)
fn jvp_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let len = p.channels * p.hw;
    if (i >= p.n * len) { return; }
    let n = i / len;
    let k = i - n * len;
    let m = group_of(n);
    let g = f32(p.gsize);
    let mean = group_mean_x(m, k);
    let sigma = group_sigma(m, k, mean);
    let a = group_dot(m, k, mean);
    let tc = v[i] - group_mean_v(m, k);
    let d = x[i] - mean;
    out[i] = scratch[m] / (g * f32(len)) * (tc / sigma - a * d / (g * sigma * sigma * sigma));
}
