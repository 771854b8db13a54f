// gp: the WGAN-GP pieces that are not a network pass (DESIGN.md, "The exact gradient penalty").
//   mix:     xhat_b = real_b + u_b (fake_b - real_b), one u per sample.
//   tangent: t_b = c_b g_b / ||g_b||, c_b = 2 lambda (||g_b|| - gamma) / (B gamma^2), the gradient of
//            the penalty (lambda/B) sum_b (||g_b|| - gamma)^2 / gamma^2 with respect to g, which is
//            the tangent D's forward-mode pass starts from. ||g_b||^2 comes in precomputed (reduce).

struct Params {
    len: u32,     // elements in the [B, ...] tensors
    batch: u32,   // B
    lambda: f32,
    gamma: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;   // mix: real; tangent: g
@group(0) @binding(2) var<storage, read> b: array<f32>;   // mix: fake; tangent: sumsq [B]
@group(0) @binding(3) var<storage, read> u: array<f32>;   // mix: u [B]
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn mix(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let s = i / (p.len / p.batch);
    out[i] = a[i] + u[s] * (b[i] - a[i]);
}

@compute @workgroup_size(256)
fn tangent(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let norm = sqrt(b[i / (p.len / p.batch)]);
    let c = 2.0 * p.lambda * (norm - p.gamma) / (f32(p.batch) * p.gamma * p.gamma);
    // ||g_b|| = 0: the norm has no gradient there and c g / ||g|| would be 0/0 = NaN, which would
    // poison every weight through the backward pass. 0 is a valid subgradient of the norm at 0.
    out[i] = select(0.0, c * a[i] / norm, norm > 0.0);
}
