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
// A workgroup computes a TM x TN tile of C with TM * TN / 16 invocations (64 or 256), staging TK-deep
// slices of A and B in workgroup memory. TM, TN and TK are override constants that the launcher
// picks per shape (src/ops/conv.rs): 64x64 tiles for wide layers, narrower or smaller ones (down to
// 8 rows) so that few output rows or columns (small channel counts, toRGB's 3, the taps of a weight
// gradient) do not leave most of a tile empty. The reduction may be split over wid.z (split-K, when
// the tiles alone would not fill the device): each split then writes its own slice of a scratch
// buffer, and reduce.wgsl adds the slices into the output.
//
// This file stages the slices and stores the tile; the products are an engine's, composed before
// this text (src/ops/conv.rs) and called through four functions: `put_a(k, m, v)` and
// `put_b(k, col, v)` stage A[m, k] and B[k, col] of the slice, `multiply_slice(&acc, lid)` adds the
// staged slice's product to the accumulator `acc` (of the engine's type `Acc`), and
// `finish(&acc, lid)` returns invocation lid's 4x4 block of the tile, rows 4 (lid / (TN / 4)) + i
// and columns 4 (lid % (TN / 4)) + j, which this file scales, stores and applies the epilogue to.
//   conv_fma.wgsl:  each invocation multiplies-adds its 4x4 block from the staged values, staged in
//                   `Staged` (f32: the f32 kernel; f16: conv+f16, A and B rounded to f16, products and
//                   sums in f32, the product of two f16 values being exact in f32);
//   conv_coop.wgsl: cooperative matrices (tensor cores): f16 operands, f32 accumulators, one
//                   subgroup per few N x N blocks of the tile (conv+coop8, conv+coop16).
// Storage is f32 in every variant.
//
// The forward pass may end with the layer's bias and leaky ReLU (`forward_act`, or `sum_splits_act`
// after a split forward): y = lrelu(scale * C + bias[m], slope), stored once instead of being written
// by the GEMM and then read and rewritten by act.wgsl.
//
// Every invocation stages, per slice, one reduction row of A and one of B and a fixed set of values of
// the other index, so it decomposes each row index into its three digits once and then advances them
// by TK with carries: no integer division in the main loop. The im2col address of a staged value is
// the sum of a part fixed per column and a part computed once per slice (see `pixel_part`).

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
    splits: u32,      // sum_splits_act: the number of slices
    slope: f32,       // forward_act, sum_splits_act: the leaky ReLU's slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;   // w (modes 0, 1), dy (mode 2); sum_splits_act: the slices
@group(0) @binding(2) var<storage, read> b: array<f32>;   // x (modes 0, 2), dy (mode 1)
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;  // forward_act, sum_splits_act: [Cout]

override TM: u32 = 64u;  // tile rows
override TN: u32 = 64u;  // tile columns
override TK: u32 = 16u;  // reduction slice depth
// One invocation per 4x4 block of the tile: at most 256.
override WG: u32 = TM * TN / 16u;
// Invocations per staged reduction row: each stages TM / GROUP values of A (fewer than one for some
// tiles, so some invocations stage none) and TN / GROUP <= 8 of B.
override GROUP: u32 = WG / TK;

// forward_act: the biases of the tile's rows.
var<workgroup> tile_bias: array<f32, 64>;

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

// im2col addresses as the sum of two parts, one from the pixel (n, y, x) and one from the tap
// (c, ky, kx): ((n C + c) H + y + ky - pad) W + x + kx - pad = pixel part + tap part. Each part is
// (offset, row, column); the sum's row and column are the image position the bounds check needs. One
// of the two parts is fixed per staged column and the other changes once per slice, so staging a
// value costs two additions, two comparisons and one addition for its address. Unsigned wrap-around
// makes -pad and a position left of or above the image work: a negative row or column is a large one.
fn pixel_part(channels: u32, px: vec3<u32>) -> vec3<u32> {
    return vec3<u32>((px.x * channels * p.h + px.y) * p.w + px.z, px.y, px.z);
}

fn tap_part(tap: vec3<u32>) -> vec3<u32> {
    let pad = p.ks / 2u;
    let dy = tap.y - pad;
    let dx = tap.z - pad;
    return vec3<u32>((tap.x * p.h + dy) * p.w + dx, dy, dx);
}

// The part of a column past the output or of a reduction row past the chunk: its row puts every
// sum out of the image, even the sum of two such parts or one plus a tap's -pad.
const NONE = vec3<u32>(0u, 0x40000000u, 0u);

// src[pixel + tap] for the two parts of an im2col address, 0 outside the image.
fn im2col(u: vec3<u32>, v: vec3<u32>) -> f32 {
    if (u.y + v.y >= p.h || u.z + v.z >= p.w) {
        return 0.0;
    }
    return b[u.x + v.x];
}

