//! Layers and models: configurations and presets, the parameter inventory with the
//! reference implementations' names.

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
pub mod prune;
pub mod spikformer;
pub mod store;

pub use bestformer::{Bestformer, Reversible};
pub use checkpoint::{init_state, HostTensor, StateDict};
pub use classifier::{combine_heads, Classifier};
pub use cnn::SpikingCnn;
pub use config::{Arch, AttentionForm, ModelConfig, WeightMode, PRESETS};
pub use model::Model;
pub use params::{param_counts, param_specs, ParamCounts, ParamRole, ParamSpec};
pub use spikformer::Spikformer;
pub use store::ParamStore;
