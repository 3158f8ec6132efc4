//! bitspike: binary spiking transformers on any GPU through wgpu, with handwritten WGSL
//! kernels, a CPU reference for every kernel, and surrogate-gradient training.
//!
//! # The front door
//!
//! - [`Pipeline`]: load a checkpoint and classify images or event recordings, with the
//!   checkpoint's own model config, normalization, class names and frame settings.
//! - [`Trainer`] with a [`TrainConfig`]: train a preset on a dataset into a run
//!   directory, with a callback after every epoch. `bitspike train` runs it.
//! - [`plot`]: training curves, per-layer energy bars, and pictures of one inference
//!   (spike raster, binary attention maps).
//!
//! ```no_run
//! # fn main() -> bitspike::Result<()> {
//! let mut model = bitspike::Pipeline::load("runs/demo/best.safetensors")?;
//! let img = image::open("assets/samples/mnist-test-0-label-7.png").expect("an image");
//! let top = model.classify(&img, 5)?;
//! println!("{} ({:.1}%)", top[0].class, 100.0 * top[0].probability);
//! # Ok(())
//! # }
//! ```
//!
//! `examples/` has a runnable program for each: `classify`, `train_custom`, `events`.
//!
//! # The layers below
//!
//! For power users the engine's layers are public too, in dependency order: [`gpu`]
//! (adapter, shader registry, tensors), [`ops`] (one host module per kernel family),
//! [`reference`](mod@reference) (the CPU oracle), [`nn`] (configs, parameters, checkpoints, models),
//! [`data`] (datasets, loaders, augmentation, event files) and [`train`] (optimizer,
//! schedule, the epoch loop). docs/ARCHITECTURE.md describes them; docs/models.md gives
//! the models' equations.
#![warn(missing_docs)]

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
