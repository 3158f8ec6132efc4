//! The override constants the host dispatches each shader with, read off the
//! `ctx.dispatch` calls in src/ops: what a kernel asks of an adapter depends on them
//! (`WG` and `ROW_TILES` size workgroups), so its needs are taken over every set here.
//! tests/shader_overrides fails when a shader has an override missing from these tables.

use super::shaders::Shader;

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

/// The override sets of `shader`'s pipelines: its defaults (the empty set) first, then
/// each dispatched value on top of the defaults, then the subgroup matmuls' tile shapes.
pub fn override_sets(shader: Shader) -> Vec<Overrides> {
    let mut sets = vec![Vec::new()];
    for (name, values) in dispatched_values(shader) {
        sets.extend(values.iter().map(|&value| vec![(*name, value)]));
    }
    sets.extend(subgroup_tiles(shader));
    sets
}
