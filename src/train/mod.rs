//! Training: the optimizer state, the learning-rate schedule, the weights' moving
//! average, the epoch loop, the run directory, data parallelism over several devices.

pub mod ema;
pub mod optimizer;
pub mod parallel;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

pub use ema::ModelEma;
pub use optimizer::Optimizer;
pub use run_dir::{read_metrics, RunDir, RunMode};
pub use schedule::CosineSchedule;
pub use trainer::{
    evaluate, Distillation, EpochOutcome, EpochProgress, EpochReport, EpochRunner, Evaluation,
    StepProgress, Teacher, TeacherSource,
};
