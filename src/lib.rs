#![warn(missing_docs)]
//! bitspike: binary spiking transformers on any GPU through wgpu, with handwritten WGSL
//! kernels, a CPU reference for every kernel, and surrogate-gradient training.

pub mod bench;
pub mod data;
pub mod doctor;
pub mod dtype;
pub mod error;
pub mod gpu;
pub mod input;
pub mod nn;
pub mod ops;
pub mod pipeline;
pub mod plot;
pub mod reference;
pub mod rng;
pub mod train;
pub mod trainer;

pub use error::{Error, Result};
pub use gpu::{DType, GpuContext, Tensor};
pub use pipeline::{Pipeline, PipelineOptions, Prediction};
pub use trainer::{TrainConfig, Trainer};
