// conv: 2-D convolution, stride 1, 'same' zero padding, square kernel K = 1 or 3, NCHW, scaled by the
// equalized-learning-rate factor `scale` (gain / sqrt(Cin*K*K)), no bias.
//
// All three passes are one implicit GEMM, C[M, NC] = scale * sum_k A[M, k] B[k, NC], with im2col
// indices computed on the fly and the padding done by bounds checks. The mode picks the mappings:
//   forward (0):         M = Cout, NC = batch*H*W (pixels), k = (ci, ky, kx)  A = w,  B = im2col(x)
//   backward_data (1):   M = Cin,  NC = batch*H*W (pixels), k = (co, ky, kx)  A = w flipped and
//                        transposed, B = im2col(dy) (the flip turns the transposed convolution into
//                        the same 'same'-padded window as the forward)
//   backward_weight (2): M = Cout, NC = Cin*K*K (taps),     k = (n, h, w)     A = dy, B = im2col(x)^T
// A workgroup computes a TM x TN tile of C, one invocation per 4x4 block of it (64 or 256 invocations),
// staging TK-deep slices of A and B in workgroup memory. TM, TN and TK are override constants that
// the launcher picks per shape (src/ops/conv.rs): 64x64 tiles for wide layers, narrower or smaller
// ones (down to 8 rows) so that few output rows or columns (small channel counts, toRGB's 3, the
// taps of a weight gradient) do not leave most of a tile empty. The reduction may be split
// over wid.z (split-K, when the tiles alone would not fill the device): each split then writes its
// own slice of a scratch buffer, and `sum_splits` adds the slices into the output.
//
// The forward pass may end with the layer's bias and leaky ReLU (`forward_act`, or `sum_splits_act`
// after a split forward): y = lrelu(scale * C + bias[m], slope), stored once instead of being written
// by the GEMM and then read and rewritten by act.wgsl.
//
// Every invocation stages one reduction row k per slice (for both A and B) and a fixed set of values
// of the other index, so it decomposes k into its three digits once and then advances them by TK
// with carries: no integer division in the main loop.

