// conv's engine of conv+coop8 and conv+coop16: the products on cooperative matrices (tensor cores),
// f16 operands and f32 accumulators. Declared before this text: `CoopA`, `CoopB`, `CoopC`, the
// N x N cooperative-matrix types (coop_mat8x8 or coop_mat16x16: f16 A and B, f32 C), and N. See
// conv.wgsl for the functions an engine provides.
//
// The tile is (TM / N) x (TN / N) blocks of N x N. Cooperative operations belong to a subgroup: the
// WG / SG subgroups of a workgroup each own BPS consecutive blocks of one row of blocks, the block
// of A they share loaded once per product. The launcher passes the device's subgroup size SG (its
// adapter's only one) and takes only tiles that divide this way (src/ops/conv.rs, `Kernel::tiles`);
// subgroups are taken to be runs of SG consecutive local invocation indices, as GPUs form them (a
// device that did otherwise would fail the check, `conv::check_coop`, that the self-test runs).

override SG: u32 = 32u;
// Blocks per subgroup (at most 4, the accumulators of `Acc`).
override BPS: u32 = (TM / N) * (TN / N) / (WG / SG);

// Slices in f16: A[m, k] at k * LDA + m (each block of A a column-major N x N matrix), B[k, col] at
// k * LDB + col (each block of B a row-major one). The 8 values of padding per row spread the
// columns of a block over the banks, and keep rows 16-byte aligned.
override LDA: u32 = TM + 8u;
override LDB: u32 = TN + 8u;
// Half the tile of C, f32, row-major: `finish` passes the tile through it in two halves of rows, so
// that everything fits in the 16 KiB of workgroup memory that every device has.
override LDC: u32 = TN + 4u;

// The largest of the tiles the launcher takes: A 64x64x16, B 32x128x16, C 64x64 (15 KiB in all).
var<workgroup> stage_a: array<f16, 1152>;
var<workgroup> stage_b: array<f16, 2176>;
var<workgroup> half_c: array<f32, 2176>;

alias Acc = array<CoopC, 4>;

fn put_a(k: u32, m: u32, v: f32) {
    stage_a[k * LDA + m] = f16(v);
}

fn put_b(k: u32, col: u32, v: f32) {
    stage_b[k * LDB + col] = f16(v);
}

// The first block of invocation lid's subgroup: its row of blocks and its column.
fn first_block(lid: u32) -> vec2<u32> {
    let b = (lid / SG) * BPS;
    return vec2<u32>(b / (TN / N), b % (TN / N));
}

// Every invocation of a subgroup takes the same branches and addresses here and in `finish`
// (uniform control flow within the subgroup, as cooperative operations need).
fn multiply_slice(acc: ptr<function, Acc>, lid: u32) {
    let blk = first_block(lid);
    for (var k = 0u; k < TK; k += N) {
        let a = coopLoad<CoopA>(&stage_a[k * LDA + blk.x * N], LDA);
        for (var i = 0u; i < BPS; i++) {
            let b = coopLoadT<CoopB>(&stage_b[k * LDB + (blk.y + i) * N], LDB);
            (*acc)[i] = coopMultiplyAdd(a, b, (*acc)[i]);
        }
    }
}

fn finish(acc: ptr<function, Acc>, lid: u32) -> array<vec4<f32>, 4> {
    let blk = first_block(lid);
    let top = blk.x * N;
    let row = 4u * (lid / (TN / 4u));
    let col = 4u * (lid % (TN / 4u));
    var out: array<vec4<f32>, 4>;
    for (var half = 0u; half < 2u; half++) {
        let first = half * (TM / 2u);
        if (top >= first && top < first + TM / 2u) {
            for (var i = 0u; i < BPS; i++) {
                coopStoreT((*acc)[i], &half_c[(top - first) * LDC + (blk.y + i) * N], LDC);
            }
        }
        workgroupBarrier();
        if (row >= first && row < first + TM / 2u) {
            for (var i = 0u; i < 4u; i++) {
                let at = (row - first + i) * LDC + col;
                out[i] = vec4<f32>(half_c[at], half_c[at + 1u], half_c[at + 2u], half_c[at + 3u]);
            }
        }
        workgroupBarrier();
    }
    return out;
}
