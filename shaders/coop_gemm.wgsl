// coop_gemm: the smallest cooperative-matrix (tensor-core) kernel, proving the hardware path before
// anything is built on it. One workgroup computes one N x N x N product
//   c[N, N] = a[N, N] b[N, N]      (all row-major)
// with a and b rounded to f16 and c accumulated in f32: CoopA x CoopB + CoopC, declared before this
// text with N (src/ops/coop_gemm.rs: coop_mat16x16 on tensor cores, coop_mat8x8 where the adapter
// lists only that, as lavapipe does), the f16 x f16 + f32 configuration that the adapter must list
// (PrecisionCaps::coop_size). Needs SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX.
//
// The tensors are f32 in storage, as every tensor of the crate; the invocations round them to f16
// into workgroup memory, and the cooperative loads read from there. The cooperative operations
// belong to a subgroup: 64 invocations cover subgroups of up to 64 (AMD's wave64); where subgroups
// are smaller (32 on NVIDIA and Apple, 8 on lavapipe), each subgroup computes the same product and
// stores the same values. Every invocation reaches the cooperative calls (uniform control flow).
//
// Binding 0 (the parameters) is unused: the shape is fixed.

@group(0) @binding(1) var<storage, read> a: array<f32>;        // [N, N]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [N, N]
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // [N, N]

var<workgroup> a16: array<f16, 256>;  // a rounded to f16, row-major
var<workgroup> b16: array<f16, 256>;  // b rounded to f16, row-major

@compute @workgroup_size(64)
fn gemm(@builtin(local_invocation_index) lid: u32) {
    for (var e = lid; e < N * N; e += 64u) {
        a16[e] = f16(a[e]);
        b16[e] = f16(b[e]);
    }
    workgroupBarrier();
    // Row-major loads and store (the `T` forms; coopLoad/coopStore are column-major), a stride of
    // N elements; the accumulator starts as the zero matrix.
    let ma = coopLoadT<CoopA>(&a16[0], N);
    let mb = coopLoadT<CoopB>(&b16[0], N);
    let mc = coopMultiplyAdd(ma, mb, CoopC());
    coopStoreT(mc, &c[0], N);
}
