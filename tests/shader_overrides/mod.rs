//! The override constants the host dispatches each shader with, shared by the translation
//! and limits tests, and the shader's module after naga applies one set of them.
//!
//! Each override is listed with every value the host passes (read off the `ctx.dispatch`
//! calls in src/ops). A kernel's pipeline is checked with its defaults and with each
//! listed value on top of the defaults; `WG` and `ROW_TILES` of the subgroup matmuls size
//! the workgroup and its loops together, so they are checked jointly. An override missing
//! from these tables fails both tests.
// Each test binary uses part of it (the validity test only `parse`).
#![allow(dead_code)]

use bitspike::gpu::Shader;
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

/// One pipeline's override constants, as (name, value).
pub type Overrides = Vec<(&'static str, f64)>;

const FLAG: &[f64] = &[0.0, 1.0];

/// Every value each override of `shader` is dispatched with.
fn dispatched_values(shader: Shader) -> &'static [(&'static str, &'static [f64])] {
    match shader {
        Shader::Attention => &[
            // ops::attention::packed::score_words: 1, 2 or 4 words of a score row.
            ("SCORE_WORDS", &[1.0, 2.0, 4.0]),
            ("TRAINING", FLAG),
            ("SHIFTED", FLAG),
            ("HAS_FACTOR", FLAG),
        ],
        // ops::binarize::channel_lanes: 8 lanes on CPU adapters, 256 on GPUs.
        Shader::Binarize => &[("WG", &[8.0, 256.0])],
        // MODE: spikes x signs, signs x signs, spikes x spikes (BinaryForm::mode).
        Shader::BinaryMatmul => &[("MODE", &[0.0, 1.0, 2.0]), ("HAS_SCALE", FLAG)],
        Shader::BinaryMatmulSubgroup => &[("MODE", &[0.0, 1.0, 2.0]), ("HAS_SCALE", FLAG)],
        Shader::Elementwise => &[("TERMS", &[1.0, 2.0, 3.0])],
        Shader::Lif => &[
            // LIF, ternary, stateless threshold (lif.rs, THRESHOLD_CODE).
            ("NEURON", &[0.0, 1.0, 2.0]),
            ("HARD_RESET", FLAG),
            ("DECAY_INPUT", FLAG),
            ("DETACH_RESET", FLAG),
            ("SURROGATE", &[0.0, 1.0]),
            ("WRITE_SPIKES", FLAG),
            ("WRITE_H", FLAG),
            ("AFFINE", FLAG),
        ],
        Shader::Matmul | Shader::MatmulTiled | Shader::MatmulSubgroup => {
            &[("TRANS_A", FLAG), ("TRANS_B", FLAG), ("ACCUMULATE", FLAG)]
        }
        // ops::norm::Sums: plain, shifted, batch-norm backward.
        Shader::Norm => &[
            ("MODE", &[0.0, 1.0, 2.0]),
            ("ACCUMULATE", FLAG),
            ("EVAL", FLAG),
        ],
        Shader::Optim => &[("CLIP", FLAG)],
        Shader::Pack => &[("SIGNS", FLAG)],
        Shader::Reversible => &[("HALVE", FLAG)],
        Shader::Copy | Shader::Conv | Shader::Pool | Shader::Layout | Shader::Loss => &[],
    }
}

/// The subgroup matmuls' workgroup shape: `WG` from ops::subgroup_tile_lanes, `ROW_TILES`
/// from ops::subgroup_row_tiles, in every combination.
fn subgroup_tiles(shader: Shader) -> Vec<Overrides> {
    if !matches!(
        shader,
        Shader::MatmulSubgroup | Shader::BinaryMatmulSubgroup
    ) {
        return Vec::new();
    }
    let mut sets = Vec::new();
    for lanes in [8.0, 16.0, 32.0] {
        for row_tiles in [1.0, 2.0, 4.0, 8.0] {
            sets.push(vec![("WG", lanes), ("ROW_TILES", row_tiles)]);
        }
    }
    sets
}

/// The override sets to check `shader` (parsed as `module`) with: its defaults (the empty
/// set) first. An override of the shader missing from the tables above panics, so that a
/// new override is listed with the values the host dispatches it with.
pub fn dispatched_sets(shader: Shader, module: &naga::Module) -> Vec<Overrides> {
    let tiles = subgroup_tiles(shader);
    for (_, o) in module.overrides.iter() {
        let name = o.name.as_deref().unwrap_or("(unnamed)");
        let listed = dispatched_values(shader).iter().any(|(n, _)| *n == name)
            || tiles.iter().flatten().any(|(n, _)| *n == name);
        assert!(
            listed,
            "{}: override {name} has no dispatched values in tests/shader_overrides",
            shader.file_name()
        );
    }
    let mut sets = vec![Vec::new()];
    for (name, values) in dispatched_values(shader) {
        sets.extend(values.iter().map(|&value| vec![(*name, value)]));
    }
    sets.extend(tiles);
    sets
}

/// `shader` parsed and validated with every capability naga knows.
pub fn parse(shader: Shader) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(shader.source()).unwrap_or_else(|e| {
        panic!(
            "{}: {}",
            shader.file_name(),
            e.emit_to_string(shader.source())
        )
    });
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {}",
                shader.file_name(),
                e.emit_to_string(shader.source())
            )
        });
    (module, info)
}

/// The module of one pipeline: entry point `entry` alone, with `overrides` applied as
/// wgpu applies them before handing the module to a backend.
pub fn pipeline_module(
    module: &naga::Module,
    info: &ModuleInfo,
    entry: &str,
    overrides: &[(&'static str, f64)],
) -> Result<(naga::Module, ModuleInfo), String> {
    let mut constants = naga::back::PipelineConstants::default();
    for (name, value) in overrides {
        constants.insert(name.to_string(), *value);
    }
    naga::back::pipeline_constants::process_overrides(
        module,
        info,
        Some((naga::ShaderStage::Compute, entry)),
        &constants,
    )
    .map(|(module, info)| (module.into_owned(), info.into_owned()))
    .map_err(|e| format!("{e}"))
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
