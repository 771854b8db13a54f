//! Native test helpers: a device on whatever adapter exists (a test fails when there is none) with
//! WebGPU's default limits, and a runner that asserts every row of an op's check.

use pggan::check::{table, Check};
use pggan::gpu::{Gpu, GpuOptions};

pub fn gpu() -> Gpu {
    let gpu = pollster::block_on(Gpu::new(&GpuOptions::for_tests())).expect("a GPU adapter is required for this test");
    eprintln!("adapter: {}", gpu.describe());
    gpu
}

#[allow(dead_code)] // not every test binary runs kernel checks
pub fn run_check(check: Check) {
    let gpu = gpu();
    let rows = pollster::block_on(check(&gpu)).expect("the check could not run");
    eprint!("{}", table(&rows));
    assert!(!rows.is_empty(), "the check compared nothing");
    assert!(
        rows.iter().all(|r| r.pass),
        "GPU output differs from the CPU reference:\n{}",
        table(&rows)
    );
}
