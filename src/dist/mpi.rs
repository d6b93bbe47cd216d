//! The [`Communicator`] over MPI (Open MPI, MPICH, Intel MPI) through rsmpi: `MPI_Allreduce`,
//! `MPI_Bcast`, `MPI_Barrier`, `MPI_Allgather` on `MPI_COMM_WORLD`. MPI is initialised once per
//! process (funnelled: only the thread that trains calls MPI; the kernels' worker threads never
//! do) and finalised by [`finalize`].
use std::sync::Mutex;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives as _, Root as _};

use super::{Communicator, LaunchEnv};
use crate::{Error, Result};

/// The MPI environment; dropping it is `MPI_Finalize`.
static UNIVERSE: Mutex<Option<Universe>> = Mutex::new(None);

/// MPI's counts are C ints: longer buffers go in pieces of this many elements.
const CHUNK: usize = 1 << 28;

/// `MPI_COMM_WORLD` of this process.
#[derive(Debug)]
pub struct Mpi {
    rank: usize,
    size: usize,
    local_rank: usize,
}

impl Mpi {
    /// Initialises MPI and checks that it agrees with the launcher's variables.
    pub fn init(launch: Option<LaunchEnv>) -> Result<Self> {
        let mut u = UNIVERSE
            .lock()
            .map_err(|_| Error::InvalidArgument("the MPI environment's lock is poisoned".into()))?;
        if u.is_none() {
            let (universe, _) =
                mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or_else(|| {
                    Error::InvalidArgument(
                        "MPI was initialised already, or was finalised: it can be started once per process".into(),
                    )
                })?;
            *u = Some(universe);
        }
        let world = SimpleCommunicator::world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        if let Some(l) = launch
            && (l.rank, l.world_size) != (rank, size)
        {
            return Err(Error::InvalidConfig(format!(
                "the launcher's variables say rank {} of {} ({:?}) but MPI says rank {rank} of {size}; start the processes with this MPI's own mpirun",
                l.rank, l.world_size, l.launcher
            )));
        }
        Ok(Mpi {
            rank,
            size,
            local_rank: launch.map_or(0, |l| l.local_rank),
        })
    }
}

/// `MPI_Finalize`, once; nothing when MPI never started.
pub fn finalize() {
    if let Ok(mut u) = UNIVERSE.lock() {
        drop(u.take());
    }
}

impl Communicator for Mpi {
    fn backend(&self) -> &'static str {
        "mpi"
    }
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let world = SimpleCommunicator::world();
        for piece in buf.chunks_mut(CHUNK) {
            let send = piece.to_vec();
            world.all_reduce_into(&send[..], piece, SystemOperation::sum());
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let world = SimpleCommunicator::world();
        for piece in buf.chunks_mut(CHUNK) {
            let send = piece.to_vec();
            world.all_reduce_into(&send[..], piece, SystemOperation::sum());
        }
        Ok(())
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let world = SimpleCommunicator::world();
        let proc = world.process_at_rank(root as i32);
        let mut len = buf.len() as u64;
        proc.broadcast_into(&mut len);
        buf.resize(len as usize, 0);
        for piece in buf.chunks_mut(CHUNK) {
            proc.broadcast_into(piece);
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        SimpleCommunicator::world().barrier();
        Ok(())
    }
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let mut out = vec![0u64; self.size];
        SimpleCommunicator::world().all_gather_into(&value, &mut out[..]);
        Ok(out)
    }
    fn abort(&self, code: i32) -> ! {
        SimpleCommunicator::world().abort(code)
    }
}
