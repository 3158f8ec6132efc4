//! Every GPU kernel against its CPU reference, on the system's Vulkan driver, on odd
//! shapes (1x1x1, 37x97x53, 5x1000x3, K not a multiple of 32).

mod common;

#[path = "ops/attention.rs"]
mod attention;
#[path = "ops/binarize.rs"]
mod binarize;
#[path = "ops/binary_matmul.rs"]
mod binary_matmul;
#[path = "ops/conv.rs"]
mod conv;
#[path = "ops/elementwise.rs"]
mod elementwise;
#[path = "ops/engine.rs"]
mod engine;
#[path = "ops/layers_common.rs"]
mod layers_common;
#[path = "ops/lif.rs"]
mod lif;
#[path = "ops/linear.rs"]
mod linear;
#[path = "ops/loss.rs"]
mod loss;
#[path = "ops/matmul.rs"]
mod matmul;
#[path = "ops/neuron.rs"]
mod neuron;
#[path = "ops/norm.rs"]
mod norm;
#[path = "ops/optim.rs"]
mod optim;
#[path = "ops/pack.rs"]
mod pack;
#[path = "ops/pool.rs"]
mod pool;
#[path = "ops/quant.rs"]
mod quant;
#[path = "ops/reversible.rs"]
mod reversible;
