//! Which process of a launch this is: the rank, world size and local rank that `mpirun`,
//! `srun`, `torchrun` and other PMI launchers put in the environment. None of their variables:
//! a single process (world size 1), exactly as before data-parallel training existed.
use crate::{Error, Result};

/// Who started the processes, as the environment tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// Open MPI's `mpirun` / `mpiexec` (`OMPI_COMM_WORLD_RANK`, `_SIZE`, `_LOCAL_RANK`).
    OpenMpi,
    /// A PMI launcher: MPICH's or Intel MPI's `mpiexec`, `srun --mpi=pmi2` (`PMI_RANK`,
    /// `PMI_SIZE`).
    Pmi,
    /// A Slurm job step started by `srun` (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`; read
    /// only inside a step, `SLURM_STEP_ID` set, as a batch script's own shell has them too).
    Slurm,
    /// PyTorch's `torchrun` (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`).
    Torchrun,
}

impl Launcher {
    /// Whether the processes were started by an MPI launcher, so that `MPI_Init` joins them.
    pub fn is_mpi(self) -> bool {
        !matches!(self, Launcher::Torchrun)
    }
}

/// This process's place in a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    /// The rank among the processes of this machine (which GPU a process takes).
    pub local_rank: usize,
    pub launcher: Launcher,
}

/// Reads the launch variables of this process (see [`detect_from`]).
pub fn detect() -> Result<Option<LaunchEnv>> {
    detect_from(|k| std::env::var(k).ok())
}

/// The launch `get` describes, first match wins: Open MPI, then PMI, then a Slurm step, then
/// torchrun. `None` when none of them is set. A variable that is not a number, or a rank not
/// below the world size, is an error naming the variable.
pub fn detect_from(get: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>> {
    let schemes: [(Launcher, &str, &str, &[&str]); 4] = [
        (
            Launcher::OpenMpi,
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            &["OMPI_COMM_WORLD_LOCAL_RANK"],
        ),
        (
            Launcher::Pmi,
            "PMI_RANK",
            "PMI_SIZE",
            &["MPI_LOCALRANKID", "PMI_LOCAL_RANK"],
        ),
        (
            Launcher::Slurm,
            "SLURM_PROCID",
            "SLURM_NTASKS",
            &["SLURM_LOCALID"],
        ),
        (Launcher::Torchrun, "RANK", "WORLD_SIZE", &["LOCAL_RANK"]),
    ];
    for (launcher, rank_var, size_var, local_vars) in schemes {
        if launcher == Launcher::Slurm && get("SLURM_STEP_ID").is_none() {
            continue;
        }
        let (Some(rank), Some(size)) = (get(rank_var), get(size_var)) else {
            continue;
        };
        let num = |var: &str, v: &str| -> Result<usize> {
            v.trim().parse::<usize>().map_err(|_| {
                Error::InvalidConfig(format!(
                    "the environment variable {var}={v:?} is not a whole number; it is set by the launcher (mpirun, srun, torchrun): unset it to run one process"
                ))
            })
        };
        let rank = num(rank_var, &rank)?;
        let world_size = num(size_var, &size)?;
        if world_size == 0 || rank >= world_size {
            return Err(Error::InvalidConfig(format!(
                "the environment says rank {rank} ({rank_var}) of {world_size} processes ({size_var}); a rank must be below the world size: check the launcher's command line"
            )));
        }
        let local_rank = match local_vars.iter().find_map(|v| get(v).map(|x| (*v, x))) {
            Some((var, v)) => num(var, &v)?,
            None => 0,
        };
        return Ok(Some(LaunchEnv {
            rank,
            world_size,
            local_rank,
            launcher,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Option<LaunchEnv>> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        detect_from(|k| m.get(k).cloned())
    }

    #[test]
    fn no_variables_is_one_process() {
        assert_eq!(env(&[]).unwrap(), None);
        // a batch script's own shell: Slurm variables without a step
        assert_eq!(
            env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")]).unwrap(),
            None
        );
    }

    #[test]
    fn each_launcher_is_read() {
        let e = env(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.local_rank), (1, 4, 1));
        assert_eq!(e.launcher, Launcher::OpenMpi);
        let e = env(&[
            ("PMI_RANK", "2"),
            ("PMI_SIZE", "3"),
            ("MPI_LOCALRANKID", "0"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.world_size, e.launcher), (2, 3, Launcher::Pmi));
        let e = env(&[
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((e.rank, e.local_rank, e.launcher), (5, 1, Launcher::Slurm));
        let e = env(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")])
            .unwrap()
            .unwrap();
        assert_eq!(e.launcher, Launcher::Torchrun);
        assert!(!e.launcher.is_mpi());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = env(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("RANK=\"x\""), "{e}");
        let e = env(&[("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "2")]).unwrap_err();
        assert!(e.to_string().contains("OMPI_COMM_WORLD_RANK"), "{e}");
    }
}
