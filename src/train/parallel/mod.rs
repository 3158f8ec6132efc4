//! Data parallelism (docs/training.md, "Several GPUs and machines"): replicas of one
//! model, each training on its shard of every global batch; after each accumulation
//! group their gradients are summed, their BatchNorm running statistics averaged, and
//! every replica applies the same AdamW update.
//!
//! Replicas live on threads of one process (one wgpu device each, [`ReplicaGroup`]) and
//! in several processes ([`ProcessGroup`]: MPI with the `mpi` feature). Replica
//! `rank * local + i` is the `i`-th device of process `rank`; replica 0 writes the
//! checkpoints and the logs.

mod devices;
mod group;
#[cfg(feature = "mpi")]
pub mod mpi_world;
mod process;

pub use devices::Devices;
pub use group::{ReplicaGroup, ReplicaLink};
pub use process::{Alone, ProcessGroup};
