//! Every shader in the registry parses and validates with naga, and every .wgsl file in
//! shaders/ is in the registry: a WGSL error fails `cargo test`, not a user.

mod shader_overrides;

use bitspike::gpu::Shader;

#[test]
fn every_registered_shader_validates_with_naga() {
    for shader in Shader::ALL {
        shader_overrides::parse(*shader);
    }
}

#[test]
fn every_wgsl_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    let mut registered: Vec<String> = Shader::ALL
        .iter()
        .map(|s| s.file_name().to_string())
        .collect();
    registered.sort();
    assert_eq!(files, registered);
}
