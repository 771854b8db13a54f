// reduce: sums over the outer and inner axes of a tensor viewed as [A, J, K]:
//   out[j] (+)= sum over a < A, k < K of f(x[(a * J + j) * K + k]),  f(v) = v, v * v, or 1 where v
//   is NaN or infinite and 0 elsewhere (the count of non-finite values: the trainer's check).
// Accumulating lets gradients from several passes add up in place (split-K weight gradients).
// Per-sample sum of squares: A = 1, J = N, K = C*H*W. Per-channel sum:
// A = N, J = C, K = H*W. Sum over the batch: A = N, J = features, K = 1.
// `sum`: one workgroup per output; its 256 invocations stride over the A*K terms, then a tree
// reduction in workgroup memory. `sum_few`: one invocation per output, for views with few terms per
// output (a batch of 16, the slices of a split-K product), where a workgroup would be mostly idle.

struct Params {
    outer: u32,   // A
    rows: u32,    // J
    inner: u32,   // K
    term: u32,        // f: 0 the value, 1 its square, 2 whether it is non-finite
    accumulate: u32,  // 1: add to out instead of overwriting it
}

@group(0) @binding(0) var<uniform> p: Params;

fn term(v: f32) -> f32 {
    switch p.term {
        case 1u: { return v * v; }
        // An all-ones exponent is infinity or NaN; comparisons with NaN may be folded away.
        case 2u: { return select(0.0, 1.0, (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u); }
        default: { return v; }
    }
}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let j = wid.y * nwg.x + wid.x;
    if (j >= p.rows) { return; }
    var acc = 0.0;
    let terms = p.outer * p.inner;
    for (var t = lid; t < terms; t += 256u) {
        let a = t / p.inner;
        let k = t - a * p.inner;
        let v = x[(a * p.rows + j) * p.inner + k];
        acc += term(v);
    }
    let total = workgroup_sum(lid, acc);
    if (lid == 0u) {
        out[j] = select(0.0, out[j], p.accumulate == 1u) + total;
    }
}

@compute @workgroup_size(256)
fn sum_few(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let j = linear_index(wid, nwg, lid, 256u);
    if (j >= p.rows) { return; }
    var acc = 0.0;
    for (var a = 0u; a < p.outer; a++) {
        for (var k = 0u; k < p.inner; k++) {
            let v = x[(a * p.rows + j) * p.inner + k];
            acc += term(v);
        }
    }
    out[j] = select(0.0, out[j], p.accumulate == 1u) + acc;
}
