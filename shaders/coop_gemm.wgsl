enable f16;
enable wgpu_cooperative_matrix;

// coop_gemm: the smallest cooperative-matrix (tensor-core) kernel, proving the hardware path before
// anything is built on it. One workgroup computes one 16x16x16 product
//   c[16, 16] = a[16, 16] b[16, 16]      (all row-major)
// with a and b rounded to f16 and c accumulated in f32: coop_mat16x16<f16, A> x coop_mat16x16<f16, B>
// + coop_mat16x16<f32, C>, the f16 x f16 + f32 configuration that the adapter must list
// (PrecisionCaps::coop_f16_f32(16)). Needs SHADER_F16 and EXPERIMENTAL_COOPERATIVE_MATRIX.
//
// The tensors are f32 in storage, as every tensor of the crate; the invocations round them to f16
// into workgroup memory, and the cooperative loads read from there. The cooperative operations
// belong to a subgroup: 64 invocations cover subgroups of up to 64 (AMD's wave64); where subgroups
// are smaller (32 on NVIDIA and Apple), each subgroup computes the same product and stores the same
// values. Every invocation reaches the cooperative calls (uniform control flow).
//
// Binding 0 (the parameters) is unused: the shape is fixed.

@group(0) @binding(1) var<storage, read> a: array<f32>;        // [16, 16]
@group(0) @binding(2) var<storage, read> b: array<f32>;        // [16, 16]
@group(0) @binding(3) var<storage, read_write> c: array<f32>;  // [16, 16]

const N: u32 = 16u;

var<workgroup> a16: array<f16, 256>;  // a rounded to f16, row-major
var<workgroup> b16: array<f16, 256>;  // b rounded to f16, row-major

@compute @workgroup_size(64)
fn gemm16(@builtin(local_invocation_index) lid: u32) {
    for (var e = lid; e < N * N; e += 64u) {
        a16[e] = f16(a[e]);
        b16[e] = f16(b[e]);
    }
    workgroupBarrier();
    // Row-major loads and store (the `T` forms; coopLoad/coopStore are column-major), a stride of
    // 16 elements; the accumulator starts as the zero matrix.
    let ma = coopLoadT<coop_mat16x16<f16, A>>(&a16[0], N);
    let mb = coopLoadT<coop_mat16x16<f16, B>>(&b16[0], N);
    let mc = coopMultiplyAdd(ma, mb, coop_mat16x16<f32, C>());
    coopStoreT(mc, &c[0], N);
}