// The radices (r1, r0) of the reduction index: taps (K, K), or pixels (H, W) in mode 2.
fn reduction_radices(mode: u32) -> vec2<u32> {
    return select(vec2<u32>(p.ks, p.ks), vec2<u32>(p.h, p.w), mode == 2u);
}

// The radices of a column index: pixels (H, W), or taps (K, K) in mode 2.
fn column_radices(mode: u32) -> vec2<u32> {
    return select(vec2<u32>(p.h, p.w), vec2<u32>(p.ks, p.ks), mode == 2u);
}

// The part of B's addresses that column `col` (digits cd) contributes: a pixel's in modes 0 and 1
// (of x, or of dy with Cout channels), a tap's in mode 2; NONE past the columns.
fn column_part(mode: u32, col: u32, cd: vec3<u32>) -> vec3<u32> {
    if (col >= p.ncol) {
        return NONE;
    }
    if (mode == 2u) {
        return tap_part(cd);
    }
    return pixel_part(select(p.cin, p.cout, mode == 1u), cd);
}

// The part of B's addresses that reduction row k (digits kd) contributes: a tap's, or a pixel's of x
// in mode 2; NONE past the chunk.
fn row_part(mode: u32, k: u32, kd: vec3<u32>, kend: u32) -> vec3<u32> {
    if (k >= kend) {
        return NONE;
    }
    if (mode == 2u) {
        return pixel_part(p.cin, kd);
    }
    return tap_part(kd);
}

// A[m, k] is a[m * a_stride + a_offset(k)]: w[m, k] in mode 0, w[co, m, K-1-ky, K-1-kx] (flipped) in
// mode 1, dy[n, m, y, x] in mode 2.
fn a_stride(mode: u32) -> u32 {
    switch mode {
        case 0u: { return p.kdim; }
        case 1u: { return p.ks * p.ks; }
        default: { return p.h * p.w; }
    }
}

fn a_offset(mode: u32, k: u32, kd: vec3<u32>) -> u32 {
    let kk = p.ks * p.ks;
    switch mode {
        case 0u: { return k; }
        case 1u: { return kd.x * p.cin * kk + kk - 1u - (kd.y * p.ks + kd.z); }
        default: { return (kd.x * p.cout * p.h + kd.y) * p.w + kd.z; }
    }
}

// A[m, k] from its reduction row's offset, 0 past the rows or (k_in false) past the chunk.
fn load_a(mode: u32, m: u32, offset: u32, k_in: bool) -> f32 {
    if (!k_in || m >= p.m) {
        return 0.0;
    }
    return a[m * a_stride(mode) + offset];
}

// The tile row of workgroup `wid`.
fn tile_row(wid: vec3<u32>) -> u32 {
    return wid.z % p.tiles_m;
}

// Stores a 4x4 block of C, rows `row` + i and columns `col` + j of the tile at (m0, c0): C[m, col]
// goes to [n, m, h, w] (modes 0, 1) or [m, col] (mode 2), in this split's slice; as
// lrelu(scale * C + bias, slope) with `act` (forward_act), else scale * C, added to the output when
// accumulating.
fn store_block(mode: u32, m0: u32, c0: u32, row: u32, col: u32, slice: u32, blk: array<vec4<f32>, 4>,
               act: bool, slope: f32) {
    let hw = p.h * p.w;
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + col + j;
        let px = digits(c, p.h, p.w);
        for (var i = 0u; i < 4u; i++) {
            let m = m0 + row + i;
            if (m < p.m && c < p.ncol) {
                let idx = slice + select((px.x * p.m + m) * hw + px.y * p.w + px.z, m * p.ncol + c, mode == 2u);
                var v = p.scale * blk[i][j];
                if (act) {
                    v = lrelu(v + tile_bias[row + i], slope);
                }
                if (p.accumulate == 1u) {
                    v += out[idx];
                }
                out[idx] = v;
            }
        }
    }
}

