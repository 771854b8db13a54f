// Helpers prepended to every shader (src/gpu/kernel.rs).

// The flat item index of an invocation launched with Dispatch::Items: workgroups are laid out
// row-major over x then y so that no grid dimension exceeds 65535.
fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, wg_size: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * wg_size + lid;
}

fn lrelu(x: f32, slope: f32) -> f32 {
    return select(x * slope, x, x > 0.0);
}
