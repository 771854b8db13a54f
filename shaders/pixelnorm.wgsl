// pixelnorm: y = x / sqrt(mean over channels of x^2 + 1e-8), per sample and pixel, over [N, C, HW].
//
// With r = (mean x^2 + eps)^(-1/2), the backward pass is
//   dx_c = r * dy_c - r^3 * x_c * (sum over k of dy_k x_k) / C.
// One invocation per (sample, pixel), looping over the channels (strided by HW).

struct Params {
    pixels: u32,   // N * HW
    channels: u32,
    hw: u32,
}

const EPS: f32 = 1e-8;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// The index of channel 0 of pixel k.
fn base(k: u32) -> u32 {
    return (k / p.hw) * p.channels * p.hw + k % p.hw;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let k = linear_index(wid, nwg, lid, 256u);
    if (k >= p.pixels) { return; }
    let b = base(k);
    var ss = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let v = x[b + c * p.hw];
        ss += v * v;
    }
    let r = 1.0 / sqrt(ss / f32(p.channels) + EPS);
    for (var c = 0u; c < p.channels; c++) {
        out[b + c * p.hw] = x[b + c * p.hw] * r;
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let k = linear_index(wid, nwg, lid, 256u);
    if (k >= p.pixels) { return; }
    let b = base(k);
    var ss = 0.0;
    var dot = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let v = x[b + c * p.hw];
        ss += v * v;
        dot += v * dy[b + c * p.hw];
    }
    let r = 1.0 / sqrt(ss / f32(p.channels) + EPS);
    let t = r * r * r * dot / f32(p.channels);
    for (var c = 0u; c < p.channels; c++) {
        let i = b + c * p.hw;
        out[i] = r * dy[i] - t * x[i];
    }
}
