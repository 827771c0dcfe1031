"""Process-manager (PMI) variables a serial MPI program must not inherit.

Inside a SLURM job step started with ``--mpi=pmi2`` (the slurm-jobstep executor runs every job
through ``srun``), the step's PMI connection is an inherited file descriptor named by ``PMI_FD``.
Snakemake starts the rule's shell with other descriptors closed, so a program further down that
initialises MPI (LAMMPS, GPAW) finds ``PMI_FD`` pointing at nothing and aborts in ``MPI_Init``.
Dropping the stale variables lets MPICH start as a singleton, as it does outside SLURM.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

PMI_PREFIXES = ("PMI_", "PMIX_")


def stale_pmi(env: MutableMapping[str, str]) -> bool:
    """Whether `env` names a PMI file descriptor that this process does not have open."""
    fd = env.get("PMI_FD")
    if fd is None:
        return False
    try:
        os.fstat(int(fd))
    except (ValueError, OSError):
        return True
    return False


def drop_stale_pmi(env: MutableMapping[str, str]) -> list[str]:
    """Remove the PMI variables from `env` when their descriptor is gone; return the names removed.

    Pass ``os.environ`` before an in-process ``MPI_Init`` (it updates the C environment too), or a
    copy meant for a child process.
    """
    if not stale_pmi(env):
        return []
    names = [name for name in env if name.startswith(PMI_PREFIXES)]
    for name in names:
        del env[name]
    return names
