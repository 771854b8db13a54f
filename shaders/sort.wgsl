// sort: ascending bitonic sort of each row of a [rows, len] tensor in place, len a power of two, and
// the two helpers of the sliced Wasserstein distance around it (place, abs_diff_sums).
//
// Bitonic sort: for k = 2, 4, ..., len and j = k/2, ..., 1, element lo (with bit j clear) is
// compare-exchanged with lo + j, ascending when bit k of lo's index within its row is clear. A row's
// length is a power of two, so rows are aligned and no pair crosses a row. `sort_tile` runs every step
// with j < BLOCK inside one workgroup on a BLOCK-element tile in workgroup memory (8 KiB), and
// `sort_step` runs each step with j >= BLOCK as one launch, so a row of 2^21 needs 66 launches, not 231.

struct Params {
    count: u32,  // step: pairs in the tensor; sort_tile: tiles; place: elements of src; sums: rows
    len: u32,    // row length (a power of two)
    k: u32,      // step: the k of the step; sort_tile: the first k
    j: u32,      // step: the j of the step
    k_last: u32, // sort_tile: the last k
    block: u32,  // sort_tile: the tile size, min(len, BLOCK)
    offset: u32, // place: the first column written; sums: the first output written
    n: u32,      // place: columns of src; sums: leading elements of each row compared
}

const BLOCK: u32 = 2048u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> a: array<f32>;
@group(0) @binding(4) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<f32, BLOCK>;

// The lower element of pair t of a step with distance j: t with a zero bit inserted at bit j.
fn pair_low(t: u32, j: u32) -> u32 {
    return ((t & ~(j - 1u)) << 1u) | (t & (j - 1u));
}

// Whether the pair whose lower element has index i within its row sorts ascending at stage k.
fn ascending(i: u32, k: u32) -> bool {
    return (i & k) == 0u;
}

@compute @workgroup_size(256)
fn sort_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let t = linear_index(wid, nwg, lid, 256u);
    if (t >= p.count) { return; }
    let lo = pair_low(t, p.j);
    let hi = lo + p.j;
    let u = x[lo];
    let v = x[hi];
    if ((u > v) == ascending(lo & (p.len - 1u), p.k)) {
        x[lo] = v;
        x[hi] = u;
    }
}

@compute @workgroup_size(256)
fn sort_tile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let tile_index = wid.y * nwg.x + wid.x;
    if (tile_index >= p.count) { return; }
    let base = tile_index * p.block;
    for (var e = lid; e < p.block; e += 256u) {
        tile[e] = x[base + e];
    }
    workgroupBarrier();
    for (var k = p.k; k <= p.k_last; k <<= 1u) {
        for (var j = min(k, p.block) >> 1u; j > 0u; j >>= 1u) {
            for (var t = lid; t < p.block / 2u; t += 256u) {
                let lo = pair_low(t, j);
                let u = tile[lo];
                let v = tile[lo + j];
                if ((u > v) == ascending((base + lo) & (p.len - 1u), k)) {
                    tile[lo] = v;
                    tile[lo + j] = u;
                }
            }
            workgroupBarrier();
        }
    }
    for (var e = lid; e < p.block; e += 256u) {
        x[base + e] = tile[e];
    }
}

// x[c, offset + r] = src[r, c] for src [count / n, n]: a block of rows of a projection matrix
// becomes a block of columns of the row-per-direction tensor that the sort sorts.
@compute @workgroup_size(256)
fn place(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid, 256u);
    if (i >= p.count) { return; }
    let r = i / p.n;
    let c = i - r * p.n;
    x[c * p.len + p.offset + r] = src[i];
}

// out[offset + r] = sum over i < n of |a[r, i] - b[r, i]|: one workgroup per row, its invocations
// striding over the row, then a tree reduction in workgroup memory.
@compute @workgroup_size(256)
fn abs_diff_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let r = wid.y * nwg.x + wid.x;
    if (r >= p.count) { return; }
    var acc = 0.0;
    for (var i = lid; i < p.n; i += 256u) {
        acc += abs(a[r * p.len + i] - b[r * p.len + i]);
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out[p.offset + r] = total;
    }
}
