// resample: nearest-neighbour upsampling and box downsampling of [N*C, H, W] planes by a factor f.
//
// Both passes of both ops are one of two maps, times a scale:
//   spread: out[.., i, j] = scale * x[.., i / f, j / f]        (upsample: 1, downsample backward: 1/f^2)
//   gather: out[.., i, j] = scale * sum over the f x f block of x at (i*f + a, j*f + b)
//                                                              (upsample backward: 1, downsample: 1/f^2)
// One invocation per output element. With f a power of two, 1/f^2 is exact in f32.

struct Params {
    len: u32,    // elements of out
    out_h: u32,
    out_w: u32,
    f: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn spread(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = linear_index(wid, nwg, lid, 256u);
    if (o >= p.len) { return; }
    let j = o % p.out_w;
    let i = (o / p.out_w) % p.out_h;
    let plane = o / (p.out_w * p.out_h);
    let in_h = p.out_h / p.f;
    let in_w = p.out_w / p.f;
    out[o] = p.scale * x[(plane * in_h + i / p.f) * in_w + j / p.f];
}

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = linear_index(wid, nwg, lid, 256u);
    if (o >= p.len) { return; }
    let j = o % p.out_w;
    let i = (o / p.out_w) % p.out_h;
    let plane = o / (p.out_w * p.out_h);
    let in_w = p.out_w * p.f;
    var acc = 0.0;
    for (var a = 0u; a < p.f; a++) {
        let row = (plane * p.out_h * p.f + i * p.f + a) * in_w + j * p.f;
        for (var b = 0u; b < p.f; b++) {
            acc += x[row + b];
        }
    }
    out[o] = p.scale * acc;
}
