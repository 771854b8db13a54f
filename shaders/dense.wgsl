// dense: one tiled matrix product serving every pass of the dense layer and a plain matmul:
//   c[M, N] = alpha * op(a) op(b)  (+ c when accumulating)
// op(a) is a stored [M, K], or trans_a: a stored [K, M]; op(b) is b stored [K, N], or trans_b: b
// stored [N, K]. The dense passes pick the transposes (src/ops/dense.rs) so no copy is ever made.
//
// Each workgroup computes a 64x64 tile of c; each of its 256 invocations a 4x4 block of it, strided
// by 16 so that neighbouring invocations read neighbouring workgroup-memory words and write
// neighbouring columns. K is walked in chunks of 16, staged in workgroup memory (2 x 4 KiB) as
// [k][row] and [k][col] whatever the storage order; the loads walk the contiguous axis of the stored
// matrix fastest so global reads coalesce. Out-of-range elements are staged as zeros.
// A long K over few tiles (D's last convolution flattened into its dense layer: K = 8192 for a
// 16 x 512 output) is split over wid.z (split-K): split z sums its `chunk` of K into slice z of c,
// [splits, M, N], and reduce.wgsl adds the slices.
//
// Two variants of this one file (src/ops/dense.rs composes them): the operands are staged in
// workgroup memory as `Staged`, declared before this text: `alias Staged = f32;` (dense, f32
// throughout) or `enable f16; alias Staged = f16;` (dense+f16, mixed precision: the operands are
// rounded to f16 as they are staged, the products and sums are f32, as on tensor cores; the
// product of two f16 values is exact in f32). Storage stays f32 in both.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    accumulate: u32,
    alpha: f32,
    chunk: u32,  // the reduction length of one split, a multiple of CHUNK
}

const TILE: u32 = 64u;
const CHUNK: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<Staged, 1024>;  // [CHUNK][TILE]: op(a)[m0 + row, k0 + k]
var<workgroup> b_tile: array<Staged, 1024>;  // [CHUNK][TILE]: op(b)[k0 + k, n0 + col]

// The (k, row) of element e of a staged chunk, for a stored matrix whose contiguous axis is k or not.
fn chunk_coords(e: u32, k_contiguous: bool) -> vec2<u32> {
    if (k_contiguous) {
        return vec2<u32>(e % CHUNK, e / CHUNK);
    }
    return vec2<u32>(e / TILE, e % TILE);
}

@compute @workgroup_size(256)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let m0 = wid.y * TILE;
    let n0 = wid.x * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let kbeg = wid.z * p.chunk;
    let kend = min(kbeg + p.chunk, p.k);
    var acc: array<vec4<f32>, 4>;  // acc[i][j] = c[m0 + ty + 16 i, n0 + tx + 16 j]
    for (var k0 = kbeg; k0 < kend; k0 += CHUNK) {
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            let ca = chunk_coords(e, p.trans_a == 0u);
            let ka = k0 + ca.x;
            let row = m0 + ca.y;
            var va: Staged = 0.0;
            if (ka < kend && row < p.m) {
                va = Staged(a[select(row * p.k + ka, ka * p.m + row, p.trans_a == 1u)]);
            }
            a_tile[ca.x * TILE + ca.y] = va;
            let cb = chunk_coords(e, p.trans_b == 1u);
            let kb = k0 + cb.x;
            let col = n0 + cb.y;
            var vb: Staged = 0.0;
            if (kb < kend && col < p.n) {
                vb = Staged(b[select(kb * p.n + col, col * p.k + kb, p.trans_b == 1u)]);
            }
            b_tile[cb.x * TILE + cb.y] = vb;
        }
        workgroupBarrier();
        for (var k = 0u; k < CHUNK; k++) {
            let at = k * TILE + ty;
            let bt = k * TILE + tx;
            let bv = vec4<f32>(vec4<Staged>(b_tile[bt], b_tile[bt + 16u], b_tile[bt + 32u], b_tile[bt + 48u]));
            acc[0] = fma(vec4<f32>(f32(a_tile[at])), bv, acc[0]);
            acc[1] = fma(vec4<f32>(f32(a_tile[at + 16u])), bv, acc[1]);
            acc[2] = fma(vec4<f32>(f32(a_tile[at + 32u])), bv, acc[2]);
            acc[3] = fma(vec4<f32>(f32(a_tile[at + 48u])), bv, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = n0 + tx + 16u * j;
            if (row < p.m && col < p.n) {
                let o = (wid.z * p.m + row) * p.n + col;
                var v = p.alpha * acc[i][j];
                if (p.accumulate == 1u) {
                    v += c[o];
                }
                c[o] = v;
            }
        }
    }
}
