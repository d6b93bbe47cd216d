//! Data-parallel collectives behind one small trait, so the Trainer does not know which engine
//! runs: [`Communicator`] (rank, world size, all-reduce, broadcast, barrier, all-gather of
//! scalars), a [`SingleProcess`] of world size 1, and Open MPI through rsmpi behind the `mpi`
//! feature. [`world`] gives the process's communicator, chosen once from
//! `TrainingArguments::ddp_backend` and the launcher's environment ([`env`]).
//!
//! ```
//! use massivetext::dist;
//! let w = dist::world(None)?;                 // no launcher variables: one process
//! assert_eq!((w.rank(), w.world_size()), (0, 1));
//! let mut x = [1.0f32, 2.0];
//! w.all_reduce_sum_f32(&mut x)?;              // the sum over ranks: here, itself
//! assert_eq!(x, [1.0, 2.0]);
//! # Ok::<(), massivetext::Error>(())
//! ```
//!
//! Under `mpirun -n N` (a build with `--features mpi`) the same call joins the N processes.
//! A launch this build cannot serve (ranks from `torchrun` without NCCL, or from `mpirun`
//! without the `mpi` feature) is an error, never N processes each training alone into the same
//! folder.
mod bucket;
pub mod env;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
pub mod rendezvous;
mod single;

use std::sync::{Arc, Mutex};

pub use bucket::{Reduce, all_reduce_tensors, bucket_ranges};
pub use env::{LaunchEnv, Launcher};
pub use single::SingleProcess;

use crate::{Error, Result};

/// The collectives data-parallel training needs. Every rank must make the same calls in the
/// same order with buffers of the same length (MPI's rule); the Trainer does.
pub trait Communicator: Send + Sync + std::fmt::Debug {
    /// `"single"`, `"mpi"`.
    fn backend(&self) -> &'static str;
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// The rank among this machine's processes.
    fn local_rank(&self) -> usize;
    /// Element-wise sum over every rank, in place (every rank gets the same result).
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()>;
    /// Element-wise sum in f64 (token counts, loss sums: exact where f32 is not).
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// `buf` of rank `root` copied to every rank (the length too).
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()>;
    fn barrier(&self) -> Result<()>;
    /// Each rank's `value`, in rank order, on every rank.
    fn all_gather_u64(&self, value: u64) -> Result<Vec<u64>>;
    /// Ends every process of the launch with `code` (MPI_Abort); a single process exits.
    fn abort(&self, code: i32) -> !;

    /// The element-wise mean over ranks, in place.
    fn all_reduce_mean_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce_sum_f32(buf)?;
        let n = self.world_size() as f32;
        if n > 1.0 {
            buf.iter_mut().for_each(|x| *x /= n);
        }
        Ok(())
    }

    /// Each rank's `value`, in rank order, on every rank.
    fn all_gather_f64(&self, value: f64) -> Result<Vec<f64>> {
        Ok(self
            .all_gather_u64(value.to_bits())?
            .into_iter()
            .map(f64::from_bits)
            .collect())
    }

    /// Whether this rank writes files and prints progress (rank 0, as in transformers).
    fn is_main_process(&self) -> bool {
        self.rank() == 0
    }
}

/// A shared handle on the process's communicator (cheap to clone; the Trainer keeps one).
pub type World = Arc<dyn Communicator>;

/// The process's communicator: made on the first call, the same one after. `backend` is
/// `TrainingArguments::ddp_backend`: `None` picks from the environment (an MPI launcher's
/// variables with the `mpi` feature: MPI; torchrun's with the `nccl` feature: NCCL; none: one
/// process), `"mpi"` asks for MPI (one process of world size 1 when started without `mpirun`),
/// `"nccl"` for NCCL (refused by a build without the `nccl` feature).
/// A second call asking for another backend than the first got is an error.
pub fn world(backend: Option<&str>) -> Result<World> {
    static WORLD: Mutex<Option<World>> = Mutex::new(None);
    let mut w = WORLD
        .lock()
        .map_err(|_| Error::InvalidArgument("the communicator's lock is poisoned".into()))?;
    if let Some(existing) = w.as_ref() {
        if let Some(b) = backend
            && b != existing.backend()
        {
            return Err(Error::InvalidConfig(format!(
                "TrainingArguments.ddp_backend: this process already runs the `{}` backend and cannot switch to `{b}`; use one ddp_backend per process",
                existing.backend()
            )));
        }
        return Ok(existing.clone());
    }
    let made = make_world(backend, env::detect()?)?;
    *w = Some(made.clone());
    Ok(made)
}

/// The communicator for `backend` in the launch `launch`.
fn make_world(backend: Option<&str>, launch: Option<LaunchEnv>) -> Result<World> {
    let parallel = launch.filter(|l| l.world_size > 1);
    match backend {
        Some("nccl") => nccl_world(launch),
        Some("mpi") => mpi_world(launch),
        Some(other) => Err(bad_backend(other)),
        None => match parallel {
            None => Ok(Arc::new(SingleProcess)),
            Some(l) if l.launcher.is_mpi() => mpi_world(Some(l)),
            Some(l) if cfg!(feature = "nccl") => nccl_world(Some(l)),
            Some(l) => Err(Error::Unsupported(format!(
                "this process is rank {} of {} started by torchrun (RANK, WORLD_SIZE), which needs the NCCL backend: rebuild with `--features nccl` (GPUs; docs/gpu.md), or launch with `mpirun -n {}` on a build with `--features mpi` (CPUs)",
                l.rank, l.world_size, l.world_size
            ))),
        },
    }
}

