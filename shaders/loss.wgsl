// loss: WGAN loss pieces over the D step's scores [2B] (D's output for the real images, then for the
// fake ones: real_b = scores[b], fake_b = scores[B + b]) and the G step's fake scores.
//   L_D = mean(fake) - mean(real) + P + drift * mean(real^2),   L_G = -mean(fake'),
//   P = (lambda/B) sum_b (||g_b|| - gamma)^2 / gamma^2 from sumsq_b = ||g_b||^2.
// The score gradients are one invocation per sample; the statistics are one workgroup of 64 that
// strides over the batch (any B; the batches here are <= 64) and reduces in workgroup memory.

struct Params {
    batch: u32,    // B of the D step (B real and B fake scores, sumsq)
    g_batch: u32,  // B of the G step (g_fake)
    lambda: f32,
    gamma: f32,
    drift: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> sumsq: array<f32>;
@group(0) @binding(3) var<storage, read> g_fake: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;  // the score gradients, or stats

// The gradients of L_D's score terms: (-1 + 2 drift real) / B for a real score, 1 / B for a fake one.
@compute @workgroup_size(64)
fn d_score_grads(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 64u);
    if (i >= 2u * p.batch) { return; }
    let b = f32(p.batch);
    out[i] = select(1.0, -1.0 + 2.0 * p.drift * scores[i], i < p.batch) / b;
}

// d_fake = -1 / B: the gradient of L_G.
@compute @workgroup_size(64)
fn g_score_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 64u);
    if (i >= p.g_batch) { return; }
    out[i] = -1.0 / f32(p.g_batch);
}

// Sums of real, fake, real^2 and the penalty terms; and of the G step's fake scores.
var<workgroup> sums: array<vec4<f32>, 64>;
var<workgroup> sums_g: array<f32, 64>;

// out [5] = [L_D, L_G, P, drift * mean(real^2), mean(real) - mean(fake)].
@compute @workgroup_size(64)
fn stats(@builtin(local_invocation_index) lid: u32) {
    var acc = vec4<f32>(0.0);
    for (var i = lid; i < p.batch; i += 64u) {
        let r = scores[i];
        let dev = (sqrt(sumsq[i]) - p.gamma) / p.gamma;
        acc += vec4<f32>(r, scores[p.batch + i], r * r, dev * dev);
    }
    var acc_g = 0.0;
    for (var i = lid; i < p.g_batch; i += 64u) {
        acc_g += g_fake[i];
    }
    sums[lid] = acc;
    sums_g[lid] = acc_g;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            sums[lid] += sums[lid + stride];
            sums_g[lid] += sums_g[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let mean = sums[0] / f32(p.batch);
        let penalty = p.lambda * mean.w;
        let drift_term = p.drift * mean.z;
        out[0] = mean.y - mean.x + penalty + drift_term;
        out[1] = -sums_g[0] / f32(p.g_batch);
        out[2] = penalty;
        out[3] = drift_term;
        out[4] = mean.x - mean.y;
    }
}
