//! Every shader parses and validates with naga, so a broken shader fails without a GPU.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;

use pggan::ops::SHADERS;

#[test]
fn every_shader_validates() {
    for shader in SHADERS {
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
    let registered: BTreeSet<String> = SHADERS.iter().map(|s| format!("{}.wgsl", s.name)).collect();
    assert_eq!(on_disk, registered, "shaders/ and ops::SHADERS disagree");
}