// One tile of C. Every invocation stages, per slice, one reduction row of A and one of B and a fixed
// set of A's rows and B's columns. Consecutive invocations take consecutive addresses of global
// memory where they can: A (the weights, or dy in mode 2) is read along k; B along the pixel columns
// in modes 0 and 1 and along k (pixels) in mode 2. The next slice's values are loaded into registers
// while the engine multiplies this one, so the loads' latency hides behind the arithmetic.
fn gemm(mode: u32, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, act: bool, slope: f32) {
    // Column tiles run over x and y so that batch*H*W / TN may exceed 65535.
    let tile_n = wid.y * nwg.x + wid.x;
    if (tile_n >= p.tiles_n) {
        return;
    }
    let split = wid.z / p.tiles_m;
    let m0 = tile_row(wid) * TM;
    let c0 = tile_n * TN;
    let kbeg = split * p.chunk;
    let kend = min(kbeg + p.chunk, p.kdim);

    let rr = reduction_radices(mode);
    let cr = column_radices(mode);
    let kstep = digits(TK, rr.x, rr.y);
    // A: reduction row ka, rows oa + GROUP i.
    let ka = lid % TK;
    let oa = lid / TK;
    var kda = digits(kbeg + ka, rr.x, rr.y);
    // B: reduction row kb, columns ob + GROUP i (their address parts in col_parts).
    let kb = select(lid / GROUP, lid % TK, mode == 2u);
    let ob = select(lid % GROUP, lid / TK, mode == 2u);
    var kdb = digits(kbeg + kb, rr.x, rr.y);
    let na = TM / GROUP;
    let nb = TN / GROUP;
    var col_parts: array<vec3<u32>, 8>;
    for (var i = 0u; i < nb; i++) {
        let c = c0 + ob + GROUP * i;
        col_parts[i] = column_part(mode, c, digits(c, cr.x, cr.y));
    }
    // This slice's A offset and B row part (and whether A's row is in the chunk).
    var a_off = a_offset(mode, kbeg + ka, kda);
    var a_in = kbeg + ka < kend;
    var b_row = row_part(mode, kbeg + kb, kdb, kend);

    // The values of the next slice, loaded ahead.
    var ra: array<f32, 8>;
    var rb: array<f32, 8>;
    for (var i = 0u; i < na; i++) {
        ra[i] = load_a(mode, m0 + oa + GROUP * i, a_off, a_in);
    }
    for (var i = 0u; i < nb; i++) {
        rb[i] = im2col(b_row, col_parts[i]);
    }

    var acc: Acc;
    for (var k0 = kbeg; k0 < kend; k0 += TK) {
        for (var i = 0u; i < na; i++) {
            let r = oa + GROUP * i;
            put_a(ka, r, ra[i]);
        }
        // Tiles with fewer than one A value per invocation (8 or 16 rows): the invocations with oa < TM
        // stage one each, loaded here rather than ahead.
        if (na == 0u && oa < TM) {
            put_a(ka, oa, load_a(mode, m0 + oa, a_off, a_in));
        }
        for (var i = 0u; i < nb; i++) {
            let c = ob + GROUP * i;
            put_b(kb, c, rb[i]);
        }
        workgroupBarrier();
        let k1 = k0 + TK;
        if (k1 < kend) {
            kda = advance(kda, kstep, rr.x, rr.y);
            kdb = advance(kdb, kstep, rr.x, rr.y);
            a_off = a_offset(mode, k1 + ka, kda);
            a_in = k1 + ka < kend;
            b_row = row_part(mode, k1 + kb, kdb, kend);
            for (var i = 0u; i < na; i++) {
                ra[i] = load_a(mode, m0 + oa + GROUP * i, a_off, a_in);
            }
            for (var i = 0u; i < nb; i++) {
                rb[i] = im2col(b_row, col_parts[i]);
            }
        }
        multiply_slice(&acc, lid);
        workgroupBarrier();
    }

    let tx = lid % (TN / 4u);
    let ty = lid / (TN / 4u);
    store_block(mode, m0, c0, 4u * ty, 4u * tx, split * p.m * p.ncol, finish(&acc, lid), act, slope);
}

@compute @workgroup_size(WG)
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    gemm(0u, wid, nwg, lid, false, 1.0);
}

@compute @workgroup_size(WG)
fn backward_data(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    gemm(1u, wid, nwg, lid, false, 1.0);
}

@compute @workgroup_size(WG)
fn backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    gemm(2u, wid, nwg, lid, false, 1.0);
}

// The biases are read here, not in gemm, so that only this entry point binds them.
@compute @workgroup_size(WG)
fn forward_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let m0 = tile_row(wid) * TM;
    for (var r = lid; r < TM; r += WG) {
        tile_bias[r] = select(0.0, bias[min(m0 + r, p.m - 1u)], m0 + r < p.m);
    }
    workgroupBarrier();
    gemm(0u, wid, nwg, lid, true, p.slope);
}

// The split-K partial sums of a forward pass, slices[s * len + i] with len = m * ncol (laid out as
// the output [N, Cout, H, W]), then the epilogue. (Without the epilogue, reduce.wgsl sums them.)
@compute @workgroup_size(256)
fn sum_splits_act(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    let len = p.m * p.ncol;
    if (i >= len) { return; }
    var total = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        total += a[s * len + i];
    }
    out[i] = lrelu(total + bias[(i / (p.h * p.w)) % p.m], p.slope);
}
