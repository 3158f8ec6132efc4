//! Layers and models, in the order they depend on each other: configurations (plain
//! data) and presets, the parameter specs with the reference implementations' names and
//! the typed layout built from them, checkpoints, the GPU parameter store, the layers,
//! then the models. See docs/ARCHITECTURE.md.

pub mod attention;
pub mod bestformer;
pub mod checkpoint;
pub mod classifier;
pub mod cnn;
pub mod config;
pub mod energy;
pub mod layers;
pub mod limits;
pub mod model;
pub mod params;
pub mod presets;
pub mod prune;
pub mod spikformer;
pub mod store;
pub mod trace;

pub use bestformer::{Bestformer, Reversible};
pub use checkpoint::{init_state, HostTensor, StateDict};
pub use classifier::{combine_heads, Classifier};
pub use cnn::SpikingCnn;
pub use config::{
    Arch, ArchConfig, AttentionForm, CnnConfig, ModelConfig, TransformerConfig, WeightMode,
};
pub use model::Model;
pub use params::{
    param_counts, param_layout, param_specs, ParamCounts, ParamId, ParamLayout, ParamRole,
    ParamSpec,
};
pub use presets::PRESETS;
pub use spikformer::Spikformer;
pub use store::ParamStore;
pub use trace::{AttentionMaps, Trace};
