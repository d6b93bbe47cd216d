//! NCCL through cudarc (the copy candle builds with, its `nccl` feature), behind our `nccl`
//! feature: one communicator per process on the GPU `LOCAL_RANK`, its unique id shared over
//! MPI when the launch is MPI's, else by [`super::rendezvous`] at `MASTER_ADDR` (torchrun,
//! srun). The [`Communicator`] buffers are host slices, so each collective stages its buffer
//! through the GPU: correct for every caller of the trait, and the Trainer's gradient buckets
//! are large enough that the copies are a small part of a step.
use super::Communicator;
use super::env::LaunchEnv;
use super::rendezvous::Rendezvous;
use crate::{Error, Result};
use candle_core::cuda_backend::cudarc::driver::{CudaContext, CudaStream, DeviceRepr};
use candle_core::cuda_backend::cudarc::nccl::{Comm, Id, NcclType, ReduceOp};
use std::sync::Arc;

/// One rank of an NCCL launch.
pub struct Nccl {
    comm: Comm,
    stream: Arc<CudaStream>,
    local_rank: usize,
}

// SAFETY: NCCL's communicator may be used from any thread as long as calls on it are not
// concurrent; every call goes through `&self` methods that the Trainer makes from one thread
// at a time, in the same order on every rank (the trait's rule), and the stream is cudarc's
// thread-safe handle.
unsafe impl Send for Nccl {}
unsafe impl Sync for Nccl {}

impl std::fmt::Debug for Nccl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Nccl {{ rank: {}, world_size: {}, local_rank: {} }}",
            self.comm.rank(),
            self.comm.world_size(),
            self.local_rank
        )
    }
}

fn cuda_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::InvalidArgument(format!("NCCL backend: {what}: {e:?}"))
}

impl Nccl {
    /// Joins the launch `launch` on GPU `launch.local_rank`; `share_id` carries rank 0's id to
    /// every rank (MPI's broadcast, or the rendezvous).
    pub fn init(
        launch: &LaunchEnv,
        share_id: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let ctx = CudaContext::new(launch.local_rank).map_err(|e| {
            cuda_error(
                &format!(
                    "rank {} cannot open GPU {} (LOCAL_RANK); start at most as many ranks per machine as it has GPUs",
                    launch.rank, launch.local_rank
                ),
                e,
            )
        })?;
        let stream = ctx.default_stream();
        let mine: Vec<u8> = if launch.rank == 0 {
            let id = Id::new().map_err(|e| cuda_error("ncclGetUniqueId", e))?;
            id.internal().iter().map(|&c| c as u8).collect()
        } else {
            vec![0; 128]
        };
        let shared = share_id(&mine)?;
        let internal: [std::ffi::c_char; 128] = shared
            .iter()
            .map(|&b| b as std::ffi::c_char)
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|v: Vec<_>| {
                Error::InvalidArgument(format!(
                    "NCCL backend: rank 0's id has {} bytes, not 128",
                    v.len()
                ))
            })?;
        let comm = Comm::from_rank(
            stream.clone(),
            launch.rank,
            launch.world_size,
            Id::uninit(internal),
        )
        .map_err(|e| cuda_error("ncclCommInitRank", e))?;
        Ok(Nccl {
            comm,
            stream,
            local_rank: launch.local_rank,
        })
    }

    /// The id exchange of a launch without MPI.
    pub fn rendezvous_share(launch: &LaunchEnv) -> Result<impl FnOnce(&[u8]) -> Result<Vec<u8>>> {
        let rdv = Rendezvous::from_env(|k| std::env::var(k).ok())?;
        let (rank, world) = (launch.rank, launch.world_size);
        Ok(move |mine: &[u8]| rdv.share(rank, world, mine))
    }

    /// `buf` summed over ranks in place, through the GPU.
    fn all_reduce_sum<T: DeviceRepr + NcclType + Copy>(&self, buf: &mut [T]) -> Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self
            .stream
            .clone_htod(buf)
            .map_err(|e| cuda_error("copying to the GPU", e))?;
        self.comm
            .all_reduce_in_place(&mut dev, &ReduceOp::Sum)
            .map_err(|e| cuda_error("ncclAllReduce", e))?;
        self.stream
            .memcpy_dtoh(&dev, buf)
            .and_then(|()| self.stream.synchronize())
            .map_err(|e| cuda_error("copying from the GPU", e))
    }
}

impl Communicator for Nccl {
    fn backend(&self) -> &'static str {
        "nccl"
    }
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(buf)
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce_sum(buf)
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        // the length first (every rank must pass buffers of one length to NCCL)
        let mut len = [if self.rank() == root {
            buf.len() as u64
        } else {
            0
        }];
        self.all_reduce_sum(&mut len)?;
        buf.resize(len[0] as usize, 0);
        if buf.is_empty() {
            return Ok(());
        }
        let mut dev = self
            .stream
            .clone_htod(buf.as_slice())
            .map_err(|e| cuda_error("copying to the GPU", e))?;
        self.comm
            .broadcast_in_place(&mut dev, root as i32)
            .map_err(|e| cuda_error("ncclBroadcast", e))?;
        self.stream
            .memcpy_dtoh(&dev, buf.as_mut_slice())
            .and_then(|()| self.stream.synchronize())
            .map_err(|e| cuda_error("copying from the GPU", e))
    }
    fn barrier(&self) -> Result<()> {
        self.all_reduce_sum(&mut [0u8])
    }
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        // each rank's value in its own slot, the others zero: the sum is the gather
        let mut slots = vec![0u64; self.world_size()];
        slots[self.rank()] = value;
        self.all_reduce_sum(&mut slots)?;
        Ok(slots)
    }
    fn abort(&self, code: i32) -> ! {
        // the launcher (torchrun, srun) ends the other ranks when one exits with an error
        std::process::exit(code)
    }
}
