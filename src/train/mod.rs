//! Training: the optimizer state, the learning-rate schedule.

pub mod optimizer;
pub mod schedule;

pub use optimizer::Optimizer;
pub use schedule::CosineSchedule;
