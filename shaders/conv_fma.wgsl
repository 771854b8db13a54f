// conv's engine of the plain kernels (conv, conv+f16): each invocation multiplies-adds its 4x4 block
// of the tile from the staged slices, in f32, with the slices staged in `Staged` (declared before
// this text: f32, or f16 for mixed precision). See conv.wgsl for the functions an engine provides.

// The staged slices are rows of TM (A) or TN (B) values read as vec4s, so an invocation fetches 4
// rows of A and 4 columns of B with one load each. Rows are one vec4 longer than needed, so that
// invocations storing down a column hit 8 banks instead of one.
override A_ROW: u32 = TM / 4u + 1u;
override B_ROW: u32 = TN / 4u + 1u;
override B_BASE: u32 = TK * A_ROW;

// A[m, k] at (k * A_ROW + m / 4)[m % 4], then B[k, col] at (B_BASE + k * B_ROW + col / 4)[col % 4].
// 672 vec4s (10.5 KiB in f32) hold the largest variant, 32x128 tiles with TK 16.
var<workgroup> stage: array<vec4<Staged>, 672>;

// Invocation lid's 4x4 block: rows 4 (lid / (TN / 4)) + i, columns 4 (lid % (TN / 4)) + j.
alias Acc = array<vec4<f32>, 4>;

fn put_a(k: u32, m: u32, v: f32) {
    stage[k * A_ROW + m / 4u][m % 4u] = Staged(v);
}

fn put_b(k: u32, col: u32, v: f32) {
    stage[B_BASE + k * B_ROW + col / 4u][col % 4u] = Staged(v);
}

fn multiply_slice(acc: ptr<function, Acc>, lid: u32) {
    let tx = lid % (TN / 4u);
    let ty = lid / (TN / 4u);
    for (var r = 0u; r < TK; r++) {
        let a0 = vec4<f32>(stage[r * A_ROW + ty]);
        let b0 = vec4<f32>(stage[B_BASE + r * B_ROW + tx]);
        // fma: one fused instruction per product, whether or not the driver would contract a
        // multiply and an add.
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.y), b0, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.z), b0, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.w), b0, (*acc)[3]);
    }
}

fn finish(acc: ptr<function, Acc>, lid: u32) -> array<vec4<f32>, 4> {
    return *acc;
}