/// NCCL on this launch's GPU: the id over MPI where MPI launched the ranks (and is built in),
/// else through the rendezvous at `MASTER_ADDR`; a single process shares with itself.
#[cfg(feature = "nccl")]
fn nccl_world(launch: Option<LaunchEnv>) -> Result<World> {
    let l = launch.unwrap_or(LaunchEnv {
        rank: 0,
        world_size: 1,
        local_rank: 0,
        launcher: Launcher::Torchrun,
    });
    if l.world_size == 1 {
        return Ok(Arc::new(nccl::Nccl::init(&l, |id| Ok(id.to_vec()))?));
    }
    #[cfg(feature = "mpi")]
    if l.launcher.is_mpi() {
        let m = mpi::Mpi::init(Some(l))?;
        return Ok(Arc::new(nccl::Nccl::init(&l, |id| {
            let mut buf = id.to_vec();
            m.broadcast_bytes(&mut buf, 0)?;
            Ok(buf)
        })?));
    }
    Ok(Arc::new(nccl::Nccl::init(
        &l,
        nccl::Nccl::rendezvous_share(&l)?,
    )?))
}

#[cfg(not(feature = "nccl"))]
fn nccl_world(_launch: Option<LaunchEnv>) -> Result<World> {
    Err(nccl_missing())
}

/// Checks a `ddp_backend` value (for `TrainingArguments::validate`).
pub fn check_backend(backend: Option<&str>) -> Result<()> {
    match backend {
        None | Some("mpi") => Ok(()),
        Some("nccl") if cfg!(feature = "nccl") => Ok(()),
        Some("nccl") => Err(nccl_missing()),
        Some(other) => Err(bad_backend(other)),
    }
}

fn bad_backend(other: &str) -> Error {
    Error::InvalidConfig(format!(
        "TrainingArguments.ddp_backend: `{other}` is not a backend; use \"mpi\" (CPU, under mpirun; the `mpi` feature), \"nccl\", or leave it unset to pick from the environment"
    ))
}

fn nccl_missing() -> Error {
    Error::Unsupported(
        "TrainingArguments.ddp_backend = \"nccl\": this massivetext was built without the `nccl` feature; rebuild with `--features nccl` (GPUs; `source scripts/cuda-env.sh` first, docs/gpu.md), or use ddp_backend = \"mpi\" with a build that has `--features mpi` and launch with mpirun".into(),
    )
}

#[cfg(feature = "mpi")]
fn mpi_world(launch: Option<LaunchEnv>) -> Result<World> {
    Ok(Arc::new(mpi::Mpi::init(launch)?))
}

#[cfg(not(feature = "mpi"))]
fn mpi_world(launch: Option<LaunchEnv>) -> Result<World> {
    let who = match launch {
        Some(l) if l.world_size > 1 => format!(
            "this process is rank {} of {} ({:?} launch)",
            l.rank, l.world_size, l.launcher
        ),
        _ => "the MPI backend was asked for (ddp_backend = \"mpi\")".to_string(),
    };
    Err(Error::Unsupported(format!(
        "{who}, but this massivetext was built without the `mpi` feature, so its ranks cannot talk; rebuild with `cargo build --release --features mpi` (needs `apt-get install -y openmpi-bin libopenmpi-dev libclang-dev`)"
    )))
}

/// Ends MPI cleanly (`MPI_Finalize`) once every rank is done; call it last in a program run
/// under `mpirun` (the `massivetext` binary does). Without it, mpirun reports that a process
/// exited without finalizing and fails the launch. Nothing to do without MPI.
pub fn finalize() {
    #[cfg(feature = "mpi")]
    mpi::finalize();
}

/// Prints `message` with this rank's name to stderr and ends every rank of the launch with
/// exit status 1 (a single process just exits): how a rank that cannot go on (its data or
/// model failed to load) stops the others instead of leaving them waiting in a collective.
pub fn abort_with(world: &dyn Communicator, message: &str) -> ! {
    if world.world_size() > 1 {
        eprintln!(
            "error (rank {} of {}): {message}",
            world.rank(),
            world.world_size()
        );
    } else {
        eprintln!("error: {message}");
    }
    world.abort(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(launcher: Launcher) -> Option<LaunchEnv> {
        Some(LaunchEnv {
            rank: 1,
            world_size: 2,
            local_rank: 1,
            launcher,
        })
    }

    #[test]
    fn backends_are_chosen_from_the_environment() {
        assert_eq!(make_world(None, None).unwrap().world_size(), 1);
        #[cfg(not(feature = "nccl"))]
        {
            let e = make_world(None, launch(Launcher::Torchrun)).unwrap_err();
            assert!(e.to_string().contains("mpirun -n 2"), "{e}");
            assert!(e.to_string().contains("--features nccl"), "{e}");
            let e = make_world(Some("nccl"), None).unwrap_err();
            assert!(
                e.to_string().contains("built without the `nccl` feature"),
                "{e}"
            );
            assert!(check_backend(Some("nccl")).is_err());
        }
        #[cfg(feature = "nccl")]
        {
            assert!(check_backend(Some("nccl")).is_ok());
            // torchrun's ranks take NCCL, which needs its rendezvous (or a second GPU)
            let e = make_world(None, launch(Launcher::Torchrun)).unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains("MASTER_ADDR") || e.contains("NCCL backend"),
                "{e}"
            );
        }
        let e = make_world(Some("gloo"), None).unwrap_err();
        assert!(e.to_string().contains("`gloo` is not a backend"), "{e}");
        #[cfg(not(feature = "mpi"))]
        {
            let e = make_world(None, launch(Launcher::OpenMpi)).unwrap_err();
            assert!(e.to_string().contains("--features mpi"), "{e}");
            assert!(e.to_string().contains("rank 1 of 2"), "{e}");
        }
    }
}
