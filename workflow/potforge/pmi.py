"""Process-manager (PMI) variables a serial MPI program must not inherit.

Inside a SLURM job step started with ``--mpi=pmi2`` (the slurm-jobstep executor runs every job
through ``srun``), the step's PMI connection is an inherited file descriptor named by ``PMI_FD``.
Snakemake starts the rule's shell with other descriptors closed, so a program further down that
initialises MPI (LAMMPS, GPAW) finds ``PMI_FD`` pointing at nothing and aborts in ``MPI_Init``.
Dropping the stale variables lets MPICH start as a singleton, as it does outside SLURM.
"""

from __future__ import annotations

import os
import stat
from collections.abc import MutableMapping

PMI_PREFIXES = ("PMI_", "PMIX_")


def stale_pmi(env: MutableMapping[str, str]) -> bool:
    """Whether `env` names a PMI descriptor that is not an open socket of this process.

    The number of a closed descriptor may since have been reused for a plain file, so an open
    descriptor that is not a socket counts as stale too.
    """
    fd = env.get("PMI_FD")
    if fd is None:
        return False
    try:
        return not stat.S_ISSOCK(os.fstat(int(fd)).st_mode)
    except (ValueError, OSError):
        return True


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
