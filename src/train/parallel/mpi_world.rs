//! The processes of an MPI launch (`mpirun -n N bitspike train ...`) as a
//! [`ProcessGroup`]: OpenMPI's all-reduce sums the replicas' gradients across processes
//! and machines.

use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;
use mpi::Threading;

use super::ProcessGroup;
use crate::error::{Error, Result};

/// MPI's world communicator. MPI is initialised for serialised calls from any thread
/// (the replica that completes a round calls it), and the mutex serialises them.
pub struct MpiWorld {
    world: Mutex<SimpleCommunicator>,
    rank: usize,
    size: usize,
    // Finalises MPI when dropped, after the communicator.
    _universe: Universe,
}

// SAFETY: MPI is initialised with `Threading::Serialized` or more, and every call into
// it goes through the `world` mutex (rank and size are read once), so no two threads
// call MPI at once.
unsafe impl Send for MpiWorld {}
unsafe impl Sync for MpiWorld {}

impl MpiWorld {
    /// Whether this process was started by an MPI launcher (mpirun, mpiexec, srun).
    pub fn launched() -> bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    }

    /// Initialise MPI and join the world.
    pub fn init() -> Result<Self> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Collective("MPI is already initialised".into()))?;
        if threading < Threading::Serialized {
            return Err(Error::Collective(format!(
                "the MPI library offers {threading:?} threading; bitspike needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            world: Mutex::new(world),
            rank,
            size,
            _universe: universe,
        })
    }

    /// End every process of the launch with `code` (after an error on this one, so that
    /// the others do not wait for it in a reduction).
    pub fn abort(&self, code: i32) -> ! {
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        world.abort(code)
    }
}

impl ProcessGroup for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum(&self, data: &mut [f32]) -> Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let send = data.to_vec();
        let world = self.world.lock().unwrap_or_else(|p| p.into_inner());
        // MPI's default error handler ends the launch on a failure, so this returns only
        // with the sums.
        world.all_reduce_into(&send[..], data, SystemOperation::sum());
        Ok(())
    }
}
