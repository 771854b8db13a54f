// lerp: the fade-in blend out = a + alpha (b - a), alpha a scalar, and its backward pass
// da = (1 - alpha) dout, db = alpha dout. One invocation per element.

struct Params {
    len: u32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;          // forward: a; backward: dout
@group(0) @binding(2) var<storage, read> v: array<f32>;          // forward: b
@group(0) @binding(3) var<storage, read_write> out0: array<f32>; // forward: out; backward: da
@group(0) @binding(4) var<storage, read_write> out1: array<f32>; // backward: db

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    out0[i] = u[i] + p.alpha * (v[i] - u[i]);
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    out0[i] = (1.0 - p.alpha) * u[i];
    out1[i] = p.alpha * u[i];
}
