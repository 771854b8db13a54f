// reals: a minibatch of real images from their bytes, as D sees them: x / 127.5 - 1 in [-1, 1],
// mirrored left-right where the image's flag says so, and faded as G's output is during a fade-in,
// lerp(upsample2x_nearest(avgpool2x2(x)), x, alpha). One invocation per output element.
//
// The arithmetic runs on u = 2 x - 255 (so x / 127.5 - 1 = u / 255): u, the sum of a 2x2 block
// and its quarter are exact in f32, so only the blend and the final scale round.

struct Params {
    len: u32,         // elements of the output: images x channels x res x res
    res: u32,
    image: u32,       // elements of one image: channels x res x res
    alpha: f32,       // 1: no fade
    scale: f32,       // 1 / 255 in f32: a product rounds alike on every device, a quotient need not
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bytes: array<u32>;      // the images' bytes, 4 to a word, NCHW
@group(0) @binding(2) var<storage, read> mirror: array<u32>;     // per image: 1 to mirror
@group(0) @binding(3) var<storage, read_write> out: array<f32>;  // [N, C, res, res]

// u = 2 x - 255 of byte `at` of the minibatch.
fn centred(at: u32) -> f32 {
    let x = (bytes[at / 4u] >> (8u * (at % 4u))) & 0xffu;
    return f32(2u * x) - 255.0;
}

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.len) { return; }
    let r = p.res;
    let plane = i - i % (r * r);          // the first byte of this image's channel
    let y = (i % (r * r)) / r;
    var x = i % r;
    if (mirror[i / p.image] != 0u) {
        x = r - 1u - x;
    }
    let u = centred(plane + y * r + x);
    if (p.alpha == 1.0) {
        out[i] = u * p.scale;
        return;
    }
    // The 2x2 block holding (y, x): mirroring maps aligned blocks onto aligned blocks.
    let corner = plane + (y & ~1u) * r + (x & ~1u);
    let low = (centred(corner) + centred(corner + 1u) + centred(corner + r) + centred(corner + r + 1u)) * 0.25;
    out[i] = (low + (u - low) * p.alpha) * p.scale;
}
