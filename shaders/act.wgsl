// act: bias + leaky ReLU over NCHW tensors, y = lrelu(x + bias[c]).
// A slope of 1 makes it a plain bias add (toRGB, the last dense layer).
//
// The derivative is diagonal, so one kernel serves the backward pass and the forward-mode (JVP)
// pass: out = v * lrelu'(y), with the mask read off the activated output y (y > 0 exactly where
// x + bias > 0, for a positive slope). The bias gradient is a per-channel sum (reduce.wgsl).

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

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let c = (i / p.hw) % p.channels;
    out[i] = lrelu(x[i] + bias[c], p.slope);
}

@compute @workgroup_size(256)
fn mask(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    out[i] = select(v[i] * p.slope, v[i], x[i] > 0.0);
}
