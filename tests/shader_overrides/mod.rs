//! The override sets the host dispatches each shader with and the parsed shaders, shared
//! by the validity, translation and limits tests.
//!
//! The sets are the library's (src/gpu/dispatched_overrides.rs: every value the host
//! passes, read off the `ctx.dispatch` calls in src/ops). A kernel's pipeline is checked
//! with its defaults and with each listed value on top of the defaults; `WG` and
//! `ROW_TILES` of the subgroup matmuls size the workgroup and its loops together, so they
//! are checked jointly. An override missing from those tables fails both tests.
// Each test binary uses part of it (the validity test only `parse`).
#![allow(dead_code)]

use bitspike::gpu::dispatched_overrides::{override_sets, Overrides};
use std::sync::Arc;

use bitspike::gpu::naga_shaders::{parsed, ParsedShader};
use bitspike::gpu::Shader;

/// The override sets to check `shader` (parsed as `module`) with: those the library
/// takes a kernel's needs over (`bitspike::gpu::dispatched_overrides`). An override of the
/// shader missing there panics, so that a new override is listed with the values the
/// host dispatches it with.
pub fn dispatched_sets(shader: Shader, module: &naga::Module) -> Vec<Overrides> {
    let sets = override_sets(shader);
    for (_, o) in module.overrides.iter() {
        let name = o.name.as_deref().unwrap_or("(unnamed)");
        assert!(
            sets.iter().flatten().any(|(n, _)| *n == name),
            "{}: override {name} has no dispatched values in src/gpu/dispatched_overrides.rs",
            shader.file_name()
        );
    }
    sets
}

/// `shader` parsed and validated with every capability naga knows (the library's parse,
/// which also builds each pipeline's module: `ParsedShader::pipeline`).
pub fn parse(shader: Shader) -> Arc<ParsedShader> {
    parsed(shader).unwrap_or_else(|e| panic!("{e}"))
}

/// "NAME=value, ..." for messages, or "defaults".
pub fn describe(overrides: &[(&'static str, f64)]) -> String {
    if overrides.is_empty() {
        return "defaults".to_string();
    }
    overrides
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}
