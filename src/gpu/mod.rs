//! The GPU layer: context (adapter, limits, errors), kernel registry and pipeline cache,
//! tensors (buffers, transfers, pool).

pub mod context;
pub mod kernels;
pub mod tensor;

pub use context::{list_adapters, AdapterChoice, AdapterReport, GpuContext};
pub use kernels::{grid_1d, Access, Kernel, Shader};
pub use tensor::{words_per_row, DType, Tensor};
