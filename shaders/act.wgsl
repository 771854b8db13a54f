// act: bias + leaky ReLU over NCHW tensors, y = lrelu(x + bias[c]).
// A slope of 1 makes it a plain bias add (toRGB, the last dense layer).
//
// The derivative is diagonal, so one kernel serves the backward pass and the forward-mode (JVP)
// pass: out = v * lrelu'(y), with the mask read off the activated output y (y > 0 exactly where
// x + bias > 0, for a positive slope). The bias gradient is the per-channel sum of that output:
// `mask_bias_grad` adds it in the same launch, one workgroup per channel.

struct Params {
    len: u32,      // elements in x
    channels: u32,
    hw: u32,       // H * W
    slope: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;    // forward: input; mask: activated output y
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;    // mask: the gradient or tangent
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;  // mask_bias_grad: [C], added to

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    out[i] = lrelu(x[i] + bias[c], p.slope);
}

// out[i] = v[i] * lrelu'(y[i]), returned too.
fn mask_at(i: u32) -> f32 {
    let g = select(v[i] * p.slope, v[i], x[i] > 0.0);
    out[i] = g;
    return g;
}

@compute @workgroup_size(256)
fn mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    mask_at(i);
}

// Workgroup c masks channel c of every sample and adds the sum to db[c]: a layer's backward pass
// through its activation and bias reads v once, instead of `mask` and then a reduction of its output.
@compute @workgroup_size(256)
fn mask_bias_grad(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = wid.y * nwg.x + wid.x;
    if (c >= p.channels) { return; }
    let terms = p.len / p.channels;  // N * H * W
    var acc = 0.0;
    for (var t = lid; t < terms; t += 256u) {
        let n = t / p.hw;
        acc += mask_at((n * p.channels + c) * p.hw + t - n * p.hw);
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        db[c] += total;
    }
}
