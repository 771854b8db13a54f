//! Every shader parses and validates with naga, so a broken shader fails without a GPU.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use pggan::ops::{FEATURE_SHADERS, SHADERS};

#[test]
fn every_shader_validates() {
    for shader in SHADERS.iter().chain(FEATURE_SHADERS) {
        let (module, _) = shader.validate().unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            !module.entry_points.is_empty(),
            "shaders/{}.wgsl has no entry point",
            shader.name
        );
    }
}

#[test]
fn every_file_in_shaders_is_registered() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "common.wgsl")
        .collect();
    let registered: BTreeSet<String> = SHADERS
        .iter()
        .chain(FEATURE_SHADERS)
        .map(|s| format!("{}.wgsl", s.file()))
        .collect();
    assert_eq!(on_disk, registered, "shaders/ and ops::SHADERS disagree");
}

/// The kernels of the registry run everywhere, browsers without `shader-f16` included: none of them
/// enables a feature. Those that do are the feature shaders, each enabling what it says.
#[test]
fn only_the_feature_shaders_need_device_features() {
    for shader in SHADERS {
        assert!(shader.needs().is_empty(), "{} needs {:?}", shader.name, shader.needs());
    }
    let needs: Vec<(&str, wgpu::Features)> = FEATURE_SHADERS.iter().map(|s| (s.name, s.needs())).collect();
    assert_eq!(
        needs,
        [
            ("conv+f16", wgpu::Features::SHADER_F16),
            ("dense+f16", wgpu::Features::SHADER_F16),
            (
                "coop_gemm",
                wgpu::Features::SHADER_F16 | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
            ),
        ]
    );
}

/// No adapter here runs cooperative matrices (lavapipe has none, Chromium's SwiftShader is a browser),
/// so this is what is proven without a GPU: naga parses and validates coop_gemm.wgsl with the
/// capabilities it enables (and refuses it without them), and writes it as SPIR-V for Vulkan 1.3
/// with the cooperative-matrix capability, as wgpu's Vulkan backend would. `pggan bench precision`
/// and the self-test run it against its reference where the adapter has the feature.
#[test]
fn coop_gemm_validates_and_compiles_to_spirv_though_no_adapter_here_runs_it() {
    let shader = pggan::ops::coop_gemm::SHADER;
    let (module, info) = shader.validate().unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(module.entry_points[0].name, "gemm16");

    let source = shader.full_source();
    let parsed = naga::front::wgsl::parse_str(&source).unwrap();
    let without = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SHADER_FLOAT16,
    )
    .validate(&parsed);
    assert!(without.is_err(), "validated without the cooperative-matrix capability");

    let options = naga::back::spv::Options {
        lang_version: (1, 6),
        ..Default::default()
    };
    let words = naga::back::spv::write_vec(&module, &info, &options, None).unwrap_or_else(|e| panic!("{e}"));
    // OpCapability CooperativeMatrixKHR (6022) and OpCooperativeMatrixMulAddKHR (4459).
    let has_op = |op: u32, operand: Option<u32>| {
        let mut i = 5;
        while i < words.len() {
            let (count, code) = ((words[i] >> 16) as usize, words[i] & 0xffff);
            if code == op && operand.is_none_or(|o| words.get(i + 1) == Some(&o)) {
                return true;
            }
            i += count.max(1);
        }
        false
    };
    assert!(has_op(17, Some(6022)), "no OpCapability CooperativeMatrixKHR");
    assert!(has_op(4459, None), "no OpCooperativeMatrixMulAddKHR");
    eprintln!("coop_gemm: {} SPIR-V words", words.len());
}
