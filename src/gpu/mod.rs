//! The GPU layer: the shader registry, the context (adapter, limits, errors) with its
//! pipeline and buffer caches, kernel dispatch, tensors (buffers, transfers), and what
//! each kernel asks of an adapter (read from the shaders with naga).

pub mod cache;
pub mod context;
pub mod dispatched_overrides;
pub mod kernel_needs;
pub mod kernel_plan;
pub mod kernels;
pub mod naga_shaders;
pub mod shaders;
pub mod tensor;

pub use crate::dtype::{words_per_row, DType};
pub use context::{list_adapters, AdapterChoice, AdapterReport, GpuContext};
pub use kernel_needs::{KernelNeeds, Shortfall};
pub use kernel_plan::KernelPlan;
pub use kernels::grid_1d;
pub use shaders::{Access, Kernel, Shader};
pub use tensor::Tensor;
