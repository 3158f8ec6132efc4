//! Training: the optimizer state, the learning-rate schedule.

pub mod optimizer;
pub mod schedule;
pub mod trainer;

pub use optimizer::Optimizer;
pub use schedule::CosineSchedule;
pub use trainer::{
    evaluate, Distillation, EpochOutcome, EpochReport, StepProgress, Teacher, Trainer,
};