struct Params {
    m: u32,           // rows of C
    ncol: u32,        // columns of C
    kdim: u32,        // reduction length
    chunk: u32,       // reduction length of one split (a multiple of TK)
    tiles_m: u32,
    tiles_n: u32,
    cin: u32,
    cout: u32,
    h: u32,
    w: u32,
    ks: u32,          // kernel size, 1 or 3
    accumulate: u32,  // 1: add to the output instead of overwriting it
    scale: f32,
    splits: u32,      // sum_splits: the number of slices
    slope: f32,       // forward_act, sum_splits_act: the leaky ReLU's slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;   // w (modes 0, 1), dy (mode 2); sum_splits: the slices
@group(0) @binding(2) var<storage, read> b: array<f32>;   // x (modes 0, 2), dy (mode 1)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;  // forward_act, sum_splits_act: [Cout]

override TM: u32 = 64u;  // tile rows
override TN: u32 = 64u;  // tile columns
override TK: u32 = 16u;  // reduction slice depth, at most TM / 2
// One invocation per 4x4 block of the tile: at most 256.
override WG: u32 = TM * TN / 16u;
// Invocations per staged reduction row: each stages TM / GROUP values of A (fewer than one for some
// tiles, so some invocations stage none) and TN / GROUP = 16 TK / TM <= 8 of B.
override GROUP: u32 = WG / TK;
// The staged slices are rows of TM (A) or TN (B) values read as vec4s, so an invocation fetches its
// 4 rows of A and 4 columns of B with one load each. Rows are one vec4 longer than needed, so that
// the invocations of mode 2 storing down a column hit 8 banks instead of one.
override A_ROW: u32 = TM / 4u + 1u;
override B_ROW: u32 = TN / 4u + 1u;
override B_BASE: u32 = TK * A_ROW;

// A[m, k] at (k * A_ROW + m / 4)[m % 4], then B[k, col] at (B_BASE + k * B_ROW + col / 4)[col % 4].
// 672 vec4s (10.5 KiB) hold the largest variant, 32x128 tiles with TK 16.
var<workgroup> stage: array<vec4<f32>, 672>;

// v as three mixed-radix digits (v / (r1 r0), v / r0 % r1, v % r0).
fn digits(v: u32, r1: u32, r0: u32) -> vec3<u32> {
    return vec3<u32>(v / (r1 * r0), (v / r0) % r1, v % r0);
}

// d + s for digits d and a step s (each digit below its radix), with carries.
fn advance(d: vec3<u32>, s: vec3<u32>, r1: u32, r0: u32) -> vec3<u32> {
    var lo = d.z + s.z;
    var carry = u32(lo >= r0);
    lo -= carry * r0;
    var mid = d.y + s.y + carry;
    carry = u32(mid >= r1);
    mid -= carry * r1;
    return vec3<u32>(d.x + s.x + carry, mid, lo);
}

// src[n, c, h + ky - pad, w + kx - pad] of a tensor with `channels` channels, 0 outside the image.
// pixel = (n, h, w), tap = (c, ky, kx). Unsigned wrap-around turns a negative row into a large one.
fn im2col(channels: u32, pixel: vec3<u32>, tap: vec3<u32>) -> f32 {
    let pad = p.ks / 2u;
    let y = pixel.y + tap.y - pad;
    let x = pixel.z + tap.z - pad;
    if (y >= p.h || x >= p.w) {
        return 0.0;
    }
    return b[((pixel.x * channels + tap.x) * p.h + y) * p.w + x];
}

// The radices (r1, r0) of the reduction index: taps (K, K), or pixels (H, W) in mode 2.
fn reduction_radices(mode: u32) -> vec2<u32> {
    return select(vec2<u32>(p.ks, p.ks), vec2<u32>(p.h, p.w), mode == 2u);
}

// The radices of a column index: pixels (H, W), or taps (K, K) in mode 2.
fn column_radices(mode: u32) -> vec2<u32> {
    return select(vec2<u32>(p.h, p.w), vec2<u32>(p.ks, p.ks), mode == 2u);
}

// The tile row of workgroup `wid`, and the block of 4 rows in it that invocation `lid` computes.
fn tile_row(wid: vec3<u32>) -> u32 {
    return wid.z % p.tiles_m;
}

fn row_block(lid: u32) -> u32 {
    return lid / (TN / 4u);
}

// One tile of C, stored as lrelu(scale * C + bias4[i], slope) on the invocation's rows i (the
// epilogue): a bias of 0 and a slope of 1 store scale * C exactly.
fn gemm(mode: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, bias4: vec4<f32>, slope: f32) {
    // Column tiles run over x and y so that batch*H*W / TN may exceed 65535.
    let tile_n = wid.y * nwg.x + wid.x;
    if (tile_n >= p.tiles_n) {
        return;
    }
    let tile_m = tile_row(wid);
    let split = wid.z / p.tiles_m;
    let m0 = tile_m * TM;
    let c0 = tile_n * TN;
    let kbeg = split * p.chunk;
    let kend = min(kbeg + p.chunk, p.kdim);
    let kk = p.ks * p.ks;

    // What this invocation stages: reduction row `krow`, and rows m0 + other + GROUP i of A and
    // columns c0 + other + GROUP i of B. Along the fast index of global memory consecutive
    // invocations take consecutive values: the pixel columns in modes 0 and 1, the pixel rows
    // in mode 2.
    let krow = select(lid / GROUP, lid % TK, mode == 2u);
    let other = select(lid % GROUP, lid / TK, mode == 2u);
    let rr = reduction_radices(mode);
    let cr = column_radices(mode);
    var kd = digits(kbeg + krow, rr.x, rr.y);
    let kstep = digits(TK, rr.x, rr.y);
    let nb = TN / GROUP;
    var cols: array<vec3<u32>, 8>;
    for (var i = 0u; i < nb; i++) {
        cols[i] = digits(c0 + other + GROUP * i, cr.x, cr.y);
    }
    // The channel count of the tensor B reads.
    let b_channels = select(p.cin, p.cout, mode == 1u);

    var acc: array<vec4<f32>, 4>;
    let tx = lid % (TN / 4u);
    let ty = row_block(lid);
    for (var k0 = kbeg; k0 < kend; k0 += TK) {
        let k = k0 + krow;
        let live = k < kend;
        let tap = kd.y * p.ks + kd.z;
        for (var r = other; r < TM; r += GROUP) {
            let m = m0 + r;
            var av = 0.0;
            if (live && m < p.m) {
                switch mode {
                    case 0u: { av = a[(m * p.cin + kd.x) * kk + tap]; }
                    case 1u: { av = a[(kd.x * p.cin + m) * kk + kk - 1u - tap]; }
                    default: { av = a[((kd.x * p.cout + m) * p.h + kd.y) * p.w + kd.z]; }
                }
            }
            stage[krow * A_ROW + r / 4u][r % 4u] = av;
        }
        for (var i = 0u; i < nb; i++) {
            let c = other + GROUP * i;
            var bv = 0.0;
            if (live && c0 + c < p.ncol) {
                if (mode == 2u) {
                    bv = im2col(b_channels, kd, cols[i]);
                } else {
                    bv = im2col(b_channels, cols[i], kd);
                }
            }
            stage[B_BASE + krow * B_ROW + c / 4u][c % 4u] = bv;
        }
        workgroupBarrier();
        for (var r = 0u; r < TK; r++) {
            let av = stage[r * A_ROW + ty];
            let bv = stage[B_BASE + r * B_ROW + tx];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
        }
        workgroupBarrier();
        kd = advance(kd, kstep, rr.x, rr.y);
    }

    // Store: C[m, col] goes to [n, m, h, w] (modes 0, 1) or [m, col] (mode 2), in this split's
    // slice. Invocation (tx, ty) holds rows m0 + 4 ty + i and columns c0 + 4 tx + j.
    let slice = split * p.m * p.ncol;
    let hw = p.h * p.w;
    for (var j = 0u; j < 4u; j++) {
        let col = c0 + 4u * tx + j;
        let px = digits(col, p.h, p.w);
        for (var i = 0u; i < 4u; i++) {
            let m = m0 + 4u * ty + i;
            if (m < p.m && col < p.ncol) {
                let idx = slice + select((px.x * p.m + m) * hw + px.y * p.w + px.z, m * p.ncol + col, mode == 2u);
                out[idx] = select(0.0, out[idx], p.accumulate == 1u) + lrelu(p.scale * acc[i][j] + bias4[i], slope);
            }
        }
    }
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    gemm(0u, wid, nwg, lid, vec4<f32>(0.0), 1.0);
}

@compute @workgroup_size(WG)
fn backward_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    gemm(1u, wid, nwg, lid, vec4<f32>(0.0), 1.0);
}

