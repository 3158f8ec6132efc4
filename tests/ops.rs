//! Every GPU kernel against its CPU reference, on the system's Vulkan driver, on odd
//! shapes (1x1x1, 37x97x53, 5x1000x3, K not a multiple of 32).

mod common;

#[path = "ops/attention.rs"]
mod attention;
#[path = "ops/binary_matmul.rs"]
mod binary_matmul;
#[path = "ops/engine.rs"]
mod engine;
#[path = "ops/matmul.rs"]
mod matmul;
#[path = "ops/pack.rs"]
mod pack;
