//! Every shader parses and validates with naga, so a broken shader fails without a GPU.
#![cfg(not(target_arch = "wasm32"))]

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

/// Every file of shaders/ (common.wgsl aside: every shader gets it) is part of a registered shader:
/// an op's file, or a part that a variant composes (conv's engines).
#[test]
fn every_file_in_shaders_is_registered() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let registered: Vec<_> = SHADERS.iter().chain(FEATURE_SHADERS).collect();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == "common.wgsl" {
            continue;
        }
        let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
        assert!(
            registered.iter().any(|s| s.source.contains(&text)),
            "shaders/{name} is in no shader of ops::SHADERS or ops::FEATURE_SHADERS"
        );
    }
    for shader in registered {
        let file = format!("{dir}/{}.wgsl", shader.file());
        assert!(std::path::Path::new(&file).exists(), "{}: no {file}", shader.name);
    }
}

/// The kernels of the registry run everywhere, browsers without `shader-f16` included: none of them
/// enables a feature. Those that do are the feature shaders, each enabling what it says.
#[test]
fn only_the_feature_shaders_need_device_features() {
    for shader in SHADERS {
        assert!(shader.needs().is_empty(), "{} needs {:?}", shader.name, shader.needs());
    }
    let coop = wgpu::Features::SHADER_F16 | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
    let needs: Vec<(&str, wgpu::Features)> = FEATURE_SHADERS.iter().map(|s| (s.name, s.needs())).collect();
    assert_eq!(
        needs,
        [
            ("conv+f16", wgpu::Features::SHADER_F16),
            ("conv+coop16", coop),
            ("conv+coop8", coop),
            ("dense+f16", wgpu::Features::SHADER_F16),
            ("coop_gemm+16", coop),
            ("coop_gemm+8", coop),
        ]
    );
}

/// The cooperative-matrix shaders, proven without running them: naga parses and validates each with
/// the capabilities it enables (and refuses it without them), and writes it as SPIR-V for Vulkan 1.3
/// with the cooperative-matrix capability, as wgpu's Vulkan backend would (conv's with its largest
/// tile's constants). The 16x16 ones run only where the adapter lists 16x16x16 products (tensor
/// cores; `pggan bench precision` and the self-test run them there); the 8x8 ones run on lavapipe
/// 26 (tests/kernels.rs, through tests/run.sh).
#[test]
fn cooperative_shaders_validate_and_compile_to_spirv() {
    use pggan::ops::{conv, coop_gemm};
    // conv's: a 64x64x16 tile in subgroups of 32 (16x16 blocks, as on NVIDIA) or 8 (8x8, lavapipe).
    let conv_constants = |subgroup: f64| -> naga::back::PipelineConstants {
        [("TM", 64.0), ("TN", 64.0), ("TK", 16.0), ("SG", subgroup)]
            .map(|(k, v)| (k.to_string(), v))
            .into()
    };
    for (shader, constants) in [
        (coop_gemm::SHADER_16, Default::default()),
        (coop_gemm::SHADER_8, Default::default()),
        (conv::SHADER_COOP_16, conv_constants(32.0)),
        (conv::SHADER_COOP_8, conv_constants(8.0)),
    ] {
        let (module, info) = shader.validate().unwrap_or_else(|e| panic!("{e:#}"));
        let source = shader.full_source();
        let parsed = naga::front::wgsl::parse_str(&source).unwrap();
        let without = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::SHADER_FLOAT16,
        )
        .validate(&parsed);
        assert!(
            without.is_err(),
            "{} validated without the cooperative-matrix capability",
            shader.name
        );

        let (module, info) = naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
            .unwrap_or_else(|e| panic!("{}: {e}", shader.name));
        let options = naga::back::spv::Options {
            lang_version: (1, 6),
            ..Default::default()
        };
        let words = naga::back::spv::write_vec(&module, &info, &options, None)
            .unwrap_or_else(|e| panic!("{}: {e}", shader.name));
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
        assert!(
            has_op(17, Some(6022)),
            "{}: no OpCapability CooperativeMatrixKHR",
            shader.name
        );
        assert!(has_op(4459, None), "{}: no OpCooperativeMatrixMulAddKHR", shader.name);
        eprintln!("{}: {} SPIR-V words", shader.name, words.len());
    }
}
