//! The processes of a run, and the one collective data parallelism needs of them.

use crate::error::Result;

/// The processes of a data-parallel run (MPI ranks); every process calls each method in
/// the same order.
pub trait ProcessGroup: Send + Sync {
    /// This process, `0..size()`.
    fn rank(&self) -> usize;
    /// The processes of the run.
    fn size(&self) -> usize;
    /// Replace `data` by its element-wise sum over the processes; every process passes a
    /// slice of the same length and receives the same sums.
    fn sum(&self, data: &mut [f32]) -> Result<()>;
}

/// A run of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Alone;

impl ProcessGroup for Alone {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn sum(&self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }
}