@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    gemm(2u, wid, nwg, lid, vec4<f32>(0.0), 1.0);
}

// The biases are read here, not in gemm, so that only this entry point binds them.
@compute @workgroup_size(WG)
fn forward_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let m = tile_row(wid) * TM + 4u * row_block(lid);
    var bias4 = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        if (m + i < p.m) {
            bias4[i] = bias[m + i];
        }
    }
    gemm(0u, wid, nwg, lid, bias4, p.slope);
}

// (out[i] if accumulating) + the sum over s of slices[s * len + i], len = m * ncol: the split-K
// partial sums.
fn split_total(i: u32, len: u32) -> f32 {
    var total = select(0.0, out[i], p.accumulate == 1u);
    for (var s = 0u; s < p.splits; s++) {
        total += a[s * len + i];
    }
    return total;
}

@compute @workgroup_size(256)
fn sum_splits(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let len = p.m * p.ncol;
    if (i >= len) { return; }
    out[i] = split_total(i, len);
}

// sum_splits of a forward pass (slices laid out as the output [N, Cout, H, W]), then the epilogue.
@compute @workgroup_size(256)
fn sum_splits_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let len = p.m * p.ncol;
    if (i >= len) { return; }
    out[i] = lrelu(split_total(i, len) + bias[(i / (p.h * p.w)) % p.m], p.slope);
}
