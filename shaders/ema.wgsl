// ema: exponential moving average of weights, avg = src + beta (avg - src) (the generator copy
// PG-GAN samples from).

struct Params {
    len: u32,
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> avg: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;

@compute @workgroup_size(256)
fn update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let s = src[i];
    avg[i] = s + p.beta * (avg[i] - s);
}
