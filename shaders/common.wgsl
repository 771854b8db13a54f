// Helpers prepended to every shader (src/gpu/kernel.rs).

// The flat item index of an invocation launched with Dispatch::Items: workgroups are laid out
// row-major over x then y so that no grid dimension exceeds 65535.
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg_size: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg_size + lid;
}

fn lrelu(x: f32, slope: f32) -> f32 {
    return select(x * slope, x, x > 0.0);
}

// Workgroup memory for `workgroup_sum`; an entry point that does not use it does not get it.
var<workgroup> partial: array<f32, 256>;

// The sum of every invocation's `acc` in a 256-invocation workgroup, returned to all of them: a tree
// in workgroup memory. Call from uniform control flow.
fn workgroup_sum(lid: u32, acc: f32) -> f32 {
    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Everyone has read the total before the next call may overwrite it.
    workgroupBarrier();
    return total;
}
